"""A MediaWiki-Action-API-shaped HTTP server on 127.0.0.1 for tests, over real articles.

Answers `GET /w/api.php?action=query&generator=allpages&gapfrom=P&gaplimit=1&prop=extracts|info
&formatversion=2&format=json` as Wikipedia does: the first article whose title sorts at or
after P, with its plain text as `extract` and its `fullurl`. `faults` is consumed one entry per
request ("503", "429"); `log` holds every request's `gapfrom`.
"""

from __future__ import annotations

import bisect
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class WikiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, articles: list[dict]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.pages = sorted(articles, key=lambda a: a["title"])
        self.titles = [a["title"] for a in self.pages]
        self.faults: list[str] = []
        self.log: list[str] = []
        self.lock = threading.Lock()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/w/api.php"


class Handler(BaseHTTPRequestHandler):
    server: WikiServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 -- http.server's name
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        srv = self.server
        with srv.lock:
            fault = srv.faults.pop(0) if srv.faults else None
            srv.log.append(query.get("gapfrom", ""))
        if fault:
            self._send(int(fault), b'{"error": "try again"}')
            return
        if parts.path != "/w/api.php" or query.get("action") != "query" or query.get("generator") != "allpages":
            self._send(400, b'{"error": {"code": "badvalue"}}')
            return
        at = bisect.bisect_left(srv.titles, query.get("gapfrom", ""))
        pages = []
        if at < len(srv.pages):
            art = srv.pages[at]
            pageid = int(art["id"].rsplit("-", 1)[-1])
            pages = [{"pageid": pageid, "ns": 0, "title": art["title"], "extract": art["text"],
                      "fullurl": f"https://en.wikipedia.org/wiki/{art['title'].replace(' ', '_')}"}]
        self._send(200, json.dumps({"batchcomplete": True, "query": {"pages": pages}}).encode())
