"""Each model.py through a fake triton_python_backend_utils: initialize from its real
config.pbtxt, execute batches of requests, one response per request, errors as responses."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys

import jsonschema
import numpy as np
import pytest

from tiktok_analyzer.analyzers import ANALYZER_NAMES, load_class
from tiktok_analyzer.analyzers._learned import LearnedAnalyzer
from tiktok_analyzer.orchestrator.decode import target_size
from tiktok_analyzer.orchestrator.models import read_declarations
from tiktok_analyzer.serving.launcher import default_model_repository

from ..live.conftest import LIVE_WEIGHTS
from ..unit import upstream as up
from . import fake_pb_utils as pb

REPO = default_model_repository()
DECLS = read_declarations(REPO)
META = {
    "duration_s": 2.0,
    "fps": 15.0,
    "width": 360,
    "height": 640,
    "has_video": True,
    "has_audio": True,
}


@pytest.fixture(scope="module", autouse=True)
def fake_backend():
    sys.modules["triton_python_backend_utils"] = pb.as_module()
    with pytest.MonkeyPatch.context() as mp:
        # The weights the live tier uses: real where they ship offline, tiny elsewhere.
        mp.setenv("TIKTOK_ANALYZER_WEIGHTS", LIVE_WEIGHTS)
        yield
    sys.modules.pop("triton_python_backend_utils", None)
    sys.modules.pop("tiktok_analyzer.serving.adapter", None)
    # initialize hung the Triton log handler on the project's loggers: not for later tests
    project = logging.getLogger("tiktok_analyzer")
    for handler in [h for h in project.handlers if type(h).__name__ == "_TritonLog"]:
        project.removeHandler(handler)
    project.setLevel(logging.NOTSET)


def _config_json(name: str) -> str:
    """The model's config.pbtxt parameters in the JSON form Triton hands to initialize."""
    text = (REPO / name / "config.pbtxt").read_text()
    import re

    params = dict(re.findall(r'key:\s*"([^"]+)"\s*value\s*\{\s*string_value:\s*"([^"]*)"', text))
    return json.dumps(
        {"name": name, "parameters": {k: {"string_value": v} for k, v in params.items()}}
    )


