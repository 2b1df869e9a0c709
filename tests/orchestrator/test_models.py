"""The model repository and the report schema stay in step with the code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tiktok_analyzer.analyzers import ANALYZER_NAMES, load_class
from tiktok_analyzer.analyzers.base import parse_params
from tiktok_analyzer.orchestrator import report
from tiktok_analyzer.orchestrator.models import read_declarations, with_dependencies
from tiktok_analyzer.serving.launcher import default_model_repository


def test_model_repository_is_current():
    run = subprocess.run(
        [sys.executable, "-m", "tiktok_analyzer.serving.generate", "--check"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr


def test_schema_is_current():
    assert report.main(["--check"]) == 0


def test_every_analyzer_has_a_model():
    decls = read_declarations(default_model_repository())
    assert sorted(decls) == sorted(ANALYZER_NAMES)
    assert len(decls) == 21
    for name, decl in decls.items():
        cls = load_class(name)
        assert decl.frames == cls.frames and decl.audio == cls.audio
        assert decl.depends_on == cls.depends_on
        assert decl.optional == cls.inputs_optional


def test_dependencies_come_first():
    decls = read_declarations(default_model_repository())
    order = with_dependencies(["color_analysis"], decls)
    assert (
        order.index("cut_analysis")
        < order.index("scene_segmentation")
        < order.index("color_analysis")
    )
    with pytest.raises(KeyError):
        with_dependencies(["no_such"], decls)


def test_parse_params_is_strict():
    from dataclasses import dataclass

    @dataclass
    class P:
        on: bool = True
        n: int = 1
        x: float = 0.5

    assert parse_params(P, {"on": "false", "n": "3", "x": "2"}) == P(False, 3, 2.0)
    assert parse_params(P, {"on": "TRUE"}).on is True
    with pytest.raises(ValueError, match="not a boolean"):
        parse_params(P, {"on": "maybe"})
    with pytest.raises(ValueError, match="unknown"):
        parse_params(P, {"typo": "1"})


def test_cpu_models_on_a_gpu_host_take_one_clip_per_instance():
    """A CPU analyzer with ``gpu_host_instances`` above 1 gets a configs/gpu.pbtxt of that
    many KIND_CPU instances, each handed one clip (preferred batch 1); the rest have none,
    and Triton falls back to their config.pbtxt (one instance)."""
    repo = default_model_repository()
    with_host_config = {}
    for name in ANALYZER_NAMES:
        cls = load_class(name)
        path = repo / name / "configs" / "gpu.pbtxt"
        if cls.gpu:
            assert "kind: KIND_GPU" in path.read_text()
        elif cls.gpu_host_instances > 1:
            text = path.read_text()
            assert f"kind: KIND_CPU count: {cls.gpu_host_instances} " in text
            assert "preferred_batch_size: [ 1 ]" in text and "KIND_GPU" not in text
            with_host_config[name] = cls.gpu_host_instances
        else:
            assert not path.exists()
        assert "kind: KIND_CPU count: 1 " in (repo / name / "config.pbtxt").read_text()
    assert with_host_config == {
        "camera_analysis": 2,
        "content_quality": 2,
        "cut_analysis": 2,
        "eye_tracking": 3,
        "visual_effects": 2,
    }
