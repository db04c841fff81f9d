"""`playbook-operator shards`: the members of a sharded operator, their slices and objects.

Read from the members' Leases (`runner.shards`), as the replicas read them: each member's
state, how many of the 256 slices its published view gives it and which, how many primary
objects it holds, and when it last renewed. The split itself is `runner.sharding`'s.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner import leader, settings, sharding, shards
from runner.kube import default_namespace, load_config
from runner.settings import WATCHES_FILE
from runner.watches import WatchesError, load_watches


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("shards", help="show the members of a sharded operator, their slices and objects")
    parser.add_argument("-n", "--namespace", default=None,
                        help="the namespace of the members' Leases (default: the kubeconfig's)")
    parser.add_argument("--leader-election-id", default=None, metavar="ID",
                        help="the operator's name, as given to its replicas (default: made from the watched kinds)")
    parser.add_argument("--watches-file", default=WATCHES_FILE, metavar="PATH",
                        help=f"the watches file the default name is made from (default: {WATCHES_FILE})")
    parser.add_argument("--wide", action="store_true", help="list every hash range of each member")


def state_of(peer: shards.Peer, live: frozenset[str], now: datetime) -> str:
    """joining (no view yet), acting (under the live members), handing over (an older view), or
    expired (not renewed in time: a replica that died, whose slices the others take)."""
    if leader.is_expired(peer.record, now):
        return "expired"
    if peer.view is None:
        return "joining"
    return "acting" if peer.view == live else "handing over"


def table(leases: Sequence[Mapping[str, Any]], now: datetime, *, wide: bool = False) -> str:
    peers = sorted((p for p in map(shards.peer_of, leases) if p is not None), key=lambda p: p.name)
    live = frozenset(p.name for p in peers if not leader.is_expired(p.record, now))
    rows = [("MEMBER", "STATE", "SLICES", "OBJECTS", "RENEWED", "RANGES")]
    for peer in peers:
        mine = sharding.owned(peer.view or (), peer.name)
        ranges = sharding.describe(mine)
        if not wide and len(sharding.ranges(mine)) > 3:
            first = ", ".join(ranges.split(", ")[:3])
            ranges = f"{first}, ... ({len(sharding.ranges(mine))} ranges)"
        renewed = f"{(now - peer.record.renew_time).total_seconds():.0f}s ago" if peer.record.renew_time else "never"
        rows.append((peer.name, state_of(peer, live, now), str(len(mine)),
                     "" if peer.objects is None else str(peer.objects), renewed, ranges))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()
             for row in rows]
    return "\n".join(lines)


def operator_name(args: argparse.Namespace) -> str:
    """The name `run` gives its members' Leases with the same flags and environment:
    --leader-election-id, else $OPERATOR_NAME, else a hash of the kinds in the watches file."""
    argv = ["--watches-file", args.watches_file]
    if args.leader_election_id:
        argv += ["--leader-election-id", args.leader_election_id]
    config = settings.parse(argv)
    if config.leader_election.id:
        return config.leader_election.id
    watches = load_watches(Path(config.watching.watches_file), env=config.environment,
                           defaults=config.watching.defaults)
    return leader.lease_id(None, [(w.group, w.version, w.kind) for w in watches])


def main(args: argparse.Namespace) -> int:
    try:
        name = operator_name(args)
    except (WatchesError, FileNotFoundError) as err:
        print(f"error: cannot name the operator from {args.watches_file} ({err}); give --leader-election-id",
              file=sys.stderr)
        return 1
    try:
        load_config()
        namespace = args.namespace or default_namespace()
        leases = shards.KubeMemberLeaseApi().list(namespace, name)
    except Exception as err:  # no kubeconfig, no cluster, no rights: say which, in a line
        print(f"error: cannot read the members' Leases: {err}", file=sys.stderr)
        return 1
    if not leases:
        print(f"no members of {name} in namespace {namespace} (is it running with --sharding there?)",
              file=sys.stderr)
        return 1
    print(table(leases, datetime.now(UTC), wide=args.wide))
    return 0
