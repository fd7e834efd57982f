"""What a call is about: business keys and their values, recorded on its span.

A business key is a name for what on-call searches traces by ("employee", say).
Contracts declare which message fields carry one (the `business_key` field
option: tracing/key_fields.py) and the server's tracing stage records those by
itself; `tag_current_call` records one that no message carries. Either way the
span gets the attribute `deptmesh.key.<name>` = value, which the trace store
indexes for `deptmesh trace --tag <name>=<value>`. A span that meets several
values of one key keeps them all, as a sequence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from opentelemetry import trace

from deptmesh.sidecar.tracing.attributes import KEY_PREFIX

__all__ = ["is_key_name", "key_attribute", "tag", "tag_current_call"]

_KEY_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def is_key_name(name: str) -> bool:
    """Whether `name` may name a business key: letters, digits, `_`, `.` and `-`."""
    return _KEY_NAME.fullmatch(name) is not None


def key_attribute(name: str) -> str:
    """The span attribute that carries business key `name`."""
    return KEY_PREFIX + name


def tag(span: trace.Span, attribute: str, value: str) -> None:
    """Adds `value` to a recording span's business-key `attribute`, keeping the values
    it has."""
    # RecordedSpan and the SDK's span show their attributes; another span is only set.
    attributes = getattr(span, "attributes", None)
    known = attributes.get(attribute) if isinstance(attributes, Mapping) else None
    if known is None:
        span.set_attribute(attribute, value)
    elif isinstance(known, str):
        if known != value:
            span.set_attribute(attribute, (known, value))
    elif value not in known:
        span.set_attribute(attribute, (*known, value))


def tag_current_call(name: str, value: str) -> None:
    """Records that the call being handled is about `value` of business key `name`
    (for example an employee whom no message of the call names), so on-call finds
    its trace with `deptmesh trace --tag name=value`. An empty value records nothing.

    Keys that a request or response field carries need no call: declare them in the
    contract (the `deptmesh.common.v1.business_key` field option).
    """
    if not is_key_name(name):
        raise ValueError(
            f"a business key's name is letters, digits, '_', '.' and '-', got {name!r}"
        )
    span = trace.get_current_span()
    if value and span.is_recording():
        tag(span, KEY_PREFIX + name, value)
