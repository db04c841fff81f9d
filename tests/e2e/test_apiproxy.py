"""The API endpoint roles talk to, against the real apiserver: it lets in only a live run's
token, passes writes, watches and everything it cannot answer through, answers reads from the
cache, and never answers a run with anything older than its trigger or its owner's writes.

The endpoint runs in this process, with a cache the test feeds by hand: a copy of an object
the apiserver no longer has is how a test tells an answer from memory from the apiserver's."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from prometheus_client.parser import text_string_to_metric_families

from runner.apicache import Cache, KindKey
from runner.apiproxy import ApiProxy, RunAccess, Upstream
from tests.conftest import InstallCrds
from tests.support import Cluster, OperatorProcess, StartOperator, conditions_of, wait_for

CONFIGMAPS = KindKey("", "v1", "configmaps")
OWNER = "cache.example.com/Memcached/ns/mc"


class Endpoint:
    """An ApiProxy on its own event loop, in a thread."""

    def __init__(self, cache: Cache) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = ApiProxy(cache, Upstream.from_client(),
                              record=lambda verb, by: self.counts.update([(verb, by)]))
        self.call(self.proxy.start())

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def api(self, access: RunAccess, tmp_path: Path) -> client.CoreV1Api:
        """A client as a module of the run gets it: from the run's kubeconfig."""
        path = access.write_kubeconfig(tmp_path / f"kubeconfig-{access.token[:6]}", self.proxy.url)
        return client.CoreV1Api(config.new_client_from_config(config_file=str(path)))

    def close(self) -> None:
        self.call(self.proxy.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def cache() -> Cache:
    return Cache()


@pytest.fixture
def endpoint(cluster: Cluster, cache: Cache) -> Iterator[Endpoint]:
    config.load_kube_config(config_file=str(cluster.kubeconfig))
    e = Endpoint(cache)
    yield e
    e.close()


def configmap(name: str, value: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels},
            "data": {"value": value}}


def listed(api: client.CoreV1Api, namespace: str) -> list[dict[str, str]]:
    return [c.data for c in api.list_namespaced_config_map(namespace, label_selector="app=cm").items]


def test_only_a_live_runs_token_gets_in(endpoint: Endpoint, namespace: str) -> None:
    url = f"{endpoint.proxy.url}/api/v1/namespaces/{namespace}/configmaps"

    def status(token: str | None) -> int:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return err.code

    access = endpoint.proxy.open_run(OWNER)
    assert status(access.token) == 200
    assert status(None) == 401
    assert status("not-a-run") == 401
    endpoint.proxy.close_run(access)
    assert status(access.token) == 401  # the run is over


def test_writes_reads_and_watches_pass_through(endpoint: Endpoint, namespace: str, tmp_path: Path) -> None:
    api = endpoint.api(endpoint.proxy.open_run(OWNER), tmp_path)
    created = api.create_namespaced_config_map(namespace, configmap("through", "1", app="x"))
    events = watch.Watch().stream(api.list_namespaced_config_map, namespace, label_selector="app=x",
                                  resource_version=created.metadata.resource_version, timeout_seconds=3)
    api.patch_namespaced_config_map("through", namespace, {"data": {"value": "2"}})
    seen = [(e["type"], e["object"].data["value"]) for e in events]
    assert ("MODIFIED", "2") in seen
    assert api.read_namespaced_config_map("through", namespace).data == {"value": "2"}
    api.delete_namespaced_config_map("through", namespace)
    with pytest.raises(client.ApiException) as err:
        api.read_namespaced_config_map("through", namespace)
    assert err.value.status == 404
    # Nothing holds config maps: every read went to the apiserver.
    assert endpoint.counts[("GET", "cache")] == 0 and endpoint.counts[("GET", "apiserver")] >= 2


