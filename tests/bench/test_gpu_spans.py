"""The critical path of bench/gpu/spans.py and the Whisper token count of
bench/gpu/whisper_tokens.py, on timings and ranks made up for the purpose."""

from __future__ import annotations

from tests.bench import ROOT, load_script

spans = load_script("gpu_spans", ROOT / "bench" / "gpu" / "spans.py")
whisper_tokens = load_script("gpu_whisper_tokens", ROOT / "bench" / "gpu" / "whisper_tokens.py")

DEPS = {
    "cut_analysis": (),
    "scene_segmentation": ("cut_analysis",),
    "video_llava": ("scene_segmentation",),
    "speech_transcription": (),
    "speech_rate": ("speech_transcription",),
    "temporal_flow": ("video_llava", "speech_rate", "cut_analysis"),
}


def test_the_chain_follows_the_dependency_that_ended_last():
    timings = {
        "cut_analysis": (2.0, 2.5),
        "scene_segmentation": (2.5, 2.6),
        "video_llava": (2.6, 6.0),
        "speech_transcription": (2.0, 5.0),
        "speech_rate": (5.0, 5.1),
        "temporal_flow": (6.0, 6.2),
    }
    chain = spans.critical_path(timings, DEPS)
    assert [c[0] for c in chain] == [
        "probe+decode",
        "cut_analysis",
        "scene_segmentation",
        "video_llava",
        "temporal_flow",
    ]
    assert chain[0] == ("probe+decode", 0.0, 2.0)
    # Whisper slower: the chain goes through speech instead.
    timings["speech_transcription"] = (2.0, 7.0)
    timings["speech_rate"] = (7.0, 7.1)
    timings["temporal_flow"] = (7.1, 7.3)
    chain = spans.critical_path(timings, DEPS)
    assert [c[0] for c in chain][1:] == ["speech_transcription", "speech_rate", "temporal_flow"]
    assert "speech_transcription 2.00-7.00 s" in spans.describe(chain, 7.4)


def test_analyzers_left_out_of_the_run_are_not_in_the_chain():
    chain = spans.critical_path({"video_llava": (1.0, 3.0)}, DEPS)
    assert chain == [("probe+decode", 0.0, 1.0), ("video_llava", 1.0, 3.0)]
    assert spans.critical_path({}, DEPS) == []


def test_the_recorder_keeps_start_and_end_per_analyzer():
    rec = spans.SpanRecorder(t0=0.0)
    rec("cut_analysis", "start", None)
    rec("cut_analysis", "done", None)
    rec("video_llava", "start", None)  # never ended: left out
    (name,) = rec.spans()
    a, b = rec.spans()[name]
    assert name == "cut_analysis" and 0 < a <= b


def test_merges_go_lowest_rank_first():
    # "abc": "bc" (rank 1) merges before "ab" (rank 2); then "a"+"bc" has no rank: 2 tokens.
    ranks = {b"a": 10, b"b": 11, b"c": 12, b"bc": 1, b"ab": 2}
    assert whisper_tokens._bpe(b"abc", ranks) == 2
    ranks[b"abc"] = 3
    assert whisper_tokens._bpe(b"abc", ranks) == 1
    assert whisper_tokens._bpe(b"x", {}) == 1


def test_the_count_reads_a_ranks_file(tmp_path):
    import base64

    vocab = [bytes([i]) for i in range(256)] + [b" t", b" to", b"he", b" the"]
    path = tmp_path / "multilingual.tiktoken"
    path.write_text("".join(f"{base64.b64encode(t).decode()} {r}\n" for r, t in enumerate(vocab)))
    count, source = whisper_tokens.transcript_tokens("to the", ranks=path)
    assert count == 2  # " to", " the"
    assert "multilingual.tiktoken" in source
