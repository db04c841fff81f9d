"""The work queue: coalescing, one run per key at a time, concurrency, backoff, forgetting."""

from __future__ import annotations

import asyncio
from typing import Any

from runner.workqueue import LOW_SHARE, OLDEST_SHARE, Backoff, Priority, Result, WorkQueue


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


async def busy_queue(first_priority: Priority = Priority.HIGH, first_key: str = "ns/first",
                     **options: Any) -> tuple[Recorder, WorkQueue]:
    """A started one-worker queue whose worker holds `first_key` until `rec.release` is set, so
    that what is added meanwhile waits, in the order the queue will choose."""
    rec = Recorder()
    rec.block = True
    q = WorkQueue("t", rec, concurrency=1, **options)
    q.start()
    q.add(first_key, 0, first_priority)
    await until(lambda: rec.running == 1)
    return rec, q


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


# --- priorities -------------------------------------------------------------------------------


async def test_a_high_key_overtakes_a_backlog_of_low_ones() -> None:
    rec, q = await busy_queue(Priority.LOW)
    for i in range(100):
        q.add(f"ns/listed-{i}", i, Priority.LOW)
    q.add("ns/new", "created by a user")
    assert q.depth_by_priority() == {"high": 1, "low": 100}
    rec.release.set()
    await until(lambda: len(rec.calls) == 102)
    assert rec.calls[1] == ("ns/new", "created by a user")
    await q.stop()


async def test_low_keys_keep_a_share_of_the_runs_under_a_flood_of_high_ones() -> None:
    rec, q = await busy_queue()
    for i in range(10):
        q.add(f"ns/low-{i}", i, Priority.LOW)
    for i in range(30):
        q.add(f"ns/high-{i}", i)
    rec.release.set()
    await until(lambda: len(rec.calls) == 41)
    order = [key for key, _ in rec.calls[1:]]
    # While both wait, one run in LOW_SHARE is a low one, oldest first.
    first_low = [order.index(f"ns/low-{i}") for i in range(3)]
    assert first_low == [LOW_SHARE - 1, 2 * LOW_SHARE - 1, 3 * LOW_SHARE - 1], order
    assert order.index("ns/high-29") < order.index("ns/low-9")  # and high still goes mostly first
    await q.stop()


async def test_within_high_the_newest_goes_first_and_the_oldest_keeps_a_share() -> None:
    rec, q = await busy_queue()
    for i in range(1000):
        q.add(f"ns/batch-{i}", i)  # a batch applied at once...
    q.add("ns/one", "applied by hand")  # ...and one object a minute later
    rec.release.set()
    await until(lambda: len(rec.calls) == 1002)
    order = [key for key, _ in rec.calls[1:]]
    assert order[0] == "ns/one"  # not behind the batch
    # ns/first was a newest run, so one in OLDEST_SHARE of the batch's runs is its oldest, from the
    # second on: the batch drains from both ends, none left behind.
    assert OLDEST_SHARE == 4
    assert order[:9] == ["ns/one", "ns/batch-999", "ns/batch-0", "ns/batch-998", "ns/batch-997", "ns/batch-996",
                         "ns/batch-1", "ns/batch-995", "ns/batch-994"]
    assert sorted(order) == sorted(["ns/one", *(f"ns/batch-{i}" for i in range(1000))])
    await q.stop()


async def test_a_steady_stream_of_new_keys_does_not_starve_the_oldest() -> None:
    calls: list[str] = []
    counter = iter(range(10**6))

    async def handler(key: str, latest: Any) -> Result:
        calls.append(key)
        q.add(f"ns/later-{next(counter)}", 0)  # always one more new key than the queue can run
        q.add(f"ns/later-{next(counter)}", 0)
        await asyncio.sleep(0)
        return Result(ok=True)

    q = WorkQueue("t", handler, concurrency=1)
    for i in range(5):
        q.add(f"ns/early-{i}", i)
    q.start()
    await until(lambda: all(f"ns/early-{i}" in calls for i in range(5)))
    # One run in OLDEST_SHARE is the oldest waiting: the five early keys are done within 20 runs.
    assert max(calls.index(f"ns/early-{i}") for i in range(5)) < 5 * OLDEST_SHARE, calls[:20]
    await q.stop()


async def test_a_waiting_low_key_moves_up_when_a_user_changes_it() -> None:
    rec, q = await busy_queue()
    for i in range(5):
        q.add(f"ns/listed-{i}", i, Priority.LOW)
    q.add("ns/listed-4", "edited", Priority.HIGH)
    q.add("ns/listed-0", "relisted", Priority.LOW)  # a low event never moves a key down, nor back
    assert q.depth_by_priority() == {"high": 1, "low": 4} and q.depth() == 5
    rec.release.set()
    await until(lambda: len(rec.calls) == 6)
    assert rec.calls[1] == ("ns/listed-4", "edited")
    assert [k for k, _ in rec.calls[2:]] == [f"ns/listed-{i}" for i in range(4)]
    assert rec.calls[2] == ("ns/listed-0", "relisted")
    await q.stop()


