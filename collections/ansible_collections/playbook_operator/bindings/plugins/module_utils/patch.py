"""JSON patches (RFC 6902) between two versions of an object, and the `test` operations that make
a patch fail, instead of clobbering it, when the object changed since it was read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.playbook_operator.bindings.plugins.module_utils.jsonpath import get, parse_pointer, pointer


def json_patch(old: Any, new: Any, path: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """RFC 6902 operations that turn `old` into `new`: maps are descended, lists of equal length
    item by item, anything else replaced whole."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        ops: list[dict[str, Any]] = []
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": pointer([*path, key])})
        for key, value in new.items():
            if key not in old:
                ops.append({"op": "add", "path": pointer([*path, key]), "value": value})
            else:
                ops.extend(json_patch(old[key], value, [*path, key]))
        return ops
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [op for i, (a, b) in enumerate(zip(old, new, strict=True)) for op in json_patch(a, b, [*path, i])]
    return [{"op": "replace", "path": pointer(path), "value": new}]



def guarded(workload: Mapping[str, Any], ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`ops` behind `test` operations, so the patch fails instead of clobbering a concurrent edit:
    the generation read (it moves with every spec change, and not with status writes, which
    happen all the time on a live workload), else the resourceVersion; and every value replaced
    or removed, as it was read."""
    meta = workload.get("metadata") or {}
    tests: list[dict[str, Any]] = []
    if meta.get("generation") is not None:
        tests.append({"op": "test", "path": "/metadata/generation", "value": meta["generation"]})
    elif meta.get("resourceVersion"):
        tests.append({"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]})
    for op in ops:
        if op["op"] in ("replace", "remove"):
            tests.append({"op": "test", "path": op["path"], "value": get(workload, parse_pointer(op["path"]))})
    return tests + ops

