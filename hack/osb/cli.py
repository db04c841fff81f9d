"""The command line, logging and start-up both brokers share.

stdout carries one line, ``listening on http://HOST:PORT``, once the socket is bound (tests and
scripts wait for it); everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Collection
from pathlib import Path
from types import FrameType

from hack.osb.offering import Offering


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--port", type=int, required=True, help="TCP port (0: any free one)")
    p.add_argument("--state", type=Path, required=True, help="JSON state file, created if missing")
    p.add_argument("--username", required=True, help="basic auth user the platform sends")
    p.add_argument("--password", required=True, help="basic auth password the platform sends")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--async-seconds", type=float, default=3.0,
                   help="how long after its start an async operation ends (default: %(default)s)")
    p.add_argument("--catalog-prefix", default="", metavar="P",
                   help="put P before every service id, service name and plan id of the catalog (not plan "
                        "names); requests must name them so (default: none)")
    p.add_argument("--omit-service", action="append", default=[], metavar="NAME",
                   help="leave service NAME (unprefixed) out of the catalog and refuse new instances of it; "
                        "instances made before keep working (repeatable)")
    return p


def offering(p: argparse.ArgumentParser, args: argparse.Namespace, services: Collection[str]) -> Offering:
    """The `Offering` of ``--catalog-prefix`` and ``--omit-service``; a service name that is not one of
    `services` (a typo would otherwise leave the catalog whole) ends the program."""
    unknown = sorted(set(args.omit_service) - set(services))
    if unknown:
        p.error(f"--omit-service {', '.join(unknown)}: not a service of this broker ({', '.join(services)})")
    return Offering(args.catalog_prefix, frozenset(args.omit_service))


def logger(name: str) -> logging.Logger:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return logging.getLogger(name)


def announce(host: str, port: int) -> None:
    print(f"listening on http://{host}:{port}", flush=True)


def exit_on_sigterm() -> None:
    """SIGTERM ends the process like Ctrl-C does: serve_forever returns through the exception."""
    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
