"""bench.kube: what the bench reads off the cluster's pods and nodes."""

from __future__ import annotations

from bench.kube import nodes_summary, unschedulable


def test_unschedulable_pods_are_those_the_scheduler_could_not_place() -> None:
    waiting = {"metadata": {"name": "p"}, "spec": {},
               "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                              "reason": "Unschedulable"}]}}
    fresh = {"metadata": {"name": "q"}, "spec": {}, "status": {"phase": "Pending"}}
    placed = {"metadata": {"name": "r"}, "spec": {"nodeName": "kwok-node-0"}, "status": {"phase": "Running"}}
    assert unschedulable([waiting, fresh, placed, placed]) == 1


def test_nodes_summary() -> None:
    nodes = [{"status": {"allocatable": {"pods": "5k"}}}, {"status": {"allocatable": {"pods": "5000"}}},
             {"status": {}}]
    assert nodes_summary(nodes) == {"nodes": 3, "pods_allocatable": 10000, "pods_per_node": [0, 5000]}

