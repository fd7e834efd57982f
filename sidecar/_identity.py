"""The identity stage of the server chain: who is calling, from the verified certificate only.

On an mTLS server the caller is the SPIFFE ID of the client certificate that
the TLS handshake verified against our trust bundle, checked again here:
exactly one URI SAN, spiffe scheme, our trust domain, a service path, not a CA.
Metadata is never consulted. Anything short of that is UNAUTHENTICATED before
the handler runs. A plaintext server (development only) binds ANONYMOUS.
"""

from __future__ import annotations

import threading
from typing import Any

import grpc
from google.rpc import status_pb2
from grpc_status import rpc_status

from sidecar._chain import Call, Gate
from sidecar.caller import ANONYMOUS, CURRENT_CALLER, Caller
from sidecar.spiffe import IdentityError, identity_of_certificate

# Distinct client certificates remembered, so that each is parsed once.
_KNOWN_CERTIFICATES = 4096


class AnonymousIdentity(Gate):
    """The identity stage of a plaintext server: every caller is ANONYMOUS."""

    def start(self, call: Call) -> None:
        CURRENT_CALLER.set(ANONYMOUS)


class VerifiedIdentity(Gate):
    """Binds the caller named by the verified client certificate, or refuses the call."""

    def __init__(self, trust_domain: str) -> None:
        self._trust_domain = trust_domain
        self._known: dict[bytes, Caller] = {}
        self._lock = threading.Lock()
        self._refusal = rpc_status.to_status(
            status_pb2.Status(
                code=grpc.StatusCode.UNAUTHENTICATED.value[0],
                message=(
                    "a verified client certificate naming one service of trust domain"
                    f" {trust_domain} is required"
                ),
            )
        )

    def start(self, call: Call) -> grpc.Status | None:
        caller = self._caller(call.context)
        CURRENT_CALLER.set(caller)
        return self._refusal if caller is None else None

    def _caller(self, context: Any) -> Caller | None:
        auth: dict[str, list[bytes]] = context.auth_context()
        certificates = auth.get("x509_pem_cert", [])
        spiffe_ids = auth.get("peer_spiffe_id", [])
        if len(certificates) != 1 or len(spiffe_ids) != 1:
            return None
        pem = certificates[0]
        known = self._known.get(pem)
        if known is not None:
            return known
        try:
            identity = identity_of_certificate(pem, self._trust_domain)
        except IdentityError:
            return None
        if identity.uri != spiffe_ids[0].decode(errors="replace"):
            return None
        caller = Caller(
            service=identity.service, spiffe_id=identity.uri, department=identity.service
        )
        with self._lock:
            if len(self._known) >= _KNOWN_CERTIFICATES:
                self._known.pop(next(iter(self._known)))  # the oldest: dicts keep order
            self._known[pem] = caller
        return caller
