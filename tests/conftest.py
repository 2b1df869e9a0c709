"""Shared fixtures: generated clips with known truth, rendered once per session; and a
check, after the whole suite, that no Triton process or shared-memory region outlived it."""

from __future__ import annotations

import dataclasses
import glob
import os
import subprocess
from pathlib import Path

import pytest

from tiktok_analyzer.groundtruth import CATALOG, render
from tiktok_analyzer.groundtruth.clips import scale_spec


@pytest.fixture(scope="session")
def clip_factory(tmp_path_factory):
    """clip_factory(name, **overrides) -> (path, truth): a catalog clip, rendered once."""
    root = tmp_path_factory.mktemp("clips")
    made: dict[tuple, tuple[str, dict]] = {}

    def make(name: str, suffix: str = ".mp4", **overrides) -> tuple[str, dict]:
        key = (name, suffix, tuple(sorted(overrides.items())))
        tag = "_".join(f"{k}{v}" for k, v in sorted(overrides.items()))
        if key not in made:
            spec = CATALOG[name]
            if "width" in overrides or "height" in overrides:
                # pans, shakes and blur scale with the picture, so the clip only gets smaller
                spec = scale_spec(spec, overrides.pop("width"), overrides.pop("height"))
            spec = dataclasses.replace(spec, **overrides) if overrides else spec
            path = root / f"{name}{'_' + tag if tag else ''}{suffix}"
            made[key] = (str(path), render(spec, path))
        return made[key]

    return make


def triton_processes() -> dict[str, str]:
    """pid -> command line of every tritonserver and Python backend stub on this machine."""
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return {
        line.split()[0]: line.strip()
        for line in ps.splitlines()
        if ("bin/tritonserver" in line or "triton_python_backend_stub" in line)
        and "ps -eo" not in line
    }


def process_group(pgid: int) -> dict[int, str]:
    """pid -> command line of every live (not zombie) process in process group ``pgid``."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found[int(stat.parent.name)] = cmd
    return found


def _leftovers() -> list[str]:
    found = [f"process: {line}" for line in triton_processes().values()]
    # Our server regions carry the prefix "tta<pid>x"; our clip regions "tta_<pid>_".
    pid = os.getpid()
    for path in glob.glob(f"/dev/shm/tta{pid}x*") + glob.glob(f"/dev/shm/tta_{pid}_*"):
        found.append(f"shm: {path}")
    return found


def pytest_sessionfinish(session, exitstatus):
    """After every fixture is torn down: nothing of Triton may be left behind."""
    left = _leftovers()
    if left:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            "LEFTOVERS after the suite (Triton processes or shm regions):\n  " + "\n  ".join(left),
            red=True,
        )
        session.exitstatus = 1


ROOT = Path(__file__).resolve().parents[1]
