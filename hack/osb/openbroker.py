"""A broker built on openbrokerapi 4.7 and its Flask blueprint: the ``sync-db`` and ``async-db``
services of `hack.osb.databases`.

    python -m hack.osb.openbroker --port PORT --state FILE --username U --password P
        [--host 127.0.0.1] [--async-seconds 3] [--catalog-prefix P] [--omit-service NAME]...

Besides the blueprint's OSB routes, the Flask app serves ``GET /admin/requests`` (the request
log, without auth, only to loopback clients) and records every OSB request in the state file.
``GET /v2/catalog`` is the blueprint's route (auth, version check) with the app's view: the
services `DatabaseBroker.offered()`, not `DatabaseBroker.catalog()`, which openbrokerapi checks
plan ids against and which keeps the ``--omit-service`` ones for their instances.

What openbrokerapi does on its own: a missing ``X-Broker-API-Version`` header is 400 (not 412),
one below 2.13 is 412; a bad or missing basic auth is 401; PUT and PATCH need
``Content-Type: application/json`` (else 400). Its check that a provision names
organization_guid and space_guid (a Cloud Foundry notion; a Kubernetes platform sends a
``context`` instead) is switched off. A poll of an instance's or binding's last_operation
after its async delete finished answers 200 ``succeeded``; of one never seen, 404.

The ``broken`` plan's refusal goes through openbrokerapi's ErrBadRequest handler: 400 with
``{"description": "plan broken cannot be provisioned: no capacity in region test-1"}`` and no
``error`` field. `hack.osb.databases` lists how the library answers each error it raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import openbrokerapi.settings
from flask import Flask, Response, g, jsonify, request
from openbrokerapi import errors
from openbrokerapi.api import get_blueprint
from openbrokerapi.auth import BrokerCredentials
from openbrokerapi.helper import to_json_response
from openbrokerapi.response import CatalogResponse
from werkzeug.serving import make_server

from hack.osb import cli, lifecycle, requestlog
from hack.osb.databases import SERVICES, DatabaseBroker
from hack.osb.state import StateFile

LOOPBACK = frozenset({"127.0.0.1", "::1"})


class ExpectedAnswers(logging.Filter):
    """Drops the tracebacks openbrokerapi logs for the OSB errors a broker raises on purpose
    (409, 410, 422, ...); a real failure still gets its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], errors.ServiceException))


def create_app(store: StateFile, broker: DatabaseBroker, username: str, password: str,
               log: logging.Logger) -> Flask:
    openbrokerapi.settings.DISABLE_SPACE_ORG_GUID_CHECK = True
    library_log = log.getChild("openbrokerapi")
    library_log.addFilter(ExpectedAnswers())
    app = Flask("openbroker")
    app.register_blueprint(get_blueprint(broker, BrokerCredentials(username, password), library_log))

    def offered_catalog() -> Response:
        return to_json_response(CatalogResponse(broker.offered()))  # type: ignore[no-any-return]

    assert "open_broker.catalog" in app.view_functions, "openbrokerapi renamed its catalog view"
    app.view_functions["open_broker.catalog"] = offered_catalog

    @app.get("/admin/requests")
    def admin_requests() -> Response | tuple[Response, int]:
        if request.remote_addr not in LOOPBACK:
            return jsonify({"description": "admin endpoints answer loopback clients only"}), 403
        with store.view() as data:
            return jsonify(data["requests"])

    @app.before_request
    def start_clock() -> None:
        g.started = time.monotonic()

    @app.after_request
    def record(response: Response) -> Response:
        target = request.full_path.rstrip("?")
        log.info(requestlog.line(request.method, target, response.status_code, time.monotonic() - g.started))
        if not request.path.startswith("/admin/"):
            item = requestlog.entry(request.method, request.path, request.args.to_dict(), request.headers.items(),
                                    request.get_data(), response.status_code)
            with store.change() as data:
                requestlog.append(data["requests"], item)
        return response

    return app


def main(argv: Sequence[str] | None = None) -> None:
    p = cli.parser("python -m hack.osb.openbroker", __doc__.splitlines()[0])
    args = p.parse_args(argv)
    offering = cli.offering(p, args, SERVICES)
    log = cli.logger("openbroker")
    # openbrokerapi logs every request header, Authorization too, at DEBUG; werkzeug logs its
    # own line per request, which the app's replaces.
    logging.getLogger("openbrokerapi").setLevel(logging.INFO)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    store = StateFile(args.state, lifecycle.empty_state)
    broker = DatabaseBroker(store, args.async_seconds, offering)
    app = create_app(store, broker, args.username, args.password, log)
    server = make_server(args.host, args.port, app, threaded=True)
    cli.exit_on_sigterm()
    cli.announce(args.host, server.server_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
