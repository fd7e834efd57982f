"""Log output never carries raw control characters from untrusted values."""

from __future__ import annotations

from deptmesh.sidecar.logs import escape_control_characters


class TestEscapeControlCharacters:
    def test_crlf_and_escape_sequences_are_made_visible(self):
        """CR, LF and ESC in a value become \\x0d, \\x0a, \\x1b; nothing raw remains."""
        event = escape_control_characters(
            None,
            "info",
            {"event": "denied", "san": "spiffe://x/svc/a\r\nFAKE LINE", "meta": "\x1b[31mred"},
        )
        assert event["san"] == "spiffe://x/svc/a\\x0d\\x0aFAKE LINE"
        assert event["meta"] == "\\x1b[31mred"
        assert all(value.isprintable() for value in event.values())

    def test_printable_values_are_untouched(self):
        """Ordinary text, including non-ASCII letters, is left as it is."""
        event = {"event": "ok", "name": "Zoë", "count": 3}
        assert escape_control_characters(None, "info", dict(event)) == event
