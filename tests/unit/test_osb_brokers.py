"""hack/osb: the two Open Service Brokers, each run as a real process (hack/osb/process.py) and
spoken to over HTTP: status codes, async operations, the failing plans, and the state file
carrying a broker across a restart in the middle of an operation."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from hack.osb.process import BrokerProcess, Kind

pytestmark = pytest.mark.unit

ASYNC_SECONDS = 1.0
SLOW_SECONDS = 3.0


@dataclass
class Answer:
    status: int
    body: Any
    headers: Message


def call(broker: BrokerProcess, method: str, path: str, body: Any = None, *, password: str | None = None,
         auth: bool = True, version: str | None = "2.17", timeout: float = 10) -> Answer:
    headers = {"Content-Type": "application/json"}
    if version:
        headers["X-Broker-API-Version"] = version
    if auth:
        pair = f"{broker.username}:{password or broker.password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(broker.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, json.loads(response.read() or b"null"), response.headers)
    except urllib.error.HTTPError as error:
        return Answer(error.code, json.loads(error.read() or b"null"), error.headers)


def poll(fetch: Callable[[], Answer], done: Callable[[Answer], bool], timeout: float = 10) -> Answer:
    """`fetch()` until `done` says so; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        answer = fetch()
        if done(answer):
            return answer
        assert time.monotonic() < deadline, f"still {answer.status} {answer.body} after {timeout}s"
        time.sleep(0.1)  # the interval between polls


def finished(answer: Answer) -> bool:
    return not (answer.status == 200 and answer.body["state"] == "in progress")


def new_id() -> str:
    return uuid.uuid4().hex


def start(kind: Kind, state: Path, *extra: str) -> BrokerProcess:
    return BrokerProcess(kind, state, extra_args=["--async-seconds", str(ASYNC_SECONDS), *extra]).start()


@pytest.fixture(scope="module")
def openbroker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    broker = start("openbroker", tmp_path_factory.mktemp("openbroker") / "state.json")
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def edgebroker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    broker = start("edgebroker", tmp_path_factory.mktemp("edgebroker") / "state.json",
                   "--slow-seconds", str(SLOW_SECONDS), "--delete-failures", "2")
    yield broker
    broker.stop()


# openbroker: sync-db and async-db


def test_openbroker_catalog(openbroker: BrokerProcess) -> None:
    answer = call(openbroker, "GET", "/v2/catalog")
    assert answer.status == 200
    services = {s["name"]: s for s in answer.body["services"]}
    sync_db, async_db = services["sync-db"], services["async-db"]
    assert (sync_db["id"], sync_db["bindable"], sync_db["plan_updateable"]) == ("sync-db-id", True, True)
    assert sync_db["tags"] == ["database"] and sync_db["metadata"] == {"displayName": "Sync DB"}
    assert {p["name"]: p["id"] for p in sync_db["plans"]} == {
        "small": "sync-db-small", "large": "sync-db-large", "broken": "sync-db-broken"}
    assert async_db["id"] == "async-db-id" and async_db["plan_updateable"] is False
    assert async_db["instances_retrievable"] is True and async_db["bindings_retrievable"] is True
    assert {p["name"]: p["id"] for p in async_db["plans"]} == {
        "standard": "async-db-standard", "flaky": "async-db-flaky"}


def test_openbroker_refuses_bad_auth_and_old_versions(openbroker: BrokerProcess) -> None:
    assert call(openbroker, "GET", "/v2/catalog", password="wrong").status == 401
    assert call(openbroker, "GET", "/v2/catalog", auth=False).status == 401
    assert call(openbroker, "GET", "/v2/catalog", version="2.12").status == 412
    assert call(openbroker, "GET", "/v2/catalog", version=None).status == 400  # openbrokerapi's answer


