"""Fixed JSONPaths and JSON pointers over plain data, the paths a workload resource mapping
speaks in: parse a path, find what it names in a workload, create what is missing on the way,
remove a field. Nothing here knows what a binding is.

Filters run on the Ansible controller, so these module_utils are imported by filter plugins
only (``ansible_collections.playbook_operator.bindings.plugins.module_utils.jsonpath``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any


class MappingError(ValueError):
    """A workload resource mapping that cannot be used (a bad path, a wrong type on the way)."""


_SEGMENT = re.compile(r"""\.([A-Za-z0-9_$-]+)|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]|\[\s*(\*)\s*\]|\.(\*)""")


def parse_path(expression: Any, *, fixed: bool = True) -> list[str]:
    """A JSONPath as a list of field names (``*`` for every item when not `fixed`).

    Fixed JSONPaths allow fields joined by the child operator only (``.a.b``, ``['a']``); the
    containers' ``path`` may also use ``[*]``. Anything else is a MappingError."""
    if not isinstance(expression, str) or not expression.strip():
        raise MappingError(f"a path must be a non-empty string, not {expression!r}")
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    segments: list[str] = []
    pos = 0
    while pos < len(text):
        match = _SEGMENT.match(text, pos)
        if match is None:
            raise MappingError(f"{expression!r} is not a {'Fixed ' if fixed else ''}JSONPath "
                               f"(unexpected {text[pos:]!r})")
        field = next(g for g in match.groups() if g is not None)
        if field == "*" and fixed:
            raise MappingError(f"{expression!r} is not a Fixed JSONPath (wildcards are not allowed)")
        segments.append(field)
        pos = match.end()
    if not segments:
        raise MappingError(f"{expression!r} names no field")
    return segments


def pointer(segments: Sequence[Any]) -> str:
    """An RFC 6901 JSON pointer."""
    return "".join("/" + str(s).replace("~", "~0").replace("/", "~1") for s in segments)


def expand(doc: Any, segments: Sequence[str]) -> list[list[Any]]:
    """Concrete paths (keys and list indexes) of the objects `segments` match in `doc`."""
    found: list[list[Any]] = [[]]
    for seg in segments:
        nxt: list[list[Any]] = []
        for path in found:
            node = get(doc, path)
            if seg == "*":
                if isinstance(node, list):
                    nxt.extend([*path, i] for i in range(len(node)))
                elif isinstance(node, dict):
                    nxt.extend([*path, k] for k in node)
            elif isinstance(node, dict) and seg in node:
                nxt.append([*path, seg])
        found = nxt
    return [p for p in found if isinstance(get(doc, p), dict)]


def get(doc: Any, path: Sequence[Any], default: Any = None) -> Any:
    """The value at a concrete path (keys and list indexes), or `default`."""
    node = doc
    for seg in path:
        if isinstance(node, dict) and seg not in node and str(seg) in node:
            seg = str(seg)  # a map key that looks like a list index
        found = (isinstance(node, dict) and seg in node) or (
            isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node))
        if not found:
            return default
        node = node[seg]
    return node


def ensure(doc: dict[str, Any], path: Sequence[Any], empty: Any, created: list[str], base: str = "") -> Any:
    """The value at `path`, created (with its missing parents) as `empty` when absent; the
    pointer of the outermost created field is appended to `created`."""
    node: Any = doc
    for i, seg in enumerate(path):
        last = i == len(path) - 1
        if not isinstance(node, dict):
            raise MappingError(f"{pointer(path[:i]) or '/'} is not an object in the workload")
        if node.get(seg) is None:
            node[seg] = copy.deepcopy(empty) if last else {}
            if not any((base + pointer(path[: i + 1])).startswith(c + "/") or c == base + pointer(path[: i + 1])
                       for c in created):
                created.append(base + pointer(path[: i + 1]))
        node = node[seg]
    if not isinstance(node, type(empty)):
        raise MappingError(f"{pointer(path)} is a {type(node).__name__} in the workload, not a "
                           f"{type(empty).__name__}")
    return node


def parse_pointer(ptr: str) -> list[Any]:
    """A JSON pointer back into a concrete path (digits as list indexes)."""
    out: list[Any] = []
    for raw in ptr.split("/")[1:]:
        seg = raw.replace("~1", "/").replace("~0", "~")
        out.append(int(seg) if seg.isdigit() else seg)
    return out


def remove(doc: Any, path: Sequence[Any]) -> None:
    """Remove, in place, the map field at `path` (nothing when it is not there)."""
    parent = get(doc, path[:-1])
    if isinstance(parent, dict):
        parent.pop(path[-1], None)