async def test_requeues_and_retries_wait_at_low_priority() -> None:
    calls: list[str] = []
    gate = asyncio.Event()

    async def handler(key: str, latest: Any) -> Result:
        calls.append(key)
        if key == "ns/blocker":
            await gate.wait()
        if calls.count(key) > 1:
            return Result(ok=True)
        return Result(ok=key != "ns/failing", requeue_after=0.01 if key == "ns/periodic" else None)

    q = WorkQueue("t", handler, concurrency=1, backoff=Backoff(base=0.01, cap=0.01))
    q.start()
    for key in ("ns/periodic", "ns/failing", "ns/blocker"):  # one after the other
        q.add(key, 1)
        await until(lambda: calls[-1:] == [key])  # noqa: B023 (awaited before the loop moves on)
    assert calls == ["ns/periodic", "ns/failing", "ns/blocker"]
    await until(lambda: q.depth_by_priority() == {"high": 0, "low": 2})  # their timers fired
    q.add("ns/new", 1)
    gate.set()
    await until(lambda: len(calls) == 6)
    assert calls[3] == "ns/new" and sorted(calls[4:]) == ["ns/failing", "ns/periodic"]
    await q.stop()


async def test_a_followup_keeps_the_highest_priority_of_the_events_during_the_run() -> None:
    rec, q = await busy_queue(Priority.LOW, "ns/a")
    q.add("ns/a", 2, Priority.LOW)  # a dependent changed...
    q.add("ns/a", 3)  # ...and a user edited it
    q.add("ns/a", 4, Priority.LOW)
    q.add("ns/b", 1, Priority.LOW)
    rec.release.set()
    await until(lambda: len(rec.calls) == 3)
    # The latest state, run at high priority: ahead of ns/b, which waited at low.
    assert rec.calls[1:] == [("ns/a", 4), ("ns/b", 1)]
    await q.stop()


async def test_each_key_s_wait_is_told_with_the_priority_it_ran_at() -> None:
    waits: list[tuple[Priority, float]] = []
    rec, q = await busy_queue(Priority.LOW, on_wait=lambda priority, seconds: waits.append((priority, seconds)))
    q.add("ns/listed", 1, Priority.LOW)
    await asyncio.sleep(0.05)
    q.add("ns/listed", 2)  # moved up: its wait still counts from when it first queued
    rec.release.set()
    await until(lambda: len(waits) == 2 and len(rec.calls) == 2)
    assert waits[0][0] == Priority.LOW and waits[1][0] == Priority.HIGH
    assert waits[1][1] >= 0.05
    await q.stop()


# -- gathering follow-ups


async def test_gathered_events_make_one_run_on_the_latest_state() -> None:
    rec = Recorder()
    q = WorkQueue("t", rec, concurrency=1)
    q.start()
    for v in range(1, 4):  # a PodSet's three pods become ready one after the other
        q.add("ns/a", v, Priority.LOW, gather=0.05)
    assert q.depth() == 0 and rec.calls == []  # held back while more may come
    await until(lambda: len(rec.calls) == 1)
    await asyncio.sleep(0.1)
    assert rec.calls == [("ns/a", 3)]
    await q.stop()


async def test_an_event_that_is_not_gathered_runs_at_once() -> None:
    rec = Recorder()
    q = WorkQueue("t", rec, concurrency=1)
    q.start()
    q.add("ns/a", 1, Priority.LOW, gather=30)
    q.add("ns/a", 2, Priority.HIGH)  # the user changed the object meanwhile
    await until(lambda: rec.calls == [("ns/a", 2)])
    await asyncio.sleep(0.05)
    assert rec.calls == [("ns/a", 2)]  # and the gathering timer went with it
    await q.stop()


async def test_a_key_already_waiting_is_not_held_back() -> None:
    rec, q = await busy_queue()
    q.add("ns/b", 1, Priority.LOW)
    q.add("ns/b", 2, Priority.LOW, gather=30)
    assert q.depth(Priority.LOW) == 1
    rec.block = False
    rec.release.set()
    await until(lambda: ("ns/b", 2) in rec.calls)
    await q.stop()


async def test_gathered_events_during_a_run_wait_before_the_follow_up() -> None:
    rec, q = await busy_queue(first_key="ns/a")
    q.add("ns/a", 1, Priority.LOW, gather=0.2)
    rec.block = False
    rec.release.set()
    await until(lambda: rec.running == 0)
    assert q.depth() == 0 and len(rec.calls) == 1  # not at once...
    await until(lambda: len(rec.calls) == 2)  # ...but soon, on the latest state
    assert rec.calls[-1] == ("ns/a", 1)
    await q.stop()


async def test_gathering_brings_a_later_requeue_forward_and_never_puts_one_off() -> None:
    rec = Recorder(results=[Result(ok=True, requeue_after=30)])
    q = WorkQueue("t", rec, concurrency=1)
    q.start()
    q.add("ns/a", 1)
    await until(lambda: len(rec.calls) == 1)
    await until(lambda: rec.running == 0)
    q.add("ns/a", 2, Priority.LOW, gather=0.05)  # sooner than the requeue in 30 s
    await until(lambda: len(rec.calls) == 2)
    await q.stop()