def test_sync_db_provision_bind_update_unbind_deprovision(openbroker: BrokerProcess) -> None:
    iid, bid = new_id(), new_id()
    instance, binding = f"/v2/service_instances/{iid}", f"/v2/service_instances/{iid}/service_bindings/{bid}"
    small = {"service_id": "sync-db-id", "plan_id": "sync-db-small",
             "context": {"platform": "kubernetes", "namespace": "demo"}}
    assert call(openbroker, "PUT", instance, small).status == 201
    assert call(openbroker, "PUT", instance, small).status == 200
    assert call(openbroker, "PUT", instance, {**small, "plan_id": "sync-db-large"}).status == 409

    bind = {"service_id": "sync-db-id", "plan_id": "sync-db-small"}
    first = call(openbroker, "PUT", binding, bind)
    assert first.status == 201
    secret = first.body["credentials"]
    assert {k: v for k, v in secret.items() if k != "password"} == {
        "type": "postgresql", "provider": "playbook-broker", "host": f"db-{iid[:8]}.example.test",
        "port": 5432, "username": f"u-{bid[:8]}", "database": "app"}
    assert len(secret["password"]) >= 16
    again = call(openbroker, "PUT", binding, bind)
    assert (again.status, again.body["credentials"]) == (200, secret)
    assert call(openbroker, "PUT", binding, {**bind, "parameters": {"role": "admin"}}).status == 409

    update = {"service_id": "sync-db-id", "plan_id": "sync-db-large", "parameters": {"size": 2}}
    assert (call(openbroker, "PATCH", instance, update).status, call(openbroker, "PUT", instance, small).status) == (
        200, 409)  # the instance is large now

    query = "?service_id=sync-db-id&plan_id=sync-db-large"
    assert call(openbroker, "DELETE", binding + query).status == 200
    assert call(openbroker, "DELETE", binding + query).status == 410
    assert call(openbroker, "DELETE", instance + query).status == 200
    assert call(openbroker, "DELETE", instance + query).status == 410


def test_sync_db_broken_plan_is_refused(openbroker: BrokerProcess) -> None:
    answer = call(openbroker, "PUT", f"/v2/service_instances/{new_id()}",
                  {"service_id": "sync-db-id", "plan_id": "sync-db-broken"})
    assert (answer.status, answer.body) == (
        400, {"description": "plan broken cannot be provisioned: no capacity in region test-1"})


def test_async_db_needs_accepts_incomplete(openbroker: BrokerProcess) -> None:
    answer = call(openbroker, "PUT", f"/v2/service_instances/{new_id()}",
                  {"service_id": "async-db-id", "plan_id": "async-db-standard"})
    assert (answer.status, answer.body["error"]) == (422, "AsyncRequired")


def test_async_db_provision_bind_unbind_deprovision(openbroker: BrokerProcess) -> None:
    iid, bid = new_id(), new_id()
    instance, binding = f"/v2/service_instances/{iid}", f"/v2/service_instances/{iid}/service_bindings/{bid}"
    standard = {"service_id": "async-db-id", "plan_id": "async-db-standard"}
    query = "?service_id=async-db-id&plan_id=async-db-standard"

    started = call(openbroker, "PUT", instance + "?accepts_incomplete=true", standard)
    assert started.status == 202 and started.body["operation"]
    repeated = call(openbroker, "PUT", instance + "?accepts_incomplete=true", standard)
    assert (repeated.status, repeated.body["operation"]) == (202, started.body["operation"])
    last = f"{instance}/last_operation{query}&operation={started.body['operation']}"
    assert call(openbroker, "GET", last).body["state"] == "in progress"
    assert call(openbroker, "GET", instance).status == 404  # OSB: not there while provisioning
    assert poll(lambda: call(openbroker, "GET", last), finished).body == {"state": "succeeded",
                                                                          "description": "provisioned"}
    assert call(openbroker, "GET", instance).body["plan_id"] == "async-db-standard"

    bound = call(openbroker, "PUT", binding + "?accepts_incomplete=true", standard)
    assert bound.status == 202 and "credentials" not in bound.body
    assert call(openbroker, "GET", binding).status == 404
    assert poll(lambda: call(openbroker, "GET", binding + "/last_operation"), finished).body["state"] == "succeeded"
    secret = call(openbroker, "GET", binding).body["credentials"]
    assert (secret["type"], secret["host"], secret["username"]) == ("mysql", f"db-{iid[:8]}.example.test",
                                                                    f"u-{bid[:8]}")

    assert call(openbroker, "DELETE", binding + query).status == 422  # async only
    assert call(openbroker, "DELETE", binding + query + "&accepts_incomplete=true").status == 202
    assert poll(lambda: call(openbroker, "GET", binding + "/last_operation"), finished).body["state"] == "succeeded"
    assert call(openbroker, "DELETE", binding + query).status == 410

    assert call(openbroker, "DELETE", instance + query + "&accepts_incomplete=true").status == 202
    assert poll(lambda: call(openbroker, "GET", last), finished).body == {"state": "succeeded",
                                                                          "description": "deprovisioned"}
    assert call(openbroker, "DELETE", instance + query).status == 410
    assert call(openbroker, "GET", f"/v2/service_instances/{new_id()}/last_operation").status == 404


