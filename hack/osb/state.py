"""The JSON file a broker keeps everything in: read at start, rewritten after every change.

A broker killed at any moment and started again on the same file carries on: the file is
replaced atomically (temp file, then os.replace), so it holds either the old or the new state.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class StateFile:
    """A JSON document behind one lock: `change()` to modify it (and save it), `view()` to read it."""

    def __init__(self, path: Path, empty: Callable[[], dict[str, Any]]) -> None:
        self.path = path
        self._lock = threading.RLock()
        self.data = empty()
        if path.exists():
            # Keys added since the file was written keep their empty value.
            self.data.update(json.loads(path.read_text()))

    @contextmanager
    def change(self) -> Iterator[dict[str, Any]]:
        """The document, locked; saved on the way out, also when the body raised (an OSB error
        answer can come after a change, such as a finished operation, that must not be lost)."""
        with self._lock:
            try:
                yield self.data
            finally:
                self.save()

    @contextmanager
    def view(self) -> Iterator[dict[str, Any]]:
        """The document, locked, to read only."""
        with self._lock:
            yield self.data

    def save(self) -> None:
        with self._lock:
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            # Owner-only: the file holds the credentials bindings returned.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(self.data, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
