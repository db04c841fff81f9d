"""playbook_operator.servicecatalog.osb_request without a cluster: the OSB client's pure parts,
parametersFrom merging and the credential Secret, and the module end to end against a broker stub
(a real http.server in a thread, plain and TLS) with a fake Secrets API. The last tests plant
distinctive secrets and look for them in everything the module printed."""

from __future__ import annotations

import base64
import copy
import datetime
import email.utils
import hashlib
import ipaddress
import json
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from ansible.module_utils.common.warnings import _global_warnings as warnings

from tests.support import ROOT

# The collections live in-tree; Python finds them as ansible_collections.<namespace>.<name>.
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.operator_sdk.util.plugins.module_utils import kube
from ansible_collections.playbook_operator.servicecatalog.plugins.module_utils import (
    osb_client,
    secret_data,
)
from ansible_collections.playbook_operator.servicecatalog.plugins.module_utils.secret_data import (
    CredentialsError,
    ParametersError,
    SecretDataError,
    SecretValue,
)
from ansible_collections.playbook_operator.servicecatalog.plugins.modules import osb_request
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError, UnprocessibleEntityError

from tests.unit.module_args import patch_module_args

pytestmark = pytest.mark.unit

# Planted secrets: none of these may show up in anything the module prints.
PASSWORD = "pw-Sentinel-Zq8x-41"
PARAM_SECRET = "param-Sentinel-Kx2-77"
CREDENTIAL = "cred-Sentinel-Mv9-03"
PLANTED = (PASSWORD, PARAM_SECRET, CREDENTIAL)

NS = "team-a"
BROKER_NS = "brokers"
INSTANCE = "/v2/service_instances/4f6e6cf6-ffdd-425f-a2c7-3c9258ad2468"
BINDING = f"{INSTANCE}/service_bindings/3a9c1b7e-1b0a-4e2a-8b43-4a3c2f1d5e6f"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1", "uid": f"uid-{name}"},
        "type": "Opaque",
        "data": {key: b64(value) for key, value in data.items()},
    }


# --- the broker stub -------------------------------------------------------------------------


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # a dict is sent as JSON, bytes as they are, None as nothing
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # before the status line
    drip: float = 0.0  # between the body's bytes


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout test) is expected