def test_async_db_flaky_plan_fails_and_deletes(openbroker: BrokerProcess) -> None:
    instance = f"/v2/service_instances/{new_id()}"
    flaky = {"service_id": "async-db-id", "plan_id": "async-db-flaky"}
    assert call(openbroker, "PUT", instance + "?accepts_incomplete=true", flaky).status == 202
    ended = poll(lambda: call(openbroker, "GET", instance + "/last_operation"), finished)
    assert ended.body == {"state": "failed", "description": "provisioning failed: disk quota exceeded on pool p-7"}
    assert call(openbroker, "DELETE", instance + "?service_id=async-db-id&plan_id=async-db-flaky").status == 200


def test_openbroker_logs_requests_without_secrets(openbroker: BrokerProcess) -> None:
    iid = new_id()
    call(openbroker, "PUT", f"/v2/service_instances/{iid}", {"service_id": "sync-db-id", "plan_id": "sync-db-small"})
    bound = call(openbroker, "PUT", f"/v2/service_instances/{iid}/service_bindings/{new_id()}",
                 {"service_id": "sync-db-id", "plan_id": "sync-db-small", "parameters": {"password": "hunter2"}})
    log = openbroker.requests()
    assert [(e["method"], e["status"]) for e in log if iid in e["path"]] == [("PUT", 201), ("PUT", 201)]
    assert log[-1]["body"]["parameters"] == {"password": "<redacted>"}
    assert all("authorization" not in (h.lower() for h in e["headers"]) for e in log)
    secrets = ("hunter2", openbroker.password, bound.body["credentials"]["password"])
    for text in (json.dumps(log), openbroker.log_file.read_text()):
        assert not [s for s in secrets if s in text]
    assert openbroker.stdout_file.read_text() == f"listening on {openbroker.url}\n"


def test_openbroker_carries_on_after_a_restart(tmp_path: Path) -> None:
    broker = BrokerProcess("openbroker", tmp_path / "state.json", extra_args=["--async-seconds", "2"]).start()
    try:
        synchronous, asynchronous = f"/v2/service_instances/{new_id()}", f"/v2/service_instances/{new_id()}"
        small = {"service_id": "sync-db-id", "plan_id": "sync-db-small"}
        assert call(broker, "PUT", synchronous, small).status == 201
        began = time.time()
        assert call(broker, "PUT", asynchronous + "?accepts_incomplete=true",
                    {"service_id": "async-db-id", "plan_id": "async-db-standard"}).status == 202
        broker.kill()
        broker.start()
        assert call(broker, "PUT", synchronous, small).status == 200
        ended = poll(lambda: call(broker, "GET", asynchronous + "/last_operation"), finished)
        # Done by the clock of the operation's start, the time the broker was down included.
        assert ended.body["state"] == "succeeded" and 2 <= time.time() - began < 6
    finally:
        broker.stop()


def test_a_password_that_looks_like_an_option(tmp_path: Path) -> None:
    # BrokerProcess's generated passwords start with "-" one time in 64.
    broker = BrokerProcess("edgebroker", tmp_path / "state.json", password="-looks-like-an-option").start()
    try:
        assert call(broker, "GET", "/v2/catalog").status == 200
    finally:
        broker.stop()


# edgebroker: what openbrokerapi cannot send


def edge(plan: str) -> dict[str, Any]:
    return {"service_id": "edge-id", "plan_id": f"edge-{plan}"}


def edge_query(plan: str, accepts_incomplete: bool = False) -> str:
    return f"?service_id=edge-id&plan_id=edge-{plan}" + ("&accepts_incomplete=true" if accepts_incomplete else "")


