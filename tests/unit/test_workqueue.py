"""The work queue: coalescing, one run per key at a time, concurrency, backoff, forgetting."""

from __future__ import annotations

import asyncio
from typing import Any

from runner.workqueue import Backoff, Result, WorkQueue


class Recorder:
    def __init__(self, results: list[Result] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.running = 0
        self.max_running = 0
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.results = results or []
        self.block = False

    async def __call__(self, key: str, latest: Any) -> Result:
        self.calls.append((key, latest))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.started.set()
        if self.block:
            await self.release.wait()
        self.running -= 1
        return self.results.pop(0) if self.results else Result(ok=True)


async def until(cond: Any, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.001)


async def test_events_during_a_run_coalesce_into_one_followup_on_the_latest_state() -> None:
    rec = Recorder()
    rec.block = True
    q = WorkQueue("t", rec, concurrency=2)
    q.start()
    q.add("ns/a", 1)
    await asyncio.wait_for(rec.started.wait(), 2)
    for v in range(2, 50):
        q.add("ns/a", v)
    rec.release.set()
    await until(lambda: len(rec.calls) == 2 and rec.running == 0)
    await asyncio.sleep(0.05)  # nothing else may arrive; a third call would fail below
    assert rec.calls == [("ns/a", 1), ("ns/a", 49)]
    assert rec.max_running == 1
    await q.stop()


async def test_concurrency_is_bounded() -> None:
    rec = Recorder()
    rec.block = True
    q = WorkQueue("t", rec, concurrency=3)
    q.start()
    for i in range(10):
        q.add(f"ns/{i}", i)
    await until(lambda: rec.running == 3)
    assert q.in_flight() == 3 and q.depth() == 7
    rec.release.set()
    await until(lambda: len(rec.calls) == 10)
    assert rec.max_running == 3
    await q.stop()


async def test_failure_backs_off_then_succeeds() -> None:
    rec = Recorder(results=[Result(ok=False), Result(ok=False), Result(ok=True)])
    q = WorkQueue("t", rec, concurrency=1, backoff=Backoff(base=0.01, cap=0.05))
    q.start()
    q.add("ns/a", "x")
    await until(lambda: len(rec.calls) == 3)
    await asyncio.sleep(0.1)
    assert len(rec.calls) == 3  # success ends the retries
    await q.stop()


def test_backoff_grows_and_caps() -> None:
    b = Backoff(base=0.5, cap=10)
    assert [b.delay(n) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1, 2, 4, 8, 10]


async def test_forget_drops_pending_work_and_timers() -> None:
    rec = Recorder(results=[Result(ok=False)])
    q = WorkQueue("t", rec, concurrency=1, backoff=Backoff(base=0.05, cap=0.05))
    q.start()
    q.add("ns/a", "x")
    await until(lambda: len(rec.calls) == 1 and rec.running == 0)
    q.forget("ns/a")
    await asyncio.sleep(0.15)
    assert len(rec.calls) == 1
    await q.stop()


async def test_requeue_after() -> None:
    rec = Recorder(results=[Result(ok=True, requeue_after=0.02), Result(ok=True)])
    q = WorkQueue("t", rec, concurrency=1)
    q.start()
    q.add("ns/a", "x")
    await until(lambda: len(rec.calls) == 2)
    await q.stop()


async def test_a_crashing_handler_does_not_kill_the_worker() -> None:
    calls: list[str] = []

    async def handler(key: str, latest: Any) -> Result:
        calls.append(key)
        if key == "ns/bad":
            raise RuntimeError("bug")
        return Result(ok=True)

    q = WorkQueue("t", handler, concurrency=1, backoff=Backoff(base=10, cap=10))
    q.start()
    q.add("ns/bad", 1)
    q.add("ns/good", 1)
    await until(lambda: "ns/good" in calls)
    await q.stop()
