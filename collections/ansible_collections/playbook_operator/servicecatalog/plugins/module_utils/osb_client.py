"""One HTTP request to an Open Service Broker (API v2.17): the headers every request carries, basic
auth, the URL, the TLS context a ClusterServiceBroker asks for, and the exchange itself under one
deadline. No Ansible here, so it is tested on its own (tests/unit/test_osb_request.py).

Nothing here puts a header value or a request body into an error message: the Authorization header
and the body can carry secrets."""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import email.utils
import http.client
import math
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

API_VERSION = "2.17"
# A catalog of many services is a few MiB; an answer beyond this is not one a role should parse.
MAX_BODY_BYTES = 32 * 1024 * 1024
# Characters a path may hold as given (RFC 3986 pchar, "/" and an existing %-escape); others are escaped.
PATH_SAFE = "/%:@!$&'()*+,;=-._~"


class AnswerTooLarge(http.client.HTTPException):
    pass


@dataclass(frozen=True)
class Response:
    """What came back: status 0 and an error line when there was no answer."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case
    body: bytes = b""
    timed_out: bool = False
    error: str = ""


def basic_auth(username: str, password: str) -> str:
    """The Authorization header value for HTTP basic auth (RFC 7617, UTF-8)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def request_headers(*, has_body: bool, authorization: str | None = None) -> dict[str, str]:
    """The headers of every OSB request. No X-Broker-API-Originating-Identity: the operator acts
    on its own behalf, and the user behind a change is not known to it."""
    headers = {"X-Broker-API-Version": API_VERSION, "Accept": "application/json"}
    if has_body:
        headers["Content-Type"] = "application/json"
    if authorization:
        headers["Authorization"] = authorization
    return headers


def query_string(query: Mapping[str, Any] | None) -> str:
    """URL-encoded query; booleans as OSB spells them (accepts_incomplete=true), None left out."""
    pairs: list[tuple[str, str]] = []
    for key, value in (query or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        pairs.append((str(key), str(value)))
    return urlencode(pairs)


def _host_port(netloc: str) -> str:
    # User info in a broker URL is neither sent nor repeated in a message.
    return netloc.rpartition("@")[2]


def request_url(base: str, path: str, query: Mapping[str, Any] | None = None) -> str:
    """The broker URL (which may end in a path prefix) joined with an OSB path and query.
    Raises ValueError for a URL that is not http(s)://host[:port][/prefix]."""
    parts = urlsplit((base or "").strip())
    try:
        parts.port  # noqa: B018 - validates the port
        host = parts.hostname
    except ValueError:
        host = None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"the broker URL is not http(s)://host[:port][/path]: {_host_port(parts.netloc)!r}")
    prefix = parts.path.rstrip("/")
    target = quote("/" + path.lstrip("/"), safe=PATH_SAFE)
    url = f"{parts.scheme}://{_host_port(parts.netloc)}{prefix}{target}"
    encoded = query_string(query)
    return f"{url}?{encoded}" if encoded else url


def ca_bundle_pem(value: str) -> str:
    """PEM text from a caBundle as a CRD `format: byte` field holds it (base64 of the PEM);
    PEM given as is is accepted too. Raises ValueError."""
    text = value.strip()
    if not text.startswith("-----BEGIN"):
        try:
            text = base64.b64decode("".join(text.split()), validate=True).decode("ascii")
        except (binascii.Error, ValueError):
            raise ValueError("caBundle is neither base64 of PEM nor PEM") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError("caBundle holds no PEM certificate")
    return text


def tls_context(ca_bundle: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """Verification against caBundle alone when given (as Kubernetes reads a caBundle), the
    system CAs otherwise, none with insecureSkipTLSVerify. Raises ValueError for a bad bundle."""
    if insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_bundle:
        pem = ca_bundle_pem(ca_bundle)
        try:
            return ssl.create_default_context(cadata=pem)
        except ssl.SSLError as exc:
            raise ValueError(f"caBundle: {exc.reason or exc}") from None
    return ssl.create_default_context()


def retry_after(value: str | None, now: float | None = None) -> int | None:
    """Seconds from a Retry-After header, given as seconds or as an HTTP-date; None otherwise."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": HTTP-dates are GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(0, math.ceil(when.timestamp() - (time.time() if now is None else now)))


def describe_error(exc: BaseException) -> str:
    """A connection or TLS failure in a few words."""
    if isinstance(exc, AnswerTooLarge):
        return f"the answer is larger than {MAX_BODY_BYTES // 2**20} MiB"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host: {exc.strerror}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the broker closed the connection without answering"
    if isinstance(exc, http.client.HTTPException):
        return f"not an HTTP answer ({type(exc).__name__})"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


def _read(answer: http.client.HTTPResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := answer.read(65536):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise AnswerTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def send(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None = None,
    *,
    timeout: float,
    context: ssl.SSLContext | None = None,
) -> Response:
    """Send one request and read the whole answer within `timeout` seconds. Never raises for a
    network, TLS or HTTP failure: those come back as an error line (no header value, no body)."""
    parts = urlsplit(url)
    where = f"{method} {parts.scheme}://{_host_port(parts.netloc)}{parts.path}"
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)

    # The socket timeout bounds each wait; this bounds the whole exchange, so a broker that
    # answers a byte at a time still times out.
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown: SSLSocket's would drop its TLS state under the reader.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request(method, target, body=body, headers=dict(headers))
        answer = conn.getresponse()
        data = _read(answer)
        if expired.is_set():
            return Response(timed_out=True, error=f"{where}: no complete answer within {timeout:g}s")
        return Response(
            status=answer.status,
            headers={name.lower(): value for name, value in answer.getheaders()},
            body=data,
        )
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set() or isinstance(exc, TimeoutError):
            return Response(timed_out=True, error=f"{where}: no complete answer within {timeout:g}s")
        return Response(error=f"{where}: {describe_error(exc)}")
    finally:
        watchdog.cancel()
        conn.close()