def test_edge_catalog(edgebroker: BrokerProcess) -> None:
    (service,) = call(edgebroker, "GET", "/v2/catalog").body["services"]
    assert (service["id"], service["name"], service["bindable"], service["plan_updateable"]) == (
        "edge-id", "edge", True, True)
    assert service["instances_retrievable"] and service["bindings_retrievable"]
    plans = {p["name"]: p for p in service["plans"]}
    assert {name: p["id"] for name, p in plans.items()} == {name: f"edge-{name}" for name in (
        "retry-after", "maintained", "slow", "error500", "never-finishes", "async-bind", "bind-timeout")}
    assert plans["maintained"]["maintenance_info"]["version"] == "2.0.0"
    assert plans["never-finishes"]["maximum_polling_duration"] == 5


def test_edge_refuses_missing_or_old_versions_and_bad_auth(edgebroker: BrokerProcess) -> None:
    for version in (None, "2.12", "two"):
        answer = call(edgebroker, "GET", "/v2/catalog", version=version)
        assert answer.status == 412 and "2.13" in answer.body["description"]
    assert call(edgebroker, "GET", "/v2/catalog", password="wrong").status == 401
    refused = call(edgebroker, "GET", "/v2/catalog", auth=False)
    assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")


def test_edge_retry_after(edgebroker: BrokerProcess) -> None:
    instance = f"/v2/service_instances/{new_id()}"
    assert call(edgebroker, "PUT", instance, edge("retry-after")).body["error"] == "AsyncRequired"
    assert call(edgebroker, "PUT", instance + "?accepts_incomplete=true", edge("retry-after")).status == 202
    polled = call(edgebroker, "GET", instance + "/last_operation")
    assert (polled.status, polled.body["state"], polled.headers["Retry-After"]) == (200, "in progress", "2")
    done = poll(lambda: call(edgebroker, "GET", instance + "/last_operation"), finished)
    assert (done.body["state"], done.headers["Retry-After"]) == ("succeeded", None)

    assert call(edgebroker, "DELETE", instance + edge_query("retry-after")).body["error"] == "AsyncRequired"
    assert call(edgebroker, "DELETE", instance + edge_query("retry-after", accepts_incomplete=True)).status == 202
    # A finished async delete: 410 Gone, which OSB has the platform take for success.
    assert poll(lambda: call(edgebroker, "GET", instance + "/last_operation"), finished).status == 410
    assert call(edgebroker, "DELETE", instance + edge_query("retry-after")).status == 410
    assert call(edgebroker, "GET", f"/v2/service_instances/{new_id()}/last_operation").status == 404


def test_edge_maintenance_info_conflict(edgebroker: BrokerProcess) -> None:
    instance = f"/v2/service_instances/{new_id()}"
    stale = call(edgebroker, "PUT", instance, {**edge("maintained"), "maintenance_info": {"version": "1.0.0"}})
    assert (stale.status, stale.body["error"]) == (422, "MaintenanceInfoConflict")
    current = {**edge("maintained"), "maintenance_info": {"version": "2.0.0"}}
    assert call(edgebroker, "PUT", instance, current).status == 201
    edgebroker.set_maintenance("3.0.0")
    try:
        (service,) = call(edgebroker, "GET", "/v2/catalog").body["services"]
        versions = {p["name"]: p.get("maintenance_info", {}).get("version") for p in service["plans"]}
        assert versions["maintained"] == "3.0.0"
        assert call(edgebroker, "PATCH", instance, current).body["error"] == "MaintenanceInfoConflict"
        upgrade = {**current, "maintenance_info": {"version": "3.0.0"}}
        assert call(edgebroker, "PATCH", instance, upgrade).status == 200
        assert call(edgebroker, "GET", instance).body["maintenance_info"] == {"version": "3.0.0"}
    finally:
        edgebroker.set_maintenance("2.0.0")


def test_edge_slow_provision_leaves_an_instance_to_delete(edgebroker: BrokerProcess) -> None:
    instance = f"/v2/service_instances/{new_id()}"
    with pytest.raises(TimeoutError):
        call(edgebroker, "PUT", instance, edge("slow"), timeout=1)
    assert call(edgebroker, "DELETE", instance + edge_query("slow")).status == 200


def test_edge_error500_provision_and_failing_deletes(edgebroker: BrokerProcess) -> None:
    instance = f"/v2/service_instances/{new_id()}"
    answer = call(edgebroker, "PUT", instance, edge("error500"))
    assert (answer.status, answer.body) == (500, {"description": "internal error while provisioning"})
    assert [call(edgebroker, "DELETE", instance + edge_query("error500")).status for _ in range(4)] == [
        500, 500, 200, 410]


