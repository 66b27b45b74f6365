"""The CPU kind (ws2s.cpu) and what follows from it: bf16 only where its matrix products are
native; elsewhere a run asking for bf16 keeps fp32 (ws2s.train.engine.bf16_on)."""

import torch

from ws2s import cpu
from ws2s.train import engine


def test_the_cap_on_the_instructions_decides_the_cpu_kind(monkeypatch):
    from ws2s import cpu

    monkeypatch.setattr(cpu, "_flags", lambda: {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    for cap, kind in (("", "amx"), ("AVX512_CORE_BF16", "avx512_bf16"), ("AVX512_CORE", "avx512"), ("AVX2", "avx2")):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        cpu.cpu_kind.cache_clear()
        assert cpu.cpu_kind() == kind and cpu.native_bf16() == (kind in ("amx", "avx512_bf16")), cap
    monkeypatch.setattr(cpu, "_flags", lambda: {"avx2", "fma"})
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "")
    cpu.cpu_kind.cache_clear()
    assert cpu.cpu_kind() == "avx2" and not cpu.native_bf16()
    cpu.cpu_kind.cache_clear()


def test_a_run_asking_for_bf16_gets_it_only_where_it_is_native(monkeypatch):
    for native in (True, False):
        monkeypatch.setattr(engine, "native_bf16", lambda: native)
        assert engine.bf16_on(True) is native and engine.bf16_on(False) is False
        with engine.autocast(True):
            product = torch.ones(4, 4) @ torch.ones(4, 4)
        assert product.dtype == (torch.bfloat16 if native else torch.float32)
