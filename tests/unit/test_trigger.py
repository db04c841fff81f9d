"""Which watch events start a run: the SDK's predicates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.operator import Trigger


def obj(generation: int | None = 1, annotations: dict[str, str] | None = None, deleting: bool = False,
        status: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "a", "namespace": "ns", "annotations": annotations or {}}
    if generation is not None:
        meta["generation"] = generation
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": status or {}}


def test_first_sight_and_new_generation_run_status_writes_do_not() -> None:
    t = Trigger(watch_annotations=False)
    assert t.should_run(obj(1))
    assert not t.should_run(obj(1, status={"conditions": [{"type": "Running"}]}))
    assert t.should_run(obj(2))


def test_annotations_only_with_watch_annotations_changes() -> None:
    plain = Trigger(watch_annotations=False)
    plain.should_run(obj(1))
    assert not plain.should_run(obj(1, annotations={"a": "b"}))
    watching = Trigger(watch_annotations=True)
    watching.should_run(obj(1))
    assert watching.should_run(obj(1, annotations={"a": "b"}))
    assert not watching.should_run(obj(1, annotations={"a": "b"}))


def test_deletion_and_objects_without_generation_always_run() -> None:
    t = Trigger(watch_annotations=False)
    t.should_run(obj(1))
    assert t.should_run(obj(1, deleting=True))
    assert t.should_run(obj(None))
    assert t.should_run(obj(None))


def test_forget_starts_afresh() -> None:
    t = Trigger(watch_annotations=False)
    t.should_run(obj(1))
    t.forget("ns/a")
    assert t.should_run(obj(1))


async def test_the_initial_list_waits_behind_what_users_change() -> None:
    from types import SimpleNamespace

    from runner.operator import WatchController
    from runner.watches import parse_watches

    role = Path(__file__).resolve().parents[2] / "roles" / "example"
    watch = parse_watches(f"- {{version: v1, group: example.com, kind: Thing, role: {role}}}", env={})[0]
    controller = WatchController(watch, reconciler=None)  # type: ignore[arg-type]
    resource = SimpleNamespace(group="example.com", version="v1", kind="Thing", plural="things", namespaced=True)

    def named(name: str, generation: int = 1) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "ns", "generation": generation}}

    await controller.on_event({"type": None, "object": named("listed")}, resource)
    await controller.on_event({"type": "ADDED", "object": named("created")}, resource)
    await controller.on_event({"type": None, "object": named("changed")}, resource)
    await controller.on_event({"type": "MODIFIED", "object": named("changed", 2)}, resource)
    assert controller.queue.depth_by_priority() == {"high": 2, "low": 1}
    # A dependent's change is a follow-up: it waits with the list (and moves nothing up).
    controller.reconcile_owner("ns/listed")
    assert controller.queue.depth_by_priority() == {"high": 2, "low": 1}
