"""Progress on a terminal: one bar for the analyzers, the running ones named. Quiet (a no-op)
when stderr is not a terminal, so logs and pipes stay clean."""

from __future__ import annotations

import threading

from tiktok_analyzer.orchestrator.report import AnalyzerEntry

__all__ = ["ProgressDisplay"]


class ProgressDisplay:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._running: list[str] = []
        self._progress = None
        self._task = None
        self._total = 0
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("starting", total=None)

    def status(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text)

    def on_event(self, name: str, event: str, entry: AnalyzerEntry | None) -> None:
        if self._progress is None:
            return
        with self._lock:
            if event == "start":
                self._total += 1
                self._running.append(name)
            else:
                if name in self._running:
                    self._running.remove(name)
                self._progress.advance(self._task)
            running = ", ".join(self._running[:3]) + ("..." if len(self._running) > 3 else "")
            self._progress.update(
                self._task,
                total=max(self._total, 1),
                description=f"analyzing: {running or 'finishing'}",
            )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
