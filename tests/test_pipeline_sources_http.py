"""`source: commoncrawl` against a Common-Crawl-shaped HTTP server on 127.0.0.1.

The server (tests/cc_server.py) lists real WARCs from shared/data in
`crawl-data/<crawl>/warc.paths.gz`, serves them with Range support, and injects faults per
request: 503s, a connection dropped mid-body, a resume answered without Range, resumes that
bring no bytes, a missing file. What a run reads
over HTTP must equal reading the same files locally; every fault is retried, resumed or
counted, never a crash, a hang or a duplicated record.
"""

from __future__ import annotations

import gzip
import re
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cc_server import CUT, CCServer

from curate.config import CommonCrawlInput, parse_config
from curate.pipeline.runner import ReadWarcs, Runner
from curate.pipeline.sources import InputError, resolve_inputs

CRAWL = "CC-MAIN-2099-01"
# Real WARCs of shared/data under Common Crawl style names, in warc.paths.gz order.
WARCS = {
    f"crawl-data/{CRAWL}/segments/0000.00/warc/CC-MAIN-{CRAWL}-00000.warc.gz": "warc/dolma-wget/sample-0000.warc.gz",
    f"crawl-data/{CRAWL}/segments/0000.00/warc/CC-MAIN-{CRAWL}-00001.warc.gz": "warc/resiliparse/CC-MAIN-2020-34-sample.warc.gz",
    f"crawl-data/{CRAWL}/segments/0000.01/warc/CC-MAIN-{CRAWL}-00002.warc.gz": "warc/commoncrawl-whirlwind/whirlwind.warc.gz",
    f"crawl-data/{CRAWL}/segments/0000.01/warc/CC-MAIN-{CRAWL}-00003.warc.gz": "warc/resiliparse/CC-truncated-record.warc.gz",
}
PATHS = list(WARCS)
MISSING = f"crawl-data/{CRAWL}/segments/0000.02/warc/CC-MAIN-{CRAWL}-00004.warc.gz"  # listed, never served
DOLMA = PATHS[0]  # 214 KB, 22 responses: big enough to cut in the middle (at cc_server.CUT)


@pytest.fixture
def cc(cc_http_server, shared_data):
    """The server with a fresh listing and no faults; returns it."""
    listing = "\n".join([*PATHS, MISSING]) + "\n"
    cc_http_server.files = {f"crawl-data/{CRAWL}/warc.paths.gz": gzip.compress(listing.encode())}
    cc_http_server.files.update({p: (shared_data / local).read_bytes() for p, local in WARCS.items()})
    cc_http_server.faults.clear()
    cc_http_server.log.clear()
    return cc_http_server


def config(server: CCServer, tmp_path: Path, **input_) -> dict:
    section = {"source": "commoncrawl", "crawl": CRAWL, "base_url": server.base_url, "files": 1,
               "retries": 3, "backoff_s": 0.05, "timeout_s": 10, **input_}
    return {"input": section, "output": {"path": str(tmp_path / "out"), "rows_per_shard": 50}}


def read_rows(cfg_data: dict, uri: str, tmp_path: Path) -> tuple[list[dict], dict]:
    """What the run's read stage makes of one input: its rows, and its completion marker."""
    import json

    cfg = parse_config(cfg_data)
    read_dir = tmp_path / f"read-{time.monotonic_ns()}"
    read_dir.mkdir()
    fn = ReadWarcs(cfg, str(read_dir))
    rows = [r for t in fn(pa.table({"uri": [uri], "crawl": [cfg.input.crawl]})) for r in t.to_pylist()]
    (marker,) = read_dir.glob("*.json")
    return rows, json.loads(marker.read_text())


def local_rows(shared_data: Path, path: str, tmp_path: Path) -> tuple[list[dict], dict]:
    data = {"input": {"paths": [str(shared_data / WARCS[path])], "crawl": CRAWL}, "output": {"path": str(tmp_path / "o")}}
    return read_rows(data, str(shared_data / WARCS[path]), tmp_path)


def resumed_at(rng: str | None) -> bool | None:
    """Whether a Range header resumes inside the part sent before the drop. The client resumes
    from the bytes it handed on, which can be fewer than CUT: urllib3 discards the partial
    chunk it was reading when the connection broke."""
    if rng is None:
        return None
    return 0 < int(re.fullmatch(r"bytes=(\d+)-", rng).group(1)) <= CUT


def without_path(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "warc_path"} for r in rows]


def test_file_choice_is_deterministic(cc, tmp_path):
    def chosen(**kw) -> list[str]:
        return [f.uri for f in resolve_inputs(CommonCrawlInput(**config(cc, tmp_path, **kw)["input"]))]

    first = chosen(files=2, seed=0)
    assert first == chosen(files=2, seed=0)
    assert len(first) == 2 and all(u.startswith(cc.base_url + f"crawl-data/{CRAWL}/") for u in first)
    # listing order is kept; other seeds pick other files
    all5 = [cc.base_url + p for p in [*PATHS, MISSING]]
    assert first == sorted(first, key=all5.index)
    assert len({tuple(chosen(files=2, seed=s)) for s in range(8)}) > 1
    assert chosen(files=[3, 0]) == [all5[3], all5[0]]
    with pytest.raises(InputError, match="out of range"):
        chosen(files=[7])


def test_listing_that_cannot_be_fetched_is_an_input_error(cc, tmp_path):
    with pytest.raises(InputError, match="warc.paths.gz"):
        resolve_inputs(CommonCrawlInput(**config(cc, tmp_path, crawl="CC-MAIN-2099-02")["input"]))


