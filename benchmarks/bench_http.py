"""A loopback HTTP server with Range support for the remote-read rows: counts the requests and
bytes it sends, so the figures do not rest on ckpt's own count alone."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Served:
    root: Path
    url: str = ""
    requests: int = 0
    bytes_sent: int = 0

    def reset(self) -> None:
        self.requests = self.bytes_sent = 0


def _handler(state: Served, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = (state.root / self.path.lstrip("/")).resolve()
            if not path.is_relative_to(state.root.resolve()) or not path.is_file():
                self._send(404, b"not found", {})
                return
            size = path.stat().st_size
            match = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
            start = int(match.group(1)) if match else 0
            end = min(int(match.group(2) or size - 1), size - 1) if match else size - 1
            with path.open("rb") as f:
                f.seek(start)
                body = f.read(end - start + 1)
            headers = {"Content-Range": f"bytes {start}-{end}/{size}"} if match else {}
            self._send(206 if match else 200, body, headers)

        def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
            with lock:
                state.requests += 1
                state.bytes_sent += len(body)
            self.send_response(code)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def serve(root: Path) -> Iterator[Served]:
    state = Served(root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state, threading.Lock()))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
