"""deptmesh.services.pagination: opaque page tokens bound to the filter that produced them."""

from __future__ import annotations

import base64

import pytest

from deptmesh.services.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Page,
    encode_token,
    read_page,
)
from deptmesh.services.validation import FieldViolations
from deptmesh.sidecar.errors import InvalidArgument


def _read(page_size: int, page_token: str, filter_key: str = "") -> tuple[Page, dict]:
    violations = FieldViolations()
    page = read_page(violations, page_size, page_token, filter_key)
    try:
        violations.raise_if_any()
    except InvalidArgument as error:
        return page, {v.field: v.description for v in error.violations}
    return page, {}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class TestReadPage:
    @pytest.mark.parametrize("after", ["E1001", "", "a" * 200, 0, 42, -7, "ünïcødé/+="])
    def test_token_round_trip(self, after):
        """A token encoded for a filter reads back as the same position under that filter."""
        token = encode_token(after, "CC-ENG")

        page, violations = _read(10, token, "CC-ENG")

        assert violations == {}
        assert page == Page(10, after)

    def test_token_is_url_safe_and_unpadded(self):
        """Tokens contain only URL-safe base64 characters and no padding."""
        token = encode_token("E1001?&/", "")

        assert "=" not in token
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

    def test_first_page_has_no_position(self):
        """An empty token starts at the beginning."""
        assert _read(5, "") == (Page(5, None), {})

    def test_token_from_another_filter_rejected(self):
        """A token produced under one filter is rejected under another."""
        token = encode_token("E1002", "CC-ENG")

        page, violations = _read(10, token, "CC-FIN")

        assert list(violations) == ["page_token"]
        assert page.after is None

    @pytest.mark.parametrize(
        "token",
        [
            "not base64 at all!*",
            "a",
            _b64(b"not json"),
            _b64(b"\xff\xfe\xfd"),
            _b64(b"[1, 2]"),
            _b64(b'"E1001"'),
            _b64(b"null"),
            _b64(b'{"a": "E1001"}'),
            _b64(b'{"f": "0000000000000000"}'),
            _b64(b'{"a": 1.5, "f": "x"}'),
        ],
    )
    def test_garbage_rejected(self, token):
        """Tokens that are not base64 JSON with our fields are rejected, not crashed on."""
        page, violations = _read(10, token)

        assert list(violations) == ["page_token"]
        assert page.after is None

    def test_forged_position_type_rejected(self):
        """A token carrying a position that is neither a string nor an integer is rejected."""
        real = encode_token("E1001", "")
        forged = _b64(base64.urlsafe_b64decode(real + "==").replace(b'"E1001"', b'{"x":1}'))

        _, violations = _read(10, forged)

        assert list(violations) == ["page_token"]

    def test_negative_page_size(self):
        """A negative page size is rejected on page_size."""
        _, violations = _read(-1, "")

        assert list(violations) == ["page_size"]

    def test_zero_means_default(self):
        """A page size of 0 means the default size."""
        assert _read(0, "")[0].size == DEFAULT_PAGE_SIZE

    @pytest.mark.parametrize("size", [MAX_PAGE_SIZE, MAX_PAGE_SIZE + 1, 2**31 - 1])
    def test_size_capped(self, size):
        """Page sizes above the maximum are capped to it without a violation."""
        assert _read(size, "") == (Page(MAX_PAGE_SIZE, None), {})

    def test_both_problems_reported(self):
        """A negative size and a bad token are both reported."""
        _, violations = _read(-5, "garbage")

        assert set(violations) == {"page_size", "page_token"}
