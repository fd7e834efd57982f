"""Request validation: collect every bad field, then fail once with all of them."""

from __future__ import annotations

import re
import unicodedata

from deptmesh.sidecar import FieldViolation, InvalidArgument

# Identifiers the services hand out or accept: letters, digits, '.', '_', '-'.
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Caller-chosen keys (idempotency keys, request ids): printable ASCII.
_KEY = re.compile(r"[\x21-\x7e]{1,128}")


class FieldViolations:
    """Collects what is wrong with a request; `raise_if_any` turns it into INVALID_ARGUMENT."""

    def __init__(self) -> None:
        self._violations: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self._violations.append(FieldViolation(field, description))

    def identifier(self, field: str, value: str, *, required: bool = True) -> None:
        if not value:
            if required:
                self.add(field, "required")
        elif not _IDENTIFIER.fullmatch(value):
            self.add(field, "must be 1 to 64 letters, digits, '.', '_' or '-'")

    def key(self, field: str, value: str, *, required: bool = True) -> None:
        if not value:
            if required:
                self.add(field, "required")
        elif not _KEY.fullmatch(value):
            self.add(field, "must be 1 to 128 printable ASCII characters without spaces")

    def text(self, field: str, value: str, *, max_length: int, required: bool = True) -> None:
        if not value.strip():
            if required:
                self.add(field, "required")
        elif len(value) > max_length:
            self.add(field, f"must be at most {max_length} characters")
        elif any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value):
            self.add(field, "must not contain control characters")

    def raise_if_any(self) -> None:
        if self._violations:
            raise InvalidArgument(self._violations)


def require_identifier(field: str, value: str) -> None:
    """Raises INVALID_ARGUMENT unless `value` is a well-formed identifier."""
    violations = FieldViolations()
    violations.identifier(field, value)
    violations.raise_if_any()
