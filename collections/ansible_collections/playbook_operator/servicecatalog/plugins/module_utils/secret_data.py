"""The secret-bearing parts of an OSB request as pure functions: Secret values read, parametersFrom
merged into the request's parameters and their checksum, the Secret a broker's credentials are
written to, and masking known secret strings out of what the module returns.

Every error names a Secret and a key (or a parameter name), never a value, and is raised without
the exception it came from (a UnicodeDecodeError, for one, quotes the bytes it could not read)."""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MASK = "********"
# Shorter strings are left in the output: masking every "db" or "true" would garble it, and a
# string that short is no secret anyway.
MIN_MASKED_LENGTH = 4
# What the apiserver accepts as a key of a Secret's data.
SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")


class SecretDataError(ValueError):
    """A Secret or one of its keys is missing or unreadable."""


class ParametersError(ValueError):
    """parametersFrom cannot be merged into the parameters."""


class CredentialsError(ValueError):
    """The broker's credentials cannot be written to a Secret."""


@dataclass(frozen=True)
class SecretValue:
    """The text of one key of a Secret, with where it came from (the text is kept out of repr)."""

    secret: str
    key: str
    text: str = field(repr=False)

    @property
    def where(self) -> str:
        return f"key {self.key!r} of Secret {self.secret}"


def secret_text(secret: Mapping[str, Any] | None, where: str, key: str) -> str:
    """The decoded text of `key` in a Secret as read from the apiserver (None: not found).
    `where` names the Secret in errors (namespace/name)."""
    if secret is None:
        raise SecretDataError(f"Secret {where} not found")
    data = secret.get("data") or {}
    if key not in data:
        raise SecretDataError(f"Secret {where} has no key {key!r}")
    try:
        return base64.b64decode(data[key] or "", validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise SecretDataError(f"key {key!r} of Secret {where} is not base64 of UTF-8 text") from None


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def merge_parameters(parameters: Mapping[str, Any] | None, secret_values: Iterable[SecretValue]) -> dict[str, Any]:
    """`parameters` with the top-level keys of each Secret value's JSON object added. A key
    defined twice is an error, as service-catalog had it: which one wins would be a guess."""
    merged: dict[str, Any] = copy.deepcopy(dict(parameters or {}))
    origin = dict.fromkeys(merged, "parameters")
    for value in secret_values:
        try:
            obj = json.loads(value.text)
        except ValueError as exc:
            line, column = getattr(exc, "lineno", "?"), getattr(exc, "colno", "?")
            reason = getattr(exc, "msg", "invalid")
            raise ParametersError(
                f"{value.where} is not JSON ({reason} at line {line} column {column})"
            ) from None
        except RecursionError:
            raise ParametersError(f"{value.where} is JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise ParametersError(f"{value.where} holds {_json_kind(obj)}, not a JSON object")
        for name, item in obj.items():
            if name in merged:
                raise ParametersError(
                    f"parameter {name!r} is defined both in {origin[name]} and in {value.where}"
                )
            merged[name] = item
            origin[name] = value.where
    return merged


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parameters_checksum(params: Mapping[str, Any] | None) -> str:
    """sha256 hex of the parameters' canonical JSON (sorted keys, no spaces, UTF-8), or "" when
    there are none: a role compares it to see a change without holding the values."""
    if not params:
        return ""
    return hashlib.sha256(canonical_json(params).encode("utf-8")).hexdigest()


def credential_keys(credentials: Mapping[str, Any]) -> list[str]:
    return sorted(credentials)


def credential_text(value: Any) -> str:
    """A credential as its Secret holds it: a string as is, any other JSON value as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def credential_secret_data(credentials: Mapping[str, Any]) -> dict[str, str]:
    """The Secret's `data`: each credential its own key, base64 of its text."""
    data: dict[str, str] = {}
    for key, value in credentials.items():
        if not isinstance(key, str) or not SECRET_KEY.fullmatch(key):
            raise CredentialsError(
                f"the credential {key!r} cannot be a Secret key (letters, digits, '-', '_' and '.' only)"
            )
        data[key] = base64.b64encode(credential_text(value).encode("utf-8")).decode("ascii")
    return data


def credential_secret_type(credentials: Mapping[str, Any]) -> str:
    """`servicebinding.io/<type>` when the credentials name their type, as servicebinding.io
    reads a Secret; `Opaque` otherwise."""
    kind = credentials.get("type")
    if isinstance(kind, str) and kind.strip():
        return f"servicebinding.io/{kind.strip()}"
    return "Opaque"


def credential_secret(
    name: str,
    namespace: str,
    credentials: Mapping[str, Any],
    owner: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Secret holding a binding's credentials."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    if owner:
        metadata["ownerReferences"] = [dict(owner)]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": credential_secret_type(credentials),
        "data": credential_secret_data(credentials),
    }


def secret_update(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """The existing Secret with the desired data, type, labels and owner reference, or None when
    it already has them. Labels and owners of others are kept."""
    update = copy.deepcopy(dict(existing))
    metadata = update.setdefault("metadata", {})
    wanted = desired["metadata"]
    labels = {**(metadata.get("labels") or {}), **(wanted.get("labels") or {})}
    if labels:
        metadata["labels"] = labels
    owners = list(metadata.get("ownerReferences") or [])
    for owner in wanted.get("ownerReferences") or []:
        owners = [ref for ref in owners if ref.get("uid") != owner.get("uid")] + [owner]
    if owners:
        metadata["ownerReferences"] = owners
    update["data"] = dict(desired["data"])
    update["type"] = desired["type"]
    update.pop("stringData", None)

    def same_owners(a: Iterable[Mapping[str, Any]], b: Iterable[Mapping[str, Any]]) -> bool:
        return sorted(map(canonical_json, a)) == sorted(map(canonical_json, b))

    before = existing.get("metadata") or {}
    if (
        (existing.get("data") or {}) == update["data"]
        and existing.get("type", "Opaque") == update["type"]
        and (before.get("labels") or {}) == (metadata.get("labels") or {})
        and same_owners(before.get("ownerReferences") or [], owners)
    ):
        return None
    return update


def secret_strings(*values: Any) -> set[str]:
    """The strings (and numbers) inside values that output must not show."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple | set):
            for item in value:
                walk(item)
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            text = str(value)
            if len(text) >= MIN_MASKED_LENGTH:
                found.add(text)

    for value in values:
        walk(value)
    return found


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """`value` with every occurrence of a secret string inside its strings masked (dict keys
    stay: they are names)."""
    ordered = sorted(set(secrets), key=len, reverse=True)  # a secret holding another goes first
    if not ordered:
        return value

    def clean(item: Any) -> Any:
        if isinstance(item, str):
            for secret in ordered:
                item = item.replace(secret, MASK)
            return item
        if isinstance(item, Mapping):
            return {key: clean(val) for key, val in item.items()}
        if isinstance(item, list | tuple):
            return [clean(val) for val in item]
        return item

    return clean(value)