class Broker:
    """An OSB broker on 127.0.0.1: answers from a table, records every request."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.answers: dict[tuple[str, str], Answer] = {}
        self.requests: list[Seen] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                stub.requests.append(Seen(self.command, split.path, parse_qs(split.query), dict(self.headers), raw))
                answer = stub.answers.get((self.command, split.path), Answer(404, {"description": "no route"}))
                time.sleep(answer.delay)
                if isinstance(answer.body, bytes):
                    data = answer.body
                else:
                    data = b"" if answer.body is None else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if answer.drip:
                    for i in range(len(data)):
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        time.sleep(answer.drip)
                else:
                    self.wfile.write(data)

            do_GET = do_PUT = do_PATCH = do_DELETE = serve

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, method: str, path: str, status: int = 200, body: Any = None, **kwargs: Any) -> None:
        self.answers[(method, path)] = Answer(status, body, **kwargs)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def broker() -> Iterator[Broker]:
    stub = Broker()
    yield stub
    stub.close()


@dataclass
class Certs:
    ca_pem: str
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA of the test's own and a certificate it signed for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "osb test CA")])
    usage = {name: False for name in ("content_commitment", "key_encipherment", "data_encipherment",
                                      "key_agreement", "encipher_only", "decipher_only")}
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **usage),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("osb-tls")
    cert, key_file = directory / "tls.crt", directory / "tls.key"
    cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Certs(ca.public_bytes(serialization.Encoding.PEM).decode(), cert, key_file)


def refused_url() -> str:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- osb_client: pure parts ------------------------------------------------------------------


def test_every_request_says_its_api_version_and_no_originating_identity() -> None:
    plain = osb_client.request_headers(has_body=False)
    assert plain == {"X-Broker-API-Version": "2.17", "Accept": "application/json"}
    with_body = osb_client.request_headers(has_body=True, authorization="Basic eA==")
    assert with_body["Content-Type"] == "application/json"
    assert with_body["Authorization"] == "Basic eA=="
    assert not any(name.lower().startswith("x-broker-api-originating") for name in with_body)


def test_basic_auth_is_base64_of_user_colon_password_in_utf8() -> None:
    assert osb_client.basic_auth("Aladdin", "open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    assert base64.b64decode(osb_client.basic_auth("ü", "é").split()[1]).decode() == "ü:é"


def test_urls_join_the_broker_prefix_and_spell_booleans_as_osb_does() -> None:
    url = osb_client.request_url("https://broker.example.com/osb/", "/v2/service_instances/a b",
                                 {"accepts_incomplete": True, "force": False, "plan_id": "p1", "gone": None})
    assert url == ("https://broker.example.com/osb/v2/service_instances/a%20b"
                   "?accepts_incomplete=true&force=false&plan_id=p1")
    assert osb_client.request_url("http://10.0.0.1:8080", "v2/catalog") == "http://10.0.0.1:8080/v2/catalog"
    # Already escaped stays escaped; user info is never sent.
    assert osb_client.request_url("http://u:secret@h", "/v2/x%2Fy") == "http://h/v2/x%2Fy"


@pytest.mark.parametrize("url", ["", "broker.example.com", "ftp://h/", "http://", "http://u:secret@h:port/"])
def test_a_broker_url_that_is_not_http_is_refused_without_its_user_info(url: str) -> None:
    with pytest.raises(ValueError, match="not http") as caught:
        osb_client.request_url(url, "/v2/catalog")
    assert "secret" not in str(caught.value)


def test_retry_after_reads_seconds_or_an_http_date() -> None:
    now = 1_700_000_000.0
    assert osb_client.retry_after("120") == 120
    assert osb_client.retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30
    assert osb_client.retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0
    for value in (None, "", "soon", "-5", "1.5"):
        assert osb_client.retry_after(value, now=now) is None


def test_ca_bundle_is_base64_of_pem_or_pem(certs: Certs) -> None:
    assert osb_client.ca_bundle_pem(b64(certs.ca_pem)) == certs.ca_pem
    wrapped = "\n".join(re.findall(".{1,76}", b64(certs.ca_pem)))  # as a YAML block may hold it
    assert osb_client.ca_bundle_pem(wrapped) == certs.ca_pem
    assert osb_client.ca_bundle_pem(f"  {certs.ca_pem}") == certs.ca_pem.strip()
    with pytest.raises(ValueError, match="neither base64 of PEM nor PEM"):
        osb_client.ca_bundle_pem("not base64 at all!")
    with pytest.raises(ValueError, match="no PEM certificate"):
        osb_client.ca_bundle_pem(b64("hello"))
    with pytest.raises(ValueError, match="caBundle"):
        osb_client.tls_context(b64("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))


def test_tls_context_verifies_unless_told_not_to(certs: Certs) -> None:
    system = osb_client.tls_context()
    assert system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname
    bundle = osb_client.tls_context(b64(certs.ca_pem))
    assert bundle.verify_mode == ssl.CERT_REQUIRED and bundle.check_hostname
    assert [ca["subject"] for ca in bundle.get_ca_certs()] == [((("commonName", "osb test CA"),),)]
    insecure = osb_client.tls_context(b64(certs.ca_pem), insecure=True)
    assert insecure.verify_mode == ssl.CERT_NONE and not insecure.check_hostname


# --- osb_client: the exchange ----------------------------------------------------------------


def test_send_returns_status_headers_and_body(broker: Broker) -> None:
    broker.answer("GET", "/v2/catalog", 200, {"services": []}, headers={"X-Thing": "1"})
    url = osb_client.request_url(broker.url, "/v2/catalog")
    answer = osb_client.send("GET", url, osb_client.request_headers(has_body=False), timeout=5)
    assert (answer.status, answer.timed_out, answer.error) == (200, False, "")
    assert json.loads(answer.body) == {"services": []}
    assert answer.headers["x-thing"] == "1"


def test_a_refused_connection_is_an_error_line() -> None:
    url = refused_url()
    answer = osb_client.send("GET", f"{url}/v2/catalog", {}, timeout=5)
    assert answer.status == 0 and not answer.timed_out
    assert answer.error == f"GET {url}/v2/catalog: connection refused"


@pytest.mark.parametrize("slow", [{"delay": 2.0}, {"drip": 0.2}], ids=["no-answer", "byte-by-byte"])
def test_the_timeout_bounds_the_whole_exchange(broker: Broker, slow: dict[str, float]) -> None:
    broker.answer("GET", "/v2/catalog", 200, {"services": ["x" * 20]}, **slow)
    started = time.monotonic()
    answer = osb_client.send("GET", f"{broker.url}/v2/catalog", {}, timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert answer.timed_out and answer.status == 0
    assert "no complete answer within 0.5s" in answer.error


# --- credentials: parametersFrom -----------------------------------------------------------


def value(name: str, key: str, text: str) -> SecretValue:
    return SecretValue(f"{NS}/{name}", key, text)


def test_parameters_from_adds_the_top_level_keys_of_each_secret() -> None:
    merged = secret_data.merge_parameters(
        {"size": "small"},
        [value("db", "params", '{"password": "x", "nested": {"a": 1}}'), value("other", "p", '{"region": "eu"}')],
    )
    assert merged == {"size": "small", "password": "x", "nested": {"a": 1}, "region": "eu"}
    assert secret_data.merge_parameters(None, []) == {}


@pytest.mark.parametrize(
    ("given", "texts", "message"),
    [
        ({"password": "a"}, [f'{{"password": "{PARAM_SECRET}"}}'],
         f"parameter 'password' is defined both in parameters and in key 'k0' of Secret {NS}/s0"),
        (None, ['{"x": 1}', f'{{"x": "{PARAM_SECRET}"}}'],
         f"parameter 'x' is defined both in key 'k0' of Secret {NS}/s0 and in key 'k1' of Secret {NS}/s1"),
        (None, [f"{PARAM_SECRET} is not JSON"], f"key 'k0' of Secret {NS}/s0 is not JSON (Expecting value"),
        (None, [f'["{PARAM_SECRET}"]'], f"key 'k0' of Secret {NS}/s0 holds an array, not a JSON object"),
        (None, [f'"{PARAM_SECRET}"'], "holds a string, not a JSON object"),
    ],
)
def test_parameters_from_errors_name_the_secret_and_key_never_the_value(
    given: dict[str, Any] | None, texts: list[str], message: str
) -> None:
    values = [value(f"s{i}", f"k{i}", text) for i, text in enumerate(texts)]
    with pytest.raises(ParametersError) as caught:
        secret_data.merge_parameters(given, values)
    assert message in str(caught.value)
    assert PARAM_SECRET not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__
    assert PARAM_SECRET not in repr(values)


def test_secret_text_decodes_a_key_or_says_what_is_missing() -> None:
    found = secret("db", NS, params='{"a": 1}')
    assert secret_data.secret_text(found, f"{NS}/db", "params") == '{"a": 1}'
    with pytest.raises(SecretDataError, match=f"Secret {NS}/db not found"):
        secret_data.secret_text(None, f"{NS}/db", "params")
    with pytest.raises(SecretDataError, match="has no key 'other'"):
        secret_data.secret_text(found, f"{NS}/db", "other")
    latin1 = {"data": {"k": base64.b64encode(b"\xff\xfe").decode()}}
    with pytest.raises(SecretDataError, match="not base64 of UTF-8 text") as caught:
        secret_data.secret_text(latin1, f"{NS}/db", "k")
    assert "xff" not in str(caught.value) and caught.value.__suppress_context__


def test_the_checksum_is_sha256_of_canonical_json_and_empty_without_parameters() -> None:
    params = {"b": [1, {"y": 2, "x": "é"}], "a": True}
    expected = hashlib.sha256('{"a":true,"b":[1,{"x":"é","y":2}]}'.encode()).hexdigest()
    assert secret_data.parameters_checksum(params) == expected
    assert secret_data.parameters_checksum(dict(reversed(params.items()))) == expected
    assert secret_data.parameters_checksum({}) == secret_data.parameters_checksum(None) == ""
    assert secret_data.parameters_checksum({"a": False}) != expected


# --- credentials: the Secret ----------------------------------------------------------------


CREDS = {"type": "postgresql", "host": "db.example.com", "port": 5432, "password": CREDENTIAL,
         "options": {"ssl": True}, "replicas": ["r1", "r2"]}


def test_each_credential_is_a_key_strings_as_is_and_the_rest_as_json() -> None:
    data = secret_data.credential_secret_data(CREDS)
    decoded = {key: base64.b64decode(text).decode() for key, text in data.items()}
    assert decoded == {"type": "postgresql", "host": "db.example.com", "port": "5432", "password": CREDENTIAL,
                       "options": '{"ssl": true}', "replicas": '["r1", "r2"]'}
    assert secret_data.credential_keys(CREDS) == ["host", "options", "password", "port", "replicas", "type"]
    with pytest.raises(CredentialsError, match="'a b' cannot be a Secret key"):
        secret_data.credential_secret_data({"a b": "x"})


@pytest.mark.parametrize(
    ("given", "expected"),
    [({"type": "postgresql"}, "servicebinding.io/postgresql"), ({"type": ""}, "Opaque"),
     ({"type": 3}, "Opaque"), ({}, "Opaque")],
)
def test_the_secret_type_follows_servicebinding_io(given: dict[str, Any], expected: str) -> None:
    assert secret_data.credential_secret_type(given) == expected


OWNER = {"apiVersion": "servicecatalog.k8s.io/v1beta1", "kind": "ServiceBinding", "name": "b",
         "uid": "uid-binding", "controller": True, "blockOwnerDeletion": True}


def test_a_secret_is_updated_only_when_something_differs_and_keeps_what_others_set() -> None:
    desired = secret_data.credential_secret("creds", NS, CREDS, OWNER, {"app": "x"})
    assert desired["type"] == "servicebinding.io/postgresql"
    assert desired["metadata"] == {"name": "creds", "namespace": NS, "labels": {"app": "x"},
                                   "ownerReferences": [OWNER]}
    stored = copy.deepcopy(desired)
    stored["metadata"].update(resourceVersion="5", labels={"app": "x", "keep": "me"})
    stored["metadata"]["ownerReferences"] = [{"kind": "Other", "uid": "uid-other"}, OWNER]
    assert secret_data.secret_update(stored, desired) is None

    changed = secret_data.credential_secret("creds", NS, {**CREDS, "port": 5433}, OWNER, {"app": "x"})
    update = secret_data.secret_update(stored, changed)
    assert update is not None
    assert update["data"] == changed["data"] and update["metadata"]["resourceVersion"] == "5"
    assert update["metadata"]["labels"] == {"app": "x", "keep": "me"}
    assert update["metadata"]["ownerReferences"] == [{"kind": "Other", "uid": "uid-other"}, OWNER]
    no_owner = {**stored, "metadata": {**stored["metadata"], "ownerReferences": []}}
    assert secret_data.secret_update(no_owner, desired) is not None


def test_scrub_masks_known_secrets_inside_strings_only() -> None:
    found = secret_data.secret_strings({"a": PASSWORD, "b": [5432, True, "db"], "c": None})
    assert found == {PASSWORD, "5432"}
    cleaned = secret_data.scrub({PASSWORD: f"x{PASSWORD}y", "n": [5432, "port 5432"]}, found)
    assert cleaned == {PASSWORD: "x********y", "n": [5432, "port ********"]}


# --- the module, against the stub and a fake Secrets API -------------------------------------


class FakeObject:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = copy.deepcopy(data)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)


class FakeSecrets:
    """Secrets by (namespace, name), with resourceVersions; the first `conflicts` writes get a 409
    (someone else wrote in between); `fail_writes` makes every write a 422."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {(o["metadata"]["namespace"], o["metadata"]["name"]): copy.deepcopy(o) for o in objects}
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.conflicts = 0
        self.fail_writes = False

    @staticmethod
    def _missing() -> NotFoundError:
        return NotFoundError(ApiException(status=404, reason="Not Found"))

    def _write(self, verb: str, body: dict[str, Any]) -> None:
        self.writes.append((verb, copy.deepcopy(body)))
        if self.fail_writes:
            status = json.dumps({"kind": "Status", "message": "admission webhook said no", "code": 422})
            exc = ApiException(status=422, reason="Unprocessable Entity")
            exc.body = status
            raise UnprocessibleEntityError(exc)
        if self.conflicts:
            self.conflicts -= 1
            key = (body["metadata"]["namespace"], body["metadata"]["name"])
            if key in self.objects:
                self.bump(key)
            raise ConflictError(ApiException(status=409, reason="Conflict"))

    def bump(self, key: tuple[str, str]) -> None:
        meta = self.objects[key]["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)

    def get(self, name: str, namespace: str) -> FakeObject:
        if (namespace, name) not in self.objects:
            raise self._missing()
        return FakeObject(self.objects[(namespace, name)])

    def create(self, body: dict[str, Any], namespace: str) -> FakeObject:
        self._write("create", body)
        key = (namespace, body["metadata"]["name"])
        if key in self.objects:
            raise ConflictError(ApiException(status=409, reason="AlreadyExists"))
        self.objects[key] = copy.deepcopy(body)
        self.objects[key]["metadata"].update(resourceVersion="1", uid="uid-new")
        return FakeObject(self.objects[key])

    def replace(self, body: dict[str, Any], namespace: str) -> FakeObject:
        self._write("replace", body)
        key = (namespace, body["metadata"]["name"])
        current = self.objects[key]
        if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise ConflictError(ApiException(status=409, reason="Conflict"))
        assert body.get("type") == current.get("type"), "the apiserver refuses a type change"
        self.objects[key] = copy.deepcopy(body)
        self.bump(key)
        return FakeObject(self.objects[key])

    def delete(self, name: str, namespace: str, body: dict[str, Any]) -> None:
        self._write("delete", {"metadata": {"name": name, "namespace": namespace}, **body})
        current = self.objects[(namespace, name)]
        if body["preconditions"]["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise ConflictError(ApiException(status=409, reason="Conflict"))
        del self.objects[(namespace, name)]


class FakeClient:
    def __init__(self, secrets: FakeSecrets) -> None:
        self.secrets = secrets

    def resource(self, kind: str, api_version: str) -> FakeSecrets:
        assert (kind, api_version) == ("Secret", "v1")
        return self.secrets


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeSecrets:
    secrets = FakeSecrets(
        secret("broker-auth", BROKER_NS, username="osb", password=PASSWORD),
        secret("db-params", NS, params=json.dumps({"admin_password": PARAM_SECRET, "tier": "gold"})),
        secret("more-params", NS, params='{"region": "eu-west-1"}', array='["a"]', bad=f"{PARAM_SECRET} not json"),
        secret("clash", NS, params=json.dumps({"size": PARAM_SECRET})),
    )
    monkeypatch.setattr(osb_request, "api_client", lambda module: FakeClient(secrets))
    return secrets


def broker_object(url: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "servicecatalog.k8s.io/v1beta1",
        "kind": "ClusterServiceBroker",
        "metadata": {"name": "stub"},
        "spec": {"url": url, "authInfo": {"basic": {"secretRef": {"name": "broker-auth", "namespace": BROKER_NS}}},
                 **spec},
    }


class Runner:
    """Runs the module's main() with arguments; keeps everything it printed."""

    def __init__(self, capsys: pytest.CaptureFixture[str], url: str) -> None:
        self.capsys = capsys
        self.url = url
        self.printed: list[str] = []

    def __call__(self, check_mode: bool = False, broker: dict[str, Any] | None = None, **args: Any) -> dict[str, Any]:
        full = {"broker": broker or broker_object(self.url), **args}
        if check_mode:
            full["_ansible_check_mode"] = True
        # Warnings are process-wide in a module; each task is a process of its own.
        warnings.clear()
        with patch_module_args(full), pytest.raises(SystemExit):
            osb_request.main()
        captured = self.capsys.readouterr()
        self.printed += [captured.out, captured.err]
        return dict(json.loads(captured.out))


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], broker: Broker, cluster: FakeSecrets) -> Runner:
    return Runner(capsys, broker.url)


