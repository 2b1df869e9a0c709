"""The benches' machine line: the CPU's model name with its widest vector unit, read from
/proc/cpuinfo text (two 2-core hosts of one size ran the same code at realtime factor 0.48
and 0.62; the line must tell them apart)."""

from __future__ import annotations

from tests.bench import ROOT, load_script

pipeline_bench = load_script("pipeline_bench", ROOT / "bench" / "pipeline_bench.py")


def _cpuinfo(model: str, flags: str, cpus: int = 2) -> str:
    block = (
        "processor\t: {n}\nvendor_id\t: X\nmodel name\t: {model}\n"
        "cpu MHz\t\t: 2400.000\nflags\t\t: {flags}\nbogomips\t: 4800.00\n\n"
    )
    return "".join(block.format(n=n, model=model, flags=flags) for n in range(cpus))


def test_an_avx512_host_is_named_with_avx512():
    text = _cpuinfo("Intel(R) Xeon(R) Processor", "fpu sse sse4_2 avx avx2 fma avx512f avx512bw")
    assert pipeline_bench.cpu_name(text) == "Intel(R) Xeon(R) Processor (AVX-512)"


def test_an_avx2_host_is_named_with_avx2():
    text = _cpuinfo("AMD EPYC", "fpu sse sse4_2 avx avx2 fma")
    assert pipeline_bench.cpu_name(text) == "AMD EPYC (AVX2)"


def test_amx_outranks_avx512():
    text = _cpuinfo("Intel(R) Xeon(R) Platinum", "avx2 avx512f amx_tile amx_bf16")
    assert pipeline_bench.cpu_name(text) == "Intel(R) Xeon(R) Platinum (AMX)"


def test_without_flags_the_name_stands_alone():
    assert pipeline_bench.cpu_name("model name\t: Some CPU\n") == "Some CPU"


def test_the_machine_line_names_this_hosts_cpu():
    line = pipeline_bench.machine()
    assert line.startswith(pipeline_bench.cpu_name())
    assert " cores" in line
