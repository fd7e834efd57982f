"""Where each key of a TOML document is written: key path -> line number.

tomllib gives a value with no positions, and a schema error is only useful
with its line (`company_policy.toml:23: intentions[4].destination: ...`). This
scanner reads the document's structure only (table headers, arrays of tables,
keys, dotted keys, inline tables, arrays) and skips every value's content,
strings of all four kinds included. It runs on text that tomllib has already
accepted, so it needs no error handling of its own: keys are decoded by
tomllib itself, and a path it does not find is placed at its nearest
enclosing key (`line_of`).
"""

from __future__ import annotations

import bisect
import re
import tomllib

from deptmesh.sidecar.policy_document.schema import KeyPath

__all__ = ["key_lines", "line_of"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BLANK = " \t"


def key_lines(text: str) -> dict[KeyPath, int]:
    """The 1-based line of every table, key and array element of a valid TOML document."""
    return _Scanner(text).scan()


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of `path`, else of its nearest enclosing key; None if none is known."""
    for end in range(len(path), 0, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


class _Scanner:
    def __init__(self, text: str) -> None:
        self._text = text
        self._at = 0
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]
        self._lines: dict[KeyPath, int] = {}
        self._array_tables: dict[KeyPath, int] = {}  # [[a.b]] path -> elements so far

    def scan(self) -> dict[KeyPath, int]:
        table: KeyPath = ()
        while True:
            self._skip_space(newlines=True)
            if self._at >= len(self._text):
                return self._lines
            if self._text.startswith("[[", self._at):
                self._at += 2
                table = self._array_table(self._key())
                self._at += 2  # ]]
            elif self._peek() == "[":
                self._at += 1
                table = self._table(self._key())
                self._at += 1  # ]
            else:
                self._key_value(table)

    def _line(self) -> int:
        return bisect.bisect_left(self._newlines, self._at) + 1

    def _peek(self) -> str:
        return self._text[self._at : self._at + 1]

    def _mark(self, path: KeyPath) -> None:
        line = self._line()
        for end in range(1, len(path) + 1):
            self._lines.setdefault(path[:end], line)

    def _resolve(self, keys: KeyPath) -> KeyPath:
        """A header's keys as a path: each array of tables on the way means its last element."""
        path: KeyPath = ()
        for key in keys:
            path = (*path, key)
            if path in self._array_tables:
                path = (*path, self._array_tables[path] - 1)
        return path

    def _table(self, keys: KeyPath) -> KeyPath:
        path = self._resolve(keys)
        self._mark(path)
        return path

    def _array_table(self, keys: KeyPath) -> KeyPath:
        array = (*self._resolve(keys[:-1]), keys[-1])
        count = self._array_tables.get(array, 0)
        self._array_tables[array] = count + 1
        path = (*array, count)
        self._mark(path)
        return path

    def _key_value(self, table: KeyPath) -> None:
        keys = self._key()
        path = (*table, *keys)
        self._mark(path)
        self._skip_space()
        self._at += 1  # =
        self._skip_space()
        self._value(path)

    def _key(self) -> KeyPath:
        """A dotted key, up to what follows it (`=`, `]`)."""
        keys: list[str] = []
        while True:
            self._skip_space()
            start = self._at
            if self._peek() in ('"', "'"):
                self._string()
                keys.append(tomllib.loads("k = " + self._text[start : self._at])["k"])
            else:
                match = _BARE_KEY.match(self._text, self._at)
                end = match.end() if match else self._at
                keys.append(self._text[start:end])
                self._at = end
            self._skip_space()
            if self._peek() != ".":
                return tuple(keys)
            self._at += 1

    def _value(self, path: KeyPath) -> None:
        first = self._peek()
        if first in ('"', "'"):
            self._string()
        elif first == "[":
            self._array(path)
        elif first == "{":
            self._inline_table(path)
        else:  # a number, boolean or date: up to what ends a value
            while self._at < len(self._text) and self._text[self._at] not in ",]}#\n":
                self._at += 1

    def _array(self, path: KeyPath) -> None:
        self._at += 1  # [
        index = 0
        while True:
            self._skip_space(newlines=True)
            if self._peek() == "]":
                self._at += 1
                return
            self._mark((*path, index))
            self._value((*path, index))
            index += 1
            self._skip_space(newlines=True)
            if self._peek() == ",":
                self._at += 1

    def _inline_table(self, path: KeyPath) -> None:
        self._at += 1  # {
        while True:
            self._skip_space(newlines=True)
            if self._peek() == "}":
                self._at += 1
                return
            keys = self._key()
            self._mark((*path, *keys))
            self._skip_space()
            self._at += 1  # =
            self._skip_space()
            self._value((*path, *keys))
            self._skip_space(newlines=True)
            if self._peek() == ",":
                self._at += 1

    def _string(self) -> None:
        quote = self._text[self._at]
        escapes = quote == '"'
        if self._text.startswith(quote * 3, self._at):
            self._at += 3
            while True:
                if escapes and self._text[self._at] == "\\":
                    self._at += 2
                elif self._text.startswith(quote * 3, self._at):
                    # Up to two quotes may end the content just before the closing three.
                    run = 3
                    while run < 5 and self._text[self._at + run : self._at + run + 1] == quote:
                        run += 1
                    self._at += run
                    return
                else:
                    self._at += 1
        self._at += 1
        while self._text[self._at] != quote:
            self._at += 2 if escapes and self._text[self._at] == "\\" else 1
        self._at += 1

    def _skip_space(self, *, newlines: bool = False) -> None:
        """Skips blanks (and newlines and comments when `newlines`, else a comment up to
        its end of line)."""
        text = self._text
        while self._at < len(text):
            char = text[self._at]
            if char in _BLANK or (newlines and char in "\r\n"):
                self._at += 1
            elif char == "#":
                end = text.find("\n", self._at)
                self._at = len(text) if end < 0 else end
            else:
                return