PROVISION = {"service_id": "svc", "plan_id": "plan", "parameters": {"size": "small"}}
PARAMS_FROM = [{"secretKeyRef": {"name": "db-params", "key": "params"}},
               {"secretKeyRef": {"name": "more-params", "key": "params"}}]
MERGED = {"size": "small", "admin_password": PARAM_SECRET, "tier": "gold", "region": "eu-west-1"}


def test_get_catalog_sends_the_osb_headers_and_basic_auth_and_changes_nothing(broker: Broker, run: Runner) -> None:
    broker.answer("GET", "/v2/catalog", 200, {"services": [{"id": "svc"}]})
    result = run(method="GET", path="/v2/catalog")
    assert result["sent"] is True and result["changed"] is False
    assert (result["status"], result["error"], result["error_reason"]) == (200, "", "")
    assert result["body"] == {"services": [{"id": "svc"}]}
    assert result["retry_after"] is None and result["parameters_checksum"] == ""
    [seen] = broker.requests
    assert seen.headers["X-Broker-API-Version"] == "2.17"
    assert seen.headers["Accept"] == "application/json"
    assert seen.headers["Authorization"] == osb_client.basic_auth("osb", PASSWORD)
    assert "Content-Type" not in seen.headers and seen.raw == b""
    assert not any(name.lower().startswith("x-broker-api-originating") for name in seen.headers)