def test_documents_over_http_equal_reading_the_files_locally(cc, shared_data, tmp_path):
    cfg = config(cc, tmp_path)
    for path in PATHS:
        remote, remote_marker = read_rows(cfg, cc.base_url + path, tmp_path)
        local, local_marker = local_rows(shared_data, path, tmp_path)
        assert remote and without_path(remote) == without_path(local)
        assert {r["warc_path"] for r in remote} == {cc.base_url + path}
        for key in ("records_by_type", "rows", "error"):
            assert remote_marker[key] == local_marker[key], (path, key)
    assert all(status == 200 and rng is None for _, rng, status in cc.log)


def test_503_is_retried_with_backoff(cc, shared_data, tmp_path):
    cc.faults[DOLMA] = ["503", "503"]
    t0 = time.perf_counter()
    rows, marker = read_rows(config(cc, tmp_path, backoff_s=0.2), cc.base_url + DOLMA, tmp_path)
    waited = time.perf_counter() - t0
    assert [s for p, _, s in cc.log if p == DOLMA] == [503, 503, 200]
    assert waited >= 0.2 + 0.4  # backoff_s, then twice that
    assert marker["error"] is None
    assert without_path(rows) == without_path(local_rows(shared_data, DOLMA, tmp_path)[0])


def test_dropped_connection_resumes_with_range(cc, shared_data, tmp_path):
    cc.faults[DOLMA] = ["drop"]
    rows, marker = read_rows(config(cc, tmp_path), cc.base_url + DOLMA, tmp_path)
    assert [(resumed_at(rng), s) for p, rng, s in cc.log if p == DOLMA] == [(None, 200), (True, 206)]
    assert marker["error"] is None
    assert without_path(rows) == without_path(local_rows(shared_data, DOLMA, tmp_path)[0])


def test_server_ignoring_range_fails_the_file_without_duplicates(cc, shared_data, tmp_path):
    cc.faults[DOLMA] = ["drop", "ignore_range"]
    rows, marker = read_rows(config(cc, tmp_path), cc.base_url + DOLMA, tmp_path)
    # one resume attempt, answered 200 from byte 0: not restarted, not retried
    assert [(resumed_at(rng), s) for p, rng, s in cc.log if p == DOLMA] == [(None, 200), (True, 200)]
    assert marker["error"] == "warc:transfer_failed"
    local = without_path(local_rows(shared_data, DOLMA, tmp_path)[0])
    ok = [r for r in without_path(rows) if r["drop_reason"] != "error:warc:transfer_failed"]
    assert 0 < len(ok) < len(local) and ok == local[: len(ok)]  # every record before the cut, once
    assert len(rows) - len(ok) <= 1 and marker["rows"] == len(rows)


@pytest.mark.timeout(60)
def test_resumes_that_bring_no_bytes_give_up_after_the_retries(cc, tmp_path):
    cc.faults[DOLMA] = ["drop"] + ["stall"] * 50
    rows, marker = read_rows(config(cc, tmp_path, retries=2), cc.base_url + DOLMA, tmp_path)
    # the first request, then one resume per allowed retry: never an endless reconnect loop
    assert len([p for p, _, _ in cc.log if p == DOLMA]) == 1 + 2
    assert marker["error"] == "warc:transfer_failed" and "gave up" in marker["error_detail"]
    assert rows and marker["rows"] == len(rows)


def test_file_that_never_answers_is_a_transfer_failure(cc, tmp_path):
    cc.faults[DOLMA] = ["503"] * 10
    rows, marker = read_rows(config(cc, tmp_path, retries=1), cc.base_url + DOLMA, tmp_path)
    assert rows == [] and marker["error"] == "warc:transfer_failed" and marker["rows"] == 0
    assert len(cc.log) == 2


def test_missing_file_is_counted(cc, tmp_path):
    rows, marker = read_rows(config(cc, tmp_path), cc.base_url + MISSING, tmp_path)
    assert rows == [] and marker["error"] == "warc:open_error:FileNotFoundError"
    assert cc.log == [(MISSING, None, 404)]  # a 404 is not retried


@pytest.mark.ray
def test_commoncrawl_run_over_http_with_faults(ray_session, cc, shared_data, tmp_path):
    """The whole run over the files listed after the first (the first's 22 pages would only add
    extraction time): one missing, one behind a 503 and then a dropped connection; the output
    holds exactly the documents of the same files read locally."""
    chosen = PATHS[1:]
    cfg_data = config(cc, tmp_path, files=[1, 2, 3, 4])
    cfg_data["filters"] = {name: {"enabled": False} for name in
                           ("url", "language", "gopher_repetition", "gopher_quality", "c4", "fineweb", "pii")}
    cfg_data["dedup"] = {"exact": {"enabled": False}, "minhash": {"enabled": False}}
    cc.faults[chosen[0]] = ["503", "drop"]
    result = Runner(parse_config(cfg_data)).run(num_cpus=2)

    stats = result.stats
    assert stats["inputs"] == 4
    assert stats["file_errors"] == {"warc:open_error:FileNotFoundError": 1, "warc:truncated": 1}
    local = [r for p in chosen for r in local_rows(shared_data, p, tmp_path)[0]]
    out = pa.concat_tables([pq.read_table(p) for p in sorted(result.output.glob("*/*.parquet"))
                            if p.parent.name in ("shards", "rejected")])
    assert stats["read"] == len(local) == out.num_rows
    assert sorted(zip(out.column("id").to_pylist(), out.column("warc_offset").to_pylist())) == \
        sorted((r["id"], r["warc_offset"]) for r in local)
    assert set(out.column("warc_path").to_pylist()) == {cc.base_url + p for p in chosen}
    assert stats["kept"] > 0
    assert [(resumed_at(rng), s) for p, rng, s in cc.log if p == chosen[0]] == [(None, 503), (None, 200), (True, 206)]
