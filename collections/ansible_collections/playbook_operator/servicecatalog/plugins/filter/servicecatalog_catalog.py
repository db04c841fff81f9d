"""The ClusterServiceBroker filters: thin wrappers that hand what roles/servicebroker read to
``module_utils/catalog.py``, where a broker's catalog becomes ClusterServiceClasses and
ClusterServicePlans and a deleting broker learns which ServiceInstances it waits for.

Documentation for ansible-doc is in the neighbouring <filter name>.yml files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.playbook_operator.servicecatalog.plugins.module_utils import catalog


def _broker(broker: Any, filter_name: str) -> Mapping[str, Any]:
    if not isinstance(broker, Mapping):
        raise AnsibleFilterError(f"{filter_name} expects the ClusterServiceBroker object")
    return broker


def servicecatalog_catalog(body: Any, broker: Mapping[str, Any], existing_classes: Sequence[Any] | None = None,
                           existing_plans: Sequence[Any] | None = None, relist_duration: str = catalog.DEFAULT_RELIST,
                           retry_after: str = catalog.DEFAULT_RETRY, now: Any = None) -> dict[str, Any]:
    """What one relist does with the catalog the broker returned (see catalog.sync())."""
    return catalog.sync(body, _broker(broker, "servicecatalog_catalog"), existing_classes or [],
                        existing_plans or [], relist_duration=relist_duration, retry_after=retry_after, now=now)


def servicecatalog_catalog_failure(response: Mapping[str, Any], broker: Mapping[str, Any],
                                   retry_after: str = catalog.DEFAULT_RETRY) -> dict[str, Any]:
    """Why the catalog request failed, as failure(), or {} for a 200 (see catalog.fetch_failure())."""
    return catalog.fetch_failure(response, _broker(broker, "servicecatalog_catalog_failure"), retry_after)


def servicecatalog_sync_failure(failed: Mapping[str, Any], broker: Mapping[str, Any],
                                retry_after: str = catalog.DEFAULT_RETRY) -> dict[str, Any]:
    """A write the apiserver refused, as failure() (see catalog.sync_failure())."""
    return catalog.sync_failure(failed, _broker(broker, "servicecatalog_sync_failure"), retry_after)


def servicecatalog_blocking_instances(instances: Sequence[Any] | None, classes: Sequence[Any] | None) -> list[str]:
    """``namespace/name`` of the ServiceInstances that use ``classes`` (see catalog.blocking_instances())."""
    return catalog.blocking_instances(instances or [], classes or [])


def servicecatalog_broker_blocked(broker: Mapping[str, Any], blocking: Sequence[str]) -> dict[str, Any]:
    """The condition, status and Events of a deletion that waits (see catalog.delete_blocked())."""
    return catalog.delete_blocked(_broker(broker, "servicecatalog_broker_blocked"), list(blocking or []))


def servicecatalog_broker_selector(broker: Mapping[str, Any]) -> str:
    """The label selector of a broker's classes and plans (see catalog.broker_selector())."""
    return catalog.broker_selector(_broker(broker, "servicecatalog_broker_selector"))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "servicecatalog_catalog": servicecatalog_catalog,
            "servicecatalog_catalog_failure": servicecatalog_catalog_failure,
            "servicecatalog_sync_failure": servicecatalog_sync_failure,
            "servicecatalog_blocking_instances": servicecatalog_blocking_instances,
            "servicecatalog_broker_blocked": servicecatalog_broker_blocked,
            "servicecatalog_broker_selector": servicecatalog_broker_selector,
        }
