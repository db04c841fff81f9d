"""Secret values out of ansible-runner artifacts and out of what the operator reports.

A role that registers a Secret read without `no_log`, or prints it, puts the Secret's values into
the run's events and stdout. A :class:`Scrubber` masks the `data` and `stringData` values of every
Secret object it meets, remembers those values in the forms they take in text, and masks them
wherever else they occur. :func:`scrub_run` rewrites one run's artifact directory;
:func:`mask` cleans a string before it goes into a log line, an Event or a status.

Pure: no Kubernetes client, no Ansible.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

MASK = "********"
# Shorter values would mask common words and numbers all over the artifacts.
MIN_LENGTH = 4
# The maps of a Secret that hold its values; `data` is base64, `stringData` plain.
SECRET_MAPS = ("data", "stringData")
# ansible-runner's plain-text artifacts, beside job_events/.
TEXT_ARTIFACTS = ("stdout", "stderr")


def secret_forms(value: Any, *, encoded: bool = False) -> set[str]:
    """The forms a Secret value takes in text.

    The value as stored (and stripped), plus its base64-decoded form when `encoded` (a `data`
    value, when it decodes to UTF-8) or its base64-encoded form otherwise (a `stringData` value).
    Numbers count as their text; booleans and nulls are no secret.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return set()
    text = str(value)
    forms = {text}
    if encoded:
        # Not base64, or not UTF-8 text underneath: only the stored form can appear.
        with contextlib.suppress(ValueError):
            forms.add(base64.b64decode(text, validate=True).decode("utf-8"))
    else:
        forms.add(base64.b64encode(text.encode("utf-8")).decode("ascii"))
    # A decoded value often ends in the newline `echo | base64` left; messages come stripped.
    return forms | {f.strip() for f in forms}


def _text_forms(value: str) -> set[str]:
    # How a value reads inside JSON text (stdout of a debug task): quotes, newlines, non-ASCII escaped.
    return {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}


def _is_secret(node: dict[Any, Any]) -> bool:
    # A definition may leave the apiVersion to the module's own `api_version`.
    return node.get("kind") == "Secret" and node.get("apiVersion") in (None, "v1")


def _secret_maps(tree: Any) -> Iterator[tuple[dict[Any, Any], bool]]:
    """Every `data` and `stringData` map of every Secret in a JSON-like tree, with `encoded`."""
    seen: set[int] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            secrets = [node] if _is_secret(node) else []
            # The items of a raw SecretList from the API carry no kind of their own.
            if node.get("kind") == "SecretList" and isinstance(node.get("items"), list):
                secrets += [item for item in node["items"] if isinstance(item, dict)]
            # Neither do the before and after of a k8s module's diff of the Secret in its `result`.
            diff = node.get("diff")
            if isinstance(diff, dict) and isinstance(node.get("result"), dict) and _is_secret(node["result"]):
                secrets += [diff[side] for side in ("before", "after") if isinstance(diff.get(side), dict)]
            for secret in secrets:
                if id(secret) in seen:
                    continue
                seen.add(id(secret))
                for name in SECRET_MAPS:
                    values = secret.get(name)
                    if isinstance(values, dict):
                        yield values, name == "data"
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


