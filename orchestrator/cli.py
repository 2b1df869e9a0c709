"""``tiktok-analyzer``: the command line (REPORT_CONTRACT.md, CLI).

Exit codes: 0 report complete; 3 report written but some analyzer failed; 2 bad input
(one-line reason on stderr, no traceback); 1 internal error.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from .. import __version__
from .models import read_declarations
from .probe import BadInput, Limits
from .triton_server import EmbeddedTriton, TritonStartError, default_model_repository

__all__ = ["main"]

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_PARTIAL = 0, 1, 2, 3

log = logging.getLogger("tiktok_analyzer")


class UsageError(Exception):
    """A command-line mistake: one line, exit 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tiktok-analyzer",
                                description="Analyze short-form video clips with Triton-served analyzers.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    a = sub.add_parser("analyze", help="analyze one clip and write its JSON report")
    a.add_argument("video", help="the clip to analyze")
    a.add_argument("--analyzers", help="comma-separated analyzer names (default: all)")
    a.add_argument("--out", help="write the report here (default: JSON on stdout)")
    a.add_argument("--triton-url", help="use this Triton server (HOST:PORT, gRPC) "
                                        "instead of starting the embedded one")
    a.add_argument("--server", help="send the clip to a running `tiktok-analyzer serve` (HOST:PORT)")
    a.add_argument("--timeout", type=float, default=300.0, help="seconds per analyzer (default 300)")
    a.add_argument("--no-shm", action="store_true",
                   help="send frames inside gRPC messages instead of system shared memory")
    a.add_argument("--max-duration", type=float, default=Limits.max_duration_s,
                   help=f"refuse longer clips (seconds, default {Limits.max_duration_s:.0f})")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary table")

    m = sub.add_parser("models", help="list the analyzers, their models and their state")
    m.add_argument("--triton-url", help="ask this server for each model's state")

    s = sub.add_parser("serve-triton", help="run only the embedded Triton server")
    s.add_argument("--models", help="comma-separated models to load (default: all)")
    s.add_argument("--grpc-port", type=int, default=8001)
    s.add_argument("--http-port", type=int, default=8000)
    s.add_argument("--metrics-port", type=int, default=8002)
    return p


def _analyzer_names(arg: str | None, decls: dict) -> list[str]:
    if not arg:
        return list(decls)
    names = [n.strip() for n in arg.split(",") if n.strip()]
    unknown = [n for n in names if n not in decls]
    if unknown:
        raise UsageError(f"unknown analyzer(s): {', '.join(unknown)}; "
                         f"`tiktok-analyzer models` lists them")
    return names


def cmd_analyze(args: argparse.Namespace) -> int:
    from .pipeline import AnalysisOptions, analyze_clip
    from .progress import ProgressDisplay
    from .summary import summary_rows

    if args.server:
        raise UsageError("--server needs the orchestrator service, which is not built yet "
                         "(issue 5); use --triton-url or the embedded server")
    repo = default_model_repository()
    decls = read_declarations(repo)
    names = _analyzer_names(args.analyzers, decls)
    limits = Limits(max_duration_s=args.max_duration)
    # Refuse bad input before paying for a server start.
    from .probe import probe
    probe(args.video, limits)

    display = ProgressDisplay(enabled=not args.quiet and sys.stderr.isatty())
    server = None
    server_start_s = None
    try:
        if args.triton_url:
            url = args.triton_url
        else:
            from .models import with_dependencies
            needed = with_dependencies(names, decls)
            display.status(f"starting Triton ({len(needed)} models)")
            t0 = time.perf_counter()
            server = EmbeddedTriton(models=needed, model_repository=repo)
            server.start()
            server_start_s = time.perf_counter() - t0
            url = server.grpc_url
        local = url.split(":")[0] in {"127.0.0.1", "localhost", "::1"}
        options = AnalysisOptions(
            triton_url=url, analyzers=names, declarations=decls, limits=limits,
            use_shm=local and not args.no_shm, timeout_s=args.timeout,
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
    text = report.model_dump_json(indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    if not args.quiet:
        _print_summary(report, summary_rows(report), to_stderr=not args.out, out=args.out)
    return EXIT_PARTIAL if report.failed() else EXIT_OK


def _print_summary(report, rows, to_stderr: bool, out: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=to_stderr, soft_wrap=False)
    v, p = report.video, report.processing
    table = Table(title=f"{Path(v.path).name}: {v.duration_s:.1f} s, {v.width}x{v.height} "
                        f"@ {v.fps:g} fps", title_justify="left")
    for col, kw in (("analyzer", {}), ("status", {}), ("seconds", {"justify": "right"}),
                    ("result", {"overflow": "fold"})):
        table.add_column(col, **kw)
    colors = {"ok": "green", "failed": "red", "skipped": "yellow", "unavailable": "dim"}
    for name, status, secs, text in rows:
        table.add_row(name, f"[{colors[status]}]{status}[/]", secs, text)
    console.print(table)
    start = f", server start {p.server_start_s:.1f} s" if p.server_start_s is not None else ""
    console.print(f"wall {p.wall_s:.2f} s (decode {p.decode_s:.2f} s{start}), "
                  f"realtime factor {p.realtime_factor:.3f}"
                  + (f"; report: {out}" if out else ""))


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
    from .. import analyzers
    table = Table()
    for col in ("analyzer", "model", "weights", "needs", "state"):
        table.add_column(col)
    for name, decl in decls.items():
        cls = analyzers.load_class(name)
        needs = []
        if decl.frames:
            f = decl.frames
            rate = "every frame" if f.every_frame else (f"{f.fps:g} fps" if f.fps else f"{f.count} frames")
            needs.append(f"{rate} @ {f.short_side}px")
        if decl.audio:
            needs.append("audio")
        if decl.depends_on:
            needs.append("after " + ", ".join(decl.depends_on))
        pending = getattr(cls, "brought_by", None)
        if args.triton_url:
            state = states.get(name, ("not in repository", ""))[0]
        else:
            state = f"not built: {pending}" if pending else "built"
        table.add_row(name, cls.model_name, cls.weights, "; ".join(needs) or "-", state)
    Console().print(table)
    return EXIT_OK


def cmd_serve_triton(args: argparse.Namespace) -> int:
    decls = read_declarations(default_model_repository())
    names = _analyzer_names(args.models, decls)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with EmbeddedTriton(models=names, grpc_port=args.grpc_port, http_port=args.http_port,
                        metrics_port=args.metrics_port) as server:
        states = server.model_states()
        bad = {m: s for m, s in states.items() if m in names and s[0] != "READY"}
        print(f"Triton ready: gRPC {server.grpc_url}, HTTP {server.http_url}, "
              f"metrics {server.metrics_url}; {len(names) - len(bad)}/{len(names)} models ready",
              flush=True)
        for model, (state, reason) in bad.items():
            print(f"  {model}: {state} {reason}", file=sys.stderr)
        while not stop.is_set() and server.process is not None and server.process.poll() is None:
            stop.wait(0.5)
    print("Triton stopped", flush=True)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    commands = {"analyze": cmd_analyze, "models": cmd_models, "serve-triton": cmd_serve_triton}
    try:
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if args.debug:
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
