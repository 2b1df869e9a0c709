"""Several Triton servers behind one endpoint pool: requests spread over them, and a server
that stops in the middle of a batch of analyses costs nothing: every analysis completes,
served by the other."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tiktok_analyzer.orchestrator.decode import decode
from tiktok_analyzer.orchestrator.endpoints import EndpointPool
from tiktok_analyzer.orchestrator.models import read_declarations
from tiktok_analyzer.orchestrator.pipeline import AnalysisOptions, analyze_clip_async, run_models
from tiktok_analyzer.orchestrator.probe import probe
from tiktok_analyzer.serving.launcher import EmbeddedTriton, default_model_repository

from .conftest import run_cli

pytestmark = pytest.mark.live

MODELS = ["cut_analysis", "audio_analysis"]


@pytest.fixture(scope="module")
def pair():
    """Two embedded servers with the same models, started side by side."""
    servers = [EmbeddedTriton(models=MODELS) for _ in range(2)]
    try:
        with ThreadPoolExecutor(2) as ex:
            list(ex.map(lambda s: s.start(), servers))
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def clip(clip_factory) -> str:
    return clip_factory("cuts", width=360, height=640)[0]


def successes(server: EmbeddedTriton, model: str) -> float:
    with urllib.request.urlopen(server.metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    prefix = f'nv_inference_request_success{{model="{model}",version="1"}} '
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def options(pool: EndpointPool) -> AnalysisOptions:
    return AnalysisOptions(
        triton_url=pool.url,
        pool=pool,
        analyzers=MODELS,
        declarations=read_declarations(default_model_repository()),
        timeout_s=60,
    )


def test_requests_spread_over_both_servers(pair, clip):
    before = [successes(s, "cut_analysis") for s in pair]

    async def main():
        pool = EndpointPool([s.grpc_url for s in pair])
        try:
            return await asyncio.gather(
                *(analyze_clip_async(clip, options(pool)) for _ in range(4))
            )
        finally:
            await pool.close()

    reports = asyncio.run(main())
    assert all(not r.failed() for r in reports)
    served = [successes(s, "cut_analysis") - b for s, b in zip(pair, before, strict=True)]
    assert sum(served) == 4 and min(served) >= 1, served


def test_the_cli_takes_a_list_of_servers(pair, clip, tmp_path):
    out = tmp_path / "r.json"
    urls = ",".join(s.grpc_url for s in pair)
    proc = run_cli(
        "analyze",
        clip,
        "--triton-url",
        urls,
        "--analyzers",
        "cut_analysis",
        "--out",
        str(out),
        "-q",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["processing"]["triton_url"] == urls
    assert report["analyzers"]["cut_analysis"]["status"] == "ok"


@pytest.mark.parametrize("belief", ["a gone server is there", "a server serves a model it dropped"])
def test_a_request_failing_on_a_stale_view_goes_to_the_other_server(pair, clip, belief):
    """The pool's view is a moment old; what changed since shows in the request that fails,
    which is then sent to the other server, and the view is corrected."""
    from tritonclient.grpc import InferenceServerClient

    from tiktok_analyzer.serving.launcher import free_port

    info = probe(clip)
    decls = read_declarations(default_model_repository())
    decoded = decode(clip, info, [decls["cut_analysis"].frames], True)
    wrong = f"127.0.0.1:{free_port()}" if belief.startswith("a gone") else pair[0].grpc_url
    admin = InferenceServerClient(pair[0].grpc_url)

    async def main():
        pool = EndpointPool([wrong, pair[1].grpc_url], refresh_s=3600)  # no look of its own
        try:
            await pool.refresh(fresh=True)
            stale = pool.endpoints[0]
            if belief.startswith("a gone"):
                stale.live, stale.ready_models = True, frozenset(MODELS)
            else:
                admin.unload_model("audio_analysis")
            entries = await run_models(info, decoded, options(pool), MODELS)
            return entries, stale, pool.endpoints[1]
        finally:
            await pool.close()

    try:
        entries, stale, other = asyncio.run(main())
    finally:
        if not belief.startswith("a gone"):
            admin.load_model("audio_analysis")
    assert {n: e.status for n, e in entries.items()} == dict.fromkeys(MODELS, "ok")
    # both requests went to the stale endpoint first (it was sent the fewest), then on
    assert stale.sent["audio_analysis"] == 1 and other.sent["audio_analysis"] == 1
    assert "audio_analysis" not in stale.ready_models or not stale.live


def test_a_server_stopping_mid_batch_costs_nothing(pair, clip):
    """Six analyses, two at a time; the first server stops as soon as the first analysis
    has finished. Its requests in flight finish (Triton drains on SIGTERM), the ones sent
    while it stops or after it has gone are sent again to the other server. The last two
    analyses start only once it has gone."""
    stopped = threading.Event()

    def stop_first() -> None:
        pair[0].stop()
        stopped.set()

    async def main():
        pool = EndpointPool([s.grpc_url for s in pair])
        slots = asyncio.Semaphore(2)
        stopper: threading.Thread | None = None

        async def one(i: int):
            nonlocal stopper
            if i >= 4:
                await asyncio.to_thread(stopped.wait, 30)
            async with slots:
                report = await analyze_clip_async(clip, options(pool))
            if stopper is None:
                stopper = threading.Thread(target=stop_first)
                stopper.start()
            return report, stopped.is_set()

        try:
            results = await asyncio.gather(*(one(i) for i in range(6)))
            await asyncio.to_thread(stopper.join, 30)
            return results, {ep.url: ep.sent["cut_analysis"] for ep in pool.endpoints}
        finally:
            await pool.close()

    results, sent = asyncio.run(main())
    for report, _ in results:
        assert {n: e.status for n, e in report.analyzers.items()} == dict.fromkeys(MODELS, "ok"), {
            n: e.error for n, e in report.analyzers.items()
        }
    assert [after for _, after in results][4:] == [True, True]
    assert all(sent.values()), sent  # both servers took requests


@pytest.fixture(scope="module")
def split():
    """Two servers as ``--gpus`` starts them (TritonGroup, CUDA_VISIBLE_DEVICES per server,
    --model-config-name=gpu, which falls back to config.pbtxt for these CPU models), from a
    plan that cannot put both models on one card: audio_analysis on one (equal needs: by
    name), cut_analysis on the other. The needs are made up to force the split; the plan
    and launch are the real ones."""
    from tiktok_analyzer.serving.launcher import TritonGroup
    from tiktok_analyzer.serving.placement import Card, plan

    placement = plan(MODELS, [Card(0, 1000), Card(1, 1000)], dict.fromkeys(MODELS, 900))
    assert [set(m) for m in placement.models] == [{"audio_analysis"}, {"cut_analysis"}]
    group = TritonGroup.from_placement(placement)
    try:
        group.start()
        yield group
    finally:
        group.stop()


def test_the_pool_sends_each_model_to_the_one_server_of_a_split_plan(split, clip):
    audio, cut = split.servers

    def ready(server) -> set[str]:
        return {m for m, (state, _) in server.model_states().items() if state == "READY"}

    assert ready(audio) == {"audio_analysis"} and ready(cut) == {"cut_analysis"}

    async def main():
        pool = EndpointPool(split.url)
        try:
            reports = await asyncio.gather(
                *(analyze_clip_async(clip, options(pool)) for _ in range(3))
            )
            return reports, [dict(ep.sent) for ep in pool.endpoints]
        finally:
            await pool.close()

    reports, sent = asyncio.run(main())
    for report in reports:
        assert {n: e.status for n, e in report.analyzers.items()} == dict.fromkeys(MODELS, "ok")
    assert sent == [{"audio_analysis": 3}, {"cut_analysis": 3}]
    assert successes(audio, "audio_analysis") == 3
    assert successes(cut, "cut_analysis") == 3


def test_one_servers_death_costs_only_its_models(split, clip):
    """The card's server that serves audio_analysis is gone: cut_analysis still answers from
    the other, audio_analysis fails with the reason (no other server loads it)."""
    split.servers[0].stop()

    async def main():
        pool = EndpointPool(split.url)
        try:
            return await analyze_clip_async(clip, options(pool))
        finally:
            await pool.close()

    report = asyncio.run(main())
    assert report.analyzers["cut_analysis"].status == "ok"
    assert report.analyzers["audio_analysis"].status == "failed"
    assert "audio_analysis" in (report.analyzers["audio_analysis"].error or "")


def test_analyze_with_gpus_starts_one_server_per_card(clip, tmp_path):
    """`analyze --gpus 0,1` end to end on this CPU host: the sizes are given, so no
    nvidia-smi is asked; cut_analysis needs no GPU memory, so both servers load it, and the
    report names both."""
    import subprocess
    import sys

    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tiktok_analyzer.cli", "analyze", clip, "--analyzers",
         "cut_analysis", "--gpus", "0,1", "--gpu-memory-mib", "1024", "--out", str(out), "-q"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    urls = report["processing"]["triton_url"].split(",")
    assert len(urls) == 2 and len(set(urls)) == 2
    assert report["analyzers"]["cut_analysis"]["status"] == "ok"
