#!/usr/bin/python

DOCUMENTATION = r"""
module: osb_request
short_description: Send one Open Service Broker API request to a broker
version_added: "0.1.0"
author: playbook-operator
description:
  - Sends one request of the Open Service Broker API v2.17 to the broker a ClusterServiceBroker
    describes, and returns the broker's answer for the role to decide on.
  - The broker's basic auth credentials are read from the Secret the broker names. Every request
    carries the headers C(X-Broker-API-Version) (C(2.17)) and C(Accept) (C(application/json)); a
    request with a body carries C(Content-Type) (C(application/json)).
    C(X-Broker-API-Originating-Identity) is not sent.
  - TLS is verified against the broker's C(spec.caBundle) when it has one, against the system CAs
    otherwise, and not at all with C(spec.insecureSkipTLSVerify).
  - O(parameters_from) Secrets are merged into C(body.parameters) inside the module.
  - When the answer holds C(credentials), they are written to the Secret O(credentials_secret)
    names and only their key names are returned.
  - The broker's password, the values read for O(parameters_from) and the returned credentials
    never appear in the result, its messages or its warnings. The request body sent is never
    returned. Strings of those values (4 characters or more) that the broker repeats anywhere in
    its answer are masked as C(********).
  - A broker that cannot be reached, times out or answers with an error does not fail the task,
    nor does a bad O(parameters_from) (see RV(error_reason)). The task fails for invalid options,
    for an apiserver error other than a missing Secret, and when the credential Secret cannot be
    written.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  broker:
    description:
      - The ClusterServiceBroker object, as read from the cluster.
      - Read are C(spec.url), C(spec.authInfo.basic.secretRef) (C(name) and C(namespace) of a
        Secret with C(username) and C(password) keys), C(spec.caBundle) (base64 of PEM, as the
        CRD's C(byte) format field holds it; PEM text is accepted too) and
        C(spec.insecureSkipTLSVerify).
      - C(spec.url) may end in a path, which then comes before O(path).
    type: dict
    required: true
  method:
    description:
      - HTTP method. Required unless O(parameters_checksum_only).
    type: str
    choices: [GET, PUT, PATCH, DELETE]
  path:
    description:
      - OSB path, for example C(/v2/catalog) or C(/v2/service_instances/<id>). Characters not
        allowed in a URL path are percent-encoded; an existing C(%xx) is kept.
      - Required unless O(parameters_checksum_only).
    type: str
  query:
    description:
      - Query parameters. Booleans are sent as C(true) and C(false); null values are left out.
    type: dict
    default: {}
  body:
    description:
      - The JSON body, or null for none.
      - Its C(parameters), merged with O(parameters_from), are the parameters sent.
    type: dict
  parameters_from:
    description:
      - Secret keys whose values are JSON objects, merged into C(body.parameters) (which starts
        as O(body)'s C(parameters), or empty). With a non-empty list, the body sent always has
        C(parameters).
      - A parameter defined twice (in C(parameters) and a Secret, or in two Secrets), a missing
        Secret or key, or a value that is not a JSON object does not fail the task; the request
        is not sent and RV(error_reason) is C(ParametersFromError).
    type: list
    elements: dict
    default: []
    suboptions:
      secretKeyRef:
        description:
          - The Secret key holding a JSON object.
        type: dict
        required: true
        suboptions:
          name:
            description: Name of the Secret, in O(parameters_namespace).
            type: str
            required: true
          key:
            description: Key in the Secret's data.
            type: str
            required: true
  parameters_namespace:
    description:
      - Namespace of the O(parameters_from) Secrets. Required when O(parameters_from) is not empty.
    type: str
  parameters_checksum_only:
    description:
      - Send nothing; return RV(parameters_checksum) of the merged parameters (and a
        C(ParametersFromError) when they cannot be merged). Lets a role see that the parameters
        changed without learning their values.
    type: bool
    default: false
  credentials_secret:
    description:
      - Where C(credentials) of a 2xx answer are written. Each credential is its own key of the
        Secret's data; a string as is, any other JSON value as JSON.
      - The Secret's C(type) is C(servicebinding.io/<type>) when the credentials have a C(type)
        string, C(Opaque) otherwise. A Secret of another type is deleted and created again, as
        the type of a Secret cannot change.
      - The Secret is created, or updated when its data, type, the given labels or the owner
        reference differ (again after a 409 Conflict). In check mode it is not written.
      - Without this option, credentials in an answer are dropped with a warning.
    type: dict
    suboptions:
      name:
        description: Name of the Secret.
        type: str
        required: true
      namespace:
        description: Namespace of the Secret.
        type: str
        required: true
      owner:
        description:
          - An ownerReference (C(apiVersion), C(kind), C(name), C(uid), ...) set on the Secret as
            given. Other owner references of an existing Secret are kept.
        type: dict
      labels:
        description: Labels set on the Secret (other labels of an existing Secret are kept).
        type: dict
        default: {}
  timeout:
    description:
      - Seconds the whole exchange may take, from connecting to the last byte of the answer.
        Beyond that it counts as timed out.
    type: float
    default: 60
attributes:
  check_mode:
    description:
      - GET requests are sent; PUT, PATCH and DELETE are not (RV(check_mode_skipped)). The
        credential Secret is not written; RV(secret_changed) says whether it would change.
    support: full
  diff_mode:
    description: Not supported.
    support: none
notes:
  - The Kubernetes auth options are used to read the Secrets and write the credential Secret; no
    API client is made when none is needed.
  - RV(parameters_checksum) is an unsalted hash. Parameters that can be guessed (a short PIN, say)
    can be found from it by trying.
requirements:
  - kubernetes >= 24.2.0
  - kubernetes.core >= 6.0.0
"""

