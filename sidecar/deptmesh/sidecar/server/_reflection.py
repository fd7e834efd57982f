"""Server reflection that third-party tools (grpcurl, grpcui, Postman) can use.

grpcio-reflection answers "which file holds symbol S" with the descriptor
pool's FindFileContainingSymbol. The pool of protobuf's upb runtime finds
messages, fields, enums, enum values, extensions and services by that name,
but not methods, so `grpcurl describe pkg.Service.Method` fails with "Symbol
not found" (grpc/grpc#34743). `MethodAwarePool` answers for a method with its
service's file, as protoc's C++ pool does, and passes everything else on.

Reflection is served on the server's own port, behind its chain: only a caller
with a certificate from our trust bundle gets past the handshake, and the
authorization stage decides for it as for any other method.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

__all__ = ["MethodAwarePool", "enable_reflection"]


class MethodAwarePool:
    """The lookups grpcio-reflection makes, on `pool`; a method's file is its service's.

    Methods keep the pool's own names (FindFileByName...): grpcio-reflection calls them.
    """

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._pool = pool

    def FindFileByName(self, name: str) -> FileDescriptor:
        return self._pool.FindFileByName(name)

    def FindFileContainingSymbol(self, symbol: str) -> FileDescriptor:
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            service_name, _, method = symbol.rpartition(".")
            try:
                service = self._pool.FindServiceByName(service_name)
            except KeyError:
                pass
            else:
                if method in service.methods_by_name:
                    return service.file
            raise

    def FindMessageTypeByName(self, name: str) -> Descriptor:
        return self._pool.FindMessageTypeByName(name)

    def FindExtensionByNumber(self, message: Descriptor, number: int) -> FieldDescriptor:
        return self._pool.FindExtensionByNumber(message, number)

    def FindAllExtensions(self, message: Descriptor) -> list[FieldDescriptor]:
        return self._pool.FindAllExtensions(message)


def enable_reflection(service_names: Iterable[str], server: Any) -> None:
    """Serves reflection for `service_names`, health and reflection itself on a sync or
    aio grpc server, from the default descriptor pool (where generated modules live)."""
    reflection.enable_server_reflection(
        [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME],
        server,
        # Duck-typed: the servicer makes only the lookups MethodAwarePool has.
        pool=cast(descriptor_pool.DescriptorPool, MethodAwarePool(descriptor_pool.Default())),
    )
