"""Open Service Broker (API v2.17) brokers to run the service-catalog roles against.

- `openbroker`: the ``sync-db`` and ``async-db`` services, served by the openbrokerapi library
  (`databases` holds the services, `openbroker` the Flask app and command line).
- `edgebroker`: the ``edge`` service, standard library only, for what openbrokerapi cannot send
  (`edge` holds the plans' behaviour, `edgebroker` the HTTP server and command line).
- `process`: start, stop and restart either one as a child process (tests, ``make demo``).

Shared: `state` (the JSON state file), `lifecycle` (instance and binding records, async
operations that end by wall-clock time), `credentials`, `requestlog` (``GET /admin/requests``
and the stderr line per request, both without secrets), `offering` (``--catalog-prefix`` and
``--omit-service``: which services the catalog shows, under which ids) and `cli` (command line,
stdout).
A broker started again on the same state file carries on where the last one stopped.
"""
