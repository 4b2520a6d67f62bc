"""`extract.timeout_s` holds whatever a page does: a page stuck in one lxml C call (a 32 MB page
whose parse alone outlasts the limit) and one that spends its time in trafilatura's Python
fallback extractors (readability and jusText on thousands of tiny divs) both end as
`error:extract_timeout`, while the real pages around them come out exactly as trafilatura
gives them without any limit."""

from __future__ import annotations

import gzip
import json
import os
import signal
import threading
import time

import pytest
import trafilatura

from curate import schema
from curate.config import ExtractConfig
from curate.pipeline.extract import Extract, decode_html, trafilatura_kwargs

SLOW_IN_LXML = ("<html><body>" + "<div class='c'><p>lorem ipsum dolor sit amet</p></div>" * 600_000 + "</body></html>").encode()
SLOW_IN_FALLBACKS = ("<html><body><div>" + "<div><span>one two three four five six</span> <i>seven</i></div>\n" * 20_000
                     + "</div></body></html>").encode()


@pytest.fixture(scope="module")
def real_pages(shared_data) -> list[bytes]:
    index = [json.loads(line) for line in (shared_data / "extraction" / "index.jsonl").read_text().splitlines()]
    aeb = [row for row in index if row["id"].startswith("aeb/")][:3]
    return [gzip.decompress((shared_data / "extraction" / row["html_path"]).read_bytes()) for row in aeb]


def direct(page: bytes) -> str | None:
    text = trafilatura.extract(decode_html(page, None)[0], **trafilatura_kwargs(ExtractConfig()))
    return (text or "").strip() or None


def test_slow_pages_time_out_and_their_neighbours_are_untouched(real_pages):
    timeout = 1.0
    pages = [real_pages[0], SLOW_IN_LXML, real_pages[1], SLOW_IN_FALLBACKS, real_pages[2]]
    batch = schema.from_rows([{schema.ID: str(i), schema.RAW_HTML: p} for i, p in enumerate(pages)], schema.RAW_SCHEMA)
    stage = Extract(ExtractConfig(timeout_s=timeout))
    t0 = time.perf_counter()
    out = stage(batch).to_pylist()
    elapsed = time.perf_counter() - t0
    assert [r["drop_reason"] for r in out] == [None, "error:extract_timeout", None, "error:extract_timeout", None]
    assert [r["text"] for r in out[::2]] == [direct(p) for p in real_pages]
    assert stage.stats()["timeouts"] == 2 and stage.stats()["process_starts"] == 3  # replaced after each timeout
    # Without the limit these two pages take well over 10 s here; with it each costs its limit
    # plus starting a new extraction process.
    assert elapsed < 60


def test_a_page_that_kills_its_process_is_counted_and_the_next_page_is_served(real_pages):
    stage = Extract(ExtractConfig(timeout_s=30))
    assert stage.extract_one(real_pages[0], None)[2] is None
    stage.child.proc.kill()  # what a segfault in C code or the OOM killer does mid-page
    stage.child.proc.wait()
    text, _, reason = stage.extract_one(real_pages[1], None)
    assert reason is None and text == direct(real_pages[1])  # a dead idle process is simply replaced
    pid = stage.child.proc.pid
    killer = threading.Timer(0.5, lambda: os.kill(pid, signal.SIGKILL))
    killer.start()
    _, _, reason = stage.extract_one(SLOW_IN_FALLBACKS, None)
    killer.join()
    assert reason == "error:extract:process_died"
    assert stage.extract_one(real_pages[2], None)[0] == direct(real_pages[2])
