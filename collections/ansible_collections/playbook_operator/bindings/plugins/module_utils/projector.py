"""How a ServiceBinding is projected into a workload and removed again (servicebinding.io spec
v1.1), in place, through the workload resource mapping the resolver (resolver.py) chose.

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

import json
import posixpath
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.playbook_operator.bindings.plugins.module_utils.jsonpath import (
    ensure,
    expand,
    get,
    parse_path,
    parse_pointer,
    pointer,
    remove,
)

PREFIX = "servicebinding.playbook-operator.io/"
VOLUME_PREFIX = "servicebinding-"
ROOT_ENV = "SERVICE_BINDING_ROOT"
DEFAULT_ROOT = "/bindings"
DEFAULT_MODE = 0o644


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


def find_containers(workload: Any, mapping: Mapping[str, Any]) -> list[tuple[list[Any], dict[str, Any], str]]:
    """(path, mapping entry, key) of every container-like fragment; the key is the container's
    name when the mapping names one, else its path."""
    out = []
    for entry in mapping.get("containers") or []:
        for path in expand(workload, parse_path(entry["path"], fixed=False)):
            container = get(workload, path)
            name = get(container, parse_path(entry["name"])) if entry.get("name") else None
            out.append((path, entry, f"name:{name}" if isinstance(name, str) else f"path:{pointer(path)}"))
    return out


def _container_name(container: Any, entry: Mapping[str, Any]) -> str | None:
    if not entry.get("name"):
        return None
    name = get(container, parse_path(entry["name"]))
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
    drop(get(workload, volumes_path), pointer(volumes_path),
         lambda v: isinstance(v, dict) and v.get("name") == n["volume"])
    for path, entry, key in find_containers(workload, mapping):
        container = get(workload, path)
        base = pointer(path)
        mounts = get(container, parse_path(entry["volumeMounts"]))
        drop(mounts, base + pointer(parse_path(entry["volumeMounts"])),
             lambda m: isinstance(m, dict) and m.get("name") == n["volume"])
        env = get(container, parse_path(entry["env"]))
        env_ptr = base + pointer(parse_path(entry["env"]))
        drop(env, env_ptr, is_ours)
        if isinstance(env, list) and key in root_added:
            root = next((e for e in env if isinstance(e, dict) and e.get("name") == ROOT_ENV), None)
            # Only another binding's mount keeps the root it added; the workload's own do not.
            under = [m for m in mounts or [] if isinstance(m, dict)
                     and str(m.get("name", "")).startswith(VOLUME_PREFIX)
                     and str(m.get("mountPath", "")).startswith(str((root or {}).get("value")) + "/")]
            if root is not None and root.get("value") == record.get("root", DEFAULT_ROOT) and not under:
                drop(env, env_ptr, lambda e, r=root: e is r)
            elif root is not None:
                kept_root.append(key)
        for rel in ("env", "volumeMounts"):
            ptr = base + pointer(parse_path(entry[rel]))
            if ptr in created:
                created.remove(ptr)
                if get(container, parse_path(entry[rel])) == []:
                    remove(workload, [*path, *parse_path(entry[rel])])
                else:
                    kept_created.append(ptr)
    annotations = get(workload, parse_path(mapping["annotations"]))
    if isinstance(annotations, dict):
        annotations.pop(n["type"], None)
        annotations.pop(n["provider"], None)
    # Lists and maps this binding created outside the containers, deepest first.
    for ptr in sorted(created, key=len, reverse=True):
        path = parse_pointer(ptr)
        value = get(workload, path)
        if _hollow(value):
            remove(workload, path)
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
    return isinstance(value, list) and not value


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
    volumes = ensure(workload, volumes_path, [], created)
    add(volumes, pointer(volumes_path),
        {"name": n["volume"], "projected": {"defaultMode": DEFAULT_MODE, "sources": sources}})
    if pod_annotations:
        ensure(workload, parse_path(mapping["annotations"]), {}, created).update(pod_annotations)

    env_added: list[str] = []
    for path, entry, key in find_containers(workload, mapping):
        container = get(workload, path)
        cname = _container_name(container, entry)
        if only and cname is not None and cname not in only:
            continue
        base = pointer(path)
        env_ptr = base + pointer(parse_path(entry["env"]))
        mounts_ptr = base + pointer(parse_path(entry["volumeMounts"]))
        env = ensure(container, parse_path(entry["env"]), [], created, base)
        root = next((e for e in env if isinstance(e, dict) and e.get("name") == ROOT_ENV), None)
        if root is None:
            add(env, env_ptr, {"name": ROOT_ENV, "value": DEFAULT_ROOT})
            if key not in root_added:
                root_added.append(key)
            root_value = DEFAULT_ROOT
        else:
            root_value = str(root.get("value") or DEFAULT_ROOT)
        mounts = ensure(container, parse_path(entry["volumeMounts"]), [], created, base)
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
