"""Which Consul ACL token a process presents: given, in a file, or from the environment.

An explicit token beats an explicit token file, which beats the file
$CONSUL_HTTP_TOKEN_FILE names, which beats $CONSUL_HTTP_TOKEN (the order of
Consul's own client). A token file holds one token and nothing else; one that
cannot be read or holds something else is an error naming the file, never
quoting what is in it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["consul_token"]

# A token is a UUID; a file much larger than one is not a token file.
_MAX_TOKEN_FILE_BYTES = 4096


def _read_token_file(path: Path, source: str) -> str:
    try:
        with path.open("rb") as file:
            content = file.read(_MAX_TOKEN_FILE_BYTES + 1)
    except OSError as error:
        raise ValueError(
            f"the Consul token file {path}{source} cannot be read: {error.strerror or error}"
        ) from None
    try:
        token = content.decode().strip()
    except UnicodeDecodeError:
        token = ""
    # The content is never quoted: a file that is not a token may still be a secret.
    if len(content) > _MAX_TOKEN_FILE_BYTES or not token or not token.isprintable():
        raise ValueError(f"the Consul token file {path}{source} does not hold one token")
    if any(character.isspace() for character in token):
        raise ValueError(f"the Consul token file {path}{source} holds more than one word")
    return token


def consul_token(
    token: str | None = None,
    token_file: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> str | None:
    """The token to present: `token`, else the one in `token_file`, else the file
    $CONSUL_HTTP_TOKEN_FILE names, else $CONSUL_HTTP_TOKEN; None (anonymous) without any.

    Raises ValueError naming the file (never its content) when a token file
    cannot be read or does not hold exactly one token.
    """
    if token is not None:
        return token or None
    if token_file is not None:
        return _read_token_file(token_file, "")
    if environ.get("CONSUL_HTTP_TOKEN_FILE"):
        return _read_token_file(
            Path(environ["CONSUL_HTTP_TOKEN_FILE"]), " (from $CONSUL_HTTP_TOKEN_FILE)"
        )
    return environ.get("CONSUL_HTTP_TOKEN") or None