EXAMPLES = r"""
- name: Read the broker's catalog
  playbook_operator.servicecatalog.osb_request:
    broker: "{{ broker }}"
    method: GET
    path: /v2/catalog
  register: catalog

- name: Provision an instance, its secret parameters read from a Secret
  playbook_operator.servicecatalog.osb_request:
    broker: "{{ broker }}"
    method: PUT
    path: "/v2/service_instances/{{ instance.spec.externalID }}"
    query:
      accepts_incomplete: true
    body:
      service_id: "{{ class_id }}"
      plan_id: "{{ plan_id }}"
      context:
        platform: kubernetes
        namespace: "{{ instance.metadata.namespace }}"
      parameters: "{{ instance.spec.parameters | default({}) }}"
    parameters_from: "{{ instance.spec.parametersFrom | default([]) }}"
    parameters_namespace: "{{ instance.metadata.namespace }}"
  register: provision

- name: Have the parameters changed since the last provision or update?
  playbook_operator.servicecatalog.osb_request:
    broker: "{{ broker }}"
    parameters_checksum_only: true
    body:
      parameters: "{{ instance.spec.parameters | default({}) }}"
    parameters_from: "{{ instance.spec.parametersFrom | default([]) }}"
    parameters_namespace: "{{ instance.metadata.namespace }}"
  register: parameters

- name: Bind, the credentials going straight to a Secret
  playbook_operator.servicecatalog.osb_request:
    broker: "{{ broker }}"
    method: PUT
    path: "/v2/service_instances/{{ instance_id }}/service_bindings/{{ binding_id }}"
    body:
      service_id: "{{ class_id }}"
      plan_id: "{{ plan_id }}"
    credentials_secret:
      name: "{{ binding.spec.secretName }}"
      namespace: "{{ binding.metadata.namespace }}"
      owner:
        apiVersion: "{{ binding.apiVersion }}"
        kind: "{{ binding.kind }}"
        name: "{{ binding.metadata.name }}"
        uid: "{{ binding.metadata.uid }}"
        controller: true
        blockOwnerDeletion: true
  register: bind
"""

