"""The identity stage of the server chain: who is calling, from the verified certificate only.

On an mTLS server the caller is the SPIFFE ID of the client certificate that
the TLS handshake verified against our trust bundle, checked again here:
exactly one URI SAN, spiffe scheme, our trust domain, a service path, not a CA.
Metadata is never consulted. Anything short of that is UNAUTHENTICATED before
the handler runs. A plaintext server (development only) binds ANONYMOUS.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import grpc
import structlog
from google.rpc import status_pb2
from grpc_status import rpc_status

from deptmesh.sidecar.caller import ANONYMOUS, CURRENT_CALLER, Caller
from deptmesh.sidecar.chain.core import Call, Gate
from deptmesh.sidecar.errors import IdentityError
from deptmesh.sidecar.identity.spiffe import identity_of_certificate

_log = structlog.get_logger("deptmesh.sidecar")

# Distinct client certificates remembered, so that each is parsed once.
_KNOWN_CERTIFICATES = 4096


class AnonymousIdentityStage(Gate):
    """The identity stage of a plaintext server: every caller is ANONYMOUS."""

    def start(self, call: Call) -> None:
        CURRENT_CALLER.set(ANONYMOUS)


class IdentityStage(Gate):
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
        auth: Mapping[str, list[bytes]] = call.context.auth_context()
        caller = self._caller(auth)
        if isinstance(caller, Caller):
            CURRENT_CALLER.set(caller)
            return None
        CURRENT_CALLER.set(None)
        # Logged values are escaped by deptmesh.sidecar.logs: a hostile SAN cannot forge a line.
        _log.warning(
            "caller_refused",
            method=call.method.path,
            reason=caller,
            spiffe_id=" ".join(
                uri.decode(errors="replace") for uri in auth.get("peer_spiffe_id", [])
            ),
            peer=call.context.peer(),
        )
        return self._refusal

    def _caller(self, auth: Mapping[str, list[bytes]]) -> Caller | str:
        """The verified caller, or why there is none."""
        certificates = auth.get("x509_pem_cert", [])
        spiffe_ids = auth.get("peer_spiffe_id", [])
        if len(certificates) != 1 or len(spiffe_ids) != 1:
            return "no single verified certificate with a single SPIFFE ID"
        pem = certificates[0]
        known = self._known.get(pem)
        if known is not None:
            return known
        try:
            identity = identity_of_certificate(pem, self._trust_domain)
        except IdentityError as error:
            return str(error)
        if identity.uri != spiffe_ids[0].decode(errors="replace"):
            return "the SPIFFE ID grpc verified is not the certificate's"
        caller = Caller(
            service=identity.service, spiffe_id=identity.uri, department=identity.service
        )
        with self._lock:
            if len(self._known) >= _KNOWN_CERTIFICATES:
                self._known.pop(next(iter(self._known)))  # the oldest: dicts keep order
            self._known[pem] = caller
        return caller