def test_edge_never_finishes(edgebroker: BrokerProcess) -> None:
    instance = f"/v2/service_instances/{new_id()}"
    assert call(edgebroker, "PUT", instance + "?accepts_incomplete=true", edge("never-finishes")).status == 202
    past = time.monotonic() + ASYNC_SECONDS + 0.5
    while time.monotonic() < past:  # well after an ordinary operation would have ended
        assert call(edgebroker, "GET", instance + "/last_operation").body["state"] == "in progress"
        time.sleep(0.2)  # the interval between polls
    assert call(edgebroker, "DELETE", instance + edge_query("never-finishes")).status == 200


def test_edge_async_bind(edgebroker: BrokerProcess) -> None:
    iid, bid = new_id(), new_id()
    instance, binding = f"/v2/service_instances/{iid}", f"/v2/service_instances/{iid}/service_bindings/{bid}"
    assert call(edgebroker, "PUT", instance, edge("async-bind")).status == 201
    assert call(edgebroker, "PUT", binding, edge("async-bind")).body["error"] == "AsyncRequired"
    started = call(edgebroker, "PUT", binding + "?accepts_incomplete=true", edge("async-bind"))
    assert started.status == 202 and started.body["operation"]
    assert call(edgebroker, "GET", binding).status == 404
    assert poll(lambda: call(edgebroker, "GET", binding + "/last_operation"), finished).body["state"] == "succeeded"
    secret = call(edgebroker, "GET", binding).body["credentials"]
    assert (secret["type"], secret["provider"], secret["uri"].startswith("redis://")) == ("redis", "edge", True)
    assert secret["password"]

    assert call(edgebroker, "DELETE", binding + edge_query("async-bind")).body["error"] == "AsyncRequired"
    assert call(edgebroker, "DELETE", binding + edge_query("async-bind", accepts_incomplete=True)).status == 202
    assert poll(lambda: call(edgebroker, "GET", binding + "/last_operation"), finished).status == 410
    assert call(edgebroker, "GET", binding).status == 404


def test_edge_bind_timeout_leaves_a_binding_to_delete(edgebroker: BrokerProcess) -> None:
    iid, bid = new_id(), new_id()
    instance, binding = f"/v2/service_instances/{iid}", f"/v2/service_instances/{iid}/service_bindings/{bid}"
    assert call(edgebroker, "PUT", instance, edge("bind-timeout")).status == 201
    with pytest.raises(TimeoutError):
        call(edgebroker, "PUT", binding, edge("bind-timeout"), timeout=1)
    assert call(edgebroker, "DELETE", binding + edge_query("bind-timeout")).status == 200
    assert call(edgebroker, "DELETE", binding + edge_query("bind-timeout")).status == 410


def test_edge_conflicts_gone_and_a_log_without_secrets(edgebroker: BrokerProcess) -> None:
    iid, bid = new_id(), new_id()
    instance, binding = f"/v2/service_instances/{iid}", f"/v2/service_instances/{iid}/service_bindings/{bid}"
    assert call(edgebroker, "DELETE", instance + edge_query("maintained")).status == 410
    assert call(edgebroker, "DELETE", binding + edge_query("maintained")).status == 410
    assert call(edgebroker, "PUT", instance, edge("maintained")).status == 201
    assert call(edgebroker, "PUT", instance, {**edge("maintained"), "parameters": {"x": 1}}).status == 409
    bound = call(edgebroker, "PUT", binding, {**edge("maintained"), "parameters": {"password": "hunter2"}})
    assert bound.status == 201

    log = edgebroker.requests()
    mine = [e for e in log if iid in e["path"]]
    assert [(e["method"], e["status"]) for e in mine] == [("DELETE", 410), ("DELETE", 410), ("PUT", 201),
                                                           ("PUT", 409), ("PUT", 201)]
    assert mine[-1]["body"]["parameters"] == {"password": "<redacted>"}
    assert all("authorization" not in (h.lower() for h in e["headers"]) for e in log)
    secrets = ("hunter2", edgebroker.password, bound.body["credentials"]["password"])
    for text in (json.dumps(log), edgebroker.log_file.read_text()):
        assert not [s for s in secrets if s in text]
    assert edgebroker.stdout_file.read_text() == f"listening on {edgebroker.url}\n"


