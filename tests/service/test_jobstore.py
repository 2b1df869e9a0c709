"""The job store on its own, SQLite and a real PostgreSQL alike: rows survive reopening,
claims never hand one job to two replicas, jobs left running by a dead replica are failed
with the reason, finished jobs expire."""

from __future__ import annotations

import threading
import time

import pytest

from tiktok_analyzer.service.jobstore import (
    RESTARTED,
    JobRow,
    PostgresStore,
    SqliteStore,
    StoreError,
    open_store,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request, tmp_path):
    """A function opening (again) the same store: the test's database, or its folder."""
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "state")
    url = request.getfixturevalue("pg_url")
    return lambda: PostgresStore(url)


def _row(n: int, **fields) -> JobRow:
    return JobRow(
        id=f"job{n:03d}",
        video=f"clip{n}.mp4",
        path=f"/videos/clip{n}.mp4",
        analyzers=["cut_analysis"],
        deadline_s=60.0,
        submitted_at=1000.0 + n,
        **fields,
    )


def test_rows_survive_reopening(opener):
    store = opener()
    done = _row(1, state="done", outcome={"report_json": "{}", "failed": []}, ended_at=5.0)
    done.events = [{"seq": 1, "analyzer": "cut_analysis", "kind": "start"}]
    store.insert(done)
    store.insert(_row(2))
    store.close()
    again = opener()
    try:
        assert again.load("job001") == done
        assert again.load("job002").state == "queued"
        assert again.load("nope") is None
        assert again.queued() == 1
    finally:
        again.close()


def test_claims_take_the_oldest_unpinned_once(opener):
    store = opener()
    try:
        store.insert(_row(2))
        store.insert(_row(1))
        store.insert(_row(0, pinned=True, owner="a"))
        first, second = store.claim("a"), store.claim("b")
        assert (first.id, first.owner, first.state) == ("job001", "a", "running")
        assert second.id == "job002" and store.claim("c") is None
        assert store.load("job000").state == "queued"  # pinned: only its owner runs it
    finally:
        store.close()


def test_concurrent_claims_never_share_a_job(pg_url):
    """Four replicas (four connections) claiming 40 jobs at once, in threads."""
    setup = PostgresStore(pg_url)
    for n in range(40):
        setup.insert(_row(n))
    claimed: dict[str, list[str]] = {}

    def replica(name: str) -> None:
        store = PostgresStore(pg_url)
        mine = claimed.setdefault(name, [])
        while (row := store.claim(name)) is not None:
            mine.append(row.id)
        store.close()

    threads = [threading.Thread(target=replica, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = [i for rows in claimed.values() for i in rows]
    assert sorted(ids) == [f"job{n:03d}" for n in range(40)]  # each once, none lost
    assert setup.queued() == 0
    setup.close()


def test_a_dead_replicas_running_jobs_are_failed_with_the_reason(opener):
    store = opener()
    store.beat("dead")
    store.insert(_row(1))
    store.insert(_row(2, pinned=True, owner="dead"))
    store.insert(_row(3))
    assert store.claim("dead").id == "job001"
    store.close()  # the replica dies: no leave()

    again = opener()
    try:
        again.beat("new")
        # SQLite: the folder is ours, so "dead" is dead now; PostgreSQL: once it is stale
        failed = again.recover("new", stale_s=0.0 if again.shared else 30.0)
        assert sorted(failed) == ["job001", "job002"]
        for job_id in failed:
            row = again.load(job_id)
            assert row.state == "failed" and row.error == {
                "code": "UNAVAILABLE",
                "message": RESTARTED,
            }
        assert again.load("job003").state == "queued"  # never ran: it still will
    finally:
        again.close()


def test_a_live_replicas_jobs_are_left_alone(pg_url):
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    try:
        a.beat("a")
        a.insert(_row(1))
        assert a.claim("a").id == "job001"
        b.beat("b")
        assert b.recover("b", stale_s=30.0) == []
        assert b.load("job001").state == "running"
    finally:
        a.close()
        b.close()


def test_finished_jobs_expire(opener):
    store = opener()
    try:
        now = time.time()
        for n in range(5):
            store.insert(_row(n, state="done", ended_at=now - 100 + n))
        store.insert(_row(9))
        store.evict(ended_before=now - 98.5, keep=10)
        assert [store.load(f"job{n:03d}") is None for n in range(5)] == [1, 1, 0, 0, 0]
        store.evict(ended_before=0, keep=1)
        assert store.load("job004") is not None and store.load("job003") is None
        assert store.load("job009") is not None  # not finished: never evicted
    finally:
        store.close()


def test_one_service_per_state_dir(tmp_path):
    first = SqliteStore(tmp_path)
    try:
        with pytest.raises(StoreError, match="another service uses the state directory"):
            SqliteStore(tmp_path)
    finally:
        first.close()
    SqliteStore(tmp_path).close()  # free again once the first closed


def test_bad_store_urls_are_one_line_errors(free_port_url="postgresql://x@127.0.0.1:1/db"):
    with pytest.raises(StoreError, match="not a postgresql:// URL") as info:
        open_store("mysql://root:hunter2@db/x", None)
    assert "hunter2" not in str(info.value)
    with pytest.raises(StoreError, match="cannot reach the job store") as info:
        open_store(free_port_url, None)
    assert "\n" not in str(info.value)


def test_a_dropped_connection_is_replaced(pg_url):
    """The server ends the session (a restart, a failover): that call fails, the next works."""
    import psycopg

    store = PostgresStore(pg_url)
    try:
        store.insert(_row(1))
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (store.backend_pid(),))
        with pytest.raises(psycopg.OperationalError):
            store.load("job001")
        assert store.load("job001").video == "clip1.mp4"
    finally:
        store.close()
