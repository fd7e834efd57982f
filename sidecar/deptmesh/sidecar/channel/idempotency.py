"""Which methods are safe to retry: declared once in the contracts, read from descriptors.

A method is idempotent when its proto declares
`option idempotency_level = NO_SIDE_EFFECTS;` or `IDEMPOTENT;`.
"""

from __future__ import annotations

import functools

from google.protobuf import descriptor_pb2, descriptor_pool

_SAFE = frozenset(
    {
        descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
        descriptor_pb2.MethodOptions.IDEMPOTENT,
    }
)


@functools.cache
def is_idempotent(method_path: str) -> bool:
    """For `/pkg.Service/Method`: True when the contract declares it retry-safe."""
    full_name = method_path.lstrip("/").replace("/", ".")
    try:
        method = descriptor_pool.Default().FindMethodByName(full_name)
    except KeyError:
        return False  # unknown to this process: never assume it is safe
    return method.GetOptions().idempotency_level in _SAFE
