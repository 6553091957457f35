"""Contrastive training of csr-mini heads (and optionally top text-tower layers): arms, caption pools, trainer.

`csr_core.finetune` is the public entry point; this package holds its parts so each stays small.
"""
