"""The sharding bench's pure parts: what the apiserver sent, what converged, the table."""

from __future__ import annotations

from bench.sharding import converged, table, traffic


def test_traffic_sums_the_apiservers_byte_counters_by_resource() -> None:
    samples = {
        'apiserver_watch_events_sizes_sum{group="examples.playbook-operator.io",resource="examples",version="v1alpha1"}':
            1000.0,
        'apiserver_watch_events_sizes_sum{group="",resource="configmaps",version="v1"}': 300.0,
        'apiserver_watch_events_sizes_sum{group="",resource="secrets",version="v1"}': 7.0,
        'apiserver_response_sizes_sum{component="apiserver",group="examples.playbook-operator.io",resource="examples",'
        'scope="namespace",subresource="",verb="LIST",version="v1alpha1"}': 50.0,
        'apiserver_response_sizes_sum{component="apiserver",group="examples.playbook-operator.io",resource="examples",'
        'scope="resource",subresource="",verb="GET",version="v1alpha1"}': 9.0,
    }
    assert traffic(samples) == {"examples_watch": 1000.0, "examples_list": 50.0, "configmaps_watch": 300.0}


def test_converged_needs_success_for_the_current_generation() -> None:
    def obj(generation: int, observed: int | None, ok: str) -> dict[str, object]:
        return {"metadata": {"generation": generation},
                "status": {"observedGeneration": observed, "conditions": [{"type": "Successful", "status": ok}]}}

    assert converged([obj(1, 1, "True"), obj(2, 1, "True"), obj(1, 1, "False"), {"metadata": {"generation": 1}}]) == 1


def test_the_table_has_a_row_per_configuration() -> None:
    runs = [{"mode": "server", "replicas": 2, "objects": 10, "converge_seconds": 12.3, "converged": 10,
             "peak_rss_bytes": [100 << 20, 90 << 20], "peak_pss_bytes": [60 << 20, 50 << 20],
             "objects_per_replica": [6, 4], "apiserver_bytes": {"examples_watch": 1 << 20, "examples_list": 1 << 20,
                                                                "configmaps_watch": 0}},
            {"mode": "client", "replicas": 4, "objects": 10, "converge_seconds": None, "converged": 7,
             "peak_rss_bytes": [], "peak_pss_bytes": [], "objects_per_replica": [], "apiserver_bytes": {}}]
    lines = table(runs).splitlines()
    assert len(lines) == 3
    assert lines[1].split()[:4] == ["2", "shardSelector", "12s", "100"]
    assert lines[1].split()[-3:] == ["1.0", "1.0", "0.0"]
    assert "not in cap (7/10)" in lines[2] and "filtered here" in lines[2]