def _model(name: str):
    path = REPO / name / "1" / "model.py"
    spec = importlib.util.spec_from_file_location(f"model_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TritonPythonModel()
    model.initialize(
        {
            "model_config": _config_json(name),
            "model_instance_kind": "CPU",
            "model_instance_name": f"{name}_0",
        }
    )
    return model


def _request(
    name: str, n_frames: int = 30, upstream: dict | None = None, seed: int = 0, meta: object = None
) -> pb.InferenceRequest:
    decl = DECLS[name]
    rng = np.random.default_rng(seed)
    body = json.dumps({"meta": META, "upstream": upstream or {}}) if meta is None else meta
    tensors = {
        "META": np.array([[body.encode() if isinstance(body, str) else body]], dtype=np.object_)
    }
    if decl.frames is not None:
        w, h = target_size(META["width"], META["height"], decl.frames.short_side)
        # Two flat halves with a hard change in the middle: every analyzer has content.
        frames = np.empty((n_frames, h, w, 3), np.uint8)
        frames[: n_frames // 2] = rng.integers(0, 255, 3)
        frames[n_frames // 2 :] = rng.integers(0, 255, 3)
        frames = np.clip(frames + rng.normal(0, 3, frames.shape), 0, 255).astype(np.uint8)
        t = np.arange(n_frames) / META["fps"]
        tensors.update(
            FRAMES=frames[None],
            TIMESTAMPS=t[None],
            FRAME_INDEX=np.arange(n_frames, dtype=np.int64)[None],
        )
    if decl.audio:
        sr = 16_000
        tt = np.arange(int(META["duration_s"] * sr)) / sr
        tensors["AUDIO"] = (0.3 * np.sin(2 * np.pi * 220 * tt)).astype(np.float32)[None]
    return pb.InferenceRequest(tensors)


def _envelope(response: pb.InferenceResponse) -> dict:
    assert not response.has_error(), response.error.message()
    (out,) = response.output_tensors
    assert out.name() == "RESULT"
    return json.loads(out.as_numpy().reshape(-1)[0])


def _upstream_for(name: str) -> dict:
    """Run the model's dependencies through their own adapters first, as the DAG does."""
    upstream = {}
    for dep in DECLS[name].depends_on:
        env = _envelope(_model(dep).execute([_request(dep, upstream=_upstream_for(dep))])[0])
        if env["status"] == "ok":
            upstream[dep] = env["result"]
    return upstream


@pytest.mark.parametrize("name", ANALYZER_NAMES)
def test_batch_of_three_answers_each_request(name):
    """Two clips of different lengths and a malformed request in one execute call: three
    responses in order, the malformed one an INVALID_ARG error, the others envelopes."""
    model = _model(name)
    upstream = _upstream_for(name)
    requests = [
        _request(name, 30, upstream, seed=1),
        _request(name, meta="{not json"),
        _request(name, 20, upstream, seed=2),
    ]
    responses = model.execute(requests)
    assert len(responses) == 3
    assert responses[1].has_error()
    assert responses[1].error.code() == pb.TritonError.INVALID_ARG
    assert "META" in responses[1].error.message()
    cls = load_class(name)
    for response in (responses[0], responses[2]):
        env = _envelope(response)
        # what this instance loaded (a learned analyzer decides at initialize)
        assert env["model"] == {
            "name": model.analyzer.model_name,
            "weights": model.analyzer.weights,
        }
        if getattr(cls, "brought_by", None):
            assert env["status"] == "unavailable"
            assert "issue" in env["error"]
        else:
            assert env["status"] == "ok", env["error"]
            cls.Result.model_validate(env["result"])


@pytest.mark.parametrize(
    "name", [n for n in ANALYZER_NAMES if not getattr(load_class(n), "brought_by", None)]
)
def test_failure_is_a_response_not_an_exception(name, monkeypatch):
    model = _model(name)

    def boom(clip):
        raise RuntimeError("synthetic failure " + "x" * 1000)

    # prepare when the analyzer batches clips (the learned batch path), else its analyze
    batched = (
        isinstance(model.analyzer, LearnedAnalyzer)
        and type(model.analyzer).analyze is LearnedAnalyzer.analyze
    )
    monkeypatch.setattr(model.analyzer, "prepare" if batched else "analyze", boom)
    responses = model.execute(
        [_request(name, upstream=_upstream_for(name)), pb.InferenceRequest({}, cancelled=True)]
    )
    env = _envelope(responses[0])
    assert env["status"] == "failed"
    assert env["error"].startswith("RuntimeError: synthetic failure")
    assert len(env["error"]) <= 300  # short message to the caller, trace to the log
    assert responses[1].error.code() == pb.TritonError.CANCELLED


def test_the_instance_device_reaches_the_analyzer():
    # A KIND_CPU instance (as _model starts it) puts the model on the CPU, GPU host or not.
    model = _model("object_detection")
    assert model.analyzer.device == "cpu"
    assert next(model.analyzer.model.parameters()).device.type == "cpu"


def test_on_a_gpu_only_the_critical_model_keeps_mps_normal_priority(monkeypatch):
    from tiktok_analyzer.serving import adapter

    monkeypatch.delenv(adapter.MPS_PRIORITY_ENV, raising=False)
    adapter._mps_priority(load_class("video_llava"), "cpu")
    assert adapter.MPS_PRIORITY_ENV not in adapter.os.environ  # a CPU instance: untouched
    for name, expected in (("video_llava", "0"), ("object_detection", "1")):
        monkeypatch.delenv(adapter.MPS_PRIORITY_ENV, raising=False)
        adapter._mps_priority(load_class(name), "cuda:0")
        assert adapter.os.environ[adapter.MPS_PRIORITY_ENV] == expected
    # A value the server was started with wins.
    monkeypatch.setenv(adapter.MPS_PRIORITY_ENV, "0")
    adapter._mps_priority(load_class("object_detection"), "cuda:0")
    assert adapter.os.environ[adapter.MPS_PRIORITY_ENV] == "0"
    assert [n for n in ANALYZER_NAMES if load_class(n).gpu_critical] == ["video_llava"]


def test_tensor_shape_errors_are_invalid_arg():
    name = "cut_analysis"
    model = _model(name)
    bad = _request(name)
    bad.tensors["TIMESTAMPS"] = pb.Tensor("TIMESTAMPS", np.zeros((1, 3)))
    (resp,) = model.execute([bad])
    assert resp.error.code() == pb.TritonError.INVALID_ARG
    assert "TIMESTAMPS" in resp.error.message()


def test_unknown_parameter_fails_initialize():
    name = "cut_analysis"
    path = REPO / name / "1" / "model.py"
    spec = importlib.util.spec_from_file_location("model_bad", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = json.loads(_config_json(name))
    config["parameters"]["no_such_knob"] = {"string_value": "1"}
    with pytest.raises(ValueError, match="no_such_knob"):
        module.TritonPythonModel().initialize({"model_config": json.dumps(config)})


#: The generated clip each sound model hears without weights: five seconds of beat and pad
#: then a voice (known music and speech shares), and effects over a pad with a cut at 3.0 s
#: (known onsets); speech_emotion hears the same voice after music (known speech span).
PARTIAL_CLIPS = {
    "audio_environment": "speech_after_music",
    "sound_effects": "sound_events",
    "speech_emotion": "speech_after_music",
}


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    """Each clip's sound decoded as the orchestrator would, and its truth."""
    from tiktok_analyzer.groundtruth import render_sound

    out = {}
    for name in set(PARTIAL_CLIPS.values()):
        out[name] = render_sound(name, tmp_path_factory.mktemp("adapter_sound") / f"{name}.m4a")
    return out


@pytest.mark.parametrize("name", list(PARTIAL_CLIPS))
def test_without_weights_the_measured_part_is_answered_partial(name, sounds, tmp_path, monkeypatch):
    """Real weights missing: the model loads, answers `partial` with what its DSP measured
    on the generated clip, the model-made fields null and listed with the fix; the entry
    fits the report's schema, whose entry for this analyzer names exactly those fields."""
    from tiktok_analyzer.orchestrator.report import report_schema

    monkeypatch.setenv("TIKTOK_ANALYZER_WEIGHTS", "real")
    monkeypatch.setenv("TIKTOK_ANALYZER_WEIGHTS_DIR", str(tmp_path))
    model = _model(name)
    audio, info = sounds[PARTIAL_CLIPS[name]]
    cuts = [c["time_s"] for c in info.get("cuts", [])]
    length = info["duration_s"]
    meta = {**META, "duration_s": length, "has_video": False}
    request = _request(name)
    request.tensors["AUDIO"] = pb.Tensor("AUDIO", audio[None])
    request.tensors["META"] = pb.Tensor(
        "META",
        np.array(
            [[json.dumps({"meta": meta, "upstream": {"cut_analysis": up.cuts(cuts, length)}})]],
            dtype=np.object_,
        ),
    )
    env = _envelope(model.execute([request])[0])
    assert env["status"] == "partial", env["error"]
    assert env["model"]["weights"] == "none"
    assert f"weights pull {name}" in env["error"]
    fields = [f["field"] for f in env["unavailable_fields"]]
    cls = load_class(name)
    assert fields == list(cls.Result.made_by_model)
    assert all(
        f"tiktok-analyzer weights pull {name}" in f["fix"] for f in env["unavailable_fields"]
    )
    result = cls.Result.model_validate(env["result"])
    if name == "audio_environment":
        assert result.scene is None and result.audioset_top is None
        music = info["speech"]["start_s"] / info["duration_s"]
        spoken = (info["speech"]["end_s"] - info["speech"]["start_s"]) / info["duration_s"]
        assert result.music_share == pytest.approx(music, abs=0.1)
        assert result.speech_share == pytest.approx(spoken, abs=0.15)
        # Clean generated sound: the foreground stands far above its floor.
        assert result.snr_db >= 20.0
    elif name == "speech_emotion":
        # Silero VAD's windows over the voice, not the music before it; unlabelled.
        speech = info["speech"]
        assert abs(result.segments[0].start_s - speech["start_s"]) <= 0.3
        assert abs(result.segments[-1].end_s - speech["end_s"]) <= 0.3
        assert all(s.emotion is None and s.scores is None for s in result.segments)
        assert result.dominant is None and result.labels is None
    else:
        onsets = [e.start_s for e in result.events]
        assert len(onsets) == len(info["sound_events"])
        for e in info["sound_events"]:
            assert min(abs(t - e["onset_s"]) for t in onsets) <= 0.2, (e, onsets)
        assert all(e.label is None and e.confidence is None for e in result.events)
        assert [e.on_cut for e in result.events] == [False, False, True, False, False]
    schema = report_schema()
    entry = schema["properties"]["analyzers"]["properties"][name]
    jsonschema.validate(env, {"$defs": schema["$defs"], **entry})
    assert entry["properties"]["unavailable_fields"]["items"]["properties"]["field"]["enum"] == (
        fields
    )
    # A field the schema does not name for this analyzer is refused.
    wrong = {**env, "unavailable_fields": [{**env["unavailable_fields"][0], "field": "bogus"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, {"$defs": schema["$defs"], **entry})


def test_product_detection_without_weights_answers_the_brands_on_screen(tmp_path, monkeypatch):
    """No CLIP weights: through the adapter, product_detection answers `partial` with the
    brand read in the upstream text and the candidate track, products null, and the entry
    fits the report's schema."""
    from tiktok_analyzer.orchestrator.report import report_schema

    monkeypatch.setenv("TIKTOK_ANALYZER_WEIGHTS", "real")
    monkeypatch.setenv("TIKTOK_ANALYZER_WEIGHTS_DIR", str(tmp_path))
    box = [0.2, 0.2, 0.7, 0.7]
    upstream = {
        "text_overlay": up.texts([up.text("new NIKE drop", 0.2, 0.6)]),
        "object_detection": up.objects(
            [
                up.track("person", 1, 0.0, 0.9, [(0.0, box)], share=1.0),
                up.track("handbag", 2, 0.1, 0.5, [(0.1, box), (0.5, box)], share=0.5),
            ]
        ),
    }
    env = _envelope(
        _model("product_detection").execute([_request("product_detection", 30, upstream)])[0]
    )
    assert env["status"] == "partial", env["error"]
    assert env["model"]["weights"] == "none"
    assert "weights pull product_detection" in env["error"]
    assert [f["field"] for f in env["unavailable_fields"]] == ["products", "crops_scored"]
    result = env["result"]
    assert result["products"] is None and result["crops_scored"] is None
    assert [(b["brand"], b["start_s"], b["end_s"]) for b in result["brands_in_text"]] == [
        ("nike", 0.2, 0.6)
    ]
    assert [(c["track_id"], c["label"], c["brands"]) for c in result["candidates"]] == [
        (2, "handbag", ["nike"])
    ]
    schema = report_schema()
    entry = schema["properties"]["analyzers"]["properties"]["product_detection"]
    jsonschema.validate(env, {"$defs": schema["$defs"], **entry})


def test_the_analyzers_log_records_reach_tritons_log():
    """In a stub, nothing handled the project's log records: INFO was dropped. After
    initialize they go to Triton's logger at their level, named by their module."""
    _model("cut_analysis")
    pb.Logger.lines.clear()
    log = logging.getLogger("tiktok_analyzer.analyzers.llava")
    log.info("warm-up of batch %d took %.1f s", 4, 12.5)
    log.warning("bf16 asked on the CPU")
    log.error("failed")
    logging.getLogger("tiktok_analyzer.analyzers.cuts").debug("not at INFO")
    logging.getLogger("urllib3").warning("not ours")
    assert pb.Logger.lines == [
        "I tiktok_analyzer.analyzers.llava: warm-up of batch 4 took 12.5 s",
        "W tiktok_analyzer.analyzers.llava: bf16 asked on the CPU",
        "E tiktok_analyzer.analyzers.llava: failed",
    ]
    # a second instance in the same stub does not log everything twice
    _model("scene_segmentation")
    pb.Logger.lines.clear()
    log.info("once")
    assert pb.Logger.lines == ["I tiktok_analyzer.analyzers.llava: once"]
