"""Shared fixtures and markers.

Markers, given by where a test lives: `unit` (tests/unit: no cluster, seconds) and `e2e`
(tests/e2e: a real cluster). `slow` marks e2e tests of a minute or more; `serial` marks those
that need the cluster to themselves (a cluster-wide operator): under pytest-xdist they are
skipped, and hack/test.sh runs them after the parallel ones.

E2e tests run against the cluster KUBECONFIG names. When it is unset, a local control plane is
started for the session (once, whatever the number of xdist workers) and stopped afterwards.
Each test works in namespaces of its own, and its operators watch only those, so tests run side
by side on one cluster.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import ROOT, Cluster, OperatorProcess, StartOperator, cluster_script

CLUSTER_NAME = os.environ.get("TEST_CLUSTER_NAME", "pytest")
# Left in the session's base temp dir by whichever process started the local cluster.
STARTED_MARK = "local-cluster-kubeconfig"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    under_xdist = hasattr(config, "workerinput")
    for item in items:
        path = str(item.fspath)
        if "/tests/unit/" in path:
            item.add_marker(pytest.mark.unit)
        elif "/tests/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
        if under_xdist and item.get_closest_marker("serial"):
            item.add_marker(pytest.mark.skip(reason="needs the cluster to itself: run without -n "
                                                    "(hack/test.sh runs it after the parallel tests)"))
    # The slow ones first: side by side, a long test started last would be the run's tail.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _cluster_up(name: str, *args: str, timeout: float | None = None) -> Path:
    """A local control plane started (`hack/cluster.py up`), as its kubeconfig."""
    proc = subprocess.run([*cluster_script(name), "up", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"could not start the local cluster {name!r}:\n{proc.stderr}", pytrace=False)
    return Path(proc.stdout.strip().splitlines()[-1])


def _session_dir(config: pytest.Config) -> Path:
    """The base temp dir of the whole run: the controller's when under xdist (workers' are inside it)."""
    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return Path(base.parent if hasattr(config, "workerinput") else base)


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config) -> Iterator[Cluster]:
    """The cluster under test: KUBECONFIG's, or a local one started for this session."""
    if os.environ.get("KUBECONFIG"):
        kubeconfig = Path(os.environ["KUBECONFIG"]).resolve()
        # A kubeconfig of hack/cluster.py's is a local control plane (its audit log is beside it).
        local = kubeconfig.parent.name if (kubeconfig.parent / "audit.log").exists() else None
        yield Cluster(kubeconfig=kubeconfig, local_name=local)
        return
    # The first worker to get here starts it; the others find its kubeconfig. The run's last
    # step stops it (pytest_sessionfinish below, in the controller).
    mark = _session_dir(pytestconfig) / STARTED_MARK
    with one_worker_at_a_time(pytestconfig, "local-cluster"):
        if not mark.exists():
            mark.write_text(str(_cluster_up(CLUSTER_NAME)))
    yield Cluster(kubeconfig=Path(mark.read_text()), local_name=CLUSTER_NAME)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput") or not hasattr(config, "_tmp_path_factory"):
        return
    if (_session_dir(config) / STARTED_MARK).exists() and not os.environ.get("KEEP_CLUSTER"):
        subprocess.run([*cluster_script(CLUSTER_NAME), "down"], check=False)


@pytest.fixture
def own_cluster_args() -> list[str]:
    """Further `hack/cluster.py up` arguments for `own_cluster` (a module overrides this fixture)."""
    return []


@pytest.fixture
def own_cluster(tmp_path: Path, own_cluster_args: list[str]) -> Iterator[Cluster]:
    """A local control plane of this test's own (one node), stopped at its end: for tests that stop,
    restart or break the control plane, which would fail the tests beside them on the shared one,
    or that need it started otherwise (`own_cluster_args`)."""
    name = f"own-{uuid.uuid4().hex[:6]}"
    kubeconfig = _cluster_up(name, "--nodes", "1", *own_cluster_args, timeout=300)
    try:
        yield Cluster(kubeconfig=kubeconfig, local_name=name)
    finally:
        subprocess.run([*cluster_script(name), "down"], capture_output=True, check=False)


@pytest.fixture
def default_namespace(pytestconfig: pytest.Config) -> Iterator[str]:
    """`default`, for this test alone: tests that work there (as the README's commands do) take
    turns, whichever xdist worker runs them."""
    with one_worker_at_a_time(pytestconfig, "default-namespace"):
        yield "default"


@contextmanager
def one_worker_at_a_time(config: pytest.Config, name: str) -> Iterator[None]:
    """A lock across the xdist workers of this run (and no-op company without xdist)."""
    with (_session_dir(config) / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


InstallCrds = Callable[..., None]


@pytest.fixture(scope="session")
def install_crds(cluster: Cluster, pytestconfig: pytest.Config) -> InstallCrds:
    """`install_crds(*kubectl_apply_args, input=None)`: CRDs applied, then waited for until
    established. Workers take turns: two that create the same CRD at once would see AlreadyExists."""
    def install(*apply_args: str, input: str | None = None) -> None:
        with one_worker_at_a_time(pytestconfig, "crds"):
            cluster.kubectl("apply", *apply_args, input=input)
        cluster.kubectl("wait", "--for", "condition=Established", "--timeout=60s", "crd", "--all")
    return install


@pytest.fixture(scope="session")
def crds(install_crds: InstallCrds) -> None:
    """The project's CRDs, installed once per session (and established)."""
    install_crds("-k", str(ROOT / "deploy" / "crd"))


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A namespace of this test's own, deleted (without waiting) afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def start_operator(cluster: Cluster, crds: None, namespace: str, tmp_path: Path) -> Iterator[StartOperator]:
    """Starts operators for this test and stops them at its end (a test may stop one earlier).

    `start_operator(watches=..., args=[...], env={...}, cluster=..., namespaces=[...])`: every
    argument is optional. An operator watches this test's `namespace` unless `namespaces` says
    otherwise (None: every namespace, for `serial` tests only); `cluster` is whom it runs as.
    """
    started: list[OperatorProcess] = []

    def start(*, watches: Path = ROOT / "watches.yaml", args: Sequence[str] = (),
              env: dict[str, str] | None = None, cluster: Cluster = cluster,
              namespaces: Sequence[str] | None = (namespace,)) -> OperatorProcess:
        op = OperatorProcess(cluster, workdir=tmp_path / f"operator-{len(started) + 1}", watches=watches,
                             namespaces=namespaces, args=args, env=env)
        started.append(op)
        op.start()
        return op

    try:
        yield start
    finally:
        for op in started:
            op.stop()


@pytest.fixture
def operator(start_operator: StartOperator) -> OperatorProcess:
    """The operator with the project's watches.yaml, watching this test's namespace."""
    return start_operator()