def test_edgebroker_carries_on_after_a_restart(tmp_path: Path) -> None:
    broker = start("edgebroker", tmp_path / "state.json")
    try:
        instance = f"/v2/service_instances/{new_id()}"
        began = time.time()
        assert call(broker, "PUT", instance + "?accepts_incomplete=true", edge("retry-after")).status == 202
        broker.kill()
        broker.start()
        ended = poll(lambda: call(broker, "GET", instance + "/last_operation"), finished)
        assert ended.body["state"] == "succeeded" and time.time() - began >= ASYNC_SECONDS
        assert call(broker, "GET", instance).body["plan_id"] == "edge-retry-after"
    finally:
        broker.stop()


# --catalog-prefix and --omit-service, on both brokers

PREFIX = "t-1a2b3c4d-"


def ids_of(catalog: Answer) -> dict[str, tuple[str, dict[str, str]]]:
    """Each service's name: its id and its plans' names to ids."""
    return {s["name"]: (s["id"], {p["name"]: p["id"] for p in s["plans"]}) for s in catalog.body["services"]}


def test_openbroker_catalog_prefix(tmp_path: Path) -> None:
    broker = start("openbroker", tmp_path / "state.json", "--catalog-prefix", PREFIX)
    try:
        catalog = call(broker, "GET", "/v2/catalog")
        assert ids_of(catalog) == {
            f"{PREFIX}sync-db": (f"{PREFIX}sync-db-id", {
                "small": f"{PREFIX}sync-db-small", "large": f"{PREFIX}sync-db-large",
                "broken": f"{PREFIX}sync-db-broken"}),
            f"{PREFIX}async-db": (f"{PREFIX}async-db-id", {
                "standard": f"{PREFIX}async-db-standard", "flaky": f"{PREFIX}async-db-flaky"})}
        sync_db = next(s for s in catalog.body["services"] if s["name"] == f"{PREFIX}sync-db")
        assert sync_db["description"] == "A database provisioned synchronously"
        assert sync_db["metadata"] == {"displayName": "Sync DB"}

        iid, bid = new_id(), new_id()
        instance, binding = f"/v2/service_instances/{iid}", f"/v2/service_instances/{iid}/service_bindings/{bid}"
        standard = {"service_id": f"{PREFIX}async-db-id", "plan_id": f"{PREFIX}async-db-standard"}
        query = f"?service_id={PREFIX}async-db-id&plan_id={PREFIX}async-db-standard"
        assert call(broker, "PUT", instance + "?accepts_incomplete=true", standard).status == 202
        assert call(broker, "PUT", instance + "?accepts_incomplete=true", standard).status == 202  # the same
        provisioned = poll(lambda: call(broker, "GET", instance + "/last_operation" + query), finished)
        assert provisioned.body == {"state": "succeeded", "description": "provisioned"}
        got = call(broker, "GET", instance).body
        assert (got["service_id"], got["plan_id"]) == (standard["service_id"], standard["plan_id"])
        assert call(broker, "PUT", binding + "?accepts_incomplete=true", standard).status == 202
        assert poll(lambda: call(broker, "GET", binding + "/last_operation" + query), finished).body["state"] == (
            "succeeded")
        assert call(broker, "GET", binding).body["credentials"]["type"] == "mysql"
        assert call(broker, "PUT", binding + "?accepts_incomplete=true", standard).status == 200  # the same
        changed = {**standard, "parameters": {"x": 1}}
        assert call(broker, "PUT", binding + "?accepts_incomplete=true", changed).status == 409

        # The catalog's own ids without the prefix are as unknown as any other.
        small = {"service_id": f"{PREFIX}sync-db-id", "plan_id": f"{PREFIX}sync-db-small"}
        other = f"/v2/service_instances/{new_id()}"
        assert call(broker, "PUT", other, {"service_id": "sync-db-id", "plan_id": "sync-db-small"}).status == 400
        refused = call(broker, "PUT", other, {**small, "service_id": "sync-db-id"})
        assert refused.body == {"description": f"plan {PREFIX}sync-db-small is not a plan of service sync-db-id"}
        assert call(broker, "PUT", other, small).status == 201
        assert call(broker, "PATCH", other, {**small, "plan_id": "sync-db-large"}).status == 400
        assert call(broker, "PATCH", other, {**small, "plan_id": f"{PREFIX}sync-db-large"}).status == 200
        assert call(broker, "DELETE", other + "?service_id=sync-db-id&plan_id=sync-db-large").status == 400
        assert call(broker, "DELETE", other + f"?service_id={PREFIX}sync-db-id&plan_id={PREFIX}sync-db-large"
                    ).status == 200
        assert call(broker, "PUT", f"/v2/service_instances/{new_id()}", {
            "service_id": f"{PREFIX}sync-db-id", "plan_id": f"{PREFIX}sync-db-broken"}).body == {
            "description": "plan broken cannot be provisioned: no capacity in region test-1"}
    finally:
        broker.stop()


