"""Filters for the ServiceBinding role (servicebinding.io spec v1.1): where a workload keeps its
containers and volumes (workload resource mappings and Fixed JSONPaths), how a binding is
projected into a workload and removed again, and the whole decision of one reconcile as data.

Everything here is pure: the same binding, service, Secret presence, workloads and mappings
always give the same answer, so the role only reads the cluster and applies the plan, and the
rules are unit-tested without a cluster. No Secret value ever reaches these functions: the role
passes only whether the Secret exists.

What a projection adds to a workload, for a binding with uid U and Secret S:

* a volume ``servicebinding-U``: a projected volume of S, plus downward-API files ``type`` and
  ``provider`` when the binding overrides them (their values live in the pod template
  annotations ``servicebinding.playbook-operator.io/type-U`` and ``.../provider-U``, so nothing
  is copied out of the Secret and no second Secret is needed);
* in each bound container, a read-only mount of that volume at
  ``$SERVICE_BINDING_ROOT/<spec.name>``, ``SERVICE_BINDING_ROOT=/bindings`` when the container
  has none, and the ``spec.env`` variables as ``secretKeyRef``s to S (``fieldRef``s to the
  annotations for overridden ``type``/``provider``);
* a record of all this in the workload annotation ``servicebinding.playbook-operator.io/U``
  (the Secret's name, the mapping used, and what was created), so unbinding removes exactly
  that, with the same mapping, whatever was edited in between.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.playbook_operator.kube.plugins.module_utils import selectors

PREFIX = "servicebinding.playbook-operator.io/"
VOLUME_PREFIX = "servicebinding-"
ROOT_ENV = "SERVICE_BINDING_ROOT"
DEFAULT_ROOT = "/bindings"
DEFAULT_MODE = 0o644
SECRET_API = ("v1", "Secret")
_NAME = re.compile(r"^[a-z0-9.-]{1,253}$")

# The mapping every PodSpec-able resource gets (the spec's default), and the one the issue asks
# for CronJobs, whose pod template is one level deeper. A ClusterWorkloadResourceMapping for the
# kind replaces either.
PODSPEC_MAPPING: dict[str, Any] = {
    "annotations": ".spec.template.metadata.annotations",
    "containers": [
        {"path": ".spec.template.spec.containers[*]", "name": ".name", "env": ".env", "volumeMounts": ".volumeMounts"},
        {"path": ".spec.template.spec.initContainers[*]", "name": ".name", "env": ".env",
         "volumeMounts": ".volumeMounts"},
    ],
    "volumes": ".spec.template.spec.volumes",
}
CRONJOB_MAPPING: dict[str, Any] = {
    "annotations": ".spec.jobTemplate.spec.template.metadata.annotations",
    "containers": [
        {"path": ".spec.jobTemplate.spec.template.spec.containers[*]", "name": ".name", "env": ".env",
         "volumeMounts": ".volumeMounts"},
        {"path": ".spec.jobTemplate.spec.template.spec.initContainers[*]", "name": ".name", "env": ".env",
         "volumeMounts": ".volumeMounts"},
    ],
    "volumes": ".spec.jobTemplate.spec.template.spec.volumes",
}
BUILTIN_MAPPINGS = {("batch", "CronJob"): CRONJOB_MAPPING}


class MappingError(ValueError):
    """A workload resource mapping that cannot be used (a bad path, a wrong type on the way)."""


# --- paths ---------------------------------------------------------------------------------------

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


def _expand(doc: Any, segments: Sequence[str]) -> list[list[Any]]:
    """Concrete paths (keys and list indexes) of the objects `segments` match in `doc`."""
    found: list[list[Any]] = [[]]
    for seg in segments:
        nxt: list[list[Any]] = []
        for path in found:
            node = _get(doc, path)
            if seg == "*":
                if isinstance(node, list):
                    nxt.extend([*path, i] for i in range(len(node)))
                elif isinstance(node, dict):
                    nxt.extend([*path, k] for k in node)
            elif isinstance(node, dict) and seg in node:
                nxt.append([*path, seg])
        found = nxt
    return [p for p in found if isinstance(_get(doc, p), dict)]


def _get(doc: Any, path: Sequence[Any], default: Any = None) -> Any:
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


def _ensure(doc: dict[str, Any], path: Sequence[Any], empty: Any, created: list[str], base: str = "") -> Any:
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


# --- mappings ------------------------------------------------------------------------------------


def guess_plural(kind: str) -> str:
    """The resource name Kubernetes guesses for a kind (client-go's UnsafeGuessKindToResource)."""
    lower = kind.lower()
    if not lower:
        return lower
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y") and len(lower) > 1 and lower[-2] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def mapping_name(api_version: str, kind: str) -> str:
    """`<plural>.<group>`, the name a ClusterWorkloadResourceMapping for this kind has."""
    group = api_version.rpartition("/")[0]
    plural = guess_plural(kind)
    return f"{plural}.{group}" if group else plural


def resolve_mapping(api_version: str, kind: str, mappings: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The mapping template for a workload's apiVersion and kind, defaults filled in.

    A ClusterWorkloadResourceMapping named for the kind wins: its template for the version, else
    its ``*`` template; then the built-in one (CronJob), then the PodSpec-able default."""
    group, _, version = api_version.rpartition("/")
    template: Mapping[str, Any] | None = None
    wanted = mapping_name(api_version, kind)
    for mapping in mappings or []:
        if (mapping.get("metadata") or {}).get("name") != wanted:
            continue
        versions = (mapping.get("spec") or {}).get("versions") or []
        if not isinstance(versions, list):
            raise MappingError(f"ClusterWorkloadResourceMapping {wanted}: spec.versions must be a list")
        exact = [v for v in versions if isinstance(v, dict) and v.get("version") == version]
        wildcard = [v for v in versions if isinstance(v, dict) and v.get("version") == "*"]
        template = (exact or wildcard or [None])[0]
    if template is None:
        return copy.deepcopy(BUILTIN_MAPPINGS.get((group, kind), PODSPEC_MAPPING))
    out: dict[str, Any] = {
        "annotations": template.get("annotations") or PODSPEC_MAPPING["annotations"],
        "volumes": template.get("volumes") or PODSPEC_MAPPING["volumes"],
    }
    containers = template.get("containers")
    if containers is None:
        out["containers"] = copy.deepcopy(PODSPEC_MAPPING["containers"])
    elif not isinstance(containers, list):
        raise MappingError(f"ClusterWorkloadResourceMapping {wanted}: containers must be a list")
    else:
        out["containers"] = []
        for c in containers:
            if not isinstance(c, dict) or not c.get("path"):
                raise MappingError(f"ClusterWorkloadResourceMapping {wanted}: every container needs a path")
            entry = {"path": c["path"], "env": c.get("env") or ".env", "volumeMounts": c.get("volumeMounts")
                     or ".volumeMounts"}
            if c.get("name"):
                entry["name"] = c["name"]
            out["containers"].append(entry)
    validate_mapping(out)
    return out


def validate_mapping(mapping: Mapping[str, Any]) -> None:
    """Every path of a resolved mapping parses (raises MappingError naming the bad one)."""
    parse_path(mapping.get("annotations"))
    parse_path(mapping.get("volumes"))
    for c in mapping.get("containers") or []:
        parse_path(c.get("path"), fixed=False)
        for key in ("env", "volumeMounts", "name"):
            if key in c:
                parse_path(c[key])


# --- one workload --------------------------------------------------------------------------------


def names(binding: Mapping[str, Any]) -> dict[str, str]:
    """The names a binding's projection uses on a workload."""
    uid = str((binding.get("metadata") or {}).get("uid") or "")
    if not uid:
        raise AnsibleFilterError("the ServiceBinding has no metadata.uid")
    return {"volume": VOLUME_PREFIX + uid, "record": PREFIX + uid, "type": f"{PREFIX}type-{uid}",
            "provider": f"{PREFIX}provider-{uid}"}


def binding_name(binding: Mapping[str, Any]) -> str:
    """spec.name, else metadata.name: the directory under $SERVICE_BINDING_ROOT."""
    return str((binding.get("spec") or {}).get("name") or (binding.get("metadata") or {}).get("name") or "")


def _containers(workload: Any, mapping: Mapping[str, Any]) -> list[tuple[list[Any], dict[str, Any], str]]:
    """(path, mapping entry, key) of every container-like fragment; the key is the container's
    name when the mapping names one, else its path."""
    out = []
    for entry in mapping.get("containers") or []:
        for path in _expand(workload, parse_path(entry["path"], fixed=False)):
            container = _get(workload, path)
            name = _get(container, parse_path(entry["name"])) if entry.get("name") else None
            out.append((path, entry, f"name:{name}" if isinstance(name, str) else f"path:{pointer(path)}"))
    return out


def _container_name(container: Any, entry: Mapping[str, Any]) -> str | None:
    if not entry.get("name"):
        return None
    name = _get(container, parse_path(entry["name"]))
    return name if isinstance(name, str) else None


def _field_ref(annotation: str) -> dict[str, Any]:
    # apiVersion as the apiserver defaults it, so a projection read back compares equal.
    return {"apiVersion": "v1", "fieldPath": f"metadata.annotations['{annotation}']"}


def read_record(workload: Mapping[str, Any], binding: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = ((workload.get("metadata") or {}).get("annotations") or {}).get(names(binding)["record"])
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def unproject(workload: dict[str, Any], binding: Mapping[str, Any], fallback_mapping: Mapping[str, Any],
              *, leaving: bool = True) -> dict[str, Any]:
    """Remove, in place, what the binding's record says it added; nothing else.

    The mapping recorded at projection is used (the spec's rule); a workload without a record has
    nothing of this binding's to remove. SERVICE_BINDING_ROOT and lists or maps the projection
    created go only when nothing else uses them. What stays is kept by the binding when it is
    projected again right after (``leaving=False``), else handed to another binding's record on
    the workload, so the last binding to leave removes it.

    Returns ``{positions, root, created}``: where removed items stood (so a projection made again
    puts them back in place, and two bindings never reorder each other's items) and what stayed."""
    out: dict[str, Any] = {"positions": {}, "root": [], "created": []}
    record = read_record(workload, binding)
    if record is None:
        return out
    positions: dict[tuple[str, str], int] = out["positions"]
    n = names(binding)
    mapping = record.get("mapping") or fallback_mapping
    secret = record.get("secret")
    root_added = set(record.get("rootAdded") or [])
    created = list(record.get("created") or [])
    kept_root: list[str] = out["root"]
    kept_created: list[str] = out["created"]
    ours = {_field_ref(n["type"])["fieldPath"], _field_ref(n["provider"])["fieldPath"]}

    def is_ours(env: Any) -> bool:
        source = env.get("valueFrom") if isinstance(env, dict) else None
        if not isinstance(source, dict):
            return False
        ref = source.get("secretKeyRef")
        if (isinstance(ref, dict) and secret and ref.get("name") == secret
                and env.get("name") in (record.get("env") or [])):
            return True
        field = source.get("fieldRef")
        return isinstance(field, dict) and field.get("fieldPath") in ours

    def drop(items: Any, ptr: str, doomed: Any) -> None:
        if not isinstance(items, list):
            return
        kept = []
        for i, item in enumerate(items):
            if doomed(item):
                positions.setdefault((ptr, str(item.get("name"))), i)
            else:
                kept.append(item)
        items[:] = kept

    volumes_path = parse_path(mapping["volumes"])
    drop(_get(workload, volumes_path), pointer(volumes_path),
         lambda v: isinstance(v, dict) and v.get("name") == n["volume"])
    for path, entry, key in _containers(workload, mapping):
        container = _get(workload, path)
        base = pointer(path)
        mounts = _get(container, parse_path(entry["volumeMounts"]))
        drop(mounts, base + pointer(parse_path(entry["volumeMounts"])),
             lambda m: isinstance(m, dict) and m.get("name") == n["volume"])
        env = _get(container, parse_path(entry["env"]))
        env_ptr = base + pointer(parse_path(entry["env"]))
        drop(env, env_ptr, is_ours)
        if isinstance(env, list) and key in root_added:
            root = next((e for e in env if isinstance(e, dict) and e.get("name") == ROOT_ENV), None)
            under = [m for m in mounts or [] if isinstance(m, dict)
                     and str(m.get("mountPath", "")).startswith(str((root or {}).get("value")) + "/")]
            if root is not None and root.get("value") == record.get("root", DEFAULT_ROOT) and not under:
                drop(env, env_ptr, lambda e, r=root: e is r)
            elif root is not None:
                kept_root.append(key)
        for rel in ("env", "volumeMounts"):
            ptr = base + pointer(parse_path(entry[rel]))
            if ptr in created:
                created.remove(ptr)
                if _get(container, parse_path(entry[rel])) == []:
                    _remove(workload, [*path, *parse_path(entry[rel])])
                else:
                    kept_created.append(ptr)
    annotations = _get(workload, parse_path(mapping["annotations"]))
    if isinstance(annotations, dict):
        annotations.pop(n["type"], None)
        annotations.pop(n["provider"], None)
    # Lists and maps this binding created outside the containers, deepest first.
    for ptr in sorted(created, key=len, reverse=True):
        path = _parse_pointer(ptr)
        value = _get(workload, path)
        if _hollow(value):
            _remove(workload, path)
        elif value is not None:
            kept_created.append(ptr)
    meta = workload.setdefault("metadata", {})
    record_annotations = meta.get("annotations") or {}
    record_annotations.pop(n["record"], None)
    if leaving and (kept_root or kept_created):
        _hand_over(record_annotations, kept_root, kept_created)
    if not record_annotations and "annotations" in meta:
        del meta["annotations"]
    return out


def _hand_over(annotations: dict[str, Any], root: list[str], created: list[str]) -> None:
    """Give what a leaving binding created and others still use to another binding's record."""
    heirs = sorted(k for k in annotations if k.startswith(PREFIX)
                   and not k[len(PREFIX):].startswith(("type-", "provider-")))
    for key in heirs:
        try:
            heir = json.loads(annotations[key])
        except ValueError:
            continue
        if not isinstance(heir, dict):
            continue
        heir["rootAdded"] = sorted(set(heir.get("rootAdded") or []) | set(root))
        heir["created"] = sorted(set(heir.get("created") or []) | set(created))
        annotations[key] = json.dumps(heir, sort_keys=True, separators=(",", ":"))
        return


def _hollow(value: Any) -> bool:
    """An empty list or map, or a map of nothing but those."""
    if isinstance(value, dict):
        return all(_hollow(v) for v in value.values())
    return value == []


def _parse_pointer(ptr: str) -> list[Any]:
    out: list[Any] = []
    for raw in ptr.split("/")[1:]:
        seg = raw.replace("~1", "/").replace("~0", "~")
        out.append(int(seg) if seg.isdigit() else seg)
    return out


def _remove(doc: Any, path: Sequence[Any]) -> None:
    parent = _get(doc, path[:-1])
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


def project(workload: dict[str, Any], binding: Mapping[str, Any], secret: str, mapping: Mapping[str, Any],
            kept: Mapping[str, Any] | None = None) -> None:
    """Add the binding's projection to `workload` in place, after `unproject` (whose result,
    `kept`, puts items back where they stood and keeps what the binding still owns)."""
    kept = kept or {}
    positions: Mapping[tuple[str, str], int] = kept.get("positions") or {}
    n = names(binding)
    spec = binding.get("spec") or {}
    name = binding_name(binding)
    created: list[str] = list(kept.get("created") or [])
    root_added: list[str] = list(kept.get("root") or [])
    only = (spec.get("workload") or {}).get("containers")

    def add(items: list[Any], ptr: str, item: dict[str, Any]) -> None:
        items.insert(min(positions.get((ptr, str(item.get("name"))), len(items)), len(items)), item)

    sources: list[dict[str, Any]] = [{"secret": {"name": secret}}]
    pod_annotations: dict[str, str] = {}
    for field in ("type", "provider"):
        if spec.get(field):
            pod_annotations[n[field]] = str(spec[field])
            sources.append({"downwardAPI": {"items": [{"path": field, "fieldRef": _field_ref(n[field])}]}})
    volumes_path = parse_path(mapping["volumes"])
    volumes = _ensure(workload, volumes_path, [], created)
    add(volumes, pointer(volumes_path),
        {"name": n["volume"], "projected": {"defaultMode": DEFAULT_MODE, "sources": sources}})
    if pod_annotations:
        _ensure(workload, parse_path(mapping["annotations"]), {}, created).update(pod_annotations)

    env_added: list[str] = []
    for path, entry, key in _containers(workload, mapping):
        container = _get(workload, path)
        cname = _container_name(container, entry)
        if only and cname is not None and cname not in only:
            continue
        base = pointer(path)
        env_ptr = base + pointer(parse_path(entry["env"]))
        mounts_ptr = base + pointer(parse_path(entry["volumeMounts"]))
        env = _ensure(container, parse_path(entry["env"]), [], created, base)
        root = next((e for e in env if isinstance(e, dict) and e.get("name") == ROOT_ENV), None)
        if root is None:
            add(env, env_ptr, {"name": ROOT_ENV, "value": DEFAULT_ROOT})
            if key not in root_added:
                root_added.append(key)
            root_value = DEFAULT_ROOT
        else:
            root_value = str(root.get("value") or DEFAULT_ROOT)
        mounts = _ensure(container, parse_path(entry["volumeMounts"]), [], created, base)
        add(mounts, mounts_ptr, {"name": n["volume"], "mountPath": posixpath.join(root_value, name), "readOnly": True})
        for item in spec.get("env") or []:
            if item.get("key") in ("type", "provider") and spec.get(item["key"]):
                var = {"name": item["name"], "valueFrom": {"fieldRef": _field_ref(n[item["key"]])}}
            else:
                var = {"name": item["name"], "valueFrom": {"secretKeyRef": {"name": secret, "key": item["key"]}}}
            add(env, env_ptr, var)
            if item["name"] not in env_added:
                env_added.append(item["name"])

    record = {"binding": (binding.get("metadata") or {}).get("name"), "secret": secret, "mapping": dict(mapping),
              "rootAdded": sorted(set(root_added)), "root": DEFAULT_ROOT, "env": env_added,
              "created": sorted(set(created))}
    meta = workload.setdefault("metadata", {})
    if meta.get("annotations") is None:
        meta["annotations"] = {}
    meta["annotations"][n["record"]] = json.dumps(record, sort_keys=True, separators=(",", ":"))


def selects(binding: Mapping[str, Any], workload: Mapping[str, Any]) -> bool:
    """Whether the binding's spec.workload names or selects this workload."""
    ref = (binding.get("spec") or {}).get("workload") or {}
    if ref.get("apiVersion") != workload.get("apiVersion") or ref.get("kind") != workload.get("kind"):
        return False
    meta = workload.get("metadata") or {}
    if ref.get("name"):
        return bool(ref["name"] == meta.get("name"))
    if ref.get("selector") is not None:
        return selector_matches(meta.get("labels") or {}, ref["selector"])
    return False


def selector_matches(labels: Mapping[str, str], selector: Mapping[str, Any]) -> bool:
    """metav1.LabelSelector semantics; an empty selector matches everything."""
    try:
        return selectors.label_selector(selector).matches(labels)
    except selectors.SelectorError as err:
        raise AnsibleFilterError(f"invalid label selector in spec.workload.selector: {err}") from None


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


def projection(workload: Mapping[str, Any], binding: Mapping[str, Any], secret: str | None,
               mappings: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """One workload's change: its binding removed and, when `secret` is given and the binding
    selects it, projected afresh with the current mapping.

    Returns ``{workload, patch, changed, projected, error}``; `patch` is a JSON patch guarded by
    `test` operations (see guarded()), so a concurrent edit makes it fail instead of being lost.
    A mapping that cannot be used gives `error` and no change at all."""
    new = copy.deepcopy(dict(workload))
    api_version, kind = str(workload.get("apiVersion", "")), str(workload.get("kind", ""))
    try:
        mapping = resolve_mapping(api_version, kind, mappings)
        wanted = secret is not None and selects(binding, workload)
        kept = unproject(new, binding, mapping, leaving=not wanted)
        if wanted:
            assert secret is not None
            project(new, binding, secret, mapping, kept)
            if not _containers(new, mapping):
                raise MappingError(f"the mapping finds no containers in {kind} {workload['metadata']['name']}")
    except MappingError as err:
        return {"workload": dict(workload), "patch": [], "changed": False, "projected": False, "error": str(err)}
    ops = json_patch({"metadata": workload.get("metadata"), "spec": workload.get("spec")},
                     {"metadata": new.get("metadata"), "spec": new.get("spec")})
    ops = [op for op in ops if not op["path"].startswith(("/metadata/managedFields", "/metadata/resourceVersion"))]
    return {"workload": new, "patch": guarded(workload, ops) if ops else [], "changed": bool(ops),
            "projected": wanted, "error": None}


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
            tests.append({"op": "test", "path": op["path"], "value": _get(workload, _parse_pointer(op["path"]))})
    return tests + ops


# --- one reconcile -------------------------------------------------------------------------------


def _condition(ctype: str, ok: bool | None, reason: str, message: str) -> dict[str, str]:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return {"type": ctype, "status": status, "reason": reason, "message": message}


def _ref_namespace_problem(binding: Mapping[str, Any], namespace: str) -> str | None:
    spec = binding.get("spec") or {}
    for field in ("service", "workload"):
        other = (spec.get(field) or {}).get("namespace")
        if other and other != namespace:
            return (f"spec.{field} is in namespace {other!r}; a ServiceBinding binds only a service and a "
                    f"workload in its own namespace ({namespace!r})")
    return None


def resolve_service(binding: Mapping[str, Any], service: Mapping[str, Any] | None,
                    service_error: str | None = None) -> dict[str, Any]:
    """The binding Secret's name from spec.service: the Secret itself (a direct reference) or a
    Provisioned Service's status.binding.name. Returns ``{secret, ok, reason, message}``."""
    ref = (binding.get("spec") or {}).get("service") or {}
    what = f"{ref.get('kind')} {ref.get('name')!r} ({ref.get('apiVersion')})"
    if (ref.get("apiVersion"), ref.get("kind")) == SECRET_API:
        return {"secret": ref.get("name"), "ok": True, "reason": "ResolvedBindingSecret",
                "message": f"direct reference to Secret {ref.get('name')!r}"}
    if service_error:
        return {"secret": None, "ok": False, "reason": "ServiceUnavailable",
                "message": f"cannot read the service {what}: {service_error}"}
    if not service:
        return {"secret": None, "ok": False, "reason": "ServiceNotFound",
                "message": f"the service {what} does not exist"}
    name = ((service.get("status") or {}).get("binding") or {}).get("name")
    if not isinstance(name, str) or not name:
        return {"secret": None, "ok": False, "reason": "ServiceNotProvisioned",
                "message": f"the service {what} has no status.binding.name (not a Provisioned Service, or not ready)"}
    return {"secret": name, "ok": True, "reason": "ResolvedBindingSecret",
            "message": f"the service {what} exposes Secret {name!r}"}


def plan(binding: Mapping[str, Any], *, namespace: str, service: Mapping[str, Any] | None = None,
         service_error: str | None = None, secret_found: bool = False, workloads: Sequence[Mapping[str, Any]] = (),
         workloads_error: str | None = None, mappings: Sequence[Mapping[str, Any]] = (),
         mappings_error: str | None = None, deleting: bool = False) -> dict[str, Any]:
    """Everything one reconcile of a ServiceBinding does, as data.

    `workloads` are all objects of spec.workload's kind in the namespace (so those that stopped
    matching are unbound too). Returns ``{secret, changes, conditions, binding, events}``:
    `changes` lists ``{apiVersion, kind, name, patch}`` to apply; `conditions` are Ready,
    ServiceAvailable and WorkloadProjected. A binding being deleted, refused or without a Secret
    leaves every bound workload as it is, except that deletion removes its projection.
    `mappings_error` says the kind's ClusterWorkloadResourceMapping could not be read (an
    operator without cluster-wide rights): the built-in mapping is used, and
    WorkloadProjected's message says so."""
    spec = binding.get("spec") or {}
    name = binding_name(binding)
    refusal = _ref_namespace_problem(binding, namespace)
    if not _NAME.match(name):
        refusal = refusal or f"the binding name {name!r} must match [a-z0-9.-]{{1,253}}"
    if deleting:
        changes = []
        for w in workloads:
            result = projection(w, binding, None, mappings)
            if result["changed"]:
                changes.append(_change(w, result))
        return {"secret": None, "changes": changes, "conditions": [], "binding": None, "events": []}

    if refusal:
        cond = _condition("Ready", False, "NamespaceNotAllowed" if "namespace" in refusal else "InvalidBinding",
                          refusal)
        return {"secret": None, "changes": [], "binding": None, "events": [],
                "conditions": [cond, {**cond, "type": "ServiceAvailable"}, {**cond, "type": "WorkloadProjected"}]}

    svc = resolve_service(binding, service, service_error)
    secret = svc["secret"] if svc["ok"] else None
    if secret and not secret_found:
        svc = {**svc, "ok": False, "reason": "SecretNotFound",
               "message": f"Secret {secret!r} does not exist in namespace {namespace!r}"}
        secret = None
    service_condition = _condition("ServiceAvailable", svc["ok"], svc["reason"], svc["message"])

    ref = spec.get("workload") or {}
    what = f"{ref.get('kind')} ({ref.get('apiVersion')})"
    changes: list[dict[str, Any]] = []
    errors: list[str] = []
    bound: list[str] = []
    if workloads_error:
        workload_condition = _condition("WorkloadProjected", False, "WorkloadUnavailable",
                                        f"cannot list {what}: {workloads_error}")
    elif secret is None:
        workload_condition = _condition("WorkloadProjected", None, "ServiceUnavailable",
                                        "waiting for the service's binding Secret; workloads are left as they are")
    else:
        for w in sorted(workloads, key=lambda o: o["metadata"]["name"]):
            result = projection(w, binding, secret, mappings)
            if result["error"]:
                errors.append(result["error"])
                continue
            if result["projected"]:
                bound.append(w["metadata"]["name"])
            if result["changed"]:
                changes.append(_change(w, result))
        if errors:
            workload_condition = _condition("WorkloadProjected", False, "InvalidMapping", "; ".join(errors))
        elif not bound and ref.get("name"):
            workload_condition = _condition("WorkloadProjected", False, "WorkloadNotFound",
                                            f"{what} {ref['name']!r} does not exist in namespace {namespace!r}")
        elif not bound:
            workload_condition = _condition("WorkloadProjected", True, "NoMatchingWorkloads",
                                            f"no {what} matches the selector yet")
        else:
            workload_condition = _condition("WorkloadProjected", True, "WorkloadProjected",
                                            f"projected into {what} {', '.join(bound)}")
        if mappings_error:
            workload_condition["message"] += (f"; the ClusterWorkloadResourceMapping of {ref.get('kind')} could "
                                              f"not be read ({mappings_error}), so the built-in mapping was used")
    if svc["ok"] and workload_condition["status"] == "True":
        ready = _condition("Ready", True, "ServiceBound", workload_condition["message"])
    elif not svc["ok"]:
        ready = {**service_condition, "type": "Ready", "status": "False"}
    else:
        ready = {**workload_condition, "type": "Ready", "status": "False"}
    return {"secret": secret, "changes": changes, "binding": {"name": secret} if secret else None,
            "conditions": [ready, service_condition, workload_condition], "events": []}


def _change(workload: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    meta = workload.get("metadata") or {}
    return {"apiVersion": workload.get("apiVersion"), "kind": workload.get("kind"), "name": meta.get("name"),
            "patch": result["patch"]}


def transitions(previous: Mapping[str, Any] | None, conditions: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Events for the conditions whose status or reason changed since the status `previous`."""
    before = {c.get("type"): c for c in ((previous or {}).get("conditions") or []) if isinstance(c, dict)}
    events = []
    for c in conditions:
        old = before.get(c["type"])
        if old is not None and old.get("status") == c["status"] and old.get("reason") == c["reason"]:
            continue
        if c["type"] != "Ready" and c["status"] == "True" and old is None:
            continue  # a first success is told once, by Ready
        events.append({"type": "Normal" if c["status"] == "True" else "Warning", "reason": c["reason"],
                       "message": c["message"]})
    return events


# --- Ansible -------------------------------------------------------------------------------------


def servicebinding_plan(binding: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    """The plan for one reconcile from what the role read (see plan())."""
    if not isinstance(binding, Mapping):
        raise AnsibleFilterError("servicebinding_plan expects the ServiceBinding object")
    meta = binding.get("metadata") or {}
    out = plan(binding, namespace=str(facts.get("namespace") or meta.get("namespace") or ""),
               service=facts.get("service") or None, service_error=facts.get("service_error") or None,
               secret_found=bool(facts.get("secret_found")), workloads=facts.get("workloads") or [],
               workloads_error=facts.get("workloads_error") or None, mappings=facts.get("mappings") or [],
               mappings_error=facts.get("mappings_error") or None, deleting=bool(facts.get("deleting")))
    out["events"] = [] if facts.get("deleting") else transitions(binding.get("status"), out["conditions"])
    return out


def servicebinding_projection(workload: Mapping[str, Any], binding: Mapping[str, Any], secret: str | None = None,
                              mappings: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    return projection(workload, binding, secret, mappings or [])


def servicebinding_mapping_name(api_version: str, kind: str) -> str:
    return mapping_name(api_version, kind)


def servicebinding_secret_name(binding: Mapping[str, Any], service: Mapping[str, Any] | None = None) -> str:
    """The binding Secret's name, or "" while it is unknown (see resolve_service())."""
    return str(resolve_service(binding, service or None)["secret"] or "")


def servicebinding_read_error(result: Mapping[str, Any]) -> str:
    """Why a `kubernetes.core.k8s_info` read registered with ``failed_when: false`` failed, in a
    line (the apiserver's own message, without the HTTP headers the exception carries), or ""
    when it read (found or not) or was skipped."""
    if not isinstance(result, Mapping) or result.get("skipped") or "resources" in result:
        return ""
    msg = str(result.get("msg") or "the read failed")
    body = msg.partition("HTTP response body:")[2].strip()
    try:
        decoded = json.loads(body.splitlines()[0].rstrip("'\"")) if body else None
    except ValueError:
        decoded = None
    if isinstance(decoded, Mapping) and decoded.get("message"):
        return f"{decoded.get('code', '')} {decoded.get('reason', '')}: {decoded['message']}".strip(" :")
    return " ".join(msg.replace("Exception '", "").split("HTTP response headers")[0].split())[:300]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "servicebinding_plan": servicebinding_plan,
            "servicebinding_projection": servicebinding_projection,
            "servicebinding_mapping_name": servicebinding_mapping_name,
            "servicebinding_secret_name": servicebinding_secret_name,
            "servicebinding_read_error": servicebinding_read_error,
        }
