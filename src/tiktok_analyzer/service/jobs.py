"""Analyses as jobs: admitted or refused at once, queued behind a concurrency limit, run
under a deadline, followed by watchers, kept for a while after they end.

A job is one asyncio task around :func:`analyze_clip_async`. Cancelling that task (the
caller went away, the deadline passed, the service is shutting down) cancels the Triton
requests in flight with it: the gRPC calls are cancelled and Triton sees the cancellation.
Clips are probed and decoded in a worker process with a memory cap (orchestrator/worker.py):
a file that crashes the decoder, or would fill the memory, ends as a refusal of that file.

Jobs are written through to a :class:`.jobstore.JobStore` (SQLite, or a PostgreSQL that
replicas share): Submit'ed jobs wait there until a replica with a free slot claims them,
and a job this replica does not run is read from there (any replica answers GetJob).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tiktok_analyzer.orchestrator.endpoints import EndpointPool
from tiktok_analyzer.orchestrator.models import ModelDecl, with_dependencies
from tiktok_analyzer.orchestrator.pipeline import (
    AnalysisOptions,
    TritonUnavailable,
    analyze_clip_async,
)
from tiktok_analyzer.orchestrator.probe import BadInput, Limits, MediaFile
from tiktok_analyzer.orchestrator.report import AnalyzerEntry, Report
from tiktok_analyzer.orchestrator.worker import probe_isolated
from tiktok_analyzer.service.errors import Code, ServiceFailure
from tiktok_analyzer.service.jobstore import JobRow, JobStore, SqliteStore
from tiktok_analyzer.service.metrics import Metrics
from tiktok_analyzer.service.paths import PathPolicy

__all__ = ["Event", "Job", "JobManager", "JobSettings", "JobState", "Outcome"]

log = logging.getLogger(__name__)


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class JobSettings:
    #: Analyses running at once; each decodes in a thread and keeps Triton busy.
    max_concurrent: int = 2
    #: Analyses waiting for a slot; one more is refused (RESOURCE_EXHAUSTED / 429).
    max_queue: int = 16
    #: Deadline of an analysis, queueing included, when the caller gives none.
    default_deadline_s: float = 600.0
    #: Longest clip the unary Analyze (and POST /analyze) takes; longer ones go through Submit.
    unary_max_duration_s: float = 180.0
    analyzer_timeout_s: float = 300.0
    #: Finished jobs are kept this long, and at most this many, for GetJob / WatchJob.
    job_ttl_s: float = 3600.0
    keep_jobs: int = 500
    #: How often a replica looks for queued jobs others submitted, and beats its heart.
    poll_s: float = 0.5
    #: A replica silent this long is dead: its running jobs are marked failed.
    replica_stale_s: float = 30.0


@dataclass(frozen=True)
class Event:
    """An analyzer started or finished (``seq`` counts from 1 within the job)."""

    seq: int
    analyzer: str
    kind: str
    status: str = ""
    elapsed_s: float = 0.0
    error: str = ""


@dataclass(frozen=True)
class Outcome:
    """A finished analysis: its report as JSON text (kept instead of the models, which would
    hold every finished job's results twice) and the figures the APIs answer with."""

    report_json: str
    failed: list[str]
    analyzer_status: dict[str, str]
    wall_s: float
    realtime_factor: float

    @classmethod
    def of(cls, report: Report) -> Outcome:
        return cls(
            report_json=report.model_dump_json(),
            failed=report.failed(),
            analyzer_status={n: e.status for n, e in report.analyzers.items()},
            wall_s=report.processing.wall_s,
            realtime_factor=report.processing.realtime_factor,
        )


@dataclass(eq=False)
class Job:
    id: str
    #: The clip as the caller named it (a path, or an upload's file name).
    video: str
    #: What is read: the path as the caller named it (opened again through the allowed
    #: roots when no descriptor is at hand), or the upload's temporary file.
    path: str
    analyzers: list[str]
    deadline_s: float
    deadline: float  # on the event loop's clock
    submitted_at: float = field(default_factory=time.time)
    state: JobState = JobState.QUEUED
    events: list[Event] = field(default_factory=list)
    outcome: Outcome | None = None
    error: ServiceFailure | None = None
    finished_at: float | None = None
    task: asyncio.Task | None = None
    #: Pinned to this replica (a caller waits on it), rather than claimable by any.
    pinned: bool = True
    #: Called on every change (writes the job through to the store).
    on_change: Callable[[Job], None] | None = None
    #: For a job another replica runs: re-read it from the store (True while it exists).
    reload: Callable[[Job], bool] | None = None
    #: Run a second time after Triton went away during the first (Submit jobs only).
    retried: bool = False
    #: The file opened at admission, read by probe and decode (never kept in a store).
    opened: MediaFile | None = field(default=None, repr=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def finished(self) -> bool:
        return self.state in (JobState.DONE, JobState.FAILED)

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change(self)
        # Wake every current watcher; later waits use a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()

    async def _next_change(self, changed: asyncio.Event) -> None:
        if self.reload is None:
            await changed.wait()
        else:  # another replica runs it: poll the store
            await asyncio.sleep(0.25)
            if not self.reload(self):
                raise ServiceFailure(Code.NOT_FOUND, f"job {self.id!r} expired meanwhile")

    def add_event(self, analyzer: str, kind: str, entry: AnalyzerEntry | None) -> None:
        event = Event(seq=len(self.events) + 1, analyzer=analyzer, kind=kind)
        if entry is not None:
            event = Event(
                seq=event.seq,
                analyzer=analyzer,
                kind=kind,
                status=entry.status,
                elapsed_s=entry.elapsed_s,
                error=entry.error or "",
            )
        self.events.append(event)
        self._notify()

    def set_state(self, state: JobState) -> None:
        self.state = state
        self._notify()

    def finish(self, report: Report) -> None:
        self.outcome = Outcome.of(report)
        self.finished_at = time.monotonic()
        self.set_state(JobState.DONE)

    def fail(self, failure: ServiceFailure) -> None:
        self.error = failure
        self.finished_at = time.monotonic()
        self.set_state(JobState.FAILED)

    def row(self, owner: str | None) -> JobRow:
        """The job as the store keeps it."""
        return JobRow(
            id=self.id,
            video=self.video,
            path=self.path,
            analyzers=self.analyzers,
            deadline_s=self.deadline_s,
            submitted_at=self.submitted_at,
            state=self.state.value,
            owner=owner,
            pinned=self.pinned,
            events=[dataclasses.asdict(e) for e in self.events],
            outcome=dataclasses.asdict(self.outcome) if self.outcome else None,
            error={"code": self.error.code.name, "message": self.error.message}
            if self.error
            else None,
            ended_at=time.time() if self.finished else None,
        )

    @classmethod
    def of_row(cls, row: JobRow) -> Job:
        left = row.submitted_at + row.deadline_s - time.time()
        job = cls(
            id=row.id,
            video=row.video,
            path=row.path,
            analyzers=list(row.analyzers),
            deadline_s=row.deadline_s,
            deadline=asyncio.get_running_loop().time() + left,
            submitted_at=row.submitted_at,
            pinned=row.pinned,
        )
        job.take(row)
        return job

    def take(self, row: JobRow) -> None:
        """Take the state, progress and result of a stored row."""
        self.state = JobState(row.state)
        self.events = [Event(**e) for e in row.events]
        self.outcome = Outcome(**row.outcome) if row.outcome else None
        self.error = (
            ServiceFailure(Code[row.error["code"]], row.error["message"]) if row.error else None
        )
        if self.finished and self.finished_at is None:
            self.finished_at = time.monotonic()

    async def wait(self) -> None:
        while not self.finished:
            await self._next_change(self._changed)

    async def follow(self) -> AsyncIterator[Event]:
        """Every event, past ones first; returns once the job has finished."""
        sent = 0
        while True:
            changed = self._changed
            while sent < len(self.events):
                sent += 1
                yield self.events[sent - 1]
            if self.finished:
                return
            await self._next_change(changed)

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()


class JobManager:
    def __init__(
        self,
        settings: JobSettings,
        *,
        triton: EndpointPool,
        declarations: Mapping[str, ModelDecl],
        limits: Limits,
        use_shm: bool,
        paths: PathPolicy,
        metrics: Metrics,
        store: JobStore | None = None,
    ) -> None:
        self.settings = settings
        self.triton = triton
        self.declarations = dict(declarations)
        self.limits = limits
        self.use_shm = use_shm
        self.paths = paths
        self.metrics = metrics
        self.draining = False
        self.queued = 0
        self.running = 0
        self._slots = asyncio.Semaphore(settings.max_concurrent)
        #: Probes are work too: their own slots, counted in running/queued, refused
        #: beyond the queue limit like analyses (a flood of slow probes gets 429).
        #: At least one: a replica that runs no analyses (max_concurrent 0, it only
        #: queues Submit jobs for others to claim) must still probe what it admits.
        self._probe_slots = asyncio.Semaphore(max(1, settings.max_concurrent))
        self._probes_waiting = 0
        #: Submissions between admission and their job (probing, mostly): a drain lets
        #: them become jobs and finish, as it does the analyses already running.
        self._submitting = 0
        self._none_submitting = asyncio.Event()
        self._none_submitting.set()
        self._closing = False
        #: Jobs this replica runs or ran (or will: pinned ones waiting for a slot).
        self._jobs: dict[str, Job] = {}
        self.store = store if store is not None else SqliteStore(None)
        #: This process among the replicas sharing the store.
        self.replica = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        #: Unpinned jobs waiting in the store, as last counted (for admission).
        self.store_queued = 0
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task | None = None
        metrics.watch(lambda: self.queued + self.store_queued, lambda: self.running)

    # -- admission ---------------------------------------------------------------------------

    def admit(self, analyzers: Sequence[str]) -> list[str]:
        """Refuse at once what cannot be taken now; the analyzers to run, dependencies
        first. Cheap: callers run it before receiving an upload too."""
        try:
            if self.draining:
                raise ServiceFailure(Code.UNAVAILABLE, "the service is shutting down")
            names = [n.strip() for n in analyzers if n.strip()] or list(self.declarations)
            unknown = [n for n in names if n not in self.declarations]
            if unknown:
                raise ServiceFailure(
                    Code.BAD_INPUT,
                    f"unknown analyzer(s): {', '.join(unknown)}; "
                    "ListAnalyzers (GET /analyzers) lists them",
                )
            self._check_capacity()
            return with_dependencies(names, self.declarations)
        except ServiceFailure as failure:
            self.metrics.outcome(failure.code.label)
            raise

    def _check_capacity(self) -> None:
        waiting = (
            self.store_queued
            + self._probes_waiting
            + sum(1 for j in self._jobs.values() if j.state == JobState.QUEUED)
        )
        if self.running + waiting >= self.settings.max_concurrent + self.settings.max_queue:
            raise ServiceFailure(
                Code.OVERLOADED,
                f"too busy: {self.running} analyses running and {waiting} waiting, the most "
                "this service takes; try again later",
            )

    async def submit_path(
        self, raw_path: str, analyzers: Sequence[str], deadline_s: float | None, *, unary: bool
    ) -> Job:
        """A clip the service reads in place, under the allowed roots."""
        names = self.admit(analyzers)
        try:
            opened = self.paths.open(raw_path)
        except ServiceFailure as failure:
            self.metrics.outcome(failure.code.label)
            raise
        return await self.submit_file(
            raw_path, raw_path, names, deadline_s, unary=unary, opened=opened
        )

    async def submit_file(
        self,
        path: str,
        video: str,
        names: list[str],
        deadline_s: float | None,
        *,
        unary: bool,
        opened: MediaFile | None = None,
    ) -> Job:
        """A file the service vouches for (a file the policy opened, or an upload's
        temporary file, opened here); ``names`` comes from :meth:`admit`. The job owns the
        descriptor from here on: probe and decode read it, never the name."""
        try:
            if self.draining:
                raise ServiceFailure(Code.UNAVAILABLE, "the service is shutting down")
            opened = opened if opened is not None else MediaFile.open(path, video)
        except BadInput as exc:
            self.metrics.outcome(Code.BAD_INPUT.label)
            raise ServiceFailure(Code.BAD_INPUT, str(exc)) from None
        except ServiceFailure as failure:
            self.metrics.outcome(failure.code.label)
            raise
        self._submitting += 1
        self._none_submitting.clear()
        try:
            return await self._submit(opened, path, video, names, deadline_s, unary)
        except BaseException as exc:
            opened.close()
            if isinstance(exc, ServiceFailure):
                self.metrics.outcome(exc.code.label)
            raise
        finally:
            self._submitting -= 1
            if not self._submitting:
                self._none_submitting.set()

    async def _submit(
        self,
        opened: MediaFile,
        path: str,
        video: str,
        names: list[str],
        deadline_s: float | None,
        unary: bool,
    ) -> Job:
        try:
            info = await self._probe(opened)
        except BadInput as exc:
            raise ServiceFailure(Code.BAD_INPUT, str(exc)) from None
        if unary and info.duration_s > self.settings.unary_max_duration_s:
            raise ServiceFailure(
                Code.BAD_INPUT,
                (
                    f"{video}: duration {info.duration_s:.1f} s is over the limit of "
                    f"{self.settings.unary_max_duration_s:.0f} s for a single call; use Submit "
                    "(POST /analyses) for longer clips"
                ),
            )
        ready, reason = await self.triton.ready()
        self.metrics.triton_ready.set(1 if ready else 0)
        if not ready:
            raise ServiceFailure(Code.UNAVAILABLE, reason)
        if self._closing:  # admitted before the drain, but it waited for us no longer
            raise ServiceFailure(Code.UNAVAILABLE, "the service is shutting down")
        self._check_capacity()  # again: others may have been admitted while we probed
        self._evict()
        budget = deadline_s if deadline_s and deadline_s > 0 else self.settings.default_deadline_s
        loop = asyncio.get_running_loop()
        job = Job(
            id=uuid.uuid4().hex,
            video=video,
            path=path,
            analyzers=names,
            deadline_s=budget,
            deadline=loop.time() + budget,
            pinned=unary,
        )
        self._store(self.store.insert, job.row(self.replica if unary else None))
        if not unary:  # any replica's dispatcher may claim it; ours looks now
            # The replica that claims it reopens the path through its policy.
            opened.close()
            self.store_queued += 1
            self._wake.set()
            return job
        job.on_change = self._save
        job.opened = opened
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job), name=f"analysis-{job.id}")
        job.task.add_done_callback(lambda _: opened.close())  # kept jobs hold no descriptor
        return job

    async def _probe(self, path: MediaFile):
        """The probe, admitted as an analysis is: refused when the service is full,
        queued behind its own slots, counted in ``queued`` and then ``running``."""
        self._check_capacity()
        self._probes_waiting += 1
        self.queued += 1
        try:
            await self._probe_slots.acquire()
        finally:
            self._probes_waiting -= 1
            self.queued -= 1
        self.running += 1
        try:
            return await probe_isolated(path, self.limits)
        finally:
            self.running -= 1
            self._probe_slots.release()

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is not None:
            return job
        row = self._store(self.store.load, job_id)
        if row is None:
            raise ServiceFailure(Code.NOT_FOUND, f"no job {job_id!r} (unknown or expired)")
        job = Job.of_row(row)
        job.reload = self._reload
        return job

    # -- the store ---------------------------------------------------------------------------

    def _store(self, call: Callable[..., JobRow | None], arg: JobRow | str) -> JobRow | None:
        """One call a caller waits on; the store's failure is the caller's UNAVAILABLE."""
        try:
            return call(arg)
        except Exception as exc:  # noqa: BLE001 - sqlite3 and psycopg errors alike
            log.error("job store: %s: %s", type(exc).__name__, exc)
            raise ServiceFailure(Code.UNAVAILABLE, "the job store does not answer") from None

    def _save(self, job: Job) -> None:
        # Progress must not stop an analysis: a failed write is logged, the next one retries.
        try:
            self.store.update(job.row(self.replica))
        except Exception as exc:  # noqa: BLE001
            log.error("job store: cannot save job %s: %s", job.id, exc)

    def _reload(self, job: Job) -> bool:
        try:
            row = self.store.load(job.id)
        except Exception as exc:  # noqa: BLE001 - a watcher waits for the store to come back
            log.error("job store: %s: %s", type(exc).__name__, exc)
            return True
        if row is None:
            return False
        job.take(row)
        return True

    async def start(self) -> None:
        """Join the replicas: fail what dead ones left running, then claim queued jobs."""
        self.store.beat(self.replica)
        lost = self.store.recover(self.replica, self.settings.replica_stale_s)
        if lost:
            log.warning("%d jobs were running when their service stopped: failed", len(lost))
        self._dispatcher = asyncio.create_task(self._dispatch(), name="job-dispatcher")

    async def close(self) -> None:
        """After :meth:`drain`: leave the replicas and close the store."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        try:
            self.store.leave(self.replica)
        except Exception as exc:  # noqa: BLE001
            log.error("job store: %s", exc)
        self.store.close()

    async def _dispatch(self) -> None:
        # Runs through the drain too: the heartbeat keeps other replicas from taking this
        # one for dead while its last analyses finish (_claim takes nothing new meanwhile).
        last_beat = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_s)
            self._wake.clear()
            try:
                now = time.monotonic()
                if now - last_beat > self.settings.replica_stale_s / 6:
                    last_beat = now
                    self.store.beat(self.replica)
                    self.store.recover(self.replica, self.settings.replica_stale_s)
                self._claim()
                self.store_queued = self.store.queued()
            except Exception as exc:  # noqa: BLE001 - the store may come back
                log.error("job store: %s: %s", type(exc).__name__, exc)

    def _claim(self) -> None:
        """Take queued jobs while a slot is free, oldest first."""
        while not self.draining and self._active() < self.settings.max_concurrent:
            row = self.store.claim(self.replica)
            if row is None:
                return
            job = Job.of_row(row)
            job.state = JobState.QUEUED  # until a slot is ours
            job.on_change = self._save
            self._jobs[job.id] = job
            job.task = asyncio.create_task(self._run(job), name=f"analysis-{job.id}")

    def _active(self) -> int:
        return sum(1 for j in self._jobs.values() if j.task is not None and not j.task.done())

    # -- running -----------------------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        t0 = time.perf_counter()
        report: Report | None = None
        try:
            try:
                async with asyncio.timeout_at(job.deadline):
                    report = await self._attempt(job)
            except TimeoutError:
                raise ServiceFailure(
                    Code.DEADLINE, f"no report within the deadline of {job.deadline_s:g} s"
                ) from None
            except BadInput as exc:  # the file broke the decoder
                raise ServiceFailure(Code.BAD_INPUT, str(exc)) from None
            except TritonUnavailable as exc:
                raise ServiceFailure(Code.UNAVAILABLE, str(exc)) from None
            if report.failed() and not (await self.triton.ready(fresh=True))[0]:
                raise ServiceFailure(
                    Code.UNAVAILABLE, f"Triton at {self.triton.url} went away during the analysis"
                )
        except ServiceFailure as failure:
            self._end(job, failure, t0)
        except asyncio.CancelledError:
            self._end(job, ServiceFailure(Code.CANCELLED, "the analysis was cancelled"), t0)
            raise
        except Exception as exc:  # noqa: BLE001 - a job never takes the service down
            log.exception("job %s failed", job.id)
            ready, reason = await self.triton.ready(fresh=True)
            failure = (
                ServiceFailure(Code.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
                if ready
                else ServiceFailure(Code.UNAVAILABLE, reason)
            )
            self._end(job, failure, t0)
        else:
            report.video.path = job.video  # never the service's own paths
            job.finish(report)
            self.metrics.finished(
                "partial" if report.failed() else "complete",
                time.perf_counter() - t0,
                report.processing.realtime_factor,
            )

    async def _attempt(self, job: Job) -> Report:
        """The analysis; once more if Triton went away during it and the caller allows it.

        A Submit job (POST /analyses) is run again, once, as soon as a server is ready
        (within the job's deadline): a restarted or replaced Triton costs its caller time,
        not the job. A unary call ends as UNAVAILABLE at once: its caller is waiting and
        decides itself."""
        try:
            report = await self._run_in_slot(job)
        except TritonUnavailable:
            if job.pinned:
                raise
            report = None
        if report is not None and (
            job.pinned or not report.failed() or (await self.triton.ready(fresh=True))[0]
        ):
            return report
        log.warning("job %s: Triton went away during the analysis; running it once more", job.id)
        job.retried = True
        while not (await self.triton.ready(fresh=True))[0]:
            await asyncio.sleep(0.5)  # bounded by the job's deadline (the caller's timeout)
        return await self._run_in_slot(job)

    async def _run_in_slot(self, job: Job) -> Report:
        self.queued += 1
        try:
            await self._slots.acquire()
        finally:
            self.queued -= 1
        try:
            self.running += 1
            job.set_state(JobState.RUNNING)
            left = job.deadline - asyncio.get_running_loop().time()
            options = AnalysisOptions(
                triton_url=self.triton.url,
                pool=self.triton,
                isolate_decode=True,
                analyzers=job.analyzers,
                declarations=self.declarations,
                limits=self.limits,
                use_shm=self.use_shm,
                timeout_s=max(1.0, min(self.settings.analyzer_timeout_s, left)),
                progress=lambda name, kind, entry: self._progress(job, name, kind, entry),
            )
            # The descriptor opened at admission; a job without one (not admitted here) is
            # opened now, through the allowed roots as any path.
            source = job.opened if job.opened is not None else self.paths.open(job.path)
            try:
                return await analyze_clip_async(source, options)
            finally:
                if source is not job.opened:
                    source.close()
        finally:
            self.running -= 1
            self._slots.release()

    def _progress(self, job: Job, name: str, kind: str, entry: AnalyzerEntry | None) -> None:
        job.add_event(name, kind, entry)
        if kind == "done":
            self.metrics.analyzer_done(name, entry)

    def _end(self, job: Job, failure: ServiceFailure, t0: float) -> None:
        job.fail(failure)
        self.metrics.finished(failure.code.label, time.perf_counter() - t0, None)

    def _evict(self) -> None:
        now = time.monotonic()
        finished = [j for j in self._jobs.values() if j.finished_at is not None]
        finished.sort(key=lambda j: j.finished_at)
        excess = len(finished) - self.settings.keep_jobs
        for i, job in enumerate(finished):
            if i < excess or now - job.finished_at > self.settings.job_ttl_s:
                del self._jobs[job.id]
        try:
            self.store.evict(time.time() - self.settings.job_ttl_s, self.settings.keep_jobs)
        except Exception as exc:  # noqa: BLE001 - eviction waits for the next submit
            log.error("job store: %s", exc)

    # -- shutdown ----------------------------------------------------------------------------

    async def drain(self, timeout_s: float) -> int:
        """Refuse new work; let the analyses admitted finish within ``timeout_s``, then
        cancel the rest. Returns how many were cancelled."""
        self.draining = True
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_submitting.wait(), timeout_s)
        self._closing = True
        timeout_s = max(0.0, until - loop.time())
        active = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        if not active:
            return 0
        _, pending = await asyncio.wait(active, timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)