RETURN = r"""
sent:
  description: Whether the request was sent.
  returned: always
  type: bool
check_mode_skipped:
  description: True when check mode kept a PUT, PATCH or DELETE from being sent.
  returned: always
  type: bool
status:
  description: The HTTP status of the answer; 0 when there was none.
  returned: always
  type: int
  sample: 201
timed_out:
  description: Whether the exchange took longer than O(timeout).
  returned: always
  type: bool
error:
  description:
    - Why there is no answer, in a line (connection refused, TLS, timeout, the auth Secret or a
      parametersFrom Secret missing), or C("") when the broker answered. It names Secrets and
      keys, never a value.
  returned: always
  type: str
  sample: "PUT https://broker.example.com/v2/service_instances/1a2b: connection refused"
error_reason:
  description:
    - C(BrokerUnreachable) (no connection, TLS failure, bad broker URL or caBundle, no HTTP
      answer), C(BrokerTimeout), C(BrokerAuthSecretMissing) (the Secret or its C(username) or
      C(password) key missing or unreadable), C(ParametersFromError), or C("") when the broker
      answered (whatever the status) or the request was not meant to be sent.
  returned: always
  type: str
body:
  description:
    - The answer's JSON object; C({}) when the answer is empty or not a JSON object.
    - C(credentials) is replaced by the sorted list of the credential names, and C(parameters)
      (which a fetch of an instance or binding repeats, secret ones included) by the sorted list
      of the parameter names.
  returned: always
  type: dict
  sample: {"operation": "provision-1", "dashboard_url": "https://broker.example.com/d/1a2b"}
body_text:
  description: At most 500 characters of an answer that is not a JSON object, for an error message; C("") otherwise.
  returned: always
  type: str
retry_after:
  description: Seconds from the answer's C(Retry-After) header (given as seconds or as an HTTP-date), else null.
  returned: always
  type: int
parameters_checksum:
  description:
    - sha256 hex of the merged parameters as canonical JSON (keys sorted, no spaces, UTF-8), or
      C("") when there are none.
  returned: always
  type: str
secret_changed:
  description:
    - Whether the credential Secret was created or updated (in check mode, whether it would be).
  returned: always
  type: bool
changed:
  description:
    - True when the broker reports it acted (PUT answered 201 or 202, PATCH or DELETE answered
      200 or 202) or the credential Secret changed; false for GETs and repeats (PUT answered 200).
  returned: always
  type: bool
"""

import contextlib
import json
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.operator_sdk.util.plugins.module_utils.kube import (
    api_client,
    api_error_message,
    auth_arg_spec,
    is_not_found,
    new_module,
    retry_on_conflict,
)
from ansible_collections.playbook_operator.servicecatalog.plugins.module_utils import osb_client
from ansible_collections.playbook_operator.servicecatalog.plugins.module_utils.secret_data import (
    CredentialsError,
    ParametersError,
    SecretDataError,
    SecretValue,
    credential_keys,
    credential_secret,
    merge_parameters,
    parameters_checksum,
    scrub,
    secret_strings,
    secret_text,
    secret_update,
)

BODY_TEXT_LIMIT = 500
# Statuses with which the broker says it did something (OSB v2.17); 200 to a PUT is a repeat.
ACTED = {"PUT": {201, 202}, "PATCH": {200, 202}, "DELETE": {200, 202}}

OSB_ARG_SPEC: dict[str, Any] = {
    "broker": {"type": "dict", "required": True},
    "method": {"type": "str", "choices": ["GET", "PUT", "PATCH", "DELETE"]},
    "path": {"type": "str"},
    "query": {"type": "dict", "default": {}},
    # No no_log: what the role passes holds no Secret value (parametersFrom values are merged
    # in here), and no_log would mask each of its strings (a plan id, a namespace) everywhere
    # in the result.
    "body": {"type": "dict"},
    "parameters_from": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "secretKeyRef": {
                "type": "dict",
                "required": True,
                "options": {"name": {"type": "str", "required": True}, "key": {"type": "str", "required": True}},
            },
        },
    },
    "parameters_namespace": {"type": "str"},
    "parameters_checksum_only": {"type": "bool", "default": False},
    "credentials_secret": {
        "type": "dict",
        "options": {
            "name": {"type": "str", "required": True},
            "namespace": {"type": "str", "required": True},
            "owner": {"type": "dict"},
            "labels": {"type": "dict", "default": {}},
        },
    },
    "timeout": {"type": "float", "default": 60},
}


def argument_spec() -> dict[str, Any]:
    spec = auth_arg_spec()
    spec.update(OSB_ARG_SPEC)
    return spec


