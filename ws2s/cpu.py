"""What this CPU multiplies fast: its kind, from the instruction sets it has (Linux's
/proc/cpuinfo) and the cap oneDNN is given (ONEDNN_MAX_CPU_ISA).

| kind        | CPUs                                   | bf16 matrix products            |
| ----------- | -------------------------------------- | ------------------------------- |
| amx         | Intel Sapphire Rapids and later        | native (AMX), faster than fp32  |
| avx512_bf16 | AMD Zen 4 and later, Intel Cooper Lake | native, about 2.4× fp32         |
| avx512      | Intel Skylake-SP to Ice Lake           | emulated; unmeasured, kept fp32 |
| avx2        | most other x86                         | emulated, about 50× slower      |

Measured on 2 cores: a 512×896×4864 product ran at 141 GFLOP/s in bf16 and 59 in fp32 on
a Zen 4 EPYC (avx512_bf16), and at 0.8 against 41 on an AVX2-only EPYC.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path


def _flags() -> set[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


@functools.cache
def cpu_kind() -> str:
    """amx, avx512_bf16, avx512 or avx2 (see the table above); `unknown` off Linux."""
    flags = _flags()
    if flags is None:
        return "unknown"
    kinds = [kind for kind, needs in (("amx", "amx_bf16"), ("avx512_bf16", "avx512_bf16"), ("avx512", "avx512f"))
             if needs in flags]
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    allowed = {"AVX2": (), "AVX512_CORE": ("avx512",), "AVX512_CORE_BF16": ("avx512_bf16", "avx512")}
    if cap and "AMX" not in cap and cap != "ALL":
        kinds = [k for k in kinds if k in allowed.get(cap, ())]
    return kinds[0] if kinds else "avx2"


def native_bf16() -> bool:
    """Whether bf16 matrix products beat fp32 on this CPU (off Linux: assumed, as configured)."""
    return cpu_kind() in ("amx", "avx512_bf16", "unknown")
