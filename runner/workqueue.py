"""A per-watch work queue with the semantics of controller-runtime's:

- one key (namespace/name) is never reconciled twice at once;
- events for a key while it runs coalesce into one follow-up run on the latest state;
- at most `concurrency` keys run at a time;
- a failed key comes back after an exponential backoff with a cap;
- a key can be requeued after a delay (reconcilePeriod);
- forgetting a key (the object is gone) drops its pending work;
- and, as controller-runtime's priority queue, what a user just did goes first: a key added at
  HIGH priority (a new object, a new generation) runs before keys waiting at LOW (the initial
  list, requeues, retries, follow-ups a dependent's change caused). LOW is never starved: while
  both wait, one run in LOW_SHARE is a LOW one, so a backlog of thousands keeps draining while
  new objects overtake it;
- within HIGH, the newest key first, and one run in OLDEST_SHARE for the oldest: one object a
  user applies does not wait behind a batch of a thousand applied a minute before, and the
  batch keeps draining in order, so no key waits forever.

It is pure asyncio and knows nothing of Kubernetes or Ansible.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

log = logging.getLogger("playbook_operator.queue")

Handler = Callable[[str, Any], Awaitable["Result"]]


@dataclass(frozen=True)
class Result:
    ok: bool
    requeue_after: float | None = None


class Priority(IntEnum):
    """LOW: the initial list, resyncs, requeues, retries, a dependent's change. HIGH: a change a
    user made (a new object, a new generation, a deletion to finalize)."""

    LOW = 0
    HIGH = 1


# While keys wait at both priorities, every LOW_SHARE-th run takes the oldest LOW one.
LOW_SHARE = 4
# While several keys wait at HIGH, every OLDEST_SHARE-th HIGH run takes the oldest, the others the newest.
OLDEST_SHARE = 4


@dataclass
class _KeyState:
    latest: Any = None
    queued: bool = False
    priority: Priority = Priority.LOW  # while queued: where it waits
    running: bool = False
    dirty: bool = False
    dirty_priority: Priority = Priority.LOW  # the highest priority of the events while it ran
    dirty_delay: float = 0.0  # how long the events while it ran may wait to be gathered (the least)
    enqueued_at: float = 0.0  # monotonic; kept when the key moves up
    failures: int = 0
    timer: asyncio.TimerHandle | None = None
    forgotten: bool = False


@dataclass
class Backoff:
    base: float = 0.5
    cap: float = 300.0

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.base * (2 ** max(failures - 1, 0))))


@dataclass
class WorkQueue:
    name: str
    handler: Handler
    concurrency: int = 1
    backoff: Backoff = field(default_factory=Backoff)
    # Told how long each key waited, and at which priority it was taken (for /metrics).
    on_wait: Callable[[Priority, float], None] | None = None

    def __post_init__(self) -> None:
        self._keys: dict[str, _KeyState] = {}
        # Keys waiting to run, oldest first, by priority; one token in _tokens per key waiting.
        self._waiting: dict[Priority, OrderedDict[str, None]] = {p: OrderedDict() for p in Priority}
        self._tokens: asyncio.Queue[None] = asyncio.Queue()
        self._high_in_a_row = 0
        self._newest_in_a_row = 0  # HIGH runs that took the newest key since the oldest's last turn
        self._workers: list[asyncio.Task[None]] = []
        self.runs = 0

    # -- producers

    def add(self, key: str, latest: Any, priority: Priority = Priority.HIGH, gather: float = 0.0) -> None:
        """An event for `key`; `latest` replaces whatever state was pending. A key already waiting
        moves up to `priority` if that is higher.

        With `gather` (seconds), the key waits that long before it queues, so that the events
        that follow soon after (a PodSet's pods becoming ready one by one) make one run, not one
        each; an event without it, or a key already waiting, is not held back."""
        st = self._keys.setdefault(key, _KeyState())
        st.latest = latest
        st.forgotten = False
        if st.running:
            st.dirty_delay = gather if not st.dirty else min(st.dirty_delay, gather)
            st.dirty = True
            st.dirty_priority = max(st.dirty_priority, priority)
            return
        if gather > 0 and not st.queued:
            loop = asyncio.get_running_loop()
            if st.timer is None or st.timer.when() > loop.time() + gather:
                self.add_after(key, gather)
            return
        if st.timer is not None:
            # An event beats a pending requeue or backoff timer: run now on the new state.
            st.timer.cancel()
            st.timer = None
        self._enqueue(key, st, priority)

    def refresh(self, key: str, latest: Any) -> None:
        """Newer state for a known key that needs no run of its own (a status write):
        a later run must start from it, not from the state that was queued."""
        st = self._keys.get(key)
        if st is not None and not st.forgotten:
            st.latest = latest

    def latest(self, key: str) -> Any:
        """The newest state seen for `key`, or None for a key this queue does not know."""
        st = self._keys.get(key)
        return None if st is None or st.forgotten else st.latest

    def add_after(self, key: str, delay: float) -> None:
        st = self._keys.get(key)
        if st is None or st.forgotten:
            return
        if st.timer is not None:
            st.timer.cancel()
        loop = asyncio.get_running_loop()
        st.timer = loop.call_later(delay, self._timer_fired, key)

    def forget(self, key: str) -> None:
        """The object is gone: drop pending work and timers (a running reconcile finishes)."""
        st = self._keys.get(key)
        if st is None:
            return
        if st.timer is not None:
            st.timer.cancel()
        st.forgotten = True
        st.dirty = False
        if not st.running and not st.queued:
            del self._keys[key]

    def known_keys(self) -> list[str]:
        """Every key this queue knows (waiting, running, waiting for a timer or done with)."""
        return [key for key, st in self._keys.items() if not st.forgotten]

    def depth(self, priority: Priority | None = None) -> int:
        """Keys waiting to run (at `priority`, or at any)."""
        if priority is not None:
            return len(self._waiting[priority])
        return sum(len(waiting) for waiting in self._waiting.values())

    def depth_by_priority(self) -> dict[str, int]:
        """Keys waiting, by priority name ("high", "low"): for /metrics."""
        return {p.name.lower(): len(waiting) for p, waiting in self._waiting.items()}

    def in_flight(self) -> int:
        return sum(1 for st in self._keys.values() if st.running)

    # -- lifecycle

    def start(self) -> None:
        for i in range(self.concurrency):
            self._workers.append(asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}"))

    async def stop(self) -> None:
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()

    # -- internals

    def _enqueue(self, key: str, st: _KeyState, priority: Priority) -> None:
        if not st.queued:
            st.queued = True
            st.priority = priority
            st.enqueued_at = time.monotonic()
            self._waiting[priority][key] = None
            self._tokens.put_nowait(None)
        elif priority > st.priority:
            del self._waiting[st.priority][key]
            st.priority = priority
            self._waiting[priority][key] = None

    def _next_key(self) -> str:
        """The key to run next (one is waiting): HIGH first, but LOW's share while both wait;
        within HIGH the newest, but the oldest's share; within LOW the oldest."""
        high, low = self._waiting[Priority.HIGH], self._waiting[Priority.LOW]
        if high and (not low or self._high_in_a_row < LOW_SHARE - 1):
            self._high_in_a_row = self._high_in_a_row + 1 if low else 0  # counts only while LOW waits
            newest = self._newest_in_a_row < OLDEST_SHARE - 1
            self._newest_in_a_row = self._newest_in_a_row + 1 if newest else 0
            return high.popitem(last=newest)[0]
        self._high_in_a_row = 0
        return low.popitem(last=False)[0]

    def _timer_fired(self, key: str) -> None:
        st = self._keys.get(key)
        if st is None or st.forgotten:
            return
        st.timer = None
        if st.running:
            st.dirty = True
        else:
            self._enqueue(key, st, Priority.LOW)

    async def _worker(self) -> None:
        while True:
            await self._tokens.get()
            key = self._next_key()
            st = self._keys.get(key)
            if st is None or st.forgotten:
                if st is not None:
                    del self._keys[key]
                continue
            st.queued = False
            if self.on_wait is not None:
                self.on_wait(st.priority, time.monotonic() - st.enqueued_at)
            st.running = True
            st.dirty = False
            self.runs += 1
            try:
                result = await self.handler(key, st.latest)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile of %s crashed", key)
                result = Result(ok=False)
            st.running = False
            if st.forgotten:
                self._keys.pop(key, None)
                continue
            if result.ok:
                st.failures = 0
            else:
                st.failures += 1
            if st.dirty:
                st.dirty = False
                priority, st.dirty_priority = st.dirty_priority, Priority.LOW
                if st.dirty_delay > 0:
                    self.add_after(key, st.dirty_delay)
                else:
                    self._enqueue(key, st, priority)
            elif not result.ok:
                self.add_after(key, self.backoff.delay(st.failures))
            elif result.requeue_after:
                self.add_after(key, result.requeue_after)
