"""`playbook-operator rollout status|history|undo|pause|resume|restart ps/NAME`.

kubectl's rollout command serves only the built-in workloads; this one does the same for
PodSets, reading what the PodSet role records: the status (revisions, counts, the Progressing
condition) and the ControllerRevisions that keep each template.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from runner.kube import JSON_PATCH, default_namespace, load_config
from runner.watches import parse_duration

GROUP = "workloads.playbook-operator.io"
VERSION = "v1alpha1"
PLURAL = "podsets"
KIND_NAMES = ("ps", "podset", "podsets", f"podset.{GROUP}", f"podsets.{GROUP}")
RESOURCE = f"podset.{GROUP}"
REVISION_LABEL = f"{GROUP}/podset"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


class RolloutError(Exception):
    """A problem to report to the user as `error: ...`, exit status 1."""


def add_parser(sub: Any) -> None:
    rollout = sub.add_parser("rollout", help="manage the rollout of a PodSet, as kubectl rollout does a Deployment's")
    actions = rollout.add_subparsers(dest="action", required=True)

    def action(name: str, text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=text)
        parser.add_argument("resource", nargs="+", metavar="ps/NAME", help="the PodSet: ps/NAME or ps NAME")
        parser.add_argument("-n", "--namespace", default=None, help="namespace (default: the kubeconfig's)")
        return parser

    status = action("status", "wait for the rollout to finish, or show where it is")
    status.add_argument("-w", "--watch", default="true", choices=["true", "false"],
                        help="keep watching until the rollout ends (default true)")
    status.add_argument("--timeout", default="0", help="give up after this long (e.g. 5m; 0 waits forever)")
    history = action("history", "list the PodSet's revisions")
    history.add_argument("--revision", type=int, default=0, help="show the pod template of this revision")
    undo = action("undo", "go back to an earlier revision's template")
    undo.add_argument("--to-revision", type=int, default=0, help="the revision to go back to (default: the previous)")
    action("pause", "stop rolling out template changes")
    action("resume", "roll out template changes again")
    action("restart", "replace every pod, by stamping the template with the time")


def main(args: argparse.Namespace) -> int:
    try:
        name = _podset_name(args.resource)
        namespace = args.namespace or default_namespace()
        api = PodSets(namespace)
        handler: Callable[[PodSets, str, argparse.Namespace], int] = _ACTIONS[args.action]
        return handler(api, name, args)
    except RolloutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _podset_name(words: list[str]) -> str:
    if len(words) == 1 and "/" in words[0]:
        kind, name = words[0].split("/", 1)
    elif len(words) == 2:
        kind, name = words
    else:
        raise RolloutError("name the PodSet as ps/NAME or ps NAME")
    if kind.lower() not in KIND_NAMES:
        raise RolloutError(f"rollout here serves PodSets only (ps/NAME), not {kind!r}; "
                           "use kubectl rollout for built-in workloads")
    if not name:
        raise RolloutError("the PodSet's name is empty")
    return name


class PodSets:
    """The few API calls the rollout commands make, on one namespace."""

    def __init__(self, namespace: str) -> None:
        try:
            load_config()
        except config.ConfigException as err:
            raise RolloutError(f"no cluster to talk to: {err}") from err
        self.namespace = namespace
        self.custom = client.CustomObjectsApi()
        self.apps = client.AppsV1Api()

    def get(self, name: str) -> dict[str, Any]:
        try:
            obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except ApiException as err:
            if err.status == 404:
                raise RolloutError(f'podsets.{GROUP} "{name}" not found in namespace "{self.namespace}"') from err
            raise RolloutError(f"reading PodSet {name}: {err.reason}") from err
        return cast(dict[str, Any], obj)

    def patch(self, name: str, patch: Any, content_type: str = "application/merge-patch+json") -> None:
        try:
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, patch,
                                                       _content_type=content_type)
        except ApiException as err:
            raise RolloutError(f"updating PodSet {name}: {err.reason}: {_api_message(err)}") from err

    def revisions(self, podset: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The PodSet's ControllerRevisions, oldest revision first."""
        name = podset["metadata"]["name"]
        uid = podset["metadata"].get("uid")
        listed = self.apps.list_namespaced_controller_revision(self.namespace,
                                                              label_selector=f"{REVISION_LABEL}={name}")
        serialize = client.ApiClient().sanitize_for_serialization
        records = [serialize(item) for item in listed.items]  # type: ignore[no-untyped-call]
        owned = [r for r in records if any(ref.get("uid") == uid and ref.get("controller")
                                           for ref in r["metadata"].get("ownerReferences") or [])]
        return sorted(owned, key=lambda r: int(r.get("revision") or 0))


