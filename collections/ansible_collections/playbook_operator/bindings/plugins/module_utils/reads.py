"""What a read the role made says when it failed: `kubernetes.core.k8s_info` registered with
``failed_when: false`` carries the apiserver's answer inside an exception's text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def read_error(result: Mapping[str, Any]) -> str:
    """Why a `kubernetes.core.k8s_info` read registered with ``failed_when: false`` failed, in a
    line (the apiserver's own message, without the HTTP headers the exception carries), or ""
    when it read (found or not) or was skipped."""
    if not isinstance(result, Mapping) or result.get("skipped") or "resources" in result:
        return ""
    msg = str(result.get("msg") or "the read failed")
    body = msg.partition("HTTP response body:")[2].strip()
    try:
        decoded = json.loads(body.splitlines()[0].rstrip("'\"")) if body else None
    except ValueError:
        decoded = None
    if isinstance(decoded, Mapping) and decoded.get("message"):
        return f"{decoded.get('code', '')} {decoded.get('reason', '')}: {decoded['message']}".strip(" :")
    return " ".join(msg.replace("Exception '", "").split("HTTP response headers")[0].split())[:300]

