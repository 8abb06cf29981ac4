"""A local HTTP server for tests: serves files with Range support and counts the bytes it sends.
Modes make it misbehave the ways real servers do (ignore Range, answer with an HTML page)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Served:
    def __init__(self, root: Path, mode: str) -> None:
        self.root, self.mode = root, mode
        self.bytes_sent = 0
        self.requests = 0
        self.lock = threading.Lock()
        self.url = ""


def _handler(state: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = state.root / self.path.lstrip("/")
            if state.mode == "html":
                self._send(200, b"<!DOCTYPE html><html><body>Sign in</body></html>",
                           {"Content-Type": "text/html"})
                return
            if not path.is_file():
                self._send(404, b"not found", {})
                return
            data = path.read_bytes()
            match = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
            if state.mode == "ignore-range" or not match:
                self._send(200, data, {})
                return
            start = int(match.group(1))
            end = min(int(match.group(2) or len(data) - 1), len(data) - 1)
            self._send(206, data[start : end + 1],
                       {"Content-Range": f"bytes {start}-{end}/{len(data)}"})

        def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
            with state.lock:  # counted before sending, so the client never sees it behind
                state.bytes_sent += len(body)
                state.requests += 1
            self.send_response(code)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def serve(root: Path, mode: str = "range") -> Iterator[Served]:
    state = Served(root, mode)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