def _api_message(err: ApiException) -> str:
    try:
        return str(yaml.safe_load(err.body or "{}").get("message") or err.body)
    except (yaml.YAMLError, AttributeError):
        return str(err.body)


# --- status --------------------------------------------------------------------------------


def rollout_state(podset: Mapping[str, Any]) -> tuple[str, bool]:
    """(message, done) for a PodSet, as kubectl words it for a Deployment. Raises RolloutError
    when the rollout failed."""
    name = podset["metadata"]["name"]
    spec = podset.get("spec") or {}
    status = podset.get("status") or {}
    generation = int(podset["metadata"].get("generation") or 0)
    if int(status.get("observedGeneration") or 0) < generation:
        return "Waiting for podset spec update to be observed...", False
    conditions = status.get("conditions") or []
    progressing: Mapping[str, Any] = next((c for c in conditions if c.get("type") == "Progressing"), {})
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        raise RolloutError(f'podset "{name}" exceeded its progress deadline: {progressing.get("message", "")}')
    replicas = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if spec.get("paused"):
        return f'podset "{name}" is paused: {updated} of {replicas} replicas are updated', True
    if updated < replicas:
        return (f'Waiting for podset "{name}" rollout to finish: {updated} out of {replicas} new replicas '
                "have been updated..."), False
    if total > updated:
        return (f'Waiting for podset "{name}" rollout to finish: {total - updated} old replicas are pending '
                "termination..."), False
    if available < updated:
        return (f'Waiting for podset "{name}" rollout to finish: {available} of {updated} updated replicas '
                "are available..."), False
    if status.get("currentRevision") != status.get("updateRevision"):
        return f'Waiting for podset "{name}" rollout to finish: revision is being recorded...', False
    return f'podset "{name}" successfully rolled out', True


def _status(api: PodSets, name: str, args: argparse.Namespace) -> int:
    timeout = _seconds(args.timeout)
    deadline = time.monotonic() + timeout if timeout else None
    last = ""
    while True:
        message, done = rollout_state(api.get(name))
        if message != last:
            print(message, flush=True)
            last = message
        if done or args.watch == "false":
            return 0
        if deadline is not None and time.monotonic() > deadline:
            raise RolloutError("timed out waiting for the condition")
        time.sleep(1)


def _seconds(text: str) -> float:
    if text.strip() in ("0", ""):
        return 0.0
    try:
        return parse_duration(text)
    except ValueError as err:
        raise RolloutError(f"--timeout: {err}") from err


# --- history -------------------------------------------------------------------------------


