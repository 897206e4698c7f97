"""CPU speed choices: bf16 autocast only where the CPU has it (and it works), thread counts within bounds."""

from __future__ import annotations

import pytest

from llmcustoms.hardware import cpu

INTEL_BF16 = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512_bf16 amx_bf16 amx_tile
"""
ZEN4 = """processor\t: 0
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni
"""
OLD_XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) CPU E5-2686 v4
flags\t\t: fpu sse sse2 avx avx2 fma
"""
ARM = """processor\t: 0
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 bf16
"""


def test_flags_are_read_from_cpuinfo_text():
    assert "avx512_bf16" in cpu.cpu_flags(INTEL_BF16)
    assert cpu.cpu_flags("") == set()
    assert "asimd" in cpu.cpu_flags(ARM)


@pytest.mark.parametrize(("text", "native"), [(INTEL_BF16, True), (ZEN4, True), (OLD_XEON, False), (ARM, False),
                                               ("", False)])
def test_native_bf16_needs_avx512_bf16_or_amx(text, native):
    assert cpu.cpu_has_native_bf16(text) is native


def test_no_flag_means_fp32_without_even_probing():
    probed = []
    choice = cpu.choose_cpu_precision(OLD_XEON, probe=lambda: probed.append(1) or True)
    assert choice.bf16_autocast is False and "fp32" in choice.reason
    assert probed == []


def test_flag_but_failing_probe_falls_back_to_fp32():
    choice = cpu.choose_cpu_precision(INTEL_BF16, probe=lambda: False)
    assert choice.bf16_autocast is False and "failed" in choice.reason


def test_flag_and_passing_probe_chooses_bf16(monkeypatch):
    monkeypatch.delenv("LLMCUSTOMS_CPU_BF16", raising=False)
    assert cpu.choose_cpu_precision(ZEN4, probe=lambda: True).bf16_autocast is True


def test_environment_switch_turns_bf16_off(monkeypatch):
    monkeypatch.setenv("LLMCUSTOMS_CPU_BF16", "0")
    assert cpu.choose_cpu_precision(INTEL_BF16, probe=lambda: True).bf16_autocast is False


def test_the_real_probe_passes_on_a_working_torch():
    # torch's CPU autocast computes bf16 on every x86 build (natively or emulated): a False here means
    # the probe itself is broken and every CPU run would silently train in fp32.
    assert cpu.bf16_autocast_probe() is True


def test_the_probe_fails_when_autocast_does_not_cast(monkeypatch):
    import contextlib

    import torch

    monkeypatch.setattr(torch, "autocast", lambda *args, **kwargs: contextlib.nullcontext())
    assert cpu.bf16_autocast_probe() is False


def test_the_probe_fails_when_bf16_computes_garbage(monkeypatch):
    import torch

    def wrong_linear(x, weight, bias=None):
        return (x @ weight.t() + 1.0).to(torch.bfloat16)  # off by one everywhere: not a rounding error

    monkeypatch.setattr(torch.nn.functional, "linear", wrong_linear)
    assert cpu.bf16_autocast_probe() is False


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"affinity": 2, "logical": 2, "physical": 2, "quota": None}, 2),
    ({"affinity": 64, "logical": 64, "physical": 64, "quota": 2.0}, 2),     # container: --cpus 2 on a big host
    ({"affinity": 64, "logical": 64, "physical": 64, "quota": 1.5}, 2),     # a fractional quota rounds up
    ({"affinity": 16, "logical": 16, "physical": 8, "quota": None}, 8),     # SMT: one thread per core
    ({"affinity": 4, "logical": 64, "physical": 64, "quota": None}, 4),     # taskset -c 0-3
    ({"affinity": 1, "logical": 1, "physical": 1, "quota": None}, 1),
    ({"affinity": 0, "logical": 0, "physical": 0, "quota": 0.1}, 1),        # nonsense still gives one thread
])
def test_thread_choice(kwargs, expected):
    assert cpu.choose_torch_threads(**kwargs) == expected


def test_thread_choice_on_this_machine_is_within_bounds():
    import os

    threads = cpu.choose_torch_threads()
    assert 1 <= threads <= (os.cpu_count() or 1)


def test_cgroup_quota_is_read(tmp_path):
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    assert cpu.cgroup_cpu_limit(str(tmp_path)) == 2.0
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu.cgroup_cpu_limit(str(tmp_path)) is None
    assert cpu.cgroup_cpu_limit(str(tmp_path / "missing")) is None


def test_apply_threads_only_lowers(monkeypatch):
    import torch

    monkeypatch.delenv("LLMCUSTOMS_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        assert cpu.apply_torch_threads(before + 4) == before  # never raised above torch's own choice
        if before > 1:
            assert cpu.apply_torch_threads(1) == 1
    finally:
        torch.set_num_threads(before)
