"""``/metrics`` served securely, as the SDK's ``--metrics-secure`` and ``--metrics-require-rbac``
serve it (controller-runtime's secure serving and its authentication-and-authorization filter).

- Secure: HTTPS with a self-signed certificate made at start-up, kept in memory only (as
  controller-runtime does when given no certificate directory).
- RBAC: each scrape carries a bearer token. The apiserver says whose it is (a TokenReview) and
  whether that user may ``get`` the non-resource URL ``/metrics`` (a SubjectAccessReview), as
  Prometheus' ServiceAccount is allowed by the SDK scaffold's ``metrics-reader`` ClusterRole.
  401 without a valid token, 403 without the right. Answers are kept a little while, so a
  scrape every few seconds costs the apiserver nothing more.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import ssl
import tempfile
import time
from collections.abc import Callable
from typing import Any

# How long the apiserver's answer about a token is kept (controller-runtime's cache holds them
# for a minute too).
DECISION_TTL = 60.0


def self_signed_context() -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "playbook-operator metrics")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # ssl loads certificates from files only: one readable by this process alone, gone at once.
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    return context


# (token) -> (user, groups), or None when the apiserver does not know the token.
Authenticate = Callable[[str], tuple[str, list[str]] | None]
# (user, groups) -> whether they may get /metrics.
Authorize = Callable[[str, list[str]], bool]


class MetricsGate:
    """Whether a scrape with a given Authorization header may read /metrics: an HTTP status."""

    def __init__(self, authenticate: Authenticate, authorize: Authorize,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.authenticate = authenticate
        self.authorize = authorize
        self.clock = clock
        self._decided: dict[str, tuple[float, int]] = {}

    async def status(self, authorization: str) -> int:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return 401
        token = token.strip()
        now = self.clock()
        kept = self._decided.get(token)
        if kept is not None and kept[0] > now:
            return kept[1]
        status = await asyncio.to_thread(self._decide, token)
        self._decided = {t: d for t, d in self._decided.items() if d[0] > now}
        if status != 503:
            self._decided[token] = (now + DECISION_TTL, status)
        return status

    def _decide(self, token: str) -> int:
        try:
            who = self.authenticate(token)
            if who is None:
                return 401
            return 200 if self.authorize(*who) else 403
        except Exception:  # the apiserver could not say: ask again at the next scrape
            return 503


def kube_gate() -> MetricsGate:
    """A gate that asks the apiserver the operator talks to."""
    from kubernetes import client

    def authenticate(token: str) -> tuple[str, list[str]] | None:
        review = client.AuthenticationV1Api().create_token_review(
            client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)))
        status: Any = review.status
        if not status or not status.authenticated or not status.user:
            return None
        return str(status.user.username), list(status.user.groups or [])

    def authorize(user: str, groups: list[str]) -> bool:
        review = client.AuthorizationV1Api().create_subject_access_review(
            client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
                user=user, groups=groups,
                non_resource_attributes=client.V1NonResourceAttributes(
                    path="/metrics", verb="get"))))
        return bool(review.status and review.status.allowed)

    return MetricsGate(authenticate, authorize)
