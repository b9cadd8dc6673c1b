"""Who may call the operator's webhooks: the apiserver, and nobody else.

``/audit`` feeds the scorer and ``/authorize`` answers for every API request, so a caller who could
post to them could forge risk or probe enforcement. The apiserver proves itself with a client
certificate (from the webhook kubeconfig) or a bearer token; both are checked here.

TLS uses ``CERT_OPTIONAL`` rather than ``CERT_REQUIRED`` so that probes and Prometheus can reach
the unauthenticated endpoints without a certificate, and a missing credential is answered with a
readable 401 instead of a handshake failure. A certificate that *is* presented must still chain
to the client CA, or the handshake fails.

The client CA of a cluster often signs every user's and kubelet's client certificate too, so
``ServerTLS.client_names`` narrows the accepted certificates to the apiserver's own common names.
"""

from __future__ import annotations

import hmac
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerTLS:
    """The server's certificate and how callers' certificates are checked.

    ``client_ca_file`` None disables client certificates (bearer tokens only). ``client_names``
    empty accepts any certificate the CA signed; otherwise the certificate's common name must be
    one of them.
    """

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_names: frozenset[str] = frozenset()

    def server_context(self) -> ssl.SSLContext:
        """The SSL context to serve with; raises if a file is missing or unreadable."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        if self.client_ca_file is not None:
            context.load_verify_locations(cafile=str(self.client_ca_file))
            context.verify_mode = ssl.CERT_OPTIONAL
        else:
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller, for logs: how it proved itself and, for a certificate, its name."""

    method: str
    """``client-certificate`` or ``bearer-token``."""
    name: str = ""


def common_name(peercert: Mapping[str, Any]) -> str:
    """The subject CN of a certificate as ``SSLSocket.getpeercert()`` returns it, or ``""``."""
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


def authenticate(
    *,
    peercert: Mapping[str, Any] | None,
    authorization: str | None,
    tls: ServerTLS,
    bearer_tokens: frozenset[str],
) -> Caller | str:
    """The caller, or the reason it is not accepted (to put in a 401).

    ``peercert`` is the verified peer certificate (TLS already checked it chains to the client
    CA); ``authorization`` is the request's ``Authorization`` header.
    """
    if peercert and tls.client_ca_file is not None:
        name = common_name(peercert)
        if not tls.client_names or name in tls.client_names:
            return Caller("client-certificate", name)
        if not authorization:
            return f"client certificate {name!r} is not one the operator accepts"
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "the Authorization header is not a bearer token"
        if _token_matches(token.strip(), bearer_tokens):
            return Caller("bearer-token")
        return "the bearer token is not one the operator accepts"
    return "no client certificate and no bearer token: present the webhook kubeconfig's credentials"


def _token_matches(token: str, accepted: frozenset[str]) -> bool:
    """Constant-time comparison against every accepted token (no early exit on a match)."""
    presented = token.encode()
    matched = False
    for candidate in accepted:
        matched |= hmac.compare_digest(presented, candidate.encode())
    return matched