class Scrubber:
    """The secret values met so far, and the masking of events, artifact files and text with them.

    One per run: values learnt from an early event (a registered `k8s_info`) mask the later ones
    (a debug print, a failure message) and the run's stdout.
    """

    def __init__(self, extra_secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(extra_secrets)

    @property
    def secrets(self) -> frozenset[str]:
        """Every value this scrubber masks in text."""
        return frozenset(self._secrets)

    def add(self, values: Iterable[str]) -> None:
        """Mask these values (each as it is and as it reads inside JSON) from now on."""
        new: set[str] = set()
        for value in values:
            new |= _text_forms(value)
        # Nothing inside the mask itself: a second pass must change nothing.
        new = {v for v in new if len(v) >= MIN_LENGTH and v not in MASK} - self._secrets
        if new:
            self._secrets |= new
            self._pattern = None

    def learn(self, tree: Any) -> None:
        """Remember the values of every Secret in a JSON-like tree, without changing it."""
        for values, encoded in _secret_maps(tree):
            for value in values.values():
                self.add(secret_forms(value, encoded=encoded))

    def scrub(self, tree: Any) -> int:
        """Mask a JSON-like tree in place: its Secrets' values, then every known value in its strings.

        Returns how many values were masked.
        """
        self.learn(tree)
        count = 0
        for values, _ in _secret_maps(tree):
            for key, value in values.items():
                if value is not None and value != MASK:
                    values[key] = MASK
                    count += 1
        return count + self._mask_strings(tree)

    def mask_text(self, text: str) -> tuple[str, int]:
        """`text` with every known value replaced by the mask, and how many were replaced."""
        pattern = self._compiled()
        if pattern is None:
            return text, 0
        return pattern.subn(MASK, text)

    def scrub_run(self, artifact_dir: Path) -> int:
        """Rewrite one run's artifacts so that no secret value remains; returns how many were masked.

        All events are read once to learn the Secrets in them before any file is rewritten, so
        a value printed before the task that read its Secret is caught too.
        """
        events = sorted((artifact_dir / "job_events").glob("*.json"))
        for path in events:
            event = _read_json(path)
            if event is not None:
                self.learn(event)
        count = 0
        for path in events:
            event = _read_json(path)
            if event is None:
                # Not JSON (cut short): mask it as text.
                count += self._scrub_text_file(path)
                continue
            masked = self.scrub(event)
            if masked:
                _write_atomic(path, json.dumps(event))
                count += masked
        for name in TEXT_ARTIFACTS:
            path = artifact_dir / name
            if path.is_file():
                count += self._scrub_text_file(path)
        return count

    def _scrub_text_file(self, path: Path) -> int:
        # surrogateescape: bytes that are not UTF-8 go back out as they came in.
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        masked, count = self.mask_text(text)
        if count:
            _write_atomic(path, masked)
        return count

    def _compiled(self) -> re.Pattern[str] | None:
        if self._pattern is None and self._secrets:
            # Longest first: a value that contains another is masked whole.
            needles = sorted(self._secrets, key=lambda s: (-len(s), s))
            self._pattern = re.compile("|".join(map(re.escape, needles)))
        return self._pattern

    def _mask_strings(self, tree: Any) -> int:
        pattern = self._compiled()
        if pattern is None:
            return 0
        count = 0
        stack = [tree]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                for key in list(node):
                    value = node[key]
                    if isinstance(value, str):
                        node[key], n = pattern.subn(MASK, value)
                        count += n
                    else:
                        stack.append(value)
                    if isinstance(key, str):
                        new_key, n = pattern.subn(MASK, key)
                        if n:
                            node[new_key] = node.pop(key)
                            count += n
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    if isinstance(value, str):
                        node[i], n = pattern.subn(MASK, value)
                        count += n
                    else:
                        stack.append(value)
        return count


def scrub_run(artifact_dir: Path, extra_secrets: Iterable[str] = ()) -> int:
    """Rewrite one run's artifacts (`job_events/*.json`, `stdout`, `stderr`) so no secret value remains.

    Secrets are the values of every Secret object in the events, in their plain and base64 forms,
    and `extra_secrets` as given. Returns how many values were masked (0 on a second pass).
    """
    return Scrubber(extra_secrets).scrub_run(artifact_dir)


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with every one of `secrets` (of at least MIN_LENGTH characters) replaced by the mask."""
    return Scrubber(secrets).mask_text(text)[0]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def _write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename, keeping its mode; readers see the old or the new file."""
    mode = stat.S_IMODE(path.stat().st_mode)
    # mkstemp creates the file 0600: never readable by more than the final mode allows.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
