"""FieldViolations and page tokens: what a request may contain."""

from __future__ import annotations

import base64

import pytest

from services.pagination import MAX_PAGE_SIZE, encode_token, read_page
from services.validation import FieldViolations
from sidecar.errors import InvalidArgument


def fields(check) -> list[str]:
    violations = FieldViolations()
    check(violations)
    try:
        violations.raise_if_any()
    except InvalidArgument as error:
        return [v.field for v in error.violations]
    return []


class TestFieldViolations:
    @pytest.mark.parametrize("value", ["E1002", "CC-ENG", "clm_0f3c", "a.b"])
    def test_identifiers_accepted(self, value):
        """Letters, digits, '.', '_' and '-' make an identifier."""
        assert fields(lambda v: v.identifier("id", value)) == []

    @pytest.mark.parametrize("value", ["", "E 1", "../x", "x" * 65, "é", "a\nb", "-a"])
    def test_identifiers_refused(self, value):
        """Empty, spaced, path-like, long or non-ASCII identifiers are refused."""
        assert fields(lambda v: v.identifier("id", value)) == ["id"]

    def test_optional_identifier_may_be_empty(self):
        """required=False accepts an empty value."""
        assert fields(lambda v: v.identifier("id", "", required=False)) == []

    @pytest.mark.parametrize("value", ["", "has space", "k" * 129, "tab\t"])
    def test_keys_refused(self, value):
        """Idempotency keys are 1 to 128 printable ASCII characters without spaces."""
        assert fields(lambda v: v.key("key", value)) == ["key"]

    def test_text_rules(self):
        """Text must be present, short enough and free of control characters."""
        assert fields(lambda v: v.text("t", "  ", max_length=5)) == ["t"]
        assert fields(lambda v: v.text("t", "toolong", max_length=5)) == ["t"]
        assert fields(lambda v: v.text("t", "a\x1bb", max_length=5)) == ["t"]
        assert fields(lambda v: v.text("t", "ok\n", max_length=5)) == []

    def test_every_violation_is_reported_at_once(self):
        """raise_if_any carries all violations, not just the first."""

        def check(v):
            v.identifier("a", "")
            v.key("b", "")

        assert fields(check) == ["a", "b"]


class TestPageTokens:
    def test_token_round_trip(self):
        """A token resumes after the key it was made from, with the same filter."""
        violations = FieldViolations()
        page = read_page(violations, 10, encode_token("E1001", "CC-ENG"), "CC-ENG")
        violations.raise_if_any()
        assert (page.size, page.after) == (10, "E1001")

    @pytest.mark.parametrize(
        "token",
        [
            encode_token("E1001", "CC-FIN"),
            "not base64 !",
            base64.urlsafe_b64encode(b"not json").decode(),
            base64.urlsafe_b64encode(b"[1, 2]").decode(),
        ],
    )
    def test_foreign_or_garbage_tokens_refused(self, token):
        """Tokens from another filter, or not made by us, name page_token."""
        assert fields(lambda v: read_page(v, 0, token, "CC-ENG")) == ["page_token"]

    def test_page_size_defaults_and_caps(self):
        """0 means the default; sizes above the maximum are capped; negatives refused."""
        assert read_page(FieldViolations(), 0, "", "").size == 100
        assert read_page(FieldViolations(), 10**6, "", "").size == MAX_PAGE_SIZE
        assert fields(lambda v: read_page(v, -1, "", "")) == ["page_size"]