def test_a_broker_without_auth_needs_no_api_client(broker: Broker, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def no_client(module: Any) -> Any:
        raise AssertionError("no Secret to read, no client to make")

    monkeypatch.setattr(osb_request, "api_client", no_client)
    broker.answer("GET", "/v2/catalog", 200, {"services": []})
    result = Runner(capsys, broker.url)(broker={"spec": {"url": broker.url + "/"}}, method="GET", path="/v2/catalog")
    assert result["status"] == 200
    assert "Authorization" not in broker.requests[0].headers


def test_provision_merges_parameters_from_and_reports_whether_the_broker_acted(broker: Broker, run: Runner) -> None:
    broker.answer("PUT", INSTANCE, 202, {"operation": "op-1"})
    args: dict[str, Any] = {"method": "PUT", "path": INSTANCE, "query": {"accepts_incomplete": True}, "body": PROVISION,
            "parameters_from": PARAMS_FROM, "parameters_namespace": NS}
    result = run(**args)
    assert result["changed"] is True and result["status"] == 202
    assert result["body"] == {"operation": "op-1"}
    assert result["parameters_checksum"] == secret_data.parameters_checksum(MERGED)
    [seen] = broker.requests
    assert seen.query == {"accepts_incomplete": ["true"]}
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.json == {**PROVISION, "parameters": MERGED}

    broker.answer("PUT", INSTANCE, 200, {})  # the same request again: nothing new
    again = run(**args)
    assert again["changed"] is False and again["status"] == 200
    assert again["parameters_checksum"] == result["parameters_checksum"]


@pytest.mark.parametrize(
    ("method", "status", "changed"),
    [("PATCH", 200, True), ("PATCH", 202, True), ("DELETE", 200, True), ("DELETE", 202, True),
     ("DELETE", 410, False), ("PUT", 409, False), ("PUT", 201, True), ("GET", 200, False)],
)
def test_changed_follows_what_the_broker_says_it_did(
    broker: Broker, run: Runner, method: str, status: int, changed: bool
) -> None:
    broker.answer(method, INSTANCE, status, {})
    result = run(method=method, path=INSTANCE)
    assert (result["status"], result["changed"], result["error_reason"]) == (status, changed, "")


@pytest.mark.parametrize(
    ("refs", "message"),
    [
        ([{"secretKeyRef": {"name": "clash", "key": "params"}}],
         f"parameter 'size' is defined both in parameters and in key 'params' of Secret {NS}/clash"),
        ([{"secretKeyRef": {"name": "nope", "key": "params"}}], f"Secret {NS}/nope not found"),
        ([{"secretKeyRef": {"name": "db-params", "key": "nope"}}], f"Secret {NS}/db-params has no key 'nope'"),
        ([{"secretKeyRef": {"name": "more-params", "key": "bad"}}],
         f"key 'bad' of Secret {NS}/more-params is not JSON"),
        ([{"secretKeyRef": {"name": "more-params", "key": "array"}}], "holds an array, not a JSON object"),
    ],
)
def test_a_bad_parameters_from_is_reported_not_failed_and_nothing_is_sent(
    broker: Broker, run: Runner, refs: list[dict[str, Any]], message: str
) -> None:
    result = run(method="PUT", path=INSTANCE, body=PROVISION, parameters_from=refs, parameters_namespace=NS)
    assert "failed" not in result
    assert result["sent"] is False and result["changed"] is False
    assert result["error_reason"] == "ParametersFromError"
    assert message in result["error"]
    assert result["parameters_checksum"] == ""
    assert broker.requests == []


def test_the_checksum_alone_sends_nothing_and_needs_no_method(broker: Broker, run: Runner) -> None:
    result = run(parameters_checksum_only=True, body={"parameters": {"size": "small"}},
                 parameters_from=PARAMS_FROM, parameters_namespace=NS)
    assert result["parameters_checksum"] == secret_data.parameters_checksum(MERGED)
    assert result["sent"] is False and result["changed"] is False
    assert broker.requests == []
    assert run(parameters_checksum_only=True)["parameters_checksum"] == ""


def test_method_and_path_are_required_otherwise(run: Runner) -> None:
    result = run(method="GET")
    assert result["failed"] is True and "path" in result["msg"]


def test_check_mode_sends_gets_only(broker: Broker, run: Runner) -> None:
    broker.answer("GET", "/v2/catalog", 200, {"services": []})
    for method in ("PUT", "PATCH", "DELETE"):
        skipped = run(check_mode=True, method=method, path=INSTANCE, body=PROVISION,
                      parameters_from=PARAMS_FROM, parameters_namespace=NS)
        assert skipped["sent"] is False and skipped["check_mode_skipped"] is True
        assert skipped["changed"] is False and skipped["error_reason"] == ""
        assert skipped["parameters_checksum"] == secret_data.parameters_checksum(MERGED)
    sent = run(check_mode=True, method="GET", path="/v2/catalog")
    assert sent["sent"] is True and sent["check_mode_skipped"] is False and sent["status"] == 200
    assert [seen.method for seen in broker.requests] == ["GET"]


def bind_args(**extra: Any) -> dict[str, Any]:
    return {"method": "PUT", "path": BINDING, "body": {"service_id": "svc", "plan_id": "plan"},
            "credentials_secret": {"name": "creds", "namespace": NS, "owner": OWNER, "labels": {"app": "x"}},
            **extra}


def test_credentials_go_to_a_secret_and_only_their_names_come_back(
    broker: Broker, run: Runner, cluster: FakeSecrets
) -> None:
    broker.answer("PUT", BINDING, 201, {"credentials": CREDS, "syslog_drain_url": "syslog://x"})
    result = run(**bind_args())
    assert result["changed"] is True and result["secret_changed"] is True
    assert result["body"] == {"credentials": secret_data.credential_keys(CREDS), "syslog_drain_url": "syslog://x"}
    stored = cluster.objects[(NS, "creds")]
    assert stored["type"] == "servicebinding.io/postgresql"
    assert stored["data"] == secret_data.credential_secret_data(CREDS)
    assert stored["metadata"]["ownerReferences"] == [OWNER]
    assert stored["metadata"]["labels"] == {"app": "x"}

    broker.answer("PUT", BINDING, 200, {"credentials": CREDS})  # a repeat, same credentials
    again = run(**bind_args())
    assert again["changed"] is False and again["secret_changed"] is False
    assert [verb for verb, _ in cluster.writes] == ["create"]

    rotated = {**CREDS, "password": CREDENTIAL + "-2"}
    broker.answer("GET", BINDING, 200, {"credentials": rotated})
    fetched = run(**bind_args(method="GET", body=None))
    assert fetched["changed"] is True and fetched["secret_changed"] is True
    assert [verb for verb, _ in cluster.writes] == ["create", "replace"]
    assert cluster.objects[(NS, "creds")]["data"] == secret_data.credential_secret_data(rotated)


def test_a_secret_of_another_type_is_created_again(broker: Broker, run: Runner, cluster: FakeSecrets) -> None:
    cluster.objects[(NS, "creds")] = secret("creds", NS, password="old")
    broker.answer("PUT", BINDING, 201, {"credentials": CREDS})
    result = run(**bind_args())
    assert result["secret_changed"] is True
    assert [verb for verb, _ in cluster.writes] == ["delete", "create"]
    assert cluster.writes[0][1]["preconditions"] == {"resourceVersion": "1"}
    assert cluster.objects[(NS, "creds")]["type"] == "servicebinding.io/postgresql"


def test_a_conflict_on_the_credential_secret_is_retried(broker: Broker, run: Runner, cluster: FakeSecrets) -> None:
    cluster.objects[(NS, "creds")] = secret_data.credential_secret("creds", NS, {**CREDS, "port": 1}, OWNER)
    cluster.objects[(NS, "creds")]["metadata"]["resourceVersion"] = "7"
    cluster.conflicts = 2
    broker.answer("PUT", BINDING, 201, {"credentials": CREDS})
    result = run(**bind_args())
    assert result["secret_changed"] is True
    assert [body["metadata"]["resourceVersion"] for _, body in cluster.writes] == ["7", "8", "9"]
    assert cluster.objects[(NS, "creds")]["data"] == secret_data.credential_secret_data(CREDS)


def test_check_mode_does_not_write_the_credential_secret(broker: Broker, run: Runner, cluster: FakeSecrets) -> None:
    broker.answer("GET", BINDING, 200, {"credentials": CREDS})
    result = run(check_mode=True, **bind_args(method="GET", body=None))
    assert result["sent"] is True and result["secret_changed"] is True and result["changed"] is True
    assert cluster.writes == [] and (NS, "creds") not in cluster.objects


def test_credentials_in_an_error_answer_are_not_written(broker: Broker, run: Runner, cluster: FakeSecrets) -> None:
    broker.answer("PUT", BINDING, 409, {"description": "exists with other parameters", "credentials": CREDS})
    result = run(**bind_args())
    assert result["status"] == 409 and result["secret_changed"] is False and result["changed"] is False
    assert result["body"]["credentials"] == secret_data.credential_keys(CREDS)
    assert cluster.writes == []


def test_a_secret_that_cannot_be_written_fails_the_task(broker: Broker, run: Runner, cluster: FakeSecrets) -> None:
    cluster.fail_writes = True
    broker.answer("PUT", BINDING, 201, {"credentials": CREDS})
    result = run(**bind_args())
    assert result["failed"] is True
    assert result["msg"] == f"Cannot write the credentials to Secret {NS}/creds: admission webhook said no (422)"
    assert result["status"] == 201 and result["sent"] is True


def test_credentials_without_a_secret_to_hold_them_are_dropped_with_a_warning(
        broker: Broker, run: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    # The warning as the module gives it: Ansible's process-wide warning list is not reliable
    # across the many modules one test process runs.
    told: list[str] = []
    monkeypatch.setattr(kube.AnsibleK8SModule, "warn", lambda self, message: told.append(message))
    broker.answer("PUT", BINDING, 201, {"credentials": CREDS})
    result = run(method="PUT", path=BINDING, body={})
    assert result["body"] == {"credentials": secret_data.credential_keys(CREDS)}
    assert any("no credentials_secret was given" in message for message in told), told


def test_a_fetched_instance_returns_its_parameter_names_only(broker: Broker, run: Runner) -> None:
    broker.answer("GET", INSTANCE, 200, {"plan_id": "plan", "parameters": MERGED})
    result = run(method="GET", path=INSTANCE)
    assert result["body"] == {"plan_id": "plan", "parameters": sorted(MERGED)}


def test_retry_after_and_a_body_that_is_not_json(broker: Broker, run: Runner) -> None:
    broker.answer("GET", f"{INSTANCE}/last_operation", 503, b"<html>" + b"x" * 1000, headers={"Retry-After": "7"})
    result = run(method="GET", path=f"{INSTANCE}/last_operation")
    assert (result["status"], result["retry_after"], result["error_reason"]) == (503, 7, "")
    assert result["body"] == {}
    assert result["body_text"].startswith("<html>") and len(result["body_text"]) == 500


def test_an_unreachable_broker_is_reported_not_failed(run: Runner) -> None:
    url = refused_url()
    result = run(broker=broker_object(url), method="GET", path="/v2/catalog")
    assert "failed" not in result
    assert (result["sent"], result["status"], result["timed_out"]) == (True, 0, False)
    assert result["error_reason"] == "BrokerUnreachable"
    assert result["error"] == f"GET {url}/v2/catalog: connection refused"
    bad = run(broker=broker_object("broker.example.com"), method="GET", path="/v2/catalog")
    assert bad["error_reason"] == "BrokerUnreachable" and bad["sent"] is False


def test_a_slow_broker_times_out(broker: Broker, run: Runner) -> None:
    broker.answer("PUT", INSTANCE, 201, {}, delay=2.0)
    result = run(method="PUT", path=INSTANCE, body=PROVISION, timeout=0.3)
    assert result["timed_out"] is True and result["error_reason"] == "BrokerTimeout"
    assert result["status"] == 0 and result["changed"] is False


def test_a_missing_auth_secret_is_reported_not_failed(broker: Broker, run: Runner, cluster: FakeSecrets) -> None:
    del cluster.objects[(BROKER_NS, "broker-auth")]
    result = run(method="GET", path="/v2/catalog")
    assert "failed" not in result
    assert result["error_reason"] == "BrokerAuthSecretMissing"
    assert result["error"] == f"Secret {BROKER_NS}/broker-auth not found"
    cluster.objects[(BROKER_NS, "broker-auth")] = secret("broker-auth", BROKER_NS, username="osb")
    assert run(method="GET", path="/v2/catalog")["error"] == f"Secret {BROKER_NS}/broker-auth has no key 'password'"
    assert broker.requests == []


def test_tls_is_verified_against_the_ca_bundle(certs: Certs, run: Runner) -> None:
    tls = Broker(certs.server_context())
    try:
        tls.answer("GET", "/v2/catalog", 200, {"services": []})
        trusted = run(broker=broker_object(tls.url, caBundle=b64(certs.ca_pem)), method="GET", path="/v2/catalog")
        assert trusted["status"] == 200 and trusted["error"] == ""
        untrusted = run(broker=broker_object(tls.url), method="GET", path="/v2/catalog")
        assert untrusted["error_reason"] == "BrokerUnreachable"
        assert "TLS: certificate verify failed" in untrusted["error"]
        skipped = run(broker=broker_object(tls.url, insecureSkipTLSVerify=True), method="GET", path="/v2/catalog")
        assert skipped["status"] == 200
        bad_bundle = run(broker=broker_object(tls.url, caBundle="not a bundle"), method="GET", path="/v2/catalog")
        assert bad_bundle["error_reason"] == "BrokerUnreachable" and "caBundle" in bad_bundle["error"]
        assert len(tls.requests) == 2
    finally:
        tls.close()


# --- secrets never leave ---------------------------------------------------------------------


def test_planted_secrets_are_absent_from_everything_the_module_printed(
    broker: Broker, run: Runner, cluster: FakeSecrets
) -> None:
    with_secrets: dict[str, Any] = {"parameters_from": PARAMS_FROM, "parameters_namespace": NS}
    # Success: a bind whose credentials hold the planted value, and one whose broker repeats them.
    broker.answer("PUT", BINDING, 201, {"credentials": CREDS, "dashboard_url": f"https://x/{CREDENTIAL}"})
    run(**bind_args(**with_secrets))
    # A broker that repeats a secret parameter and the password in its error description.
    broker.answer("PUT", INSTANCE, 400, {"description": f"bad admin_password {PARAM_SECRET} for {PASSWORD}"})
    run(method="PUT", path=INSTANCE, body=PROVISION, **with_secrets)
    broker.answer("PATCH", INSTANCE, 422, f"plain text {PARAM_SECRET}".encode())
    run(method="PATCH", path=INSTANCE, body=PROVISION, **with_secrets)
    # A fetched instance and binding repeat what they were given.
    broker.answer("GET", INSTANCE, 200, {"parameters": MERGED})
    run(method="GET", path=INSTANCE)
    broker.answer("GET", BINDING, 200, {"credentials": CREDS, "parameters": MERGED})
    run(**bind_args(method="GET", body=None))
    # Credentials that are not an object, and credentials with nowhere to go.
    broker.answer("PUT", f"{BINDING}-2", 201, {"credentials": [CREDENTIAL]})
    run(method="PUT", path=f"{BINDING}-2", body={})
    broker.answer("PUT", f"{BINDING}-3", 201, {"credentials": CREDS})
    run(method="PUT", path=f"{BINDING}-3", body={})
    # Check mode, the checksum alone, errors, a timeout, an unreachable broker, a failed write.
    run(check_mode=True, method="PUT", path=INSTANCE, body=PROVISION, **with_secrets)
    run(check_mode=True, **bind_args(method="GET", body=None))
    run(parameters_checksum_only=True, body=PROVISION, **with_secrets)
    for ref in ({"name": "more-params", "key": "bad"}, {"name": "clash", "key": "params"},
                {"name": "more-params", "key": "array"}):
        assert run(method="PUT", path=INSTANCE, body=PROVISION, parameters_namespace=NS,
                   parameters_from=[*PARAMS_FROM, {"secretKeyRef": ref}])["error_reason"] == "ParametersFromError"
    broker.answer("PUT", f"{INSTANCE}-slow", 201, {}, delay=2.0)
    assert run(method="PUT", path=f"{INSTANCE}-slow", body=PROVISION, timeout=0.3, **with_secrets)["timed_out"]
    run(broker=broker_object(refused_url()), method="PUT", path=INSTANCE, body=PROVISION, **with_secrets)
    cluster.fail_writes = True
    elsewhere = bind_args(**with_secrets)
    elsewhere["credentials_secret"] = {**elsewhere["credentials_secret"], "name": "creds-2"}
    assert run(**elsewhere)["failed"] is True

    assert len(run.printed) >= 30
    printed = "\n".join(run.printed)
    assert "********" in printed  # the repeated ones were there, masked
    for planted in (*PLANTED, b64(PASSWORD), b64(f"osb:{PASSWORD}"), b64(CREDENTIAL)):
        assert planted not in printed, planted


def test_an_unexpected_error_is_masked_too(broker: Broker, run: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> osb_client.Response:
        raise RuntimeError(f"boom while holding {PASSWORD}")

    monkeypatch.setattr(osb_client, "send", broken)
    result = run(method="GET", path="/v2/catalog")
    assert result["failed"] is True
    assert result["msg"] == "osb_request failed: RuntimeError: boom while holding ********"
    assert PASSWORD not in json.dumps(result)


# --- documentation and argument spec ---------------------------------------------------------


def test_every_option_and_return_value_is_documented() -> None:
    documentation = yaml.safe_load(osb_request.DOCUMENTATION)
    returned = yaml.safe_load(osb_request.RETURN)
    assert set(documentation["options"]) == set(osb_request.OSB_ARG_SPEC)
    for name, spec in osb_request.OSB_ARG_SPEC.items():
        documented = documentation["options"][name]
        assert documented["type"] == spec["type"], name
        assert documented.get("default") == spec.get("default"), name
        assert bool(documented.get("required")) == bool(spec.get("required")), name
        assert set(documented.get("suboptions", {})) == set(spec.get("options", {})), name
    assert set(returned) == set(osb_request.new_result())
    assert yaml.safe_load(osb_request.EXAMPLES)


def test_the_argument_spec_keeps_the_apiserver_secrets_out_of_logs() -> None:
    spec = osb_request.argument_spec()
    assert spec["broker"]["required"] is True
    assert spec["method"]["choices"] == ["GET", "PUT", "PATCH", "DELETE"]
    for name in ("api_key", "password", "kubeconfig"):
        assert spec[name]["no_log"] is True
    assert kube.CONFLICT_ATTEMPTS >= 3  # the conflict test above needs two retries
