"""Where jobs live: SQLite in a state directory (the default, no server to run) or PostgreSQL
(``--job-store postgresql://...``), which several service replicas share.

One table of jobs and one of replicas. A job submitted with ``Submit`` (POST /analyses) is
*unpinned*: whichever replica has a free slot claims it (PostgreSQL: ``FOR UPDATE SKIP
LOCKED``, so two replicas never claim the same row; SQLite: one statement, one writer). A
unary job (Analyze, POST /analyze, an upload) is *pinned* to the replica whose caller waits
for it. Every state change, progress event and the report are written through, so any
replica answers GetJob / WatchJob, and a restarted service still has them.

Replicas write a heartbeat. A job left ``running`` (or pinned and queued) by a replica that
stopped beating is marked failed, "the service restarted while it ran", never silently lost;
one that was only queued stays queued and runs. With SQLite the state directory is locked
(one service per directory), so at start every other owner is known dead.

Calls are synchronous and short (one row, one index), made from the event loop's thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "JobRow",
    "JobStore",
    "PostgresStore",
    "SqliteStore",
    "StoreError",
    "default_state_dir",
    "open_store",
]

log = logging.getLogger(__name__)

#: Why a job that was running when its service died ended.
RESTARTED = "the service restarted while it ran"

_COLUMNS = (
    "id",
    "video",
    "path",
    "analyzers",
    "deadline_s",
    "submitted_at",
    "state",
    "owner",
    "pinned",
    "events",
    "outcome",
    "error",
    "ended_at",
)
_JSON_COLUMNS = {"analyzers", "events", "outcome", "error"}

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        video TEXT NOT NULL,
        path TEXT NOT NULL,
        analyzers TEXT NOT NULL,
        deadline_s DOUBLE PRECISION NOT NULL,
        submitted_at DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL,
        owner TEXT,
        pinned INTEGER NOT NULL,
        events TEXT NOT NULL,
        outcome TEXT,
        error TEXT,
        ended_at DOUBLE PRECISION
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (state, pinned, submitted_at)",
    "CREATE INDEX IF NOT EXISTS jobs_ended ON jobs (ended_at)",
    "CREATE TABLE IF NOT EXISTS replicas (id TEXT PRIMARY KEY, seen_at DOUBLE PRECISION)",
]


class StoreError(Exception):
    """The job store cannot be opened; the message is one line for the operator."""


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/tiktok-analyzer``, else ``~/.local/state/tiktok-analyzer``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tiktok-analyzer"


@dataclass
class JobRow:
    """A job as stored: JSON-able fields only (``events``, ``outcome`` and ``error`` as
    the job manager writes them)."""

    id: str
    video: str
    path: str
    analyzers: list[str]
    deadline_s: float
    submitted_at: float
    state: str = "queued"
    owner: str | None = None
    pinned: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    outcome: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    ended_at: float | None = None

    def values(self) -> list[Any]:
        out = []
        for name in _COLUMNS:
            value = getattr(self, name)
            if name in _JSON_COLUMNS:
                value = None if value is None else json.dumps(value)
            elif name == "pinned":
                value = int(value)
            out.append(value)
        return out

    @classmethod
    def of(cls, values: tuple) -> JobRow:
        doc = dict(zip(_COLUMNS, values, strict=True))
        for name in _JSON_COLUMNS:
            if doc[name] is not None:
                doc[name] = json.loads(doc[name])
        doc["pinned"] = bool(doc["pinned"])
        return cls(**doc)


class JobStore:
    """The SQL both backends share; subclasses say how to connect and claim."""

    #: Whether rows of other owners may belong to live replicas (False: the store is ours).
    shared = False
    _mark = "?"

    def __init__(self, url: str) -> None:
        self.url = url

    # -- what subclasses give ----------------------------------------------------------------

    def _execute(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        raise NotImplementedError

    def claim(self, owner: str) -> JobRow | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self._mark)

    def _run(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        return self._execute(self._sql(sql), params)

    def insert(self, row: JobRow) -> None:
        marks = ", ".join("?" * len(_COLUMNS))
        self._run(f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({marks})", row.values())

    def update(self, row: JobRow) -> None:
        """Write what changes as a job runs: state, owner, progress, result."""
        names = ("state", "owner", "events", "outcome", "error", "ended_at")
        values = dict(zip(_COLUMNS, row.values(), strict=True))
        sets = ", ".join(f"{n} = ?" for n in names)
        self._run(f"UPDATE jobs SET {sets} WHERE id = ?", [values[n] for n in names] + [row.id])

    def load(self, job_id: str) -> JobRow | None:
        rows = self._run(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", (job_id,))
        return JobRow.of(rows[0]) if rows else None

    def queued(self) -> int:
        """Unpinned jobs waiting for any replica."""
        return self._run("SELECT count(*) FROM jobs WHERE state = 'queued' AND pinned = 0")[0][0]

    def beat(self, owner: str) -> None:
        now = time.time()
        if not self._run("UPDATE replicas SET seen_at = ? WHERE id = ? RETURNING id", (now, owner)):
            self._run("INSERT INTO replicas (id, seen_at) VALUES (?, ?)", (owner, now))

    def leave(self, owner: str) -> None:
        self._run("DELETE FROM replicas WHERE id = ?", (owner,))

    def recover(self, owner: str, stale_s: float) -> list[str]:
        """Fail the jobs that replicas now gone left running (or pinned and queued); the
        ids failed. Unpinned queued jobs stay for whoever claims them."""
        alive = [owner]
        if self.shared:
            since = time.time() - stale_s
            alive += [
                r[0] for r in self._run("SELECT id FROM replicas WHERE seen_at >= ?", (since,))
            ]
            self._run("DELETE FROM replicas WHERE seen_at < ?", (since,))
        else:
            self._run("DELETE FROM replicas WHERE id <> ?", (owner,))
        marks = ", ".join("?" * len(alive))
        error = json.dumps({"code": "UNAVAILABLE", "message": RESTARTED})
        rows = self._run(
            "UPDATE jobs SET state = 'failed', error = ?, ended_at = ? "
            f"WHERE (state = 'running' OR (state = 'queued' AND pinned = 1)) "
            f"AND (owner IS NULL OR owner NOT IN ({marks})) RETURNING id",
            [error, time.time(), *alive],
        )
        return [r[0] for r in rows]

    def evict(self, ended_before: float, keep: int) -> None:
        """Forget finished jobs older than ``ended_before``, and all but the ``keep`` newest."""
        self._run("DELETE FROM jobs WHERE ended_at IS NOT NULL AND ended_at < ?", (ended_before,))
        self._run(
            "DELETE FROM jobs WHERE ended_at IS NOT NULL AND id NOT IN "
            "(SELECT id FROM jobs WHERE ended_at IS NOT NULL ORDER BY ended_at DESC LIMIT ?)",
            (keep,),
        )

    def _claim_sql(self, lock: str) -> str:
        return self._sql(
            "UPDATE jobs SET state = 'running', owner = ? WHERE id = ("
            "SELECT id FROM jobs WHERE state = 'queued' AND pinned = 0 "
            f"ORDER BY submitted_at LIMIT 1 {lock}) AND state = 'queued' "
            f"RETURNING {', '.join(_COLUMNS)}"
        )


class SqliteStore(JobStore):
    """A file under the state directory, WAL mode; the directory is locked to one service."""

    def __init__(self, state_dir: str | os.PathLike | None) -> None:
        self._lock_fd: int | None = None
        if state_dir is None:
            super().__init__(":memory:")
            target = ":memory:"
        else:
            folder = Path(state_dir).expanduser()
            try:
                folder.mkdir(parents=True, exist_ok=True)
                self._lock_fd = os.open(folder / "jobs.lock", os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.close()
                raise StoreError(
                    f"another service uses the state directory {folder} (one per directory; "
                    "give each its own --state-dir, or share a PostgreSQL --job-store)"
                ) from None
            except OSError as exc:
                self.close()
                raise StoreError(f"cannot use the state directory {folder}: {exc}") from None
            target = str(folder / "jobs.sqlite3")
            super().__init__(target)
        # autocommit: each statement is its own transaction, as with psycopg below
        self._db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        for statement in _SCHEMA:
            self._db.execute(statement)

    def _execute(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        return self._db.execute(sql, tuple(params)).fetchall()

    def claim(self, owner: str) -> JobRow | None:
        # One UPDATE: SQLite has one writer at a time, so no two claims see the same row.
        rows = self._db.execute(self._claim_sql(""), (owner,)).fetchall()
        return JobRow.of(rows[0]) if rows else None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class PostgresStore(JobStore):
    """A PostgreSQL database that several replicas share (psycopg 3, autocommit)."""

    shared = True
    _mark = "%s"

    def __init__(self, url: str) -> None:
        import psycopg

        super().__init__(url)
        try:
            self._connect()
        except psycopg.Error as exc:
            raise StoreError(f"cannot reach the job store: {_one_line(exc)}") from None
        with self._db.transaction():
            # Replicas starting together would race on CREATE TABLE IF NOT EXISTS.
            self._db.execute("SELECT pg_advisory_xact_lock(727171)")
            for statement in _SCHEMA:
                self._db.execute(statement)

    def _connect(self) -> None:
        import psycopg

        self._db = psycopg.connect(
            self.url, autocommit=True, connect_timeout=10, options="-c statement_timeout=10000"
        )

    def _execute(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        # A connection the server dropped (restart, failover) is replaced on the next call;
        # the call that found it broken fails, rather than be retried and maybe run twice.
        if self._db.closed or self._db.broken:
            self._db.close()
            self._connect()
        cursor = self._db.execute(sql, tuple(params))
        return cursor.fetchall() if cursor.description else []

    def claim(self, owner: str) -> JobRow | None:
        # SKIP LOCKED: replicas claiming at once each take a different row, none waits.
        rows = self._execute(self._claim_sql("FOR UPDATE SKIP LOCKED"), (owner,))
        return JobRow.of(rows[0]) if rows else None

    def backend_pid(self) -> int:
        return self._db.info.backend_pid

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def redact(url: str) -> str:
    """The store's address without its password, for logs."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


def open_store(job_store: str | None, state_dir: str | os.PathLike | None) -> JobStore:
    """``job_store`` a postgresql:// URL, else SQLite under ``state_dir`` (None: in memory,
    for tests and embedding). Raises StoreError with a one-line reason."""
    if job_store:
        if job_store.startswith(("postgresql://", "postgres://")):
            return PostgresStore(job_store)
        raise StoreError(f"--job-store: {redact(job_store)!r} is not a postgresql:// URL")
    return SqliteStore(state_dir)
