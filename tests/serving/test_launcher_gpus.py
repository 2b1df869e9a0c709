"""The launcher's command lines for one server per GPU, built without starting a server."""

from __future__ import annotations

import pytest

from tiktok_analyzer.serving.launcher import EmbeddedTriton, TritonGroup, default_model_repository
from tiktok_analyzer.serving.placement import Card, model_needs, plan

REPO = default_model_repository()
MODELS = sorted(d.name for d in REPO.iterdir() if (d / "config.pbtxt").exists())


def flags(argv: list[str], name: str) -> list[str]:
    return [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]


@pytest.fixture
def built():
    """(group, [(argv, env) per server]); work folders removed afterwards."""
    groups = []

    def build(placement):
        group = TritonGroup.from_placement(placement, REPO)
        groups.append(group)
        group.assign_ports()
        return group, [s.command_line() for s in group.servers]

    yield build
    for group in groups:
        group.stop()


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_one_server_per_card_each_on_its_own_card_and_ports(built, n: int) -> None:
    placement = plan(MODELS, [Card(i, 81559) for i in range(n)], model_needs(MODELS, REPO))
    group, lines = built(placement)
    assert len(lines) == n
    for i, (argv, env) in enumerate(lines):
        assert env["CUDA_VISIBLE_DEVICES"] == str(i)
        assert "--model-config-name=gpu" in argv
        assert sorted(flags(argv, "load-model")) == MODELS
        assert flags(argv, "model-control-mode") == ["explicit"]
        # every model loads at once: video_llava never waits for a loading thread
        loaded = flags(argv, "load-model")
        assert flags(argv, "model-load-thread-count") == [str(max(4, len(loaded)))]
    ports = [
        p
        for argv, _ in lines
        for k in ("grpc", "http", "metrics")
        for p in flags(argv, k + "-port")
    ]
    assert len(set(ports)) == 3 * n
    prefixes = [flags(argv, "backend-config") for argv, _ in lines]
    assert len({next(p for p in ps if "prefix" in p) for ps in prefixes}) == n
    assert group.url.split(",") == [s.grpc_url for s in group.servers]
    assert len(set(group.url.split(","))) == n


def test_split_plan_loads_each_cards_models_only(built) -> None:
    gpus = [Card(2, 40960), Card(5, 40960)]
    placement = plan(MODELS, gpus, model_needs(MODELS, REPO))
    group, lines = built(placement)
    assert group.plan_lines[0] == "2 GPU(s), split by measured memory:"
    assert group.plan_lines[1].startswith("  GPU 2: ") and "video_llava" in group.plan_lines[1]
    loaded = [set(flags(argv, "load-model")) for argv, _ in lines]
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in lines] == ["2", "5"]
    assert "video_llava" in loaded[0] and "video_llava" not in loaded[1]
    assert loaded[0] | loaded[1] == set(MODELS)
    assert loaded == [set(m) for m in placement.models]


def test_without_gpus_the_command_is_as_before(monkeypatch) -> None:
    monkeypatch.setenv("TIKTOK_ANALYZER_GPU", "0")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    server = EmbeddedTriton(models=["cut_analysis"])
    try:
        argv, env = server.command_line()
    finally:
        server.stop()
    assert "CUDA_VISIBLE_DEVICES" not in env
    assert "--model-config-name=gpu" not in argv
    assert flags(argv, "model-load-thread-count") == []
    assert flags(argv, "load-model") == ["cut_analysis"]


def server_env() -> dict[str, str]:
    """The environment a server for one classical model would start with."""
    server = EmbeddedTriton(models=["cut_analysis"])
    try:
        return server.command_line()[1]
    finally:
        server.stop()


def test_openmp_threads_sleep_while_they_wait_on_every_host(monkeypatch) -> None:
    """Every stub runs at once: spinning OpenMP threads would take the cores from the
    others, on a CPU host and on a GPU host alike (measured on both). A caller's value
    wins."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    envs = {}
    for gpu in ("0", "1"):
        monkeypatch.setenv("TIKTOK_ANALYZER_GPU", gpu)
        envs[gpu] = server_env()
    assert envs["0"]["OMP_WAIT_POLICY"] == "PASSIVE"
    assert envs["1"]["OMP_WAIT_POLICY"] == "PASSIVE"
    for gpu in ("0", "1"):
        monkeypatch.setenv("TIKTOK_ANALYZER_GPU", gpu)
        monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
        assert server_env()["OMP_WAIT_POLICY"] == "ACTIVE"


def test_opencv_runs_one_thread_a_stub_unless_the_caller_says(monkeypatch) -> None:
    """OpenCV's pool spins between its parallel loops, which on our small frames cost CPU
    and bought no wall time: the stubs get one OpenCV thread each. The variable is the one
    OpenCV reads (checked on the installed library), and a caller's value wins."""
    import subprocess
    import sys

    monkeypatch.delenv("OPENCV_FOR_THREADS_NUM", raising=False)
    env = server_env()
    assert env["OPENCV_FOR_THREADS_NUM"] == "1"
    threads = subprocess.run(
        [sys.executable, "-c", "import cv2; print(cv2.getNumThreads())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert threads == "1"
    monkeypatch.setenv("OPENCV_FOR_THREADS_NUM", "3")
    assert server_env()["OPENCV_FOR_THREADS_NUM"] == "3"
