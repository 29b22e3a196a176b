"""dtype "auto": float32 on a CPU without native bf16, bf16 with it, vLLM's own choice on a GPU."""

import pytest

from datagen.config import VLLMConfig
from datagen.engines.precision import cpu_flags, resolve_dtype

AVX2_ONLY = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma", "f16c"})
SAPPHIRE_RAPIDS = AVX2_ONLY | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
GRAVITON3 = frozenset({"fp", "asimd", "sve", "bf16", "i8mm"})


@pytest.mark.parametrize(("flags", "expected"), [
    (AVX2_ONLY, "float32"),  # bf16 is emulated there: ~250x slower matmuls
    (AVX2_ONLY | {"avx512f", "avx512_vnni"}, "float32"),  # AVX-512 without its BF16 extension
    (SAPPHIRE_RAPIDS, "bfloat16"),
    (GRAVITON3, "bfloat16"),
    (frozenset(), "float32"),  # flags unknown: the type that is never emulated
])
def test_auto_on_cpu_follows_native_bf16(flags, expected):
    assert resolve_dtype("auto", on_cpu=True, flags=flags) == expected


def test_auto_on_gpu_is_left_to_vllm():
    assert resolve_dtype("auto", on_cpu=False, flags=AVX2_ONLY) == "auto"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_a_named_dtype_is_kept(dtype):
    assert resolve_dtype(dtype, on_cpu=True, flags=AVX2_ONLY) == dtype


def test_the_default_config_is_auto():
    assert VLLMConfig().dtype == "auto"


def test_cpu_flags_reads_x86_and_arm_layouts(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx avx2\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\nCPU implementer\t: 0x41\n")
    assert cpu_flags(x86) == {"fpu", "avx", "avx2"}
    assert cpu_flags(arm) == {"fp", "asimd", "bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_this_machines_flags_are_read():
    # /proc/cpuinfo exists on every Linux machine the tests run on; the reader must find its flags line.
    assert cpu_flags(), "no flags/Features line read from /proc/cpuinfo"
