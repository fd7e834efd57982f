"""A webhook receiver for Alertmanager, run by a test: it keeps every notification with
the path it was posted to (one path per department's receiver)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Notification", "WebhookReceiver"]


@dataclass(frozen=True)
class Notification:
    """One alert of one webhook post: the receiver's path, its status and labels."""

    path: str
    status: str
    labels: dict[str, str]


class WebhookReceiver:
    """Listens on 127.0.0.1, a free port; `url` takes `{department}` as its path."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                payload: dict[str, Any] = json.loads(body)
                with receiver._arrived:
                    for alert in payload.get("alerts", []):
                        receiver.notifications.append(
                            Notification(self.path, alert["status"], dict(alert["labels"]))
                        )
                    receiver._arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass  # the test reads `notifications`, not a log

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/{{department}}"

    def wait_for(
        self, matches: Callable[[Notification], bool], timeout: float, what: str
    ) -> list[Notification]:
        """Every notification that `matches`, once there is one (AssertionError after
        `timeout` seconds)."""
        with self._arrived:
            found = self._arrived.wait_for(
                lambda: [n for n in self.notifications if matches(n)], timeout
            )
        assert found, f"no {what} within {timeout}s; received: {self.notifications}"
        return found

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
