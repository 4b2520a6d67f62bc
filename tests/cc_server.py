"""A Common-Crawl-shaped HTTP server on 127.0.0.1 for tests: a data endpoint serving files by
path with Range support, and a CDX index API, both with faults injected per request.

Data endpoint: `files[path]` is served with `Range: bytes=a-` and `bytes=a-b`. `faults[path]` is
consumed one entry per request to that path: "503"; "429"; "drop" or "drop:N" (send CUT or N
bytes of the answer, then close the connection); "ignore_range" (answer 200 with the whole
file); "stall" (answer 206, send nothing, close).

CDX API: `GET /<crawl>-index?url=U&output=json` answers the JSON lines of `cdx[U]`, or 404 with
pywb's "No Captures found" when U has none. `faults["cdx:" + U]` works as above ("503", "429").
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CUT = 100_000  # bytes a "drop" sends before closing


class CCServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {}
        self.cdx: dict[str, list[dict]] = {}
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.log: list[tuple[str, str | None, int]] = []  # (path or "cdx:"+url, Range header, status)
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def handle_error(self, request, client_address) -> None:
        # A client that gives up on an answer (a Range ignored, a cut body) closes mid-write.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def fault(self, key: str) -> str | None:
        with self.lock:
            return self.faults[key].pop(0) if self.faults[key] else None

    def record(self, key: str, rng: str | None, status: int) -> None:
        with self.lock:
            self.log.append((key, rng, status))


class Handler(BaseHTTPRequestHandler):
    server: CCServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def _empty(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 -- http.server's name
        parts = urlsplit(self.path)
        if parts.path.endswith("-index"):
            self._cdx(parse_qs(parts.query))
            return
        path = parts.path.lstrip("/")
        rng = self.headers.get("Range")
        fault = self.server.fault(path)
        data = self.server.files.get(path)
        start, end = 0, None
        if rng and fault != "ignore_range":
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
            start, end = int(m.group(1)), int(m.group(2)) if m.group(2) else None
        if data is None:
            status = 404
        elif fault in ("503", "429"):
            status = int(fault)
        elif rng and fault != "ignore_range" and start >= len(data):
            status = 416
        else:
            status = 206 if rng and fault != "ignore_range" else 200
        self.server.record(path, rng, status)
        if status >= 400:
            self._empty(status)
            return
        last = len(data) - 1 if end is None else min(end, len(data) - 1)
        body = data[start:last + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{last}/{len(data)}")
        self.end_headers()
        if fault and (fault.startswith("drop") or fault == "stall"):
            cut = int(fault.partition(":")[2] or CUT) if fault != "stall" else 0
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True  # the client sees fewer bytes than Content-Length
            return
        self.wfile.write(body)

    def _cdx(self, query: dict[str, list[str]]) -> None:
        url = query.get("url", [""])[0]
        key = "cdx:" + url
        fault = self.server.fault(key)
        hits = self.server.cdx.get(url)
        status = int(fault) if fault in ("503", "429") else (200 if hits else 404)
        self.server.record(key, None, status)
        if status == 200:
            body = "".join(json.dumps(h) + "\n" for h in hits).encode()
        elif status == 404:
            body = json.dumps({"message": f"No Captures found for: {url}"}).encode()
        else:
            body = b""
        self.send_response(status)
        self.send_header("Content-Type", "text/x-ndjson" if status == 200 else "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(body)


def serve() -> CCServer:
    """A started server (stop it with `shutdown()` and `server_close()`)."""
    srv = CCServer()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