def test_reads_come_from_the_cache_but_never_older_than_the_runs_own_writes(
        endpoint: Endpoint, cache: Cache, cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    cluster.apply(json.dumps(configmap("cm", "real", app="cm")), namespace)
    real = cluster.get("configmap", "cm", namespace)
    assert real is not None
    rv = int(real["metadata"]["resourceVersion"])
    # The cache holds a copy the apiserver does not have: an answer with it came from memory.
    copy = {**real, "data": {"value": "from the cache"}}
    cache.listed(CONFIGMAPS, namespace, [copy], rv)
    access = endpoint.proxy.open_run(OWNER)
    api = endpoint.api(access, tmp_path)

    assert api.read_namespaced_config_map("cm", namespace).data == {"value": "from the cache"}
    assert listed(api, namespace) == [{"value": "from the cache"}]
    with pytest.raises(client.ApiException) as err:  # the store holds the whole namespace: a 404 from memory
        api.read_namespaced_config_map("nothing-here", namespace)
    assert err.value.status == 404
    cached = endpoint.counts[("GET", "cache")]
    assert cached == 3

    # The run writes: until the watch brings that version, its reads go to the apiserver.
    api.patch_namespaced_config_map("cm", namespace, {"data": {"value": "written"}})
    assert api.read_namespaced_config_map("cm", namespace).data == {"value": "written"}
    assert listed(api, namespace) == [{"value": "written"}]
    # So do the owner's next run's, and a run that is someone else's still reads from memory.
    next_run = endpoint.api(endpoint.proxy.open_run(OWNER), tmp_path)
    assert next_run.read_namespaced_config_map("cm", namespace).data == {"value": "written"}
    other = endpoint.api(endpoint.proxy.open_run("someone/Else/ns/x"), tmp_path)
    assert other.read_namespaced_config_map("cm", namespace).data == {"value": "from the cache"}
    assert endpoint.counts[("GET", "cache")] == cached + 1

    # Once the watch has brought the write, the cache answers again.
    fresh = cluster.get("configmap", "cm", namespace)
    assert fresh is not None
    cache.event(CONFIGMAPS, "MODIFIED", fresh)
    assert api.read_namespaced_config_map("cm", namespace).data == {"value": "written"}
    assert endpoint.counts[("GET", "cache")] == cached + 2

    # A deletion: the object is not read back from memory until the watch says it is gone.
    api.delete_namespaced_config_map("cm", namespace)
    with pytest.raises(client.ApiException) as err:
        api.read_namespaced_config_map("cm", namespace)
    assert err.value.status == 404
    assert endpoint.counts[("GET", "cache")] == cached + 2


def test_a_run_never_reads_older_than_its_trigger(endpoint: Endpoint, cache: Cache, cluster: Cluster,
                                                  namespace: str, tmp_path: Path) -> None:
    cluster.apply(json.dumps(configmap("trigger", "v1")), namespace)
    first = cluster.get("configmap", "trigger", namespace)
    assert first is not None
    cache.listed(CONFIGMAPS, namespace, [first], int(first["metadata"]["resourceVersion"]))
    cluster.apply(json.dumps(configmap("trigger", "v2")), namespace)
    second = cluster.get("configmap", "trigger", namespace)
    assert second is not None

    # A run triggered by the second version, before the cache has it, reads the apiserver's.
    behind = endpoint.proxy.open_run(OWNER, {CONFIGMAPS: int(second["metadata"]["resourceVersion"])})
    assert endpoint.api(behind, tmp_path).read_namespaced_config_map("trigger", namespace).data == {"value": "v2"}
    assert endpoint.counts[("GET", "cache")] == 0
    # A run triggered by the first reads it from memory.
    level = endpoint.proxy.open_run(OWNER, {CONFIGMAPS: int(first["metadata"]["resourceVersion"])})
    assert endpoint.api(level, tmp_path).read_namespaced_config_map("trigger", namespace).data == {"value": "v1"}
    assert endpoint.counts[("GET", "cache")] == 1


# -- through the operator: a role that reads its own writes and the object that started it


ROLES = Path(__file__).resolve().parent / "roles"
SDK = Path(__file__).resolve().parent / "sdk"


@pytest.fixture(scope="module")
def memcached_crd(install_crds: InstallCrds) -> None:
    install_crds("-f", str(SDK / "crd.yaml"))


def reader_watches(tmp_path: Path) -> Path:
    path = tmp_path / "watches.yaml"
    path.write_text(f"""
- version: v1alpha1
  group: cache.example.com
  kind: Memcached
  role: {ROLES / "cache_reader"}
""")
    return path


def memcached(value: int) -> str:
    return json.dumps({"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
                       "metadata": {"name": "mc"}, "spec": {"value": value}})


def settle_on(cluster: Cluster, namespace: str, value: int) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        obj = cluster.get("memcached", "mc", namespace)
        st = (obj or {}).get("status") or {}
        conds = conditions_of(obj)
        done = (st.get("value") == str(value) and st.get("observedGeneration") == obj["metadata"]["generation"]
                and conds.get("Successful", {}).get("status") == "True")
        return obj if done else None

    return wait_for(settled, what=f"the role to report value {value}", timeout=120)


def api_requests(op: OperatorProcess) -> dict[str, float]:
    """playbook_operator_api_requests_total by what answered, over every verb."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(urllib.request.urlopen(op.url("/metrics"), timeout=5).read()
                                                 .decode()):
        for s in family.samples:
            if s.name == "playbook_operator_api_requests_total":
                out[s.labels["answered_by"]] = out.get(s.labels["answered_by"], 0) + s.value
    return out


@pytest.mark.parametrize("cache_reads", ["true", "false"])
def test_roles_read_their_own_writes_and_never_older_than_their_trigger(
        cluster: Cluster, namespace: str, start_operator: StartOperator, memcached_crd: None, tmp_path: Path,
        cache_reads: str) -> None:
    op = start_operator(watches=reader_watches(tmp_path), args=[f"--cache-reads={cache_reads}"])
    cluster.apply(memcached(0), namespace)
    settle_on(cluster, namespace, 0)
    # New generations in quick succession: each run writes, then reads back at once.
    for value in range(1, 6):
        cluster.kubectl("patch", "memcached", "mc", "-n", namespace, "--type=merge", "-p",
                        json.dumps({"spec": {"value": value}}))
    obj = settle_on(cluster, namespace, 5)
    assert "Failure" not in conditions_of(obj), conditions_of(obj)["Failure"]
    assert "result=failed" not in op.log(), op.log()[-3000:]

    cm = cluster.get("configmap", "mc-value", namespace)
    assert cm is not None and cm["data"] == {"value": "5"}
    # Owner references are still added inside the run, whichever way its requests go.
    assert [r["uid"] for r in cm["metadata"]["ownerReferences"]] == [obj["metadata"]["uid"]]

    answered = api_requests(op)
    if cache_reads == "true":
        assert answered.get("cache", 0) > 0, answered
        assert answered.get("apiserver", 0) > 0, answered  # the writes, at least
    else:
        assert answered == {}, "with --cache-reads=false runs talk to the apiserver themselves"
