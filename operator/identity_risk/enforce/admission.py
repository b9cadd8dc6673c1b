"""Admission (``/mutate``): one handler per resource, looked up by resource.

The apiserver sends AdmissionReviews for the resources the MutatingWebhookConfiguration names
(pods, for token-lifetime clamps; riskapprovals, to stamp who approved). ``review`` finds the
handler for the request's resource and wraps its answer in an AdmissionReview response; a
resource without a handler is allowed unchanged. A handler returns ``Admission`` — allowed or
not, with an optional JSON patch — and never raises for bad input: it refuses with a message.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool = True
    message: str = ""
    patch: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    warnings: Sequence[str] = field(default_factory=tuple)


ALLOW = Admission()

AdmissionHandler = Callable[[Mapping[str, Any]], Admission]
"""Takes the AdmissionReview's ``request``; returns what to answer."""


def review(body: Mapping[str, Any], handlers: Mapping[str, AdmissionHandler]) -> dict[str, Any]:
    """The AdmissionReview response for an AdmissionReview request; ``handlers`` maps a
    resource plural (``pods``, ``riskapprovals``) to its handler."""
    request = body.get("request") or {}
    uid = str(request.get("uid", ""))
    resource = str((request.get("resource") or {}).get("resource", ""))
    handler = handlers.get(resource)
    answer = handler(request) if handler is not None else ALLOW
    response: dict[str, Any] = {"uid": uid, "allowed": answer.allowed}
    if not answer.allowed:
        response["status"] = {"code": 403, "message": answer.message}
    if answer.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(list(answer.patch)).encode()).decode()
    if answer.warnings:
        response["warnings"] = list(answer.warnings)
    return {
        "apiVersion": body.get("apiVersion", "admission.k8s.io/v1"),
        "kind": "AdmissionReview",
        "response": response,
    }