def history_table(podset: Mapping[str, Any], revisions: list[dict[str, Any]]) -> str:
    status = podset.get("status") or {}
    marks = {status.get("currentRevision"): "current", status.get("failedRevision"): "failed, rolled back"}
    if status.get("updateRevision") != status.get("currentRevision"):
        marks[status.get("updateRevision")] = "rolling out"
    rows = [("REVISION", "NAME", "STATE", "CHANGE-CAUSE")]
    for record in revisions:
        meta = record["metadata"]
        cause = (meta.get("annotations") or {}).get(CHANGE_CAUSE) or "<none>"
        rows.append((str(record.get("revision")), meta["name"], marks.get(meta["name"], ""), cause))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3] for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _history(api: PodSets, name: str, args: argparse.Namespace) -> int:
    podset = api.get(name)
    revisions = api.revisions(podset)
    if args.revision:
        record = _revision(revisions, args.revision)
        print(f"{RESOURCE}/{name} with revision #{args.revision}")
        print("Pod Template:")
        print(yaml.safe_dump((record.get("data") or {}).get("template"), sort_keys=False).rstrip())
        return 0
    print(f"{RESOURCE}/{name}")
    print(history_table(podset, revisions))
    return 0


def _revision(revisions: list[dict[str, Any]], number: int) -> dict[str, Any]:
    for record in revisions:
        if int(record.get("revision") or 0) == number:
            return record
    known = ", ".join(str(r.get("revision")) for r in revisions) or "none"
    raise RolloutError(f"unable to find the specified revision {number} (revisions: {known})")


# --- undo, pause, resume, restart ----------------------------------------------------------


def undo_target(podset: Mapping[str, Any], revisions: list[dict[str, Any]], to_revision: int) -> dict[str, Any]:
    """The revision `undo` goes back to: the one asked for, or the newest before the update revision."""
    if to_revision:
        return _revision(revisions, to_revision)
    update = (podset.get("status") or {}).get("updateRevision")
    numbers = {r["metadata"]["name"]: int(r.get("revision") or 0) for r in revisions}
    newest = numbers.get(update, max(numbers.values(), default=0))
    earlier = [r for r in revisions if int(r.get("revision") or 0) < newest]
    if not earlier:
        raise RolloutError("no rollout history found: there is no earlier revision to go back to")
    return earlier[-1]


def _undo(api: PodSets, name: str, args: argparse.Namespace) -> int:
    podset = api.get(name)
    record = undo_target(podset, api.revisions(podset), args.to_revision)
    template = (record.get("data") or {}).get("template")
    if not isinstance(template, dict):
        raise RolloutError(f"revision {record.get('revision')} ({record['metadata']['name']}) keeps no pod template")
    if template == (podset.get("spec") or {}).get("template"):
        print(f"{RESOURCE}/{name} skipped rollback (current template already matches revision "
              f"{record.get('revision')})")
        return 0
    # Replaced whole: a merge patch would keep keys the old template lacks.
    api.patch(name, [{"op": "replace", "path": "/spec/template", "value": template}], JSON_PATCH)
    print(f"{RESOURCE}/{name} rolled back to revision {record.get('revision')}")
    return 0


def _pause(api: PodSets, name: str, args: argparse.Namespace) -> int:
    return _set_paused(api, name, True)


def _resume(api: PodSets, name: str, args: argparse.Namespace) -> int:
    return _set_paused(api, name, False)


def _set_paused(api: PodSets, name: str, paused: bool) -> int:
    word = "paused" if paused else "resumed"
    if bool((api.get(name).get("spec") or {}).get("paused")) == paused:
        print(f"{RESOURCE}/{name} is already {'paused' if paused else 'not paused'}")
        return 0
    api.patch(name, {"spec": {"paused": paused}})
    print(f"{RESOURCE}/{name} {word}")
    return 0


def _restart(api: PodSets, name: str, args: argparse.Namespace) -> int:
    podset = api.get(name)
    if (podset.get("spec") or {}).get("paused"):
        raise RolloutError("can't restart a paused podset (run rollout resume first)")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    api.patch(name, {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}})
    print(f"{RESOURCE}/{name} restarted")
    return 0


_ACTIONS: dict[str, Callable[[PodSets, str, argparse.Namespace], int]] = {
    "status": _status,
    "history": _history,
    "undo": _undo,
    "pause": _pause,
    "resume": _resume,
    "restart": _restart,
}
