"""A standard-library broker for the OSB answers openbrokerapi cannot give: the ``edge`` service
of `hack.osb.edge`.

    python -m hack.osb.edgebroker --port PORT --state FILE --username U --password P
        [--host 127.0.0.1] [--async-seconds 3] [--slow-seconds 30] [--delete-failures 2]
        [--catalog-prefix P] [--omit-service edge]

Every ``/v2`` request needs ``X-Broker-API-Version`` 2.13 or later (else 412) and basic auth
(else 401); PUT and PATCH bodies must be JSON objects (else 400). Without auth, to loopback
clients only: ``GET /admin/requests`` (the request log) and ``POST /admin/maintenance``.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hack.osb import cli, requestlog
from hack.osb.edge import SERVICE_NAME, EdgeService, Reply, bad_request, empty_state
from hack.osb.state import StateFile

MIN_VERSION = (2, 13)
LOOPBACK = frozenset({"127.0.0.1", "::1"})
INSTANCE = re.compile(r"/v2/service_instances/([^/]+)")
INSTANCE_OPERATION = re.compile(r"/v2/service_instances/([^/]+)/last_operation")
BINDING = re.compile(r"/v2/service_instances/([^/]+)/service_bindings/([^/]+)")
BINDING_OPERATION = re.compile(r"/v2/service_instances/([^/]+)/service_bindings/([^/]+)/last_operation")


class EdgeServer(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], service: EdgeService, username: str, password: str,
                 log: logging.Logger) -> None:
        super().__init__(address, Handler)
        self.service = service
        self.expected_auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.log = log
        # Set on shutdown, so that a reply held back on purpose (slow plans) does not hold it up.
        self.stopping = threading.Event()


def version_refusal(header: str | None) -> Reply | None:
    """The 412 for a missing or too old X-Broker-API-Version, if it is."""
    try:
        version = tuple(int(part) for part in (header or "").split("."))
    except ValueError:
        version = ()
    if len(version) >= 2 and version >= MIN_VERSION:
        return None
    return Reply(412, {"error": "PreconditionFailed",
                       "description": f"X-Broker-API-Version {header or '(missing)'}: this broker needs 2.13 or later"})


def route(service: EdgeService, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
    """The OSB call for `method` on `path`."""
    accepts_incomplete = query.get("accepts_incomplete") == "true"
    if method in ("PUT", "PATCH") and not isinstance(body, dict):
        return bad_request("the request body must be a JSON object")
    if method == "DELETE" and not (query.get("service_id") and query.get("plan_id")):
        return bad_request("service_id and plan_id are required query parameters")
    if path == "/v2/catalog" and method == "GET":
        return service.catalog()
    if m := BINDING_OPERATION.fullmatch(path):
        return service.last_binding_operation(*m.groups()) if method == "GET" else Reply(405, {})
    if m := INSTANCE_OPERATION.fullmatch(path):
        return service.last_operation(m[1]) if method == "GET" else Reply(405, {})
    if m := BINDING.fullmatch(path):
        calls = {"PUT": lambda: service.bind(m[1], m[2], body, accepts_incomplete),
                 "DELETE": lambda: service.unbind(m[1], m[2], accepts_incomplete),
                 "GET": lambda: service.get_binding(m[1], m[2])}
    elif m := INSTANCE.fullmatch(path):
        calls = {"PUT": lambda: service.provision(m[1], body, accepts_incomplete),
                 "PATCH": lambda: service.update(m[1], body),
                 "DELETE": lambda: service.deprovision(m[1], accepts_incomplete),
                 "GET": lambda: service.get_instance(m[1])}
    else:
        return Reply(404, {"description": f"no endpoint {path}"})
    call = calls.get(method)
    return call() if call else Reply(405, {})


class Handler(BaseHTTPRequestHandler):
    server: EdgeServer

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_PATCH = do_DELETE = do_POST = do_GET

    def _handle(self) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw  # not JSON: route() refuses it where a body is needed
        if url.path.startswith("/admin/"):
            reply = self._admin(url.path, body)
        else:
            reply = self._v2(url.path, query, body)
            item = requestlog.entry(self.command, url.path, query, self.headers.items(), raw, reply.status)
            with self.server.service.store.change() as data:
                requestlog.append(data["requests"], item)
        if reply.delay and self.server.stopping.wait(reply.delay):
            return
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.server.log.info("%s %s: the client went away before the answer", self.command, self.path)
        self.server.log.info(requestlog.line(self.command, self.path, reply.status, time.monotonic() - started))

    def _admin(self, path: str, body: Any) -> Reply:
        if self.client_address[0] not in LOOPBACK:
            return Reply(403, {"description": "admin endpoints answer loopback clients only"})
        if path == "/admin/requests" and self.command == "GET":
            with self.server.service.store.view() as data:
                return Reply(200, list(data["requests"]))
        if path == "/admin/maintenance" and self.command == "POST":
            return self.server.service.set_maintenance(body)
        return Reply(404, {"description": f"no endpoint {self.command} {path}"})

    def _v2(self, path: str, query: dict[str, str], body: Any) -> Reply:
        if refusal := version_refusal(self.headers.get("X-Broker-API-Version")):
            return refusal
        given = self.headers.get("Authorization") or ""
        if not hmac.compare_digest(given.encode(), self.server.expected_auth.encode()):
            return Reply(401, {"description": "basic auth with the broker's credentials is required"},
                         {"WWW-Authenticate": 'Basic realm="edge broker"'})
        return route(self.server.service, self.command, path, query, body)

    def _send(self, reply: Reply) -> None:
        payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _handle logs its own line, with the time taken

    def log_message(self, format: str, *args: Any) -> None:
        self.server.log.info("%s", format % args)


def main(argv: Sequence[str] | None = None) -> None:
    p = cli.parser("python -m hack.osb.edgebroker", __doc__.splitlines()[0])
    p.add_argument("--slow-seconds", type=float, default=30.0,
                   help="how long the slow and bind-timeout plans take to answer (default: %(default)s)")
    p.add_argument("--delete-failures", type=int, default=2,
                   help="how many deletes of an error500 instance fail first (default: %(default)s)")
    args = p.parse_args(argv)
    offering = cli.offering(p, args, [SERVICE_NAME])
    log = cli.logger("edgebroker")
    store = StateFile(args.state, empty_state)
    service = EdgeService(store, args.async_seconds, args.slow_seconds, args.delete_failures, offering)
    server = EdgeServer((args.host, args.port), service, args.username, args.password, log)
    cli.exit_on_sigterm()
    cli.announce(args.host, server.server_port)
    try:
        server.serve_forever()
    finally:
        server.stopping.set()
        server.server_close()


if __name__ == "__main__":
    main()