def test_edgebroker_catalog_prefix(tmp_path: Path) -> None:
    broker = start("edgebroker", tmp_path / "state.json", "--catalog-prefix", PREFIX)
    try:
        (service,) = call(broker, "GET", "/v2/catalog").body["services"]
        assert (service["id"], service["name"], service["description"]) == (
            f"{PREFIX}edge-id", f"{PREFIX}edge", "OSB edge cases")
        plans = {p["name"]: p for p in service["plans"]}
        assert {name: p["id"] for name, p in plans.items()} == {name: f"{PREFIX}edge-{name}" for name in (
            "retry-after", "maintained", "slow", "error500", "never-finishes", "async-bind", "bind-timeout")}
        assert plans["never-finishes"]["maximum_polling_duration"] == 5

        def prefixed(plan: str) -> dict[str, Any]:
            return {"service_id": f"{PREFIX}edge-id", "plan_id": f"{PREFIX}edge-{plan}"}

        def query(plan: str) -> str:
            return f"?service_id={PREFIX}edge-id&plan_id={PREFIX}edge-{plan}&accepts_incomplete=true"

        iid, bid = new_id(), new_id()
        instance, binding = f"/v2/service_instances/{iid}", f"/v2/service_instances/{iid}/service_bindings/{bid}"
        assert call(broker, "PUT", instance + "?accepts_incomplete=true", prefixed("retry-after")).status == 202
        polled = poll(lambda: call(broker, "GET", instance + "/last_operation" + query("retry-after")), finished)
        assert polled.body["state"] == "succeeded"
        got = call(broker, "GET", instance).body
        assert (got["service_id"], got["plan_id"]) == (f"{PREFIX}edge-id", f"{PREFIX}edge-retry-after")
        assert call(broker, "PUT", instance + "?accepts_incomplete=true", prefixed("retry-after")).status == 200
        assert call(broker, "PATCH", instance, {"service_id": f"{PREFIX}edge-id"}).status == 200  # the plan it has
        bound = call(broker, "PUT", binding, prefixed("retry-after"))
        assert bound.status == 201 and bound.body["credentials"]["type"] == "redis"
        assert call(broker, "PUT", binding, prefixed("retry-after")).status == 200  # the same

        async_bind = f"/v2/service_instances/{new_id()}"
        assert call(broker, "PUT", async_bind, prefixed("async-bind")).status == 201
        late = f"{async_bind}/service_bindings/{new_id()}"
        assert call(broker, "PUT", late + "?accepts_incomplete=true", prefixed("async-bind")).status == 202
        assert poll(lambda: call(broker, "GET", late + "/last_operation" + query("async-bind")), finished).body[
            "state"] == "succeeded"

        # The catalog's own ids without the prefix are as unknown as any other.
        other = f"/v2/service_instances/{new_id()}"
        refused = call(broker, "PUT", other, edge("maintained"))
        assert (refused.status, refused.body["description"]) == (400, f"service_id must be {PREFIX}edge-id")
        refused = call(broker, "PUT", other, {**prefixed("maintained"), "plan_id": "edge-maintained"})
        assert (refused.status, refused.body["description"]) == (
            400, f"no plan edge-maintained in service {PREFIX}edge-id")
        assert call(broker, "PATCH", instance, {**prefixed("slow"), "plan_id": "edge-slow"}).status == 400
        assert call(broker, "PUT", f"{instance}/service_bindings/{new_id()}", edge("retry-after")).status == 400
        assert call(broker, "GET", instance).body["plan_id"] == f"{PREFIX}edge-retry-after"
    finally:
        broker.stop()


