"""deptmesh.services.validation: collect every bad field, then fail once with all of them."""

from __future__ import annotations

import grpc
import pytest

from deptmesh.services.validation import FieldViolations
from deptmesh.sidecar.errors import FieldViolation, InvalidArgument


def _collected(check) -> list[FieldViolation]:
    violations = FieldViolations()
    check(violations)
    try:
        violations.raise_if_any()
    except InvalidArgument as error:
        return list(error.violations)
    return []


class TestIdentifier:
    @pytest.mark.parametrize("value", ["E1001", "CC-ENG", "a", "a.b_c-d", "9" * 64])
    def test_accepts_identifiers(self, value):
        """Letters, digits, '.', '_' and '-' up to 64 characters, starting alphanumeric, pass."""
        assert _collected(lambda v: v.identifier("id", value)) == []

    @pytest.mark.parametrize(
        "value",
        ["-E1", ".hidden", "E 1001", "E1001\n", "../etc", "a/b", "é1", "x" * 65, "E1;DROP"],
    )
    def test_rejects_malformed(self, value):
        """Anything else is one violation on the field saying what an identifier may contain."""
        violations = _collected(lambda v: v.identifier("id", value))

        assert [v.field for v in violations] == ["id"]
        assert "64" in violations[0].description

    def test_required_when_empty(self):
        """An empty required identifier is reported as required."""
        assert _collected(lambda v: v.identifier("id", "")) == [FieldViolation("id", "required")]

    def test_optional_may_be_empty(self):
        """An empty optional identifier is not a violation."""
        assert _collected(lambda v: v.identifier("id", "", required=False)) == []

    def test_optional_is_still_checked(self):
        """An optional identifier that is present must still be well formed."""
        violations = _collected(lambda v: v.identifier("id", "no spaces", required=False))

        assert [v.field for v in violations] == ["id"]


class TestKey:
    @pytest.mark.parametrize("value", ["k", "claim-42/retry#1", "!~", "x" * 128])
    def test_accepts_printable_ascii(self, value):
        """1 to 128 printable ASCII characters without spaces pass."""
        assert _collected(lambda v: v.key("key", value)) == []

    @pytest.mark.parametrize("value", ["has space", "tab\there", "x" * 129, "clé", "nul\x00"])
    def test_rejects_others(self, value):
        """Spaces, control characters, non-ASCII and over 128 characters are one violation."""
        violations = _collected(lambda v: v.key("key", value))

        assert [v.field for v in violations] == ["key"]
        assert "128" in violations[0].description

    def test_required_when_empty(self):
        """An empty required key is reported as required."""
        assert _collected(lambda v: v.key("key", "")) == [FieldViolation("key", "required")]

    def test_optional_may_be_empty(self):
        """An empty optional key is not a violation."""
        assert _collected(lambda v: v.key("key", "", required=False)) == []


class TestText:
    @pytest.mark.parametrize("value", ["Train to Lyon", "line one\nline two", "a\tb", "Zoë 日本"])
    def test_accepts_text(self, value):
        """Text with newlines, tabs and non-ASCII letters within the limit passes."""
        assert _collected(lambda v: v.text("note", value, max_length=40)) == []

    @pytest.mark.parametrize("value", ["", "   ", "\n\t"])
    def test_required_when_blank(self, value):
        """Empty or whitespace-only required text is reported as required."""
        violations = _collected(lambda v: v.text("note", value, max_length=40))

        assert violations == [FieldViolation("note", "required")]

    def test_optional_may_be_blank(self):
        """Blank optional text is not a violation."""
        assert _collected(lambda v: v.text("note", "  ", max_length=40, required=False)) == []

    def test_length_limit(self):
        """Text at the limit passes; one character more is rejected with the limit named."""
        assert _collected(lambda v: v.text("note", "x" * 10, max_length=10)) == []
        violations = _collected(lambda v: v.text("note", "x" * 11, max_length=10))

        assert violations == [FieldViolation("note", "must be at most 10 characters")]

    @pytest.mark.parametrize("char", ["\x00", "\x1b", "\r", "\x08", "\x7f", "\x9b"])
    def test_rejects_control_characters(self, char):
        """Control characters other than newline and tab (C0, DEL and C1) are rejected."""
        violations = _collected(lambda v: v.text("note", f"evil{char}[2J", max_length=40))

        assert violations == [FieldViolation("note", "must not contain control characters")]


class TestRaiseIfAny:
    def test_nothing_when_empty(self):
        """With no violations, raise_if_any returns without raising."""
        FieldViolations().raise_if_any()

    def test_raises_invalid_argument_with_every_violation(self):
        """All collected violations, in order, are carried by one INVALID_ARGUMENT error."""
        violations = FieldViolations()
        violations.identifier("employee_id", "")
        violations.key("idempotency_key", "has space")
        violations.add("amount.nanos", "must have the same sign as units")

        with pytest.raises(InvalidArgument) as raised:
            violations.raise_if_any()

        assert raised.value.status_code is grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in raised.value.violations] == [
            "employee_id",
            "idempotency_key",
            "amount.nanos",
        ]
        assert raised.value.violations[0] == FieldViolation("employee_id", "required")
        assert str(raised.value) == "invalid request: employee_id, idempotency_key, amount.nanos"
