"""Entry point for `open_clip_train` under `python -m` or `torchrun -m`: registers local model configs, then runs it.

open_clip_train resolves `--model` through open_clip's config registry, which lives in the process; a local config
file (`open_clip-config:/x.json`) must therefore be registered inside every training process, before
`open_clip_train.main.main` parses its arguments:

    torchrun --nproc_per_node 2 -m csr_core.training.open_clip_launch --register-config /x.json -- <open_clip_train args>
"""

from __future__ import annotations

import sys


def _cpu_ddp_shim() -> None:
    """open_clip_train wraps the model as DDP(model, device_ids=[device]) also when the device is the CPU, which
    torch refuses for CPU modules (CPU DDP takes device_ids=None). In processes without CUDA, DDP drops the
    argument; GPU runs are untouched."""
    import torch

    if torch.cuda.is_available():
        return
    base = torch.nn.parallel.DistributedDataParallel

    class CpuDistributedDataParallel(base):  # type: ignore[misc, valid-type]
        def __init__(self, module, device_ids=None, *args, **kwargs):
            super().__init__(module, None, *args, **kwargs)

    torch.nn.parallel.DistributedDataParallel = CpuDistributedDataParallel  # type: ignore[misc]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    configs: list[str] = []
    while argv and argv[0] == "--register-config":
        configs.append(argv[1])
        argv = argv[2:]
    if argv and argv[0] == "--":
        argv = argv[1:]
    from csr_core.encoders.open_clip_backend import register_model_config

    for path in configs:
        register_model_config(path)
    _cpu_ddp_shim()
    from open_clip_train.main import main as train_main

    train_main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
