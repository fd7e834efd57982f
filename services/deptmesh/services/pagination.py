"""Opaque page tokens: the last key of a page, bound to the filter that produced it."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from deptmesh.services.validation import FieldViolations

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Page:
    """Where a list call starts and how many items it returns."""

    size: int
    after: str | int | None


def _filter_digest(filter_key: str) -> str:
    return hashlib.sha256(filter_key.encode()).hexdigest()[:16]


def encode_token(after: str | int, filter_key: str) -> str:
    payload = json.dumps({"a": after, "f": _filter_digest(filter_key)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def read_page(
    violations: FieldViolations, page_size: int, page_token: str, filter_key: str
) -> Page:
    """The page a request asks for; adds violations for a bad size or a foreign token."""
    if page_size < 0:
        violations.add("page_size", "must not be negative")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if not page_token:
        return Page(size, None)
    try:
        padded = page_token + "=" * (-len(page_token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = payload["a"]
        valid = payload["f"] == _filter_digest(filter_key) and isinstance(after, str | int)
    except (ValueError, TypeError, KeyError):
        valid = False
    if not valid:
        violations.add("page_token", "not a token returned by this list with the same filter")
        return Page(size, None)
    return Page(size, after)


def close_page(
    fetched: Sequence[T], page: Page, filter_key: str, key: Callable[[T], str | int]
) -> tuple[Sequence[T], str]:
    """The items of the page and the next page's token ('' on the last page).

    Stores fetch page.size + 1 items: the extra one only says that there is more.
    """
    items = fetched[: page.size]
    more = len(fetched) > page.size
    return items, encode_token(key(items[-1]), filter_key) if more else ""
