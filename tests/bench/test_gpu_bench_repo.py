"""bench/gpu_bench.py's copy of the model repository: budgets set where the configs have
the parameter, a loud stop where they do not."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.bench import ROOT, load_script

gpu_bench = load_script("gpu_bench", ROOT / "bench" / "gpu_bench.py")

CONFIG = """name: "speech_transcription"
parameters { key: "beam_size" value { string_value: "5" } }
parameters { key: "synthetic_tokens" value { string_value: "0" } }
"""


def test_set_param_replaces_only_that_parameter():
    text = gpu_bench.set_param(CONFIG, "synthetic_tokens", 55)
    assert gpu_bench.params_of(text) == {"beam_size": "5", "synthetic_tokens": "55"}
    with pytest.raises(KeyError):
        gpu_bench.set_param(CONFIG, "synthetic_max_tokens", 55)


def test_llava_budget_is_its_max_new_tokens_in_every_config():
    repo, budgets = gpu_bench.prepare_repo("nf4", None)
    configs = sorted((repo / "video_llava").rglob("*.pbtxt"))
    assert len(configs) == 2  # config.pbtxt and configs/gpu.pbtxt
    for cfg in configs:
        params = gpu_bench.params_of(cfg.read_text())
        assert params["precision"] == "nf4"
        assert budgets["video_llava"] == int(params["max_new_tokens"]) == 384
        if "synthetic_new_tokens" in params:
            assert params["synthetic_new_tokens"] == "384"
    assert "speech_transcription" not in budgets
    shutil.rmtree(repo.parent)


def test_speech_budget_lands_in_every_config_or_stops_the_run():
    shipped = (gpu_bench.default_repo() / "speech_transcription" / "config.pbtxt").read_text()
    if "synthetic_tokens" not in gpu_bench.params_of(shipped):
        with pytest.raises(SystemExit, match="no synthetic_tokens parameter"):
            gpu_bench.prepare_repo("bf16", 55)
        return
    repo, budgets = gpu_bench.prepare_repo("bf16", 55)
    assert budgets["speech_transcription"] == 55
    for cfg in (repo / "speech_transcription").rglob("*.pbtxt"):
        assert gpu_bench.params_of(cfg.read_text())["synthetic_tokens"] == "55"
    shutil.rmtree(repo.parent)


def test_describe_config_reads_instances_and_batching():
    cfg = {
        "instance_group": [{"kind": "KIND_GPU", "count": 2}],
        "max_batch_size": 8,
        "dynamic_batching": {"preferred_batch_size": [4, 8]},
    }
    assert gpu_bench.describe_config(cfg) == ("GPU x2", "8 (preferred 4, 8)")


def test_tokens_made_are_read_from_the_result_or_its_segments():
    assert gpu_bench.made_tokens("video_llava", {"new_tokens": 384}) == 384
    segments = [{"text": "a", "tokens": 30}, {"text": "b", "tokens": 25}]
    assert gpu_bench.made_tokens("speech_transcription", {"segments": segments}) == 55
    assert gpu_bench.made_tokens("speech_transcription", {"segments": [{"text": "a"}]}) is None
    assert gpu_bench.made_tokens("video_llava", None) is None


def test_host_cpu_load_counts_a_busy_core():
    # One core spinning for 0.5 s reads as at least ~0.5 CPU s (a 2-core host's other work
    # only adds), and never more cores busy than the host has.
    before = gpu_bench.host_cpu()
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:
        pass
    load = gpu_bench.cpu_load(before, gpu_bench.host_cpu(), 1)
    assert load["cpu_s_per_clip"] >= 0.4
    assert 0.4 <= load["cpu_busy_cores"] <= (os.cpu_count() or 1)
    assert gpu_bench.cpu_load(None, before, 1) == {}


def test_gpu_utilization_is_averaged_over_the_level_only():
    sampler = gpu_bench.GpuSampler(Path("/nonexistent"))
    sampler.utilization = [(1.0, 100), (2.0, 40), (3.0, 60), (4.0, 0)]
    assert sampler.mean_utilization(1.5, 3.5) == 50.0
    assert sampler.mean_utilization(5.0, 6.0) is None


def test_gpu_sampler_reads_the_first_card_of_several(monkeypatch):
    # nvidia-smi answers a line a card: two cards once made the whole sample unreadable.
    sampler = gpu_bench.GpuSampler(Path("/nonexistent"))

    def smi(*query):
        if query[0].startswith("--query-gpu"):
            return "30350, 87\n1200, 0\n"
        sampler.stop_event.set()
        return ""

    monkeypatch.setattr(sampler, "_smi", smi)
    monkeypatch.setattr(gpu_bench.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    sampler.run()
    assert sampler.peak_total == 30350
    assert [u for _, u in sampler.utilization] == [87]


def test_llava_batches_group_a_levels_clips_by_the_batch_they_ran_in():
    from types import SimpleNamespace as NS

    def clip(batch, generate_s):
        timings = {"batch_clips": batch, "generate_s": generate_s, "preprocess_s": 0.1}
        return {"report": NS(analyzers={"video_llava": NS(result={"timings": timings})})}

    clips = [clip(1, 3.0), clip(4, 5.0), clip(4, 5.0), clip(4, 5.0), clip(4, 5.0), clip(2, 4.0)]
    clips.append({"report": NS(analyzers={"video_llava": NS(result=None)})})  # it failed
    clips.append({"report": NS(analyzers={})})  # not asked for
    assert gpu_bench.llava_batches(clips) == {
        "1": {"clips": 1, "generate_s": 3.0},
        "2": {"clips": 1, "generate_s": 4.0},
        "4": {"clips": 4, "generate_s": 5.0},
    }


def test_machine_line_names_the_critical_analyzers_from_their_classes(monkeypatch):
    from tiktok_analyzer.analyzers.llava import VideoLlava

    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", "/tmp/mps")
    monkeypatch.delenv("CUDA_MPS_CLIENT_PRIORITY", raising=False)
    assert gpu_bench.critical_analyzers() == ["video_llava"]
    assert "video_llava at MPS's normal client priority" in gpu_bench.gpu_info()
    monkeypatch.setattr(VideoLlava, "gpu_critical", False)
    assert "no model at MPS's normal client priority" in gpu_bench.gpu_info()
    monkeypatch.setenv("CUDA_MPS_CLIENT_PRIORITY", "0")
    assert "every model at MPS client priority 0" in gpu_bench.gpu_info()
