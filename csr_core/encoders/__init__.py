"""Model backends behind one `Encoder` protocol; `registry.load_encoder(name)` resolves names to encoders."""

from csr_core.encoders.base import Encoder, l2_normalise

__all__ = ["Encoder", "l2_normalise"]
