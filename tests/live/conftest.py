"""The live tier: one embedded Triton for the session, with every model loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tiktok_analyzer.analyzers import ANALYZER_NAMES
from tiktok_analyzer.orchestrator.report import SCHEMA_PATH
from tiktok_analyzer.serving.launcher import EmbeddedTriton

CLI = [str(Path(sys.executable).parent / "tiktok-analyzer")]


#: Real weights where they ship offline (Whisper base, EasyOCR, mediapipe's face mesh);
#: the tiny synthetic ones for every other learned analyzer (docs/DESIGN.md, Weights).
LIVE_WEIGHTS = "synthetic-tiny,speech_transcription=real,text_overlay=real,eye_tracking=real"


@pytest.fixture(scope="session")
def triton():
    # TIKTOK_ANALYZER_TEST_MODELS=a,b loads only those (a quicker server while working on
    # one analyzer); the full suite loads every model.
    only = [m for m in os.environ.get("TIKTOK_ANALYZER_TEST_MODELS", "").split(",") if m]
    with EmbeddedTriton(
        models=only or list(ANALYZER_NAMES), env={"TIKTOK_ANALYZER_WEIGHTS": LIVE_WEIGHTS}
    ) as server:
        yield server


@pytest.fixture(scope="session")
def schema():
    return json.loads(SCHEMA_PATH.read_text())


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def analyze(path: str, triton: EmbeddedTriton, tmp_path: Path, *extra: str):
    """Run `tiktok-analyzer analyze` against the session server; (process, report or None)."""
    out = tmp_path / (Path(path).stem + ".report.json")
    proc = run_cli("analyze", path, "--triton-url", triton.grpc_url, "--out", str(out), *extra)
    report = json.loads(out.read_text()) if out.exists() else None
    return proc, report


def validate(report: dict, schema: dict) -> None:
    jsonschema.validate(report, schema)
