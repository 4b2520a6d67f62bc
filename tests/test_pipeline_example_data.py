"""`make run` in a clone without ../shared/data: `fetch_example` takes real records of one WARC
of a crawl by HTTP Range into a cache, once. Here the crawl is served by the Common-Crawl-shaped
server on 127.0.0.1, holding real-pages.warc.gz as the crawl's one WARC."""

from __future__ import annotations

import gzip
import io

from curate.config import ReadConfig
from curate.pipeline.example_data import fetch_example
from curate.pipeline.sources import InputFile
from curate.pipeline.warc import ReadReport, WarcReader

CRAWL = "CC-MAIN-2099-01"
WARC = f"crawl-data/{CRAWL}/segments/1/warc/CC-MAIN-2099-01-00000.warc.gz"


def test_real_records_are_fetched_once_into_the_cache(cc_http_server, shared_data, tmp_path):
    srv = cc_http_server
    srv.files[f"crawl-data/{CRAWL}/warc.paths.gz"] = gzip.compress(WARC.encode() + b"\n")
    srv.files[WARC] = (shared_data / "real-pages.warc.gz").read_bytes()
    path = fetch_example(tmp_path / "cache", crawl=CRAWL, records=25, base_url=srv.base_url)
    report = ReadReport(str(path))
    rows = [r for b in WarcReader(ReadConfig()).read(InputFile(str(path)), io.BytesIO(path.read_bytes()), report)
            for r in b.to_pylist()]
    assert report.error is None and report.records_by_type == {"response": 25}
    known = {line.split("\t")[1] for line in (shared_data / "real-pages.index.tsv").read_text().splitlines()[1:]}
    assert len({r["url"] for r in rows}) == 25 and {r["url"] for r in rows} <= known  # real pages, no repeats
    requests = len(srv.log)
    assert fetch_example(tmp_path / "cache", crawl=CRAWL, records=25, base_url=srv.base_url) == path
    assert len(srv.log) == requests  # cached: nothing fetched again
