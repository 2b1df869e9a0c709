"""The wire format between orchestrator and models: every text form survives a round trip,
and a declaration that cannot be read says so in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tiktok_analyzer import wire
from tiktok_analyzer.analyzers import ANALYZER_NAMES, load_class
from tiktok_analyzer.analyzers.base import ClipMeta, FrameSpec
from tiktok_analyzer.orchestrator.models import read_declarations
from tiktok_analyzer.serving.launcher import default_model_repository

SPECS = [
    (FrameSpec(short_side=64, every_frame=True), "every_64", "every frame @ 64px"),
    (FrameSpec(short_side=224, fps=4.0), "fps4_224", "4 fps @ 224px"),
    (FrameSpec(short_side=360, fps=2.5), "fps2.5_360", "2.5 fps @ 360px"),
    (FrameSpec(short_side=0, count=8), "n8_0", "8 frames @ 0px"),
]


@pytest.mark.parametrize(("spec", "key", "text"), SPECS)
def test_frame_spec_round_trip(spec, key, text):
    params = wire.frames_to_params(spec)
    assert set(params) <= wire.DECLARATION_KEYS
    assert wire.frames_from_params(params) == spec
    assert wire.frames_key(spec) == key
    assert wire.describe_frames(spec) == text


def test_frame_keys_are_unique_over_the_repository():
    specs = {d.frames for d in read_declarations(default_model_repository()).values() if d.frames}
    assert len({wire.frames_key(s) for s in specs}) == len(specs)


def test_no_frames_declared():
    assert wire.frames_from_params({"input_audio": "true"}) is None
    assert wire.describe_frames(None) == ""


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"input_frames": "sometimes", "input_short_side": "64"}, "bad input_frames 'sometimes'"),
        ({"input_frames": "fps=fast", "input_short_side": "64"}, "fps=fast"),
        ({"input_frames": "count=3", "input_short_side": "big"}, "'big'"),
        ({"input_frames": "count=3", "input_short_side": "-2"}, "short_side must be >= 0"),
        ({"input_audio": "yes"}, "input_audio must be true or false"),
    ],
)
def test_bad_declaration_is_one_clear_line(params, match):
    with pytest.raises(wire.BadDeclaration, match=match) as info:
        wire.Declaration.from_params("cut_analysis", params)
    assert str(info.value).startswith("cut_analysis: ")
    assert "\n" not in str(info.value)


def test_bad_config_names_its_file(tmp_path):
    model = tmp_path / "cut_analysis"
    model.mkdir()
    (model / "config.pbtxt").write_text(
        wire.parameter_line("analyzer", "cut_analysis")
        + "\n"
        + wire.parameter_line("input_frames", "every_second")
        + "\n"
    )
    with pytest.raises(wire.BadDeclaration, match=r"cut_analysis/config.pbtxt: .*every_second"):
        read_declarations(tmp_path)


@pytest.mark.parametrize("name", ANALYZER_NAMES)
def test_declaration_round_trip_through_config_text(name):
    cls = load_class(name)
    decl = wire.Declaration(
        name=name,
        frames=cls.frames,
        audio=cls.audio,
        depends_on=cls.depends_on,
        optional=cls.inputs_optional,
        model_name=cls.model_name,
    )
    text = "\n".join(wire.parameter_line(k, v) for k, v in decl.to_params().items())
    params = wire.parse_config_params(text)
    assert wire.Declaration.from_params(name, params) == decl
    # what the adapter builds Params from: none of the declaration keys
    assert wire.tunables({**params, "seed": "1"}) == {"seed": "1"}


def test_meta_round_trip_and_errors():
    meta = ClipMeta(duration_s=2.5, fps=30.0, width=720, height=1280, has_audio=False)
    upstream = {"cut_analysis": {"cuts": [{"time_s": 1.0}], "cuts_per_minute": 24.0}}
    back = wire.parse_meta(wire.Meta(meta=meta, upstream=upstream).encode())
    assert back.meta == meta
    assert back.upstream == upstream
    assert wire.parse_meta(b'{"meta": {"duration_s": 1, "fps": 1, "width": 2, "height": 2}}')
    with pytest.raises(ValueError, match="META is not valid"):
        wire.parse_meta(b"{not json")
    with pytest.raises(ValueError, match=r"META is not valid: meta.duration_s"):
        wire.parse_meta(b'{"meta": {"fps": 1, "width": 2, "height": 2}}')


def test_envelope_round_trip():
    entry = wire.AnalyzerEntry(
        status="ok",
        elapsed_s=0.25,
        model=wire.ModelInfo(name="classical", weights="none"),
        result={"cuts_per_minute": 12.5, "cuts": []},
    )
    assert wire.parse_envelope(entry.encode()) == entry
    failed = wire.AnalyzerEntry(
        status="failed", error="boom", elapsed_s=0.0, model={"name": "n/a", "weights": "none"}
    )
    assert wire.parse_envelope(failed.encode()).error == "boom"
    # a NaN in a result becomes null on the wire (pydantic's JSON mode), never invalid JSON
    odd = wire.AnalyzerEntry(
        status="ok", elapsed_s=0.0, model=failed.model, result={"x": float("nan")}
    )
    assert "NaN" not in odd.encode()
    assert wire.parse_envelope(odd.encode()).result == {"x": None}
    with pytest.raises(ValueError):
        wire.parse_envelope('{"status": "great", "elapsed_s": 0, "model": {}}')


def test_tensor_types():
    assert wire.META.config_type == "TYPE_STRING"
    assert wire.FRAMES.config_type == "TYPE_UINT8"
    assert [t.name for t in wire.FRAME_TENSORS] == ["FRAMES", "TIMESTAMPS", "FRAME_INDEX"]


def test_models_command_needs_no_analyzer_class():
    """The orchestrator-only install has no torch or cv2: `models` must not import them."""
    code = (
        "import sys\n"
        "for mod in ('torch', 'cv2', 'librosa', 'scipy'):\n"
        "    sys.modules[mod] = None  # importing it now raises ImportError\n"
        "from tiktok_analyzer.cli import main\n"
        "rc = main(['models'])\n"
        "assert rc == 0, rc\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "cut_analysis" in run.stdout and "classical" in run.stdout
    assert "every frame @" in run.stdout
