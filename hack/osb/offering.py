"""What a broker offers and under which ids: ``--catalog-prefix`` and ``--omit-service``.

A broker keeps its own ids (``sync-db-id``, ``edge-slow``) in its code and state file; the
catalog shows every service id, service name and plan id with the prefix, and requests name
them so. `public` adds the prefix where the catalog (or an answer) is built, `local` takes it off
where the broker reads an id from a request. Plan names, instance ids and binding ids are never
prefixed.

An omitted service is left out of the catalog and new instances of it are refused; instances made
before keep working.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Offering:
    prefix: str = ""
    omitted: frozenset[str] = frozenset()  # service names, unprefixed

    def public(self, own_id: str) -> str:
        """A service id, service name or plan id as the catalog shows it."""
        return self.prefix + own_id

    def local(self, public_id: object) -> str | None:
        """The broker's own id for one a request names; None (unknown) for one without the prefix."""
        if isinstance(public_id, str) and public_id.startswith(self.prefix):
            return public_id[len(self.prefix):]
        return None

    def offers(self, service: str) -> bool:
        return service not in self.omitted