def test_openbroker_omitted_service_keeps_its_instances(tmp_path: Path) -> None:
    broker = start("openbroker", tmp_path / "state.json", "--catalog-prefix", PREFIX)
    try:
        standard = {"service_id": f"{PREFIX}async-db-id", "plan_id": f"{PREFIX}async-db-standard"}
        query = f"?service_id={PREFIX}async-db-id&plan_id={PREFIX}async-db-standard&accepts_incomplete=true"
        iid, bid = new_id(), new_id()
        ready, binding = f"/v2/service_instances/{iid}", f"/v2/service_instances/{iid}/service_bindings/{bid}"
        busy = f"/v2/service_instances/{new_id()}"  # still provisioning when the broker stops

        def last(path: str) -> Callable[[], Answer]:
            return lambda: call(broker, "GET", path + "/last_operation")

        assert call(broker, "PUT", ready + "?accepts_incomplete=true", standard).status == 202
        poll(last(ready), finished)
        assert call(broker, "PUT", binding + "?accepts_incomplete=true", standard).status == 202
        assert call(broker, "PUT", busy + "?accepts_incomplete=true", standard).status == 202

        broker.extra_args += ["--omit-service", "async-db"]
        broker.restart()
        assert set(ids_of(call(broker, "GET", "/v2/catalog"))) == {f"{PREFIX}sync-db"}
        refused = call(broker, "PUT", f"/v2/service_instances/{new_id()}?accepts_incomplete=true", standard)
        assert refused.body == {"description": f"service {PREFIX}async-db is no longer offered"}
        assert call(broker, "PUT", f"/v2/service_instances/{new_id()}", {
            "service_id": f"{PREFIX}sync-db-id", "plan_id": f"{PREFIX}sync-db-small"}).status == 201

        # What was under way carries on; what was made can be taken apart.
        assert poll(last(busy), finished).body["state"] == "succeeded"
        assert poll(last(binding), finished).body["state"] == "succeeded"
        assert call(broker, "GET", binding).body["credentials"]["type"] == "mysql"
        assert call(broker, "DELETE", binding + query).status == 202
        assert call(broker, "DELETE", busy + query).status == 202
        assert poll(last(binding), finished).body == {"state": "succeeded", "description": "unbound"}
        assert call(broker, "DELETE", ready + query).status == 202
        for instance in (busy, ready):
            assert poll(last(instance), finished).body == {"state": "succeeded", "description": "deprovisioned"}
    finally:
        broker.stop()


def test_edgebroker_omitted_service_keeps_its_instances(tmp_path: Path) -> None:
    typo = BrokerProcess("edgebroker", tmp_path / "typo.json", extra_args=["--omit-service", "nope"])
    with pytest.raises(RuntimeError, match="exited with 2"):
        typo.start()
    assert "--omit-service nope: not a service of this broker (edge)" in typo.log_tail()

    broker = start("edgebroker", tmp_path / "state.json", "--catalog-prefix", PREFIX)
    prefixed = {"service_id": f"{PREFIX}edge-id", "plan_id": f"{PREFIX}edge-retry-after"}
    query = f"?service_id={PREFIX}edge-id&plan_id={PREFIX}edge-retry-after&accepts_incomplete=true"
    instance = f"/v2/service_instances/{new_id()}"
    try:
        assert call(broker, "PUT", instance + "?accepts_incomplete=true", prefixed).status == 202
        broker.extra_args += ["--omit-service", "edge"]
        broker.restart()
        assert call(broker, "GET", "/v2/catalog").body == {"services": []}
        refused = call(broker, "PUT", f"/v2/service_instances/{new_id()}?accepts_incomplete=true", prefixed)
        assert (refused.status, refused.body["description"]) == (400, f"service {PREFIX}edge is no longer offered")
        assert poll(lambda: call(broker, "GET", instance + "/last_operation"), finished).body["state"] == "succeeded"
        assert call(broker, "DELETE", instance + query).status == 202
        assert poll(lambda: call(broker, "GET", instance + "/last_operation"), finished).status == 410
    finally:
        broker.stop()