class Failure(Exception):
    """Fails the task with `msg` (already free of secrets)."""

    def __init__(self, msg: str, exception: str | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.exception = exception


class SecretStore:
    """Secrets through the apiserver, the client made on first use: a broker without auth and a
    request without parametersFrom or credentials need none."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._resource: Any = None

    @property
    def resource(self) -> Any:
        if self._resource is None:
            self._resource = self._connect().resource("Secret", "v1")
        return self._resource

    def read(self, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            return dict(self.resource.get(name=name, namespace=namespace).to_dict())
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    def apply(self, desired: dict[str, Any], check_mode: bool) -> bool:
        """Create or update the Secret; whether it changed (in check mode, would change)."""
        name, namespace = desired["metadata"]["name"], desired["metadata"]["namespace"]

        def attempt() -> bool:
            existing = self.read(name, namespace)
            if existing is None:
                if not check_mode:
                    self.resource.create(body=desired, namespace=namespace)
                return True
            update = secret_update(existing, desired)
            if update is None:
                return False
            if check_mode:
                return True
            if existing.get("type", "Opaque") != update["type"]:
                # A Secret's type is immutable. The delete is conditional on what was read and
                # the create fails if someone created it again: both are 409s, retried.
                version = existing["metadata"]["resourceVersion"]
                self.resource.delete(
                    name=name, namespace=namespace, body={"preconditions": {"resourceVersion": version}}
                )
                fresh = {**update, "metadata": {**update["metadata"]}}
                for field in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
                    fresh["metadata"].pop(field, None)
                self.resource.create(body=fresh, namespace=namespace)
            else:
                self.resource.replace(body=update, namespace=namespace)
            return True

        return retry_on_conflict(attempt)


def new_result() -> dict[str, Any]:
    return {
        "changed": False,
        "sent": False,
        "check_mode_skipped": False,
        "status": 0,
        "timed_out": False,
        "error": "",
        "error_reason": "",
        "body": {},
        "body_text": "",
        "retry_after": None,
        "parameters_checksum": "",
        "secret_changed": False,
    }


def parse_body(data: bytes) -> tuple[dict[str, Any], str]:
    """The answer as a JSON object, or {} and the start of its text."""
    if not data.strip():
        return {}, ""
    text = data.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        return parsed, ""
    return {}, text[:BODY_TEXT_LIMIT]


class Request:
    """One osb_request task. `masked` gathers the secret strings found on the way; the result,
    a failure's message and its traceback are scrubbed of them."""

    def __init__(
        self,
        params: Mapping[str, Any],
        check_mode: bool,
        secrets: SecretStore,
        send: Callable[..., osb_client.Response] | None = None,
    ) -> None:
        self.params = params
        self.check_mode = check_mode
        self.secrets = secrets
        self.send = send if send is not None else osb_client.send
        self.result = new_result()
        self.warnings: list[str] = []
        self.masked: set[str] = set()

    def run(self) -> dict[str, Any]:
        try:
            self._run()
        except Failure as exc:
            raise Failure(scrub(exc.msg, self.masked)) from None
        except Exception as exc:
            what = "osb_request failed"
            if hasattr(exc, "status") and hasattr(exc, "body"):
                message = f"{what}: {api_error_message(exc)}"
            else:
                message = f"{what}: {type(exc).__name__}: {exc}"
            raise Failure(scrub(message, self.masked), scrub(traceback.format_exc(), self.masked)) from None
        return self.scrubbed_result()

    def scrubbed_result(self) -> dict[str, Any]:
        return dict(scrub(self.result, self.masked))

    def _stop(self, reason: str, error: str) -> None:
        self.result.update(error_reason=reason, error=error)

    def _run(self) -> None:
        params = self.params
        if params["timeout"] <= 0:
            raise Failure(f"timeout must be a positive number of seconds, not {params['timeout']:g}")
        body = params.get("body")
        try:
            parameters = self._parameters(body)
        except (ParametersError, SecretDataError) as exc:
            return self._stop("ParametersFromError", str(exc))
        self.result["parameters_checksum"] = parameters_checksum(parameters)
        if params["parameters_checksum_only"]:
            return None
        if params.get("parameters_from"):
            body = {**(body or {}), "parameters": parameters}

        method = params["method"]
        if self.check_mode and method != "GET":
            self.result["check_mode_skipped"] = True
            return None

        spec = (params["broker"] or {}).get("spec") or {}
        try:
            authorization = self._authorization(spec)
        except SecretDataError as exc:
            return self._stop("BrokerAuthSecretMissing", str(exc))
        try:
            url = osb_client.request_url(str(spec.get("url") or ""), params["path"], params.get("query"))
            context = None
            if url.startswith("https:"):
                context = osb_client.tls_context(spec.get("caBundle"), bool(spec.get("insecureSkipTLSVerify")))
        except ValueError as exc:
            return self._stop("BrokerUnreachable", f"{method} {params['path']}: {exc}")

        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = osb_client.request_headers(has_body=data is not None, authorization=authorization)
        answer = self.send(method, url, headers, data, timeout=float(params["timeout"]), context=context)
        self.result.update(sent=True, timed_out=answer.timed_out)
        if answer.timed_out:
            return self._stop("BrokerTimeout", answer.error)
        if answer.error:
            return self._stop("BrokerUnreachable", answer.error)
        self._answer(method, answer)
        return None

    def _parameters(self, body: Mapping[str, Any] | None) -> dict[str, Any]:
        refs = self.params.get("parameters_from") or []
        namespace = str(self.params.get("parameters_namespace") or "")
        given = (body or {}).get("parameters")
        if given is not None and not isinstance(given, Mapping):
            raise Failure("body.parameters must be an object")
        if refs and not namespace:
            raise Failure("parameters_namespace is required with parameters_from")
        values: list[SecretValue] = []
        for ref in refs:
            name, key = ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]
            where = f"{namespace}/{name}"
            text = secret_text(self.secrets.read(name, namespace), where, key)
            value = SecretValue(where, key, text)
            # The whole text too: a value that is not JSON is still secret.
            self.masked |= secret_strings(text)
            with contextlib.suppress(ValueError, RecursionError):
                self.masked |= secret_strings(json.loads(text))
            values.append(value)
        return merge_parameters(given, values)

    def _authorization(self, spec: Mapping[str, Any]) -> str | None:
        basic = ((spec.get("authInfo") or {}).get("basic") or {})
        if not basic:
            return None
        ref = basic.get("secretRef") or {}
        name, namespace = ref.get("name"), ref.get("namespace")
        if not name or not namespace:
            raise SecretDataError("spec.authInfo.basic.secretRef needs a name and a namespace")
        where = f"{namespace}/{name}"
        secret = self.secrets.read(name, namespace)
        username = secret_text(secret, where, "username")
        password = secret_text(secret, where, "password")
        self.masked |= secret_strings(password)
        return osb_client.basic_auth(username, password)

    def _answer(self, method: str, answer: osb_client.Response) -> None:
        result = self.result
        result["status"] = answer.status
        result["retry_after"] = osb_client.retry_after(answer.headers.get("retry-after"))
        body, text = parse_body(answer.body)
        result["body_text"] = text

        credentials: Mapping[str, Any] | None = None
        if "credentials" in body:
            raw = body["credentials"]
            self.masked |= secret_strings(raw)
            if isinstance(raw, Mapping):
                body["credentials"] = credential_keys(raw)
                # Only a success hands out credentials; whatever an error answer carries is not kept.
                credentials = raw if 200 <= answer.status < 300 else None
            else:
                body["credentials"] = []
                self.warnings.append("The broker's credentials are not a JSON object; they were not written.")
        if isinstance(body.get("parameters"), Mapping):
            body["parameters"] = sorted(body["parameters"])
        result["body"] = body

        target = self.params.get("credentials_secret")
        if credentials is not None and target:
            try:
                desired = credential_secret(
                    target["name"], target["namespace"], credentials, target.get("owner"), target.get("labels")
                )
            except CredentialsError as exc:
                raise Failure(
                    f"Cannot write the credentials to Secret {target['namespace']}/{target['name']}: {exc}"
                ) from None
            try:
                result["secret_changed"] = self.secrets.apply(desired, self.check_mode)
            except Exception as exc:
                if hasattr(exc, "status") and hasattr(exc, "body"):
                    raise Failure(
                        f"Cannot write the credentials to Secret {target['namespace']}/{target['name']}: "
                        f"{api_error_message(exc)}"
                    ) from None
                raise
        elif credentials is not None:
            self.warnings.append("The broker returned credentials but no credentials_secret was given: dropped.")
        result["changed"] = answer.status in ACTED.get(method, set()) or result["secret_changed"]


def main() -> None:
    module = new_module(
        argument_spec(),
        supports_check_mode=True,
        required_if=[("parameters_checksum_only", False, ("method", "path"))],
    )
    request = Request(module.params, module.check_mode, SecretStore(lambda: api_client(module)))
    try:
        result = request.run()
    except Failure as exc:
        extra = {"exception": exc.exception} if exc.exception else {}
        module.fail_json(msg=exc.msg, **request.scrubbed_result(), **extra)
    for warning in request.warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
