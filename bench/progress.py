"""A one-line progress bar on stderr; no dependencies."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def render(label: str, done: int, total: int, elapsed: float, width: int = 30) -> str:
    """`label [#####.....] done/total  12s` (pure, so it can be tested)."""
    total = max(total, 1)
    filled = min(width, round(width * done / total))
    return f"{label[:40]:<40} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {elapsed:5.0f}s"


class Progress:
    """Overall steps of the run plus the current step's own counter."""

    def __init__(self, total_steps: int, stream: TextIO = sys.stderr) -> None:
        self.total_steps = total_steps
        self.step = 0
        self.stream = stream
        self.started = time.monotonic()
        self.label = ""
        self.tty = stream.isatty()
        self._last_line = 0.0
        self._finished_step = False

    def begin(self, label: str) -> None:
        self.step += 1
        self.label = f"[{self.step}/{self.total_steps}] {label}"
        self._last_line = 0.0
        self._finished_step = False
        self.update(0, 1)

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        line = render(self.label, done, total, now - self.started)
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            # Off a terminal (a log file): a line when a step starts, ends, and every 30 s.
            finished = done >= total and total > 1
            if finished and self._finished_step:
                return
            if not (finished or now - self._last_line >= 30.0):
                return
            self._finished_step = finished
            self._last_line = now
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(message + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()
