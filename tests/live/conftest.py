"""The live tier: one embedded Triton for the session, with every model loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tiktok_analyzer.analyzers import ANALYZER_NAMES
from tiktok_analyzer.orchestrator.report import SCHEMA_PATH
from tiktok_analyzer.orchestrator.triton_server import EmbeddedTriton

CLI = [str(Path(sys.executable).parent / "tiktok-analyzer")]


@pytest.fixture(scope="session")
def triton():
    with EmbeddedTriton(models=list(ANALYZER_NAMES)) as server:
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
