"""`curate classifier build-data`: cited URLs in, labelled texts out, against a Common-Crawl-shaped
server on 127.0.0.1 (tests/cc_server.py) holding real WARCs of shared/data.

The CDX index the server answers is computed here from the WARC files themselves (warcio's record
offsets and lengths), so a lookup and a Range fetch must return exactly the record warcio reads
at that place. Faults (429/503 from the index, URLs it does not have, a server ignoring Range, a
body cut short, a record cut short in its file) are retried, resumed or counted, never a crash.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from warcio.archiveiterator import ArchiveIterator

from curate.classifiers.build_data import load_build_config, parse_build_config
from curate.classifiers.externallinks import (
    SqlDumpReader,
    externallinks_urls,
    sample_urls,
    url_from_index,
)
from curate.cli import main
from curate.config import ConfigError
from curate.pipeline.cc_index import (
    CdxClient,
    CdxError,
    CdxHit,
    TokenBucket,
    best_capture,
    fetch_record,
    sample_records,
)
from curate.pipeline.sources import RangeIgnored, RetryPolicy, TransferError

CRAWL = "CC-MAIN-2099-01"
SEGMENT = f"crawl-data/{CRAWL}/segments/0000.00/warc"
PAGES = f"{SEGMENT}/{CRAWL}-00000.warc.gz"  # real-pages.warc.gz: the cited pages
TRUNCATED = f"{SEGMENT}/{CRAWL}-00001.warc.gz"  # one real CC record cut short
# The crawl's warc.paths.gz: where negatives are sampled from (real CC and wget WARCs).
RANDOM_WARCS = {
    f"{SEGMENT}/{CRAWL}-00002.warc.gz": "warc/resiliparse/CC-MAIN-2020-34-sample.warc.gz",
    f"{SEGMENT}/{CRAWL}-00003.warc.gz": "warc/dolma-wget/sample-0000.warc.gz",
}
POLICY = RetryPolicy(retries=3, backoff_s=0.01, timeout_s=10)


def record_index(data: bytes, filename: str) -> dict[str, dict]:
    """CDX lines (by URL) for every response record of a WARC, at warcio's offsets."""
    lines = {}
    it = ArchiveIterator(io.BytesIO(data))
    for rec in it:
        if rec.rec_type != "response":
            continue
        rec.content_stream().read()
        url = rec.rec_headers.get_header("WARC-Target-URI").strip("<>")
        lines[url] = {"url": url, "filename": filename, "offset": str(it.get_record_offset()),
                      "length": str(it.get_record_length()), "status": rec.http_headers.get_statuscode(),
                      "mime": "text/html", "digest": rec.rec_headers.get_header("WARC-Payload-Digest"),
                      "timestamp": "20990101000000"}
    return lines


@pytest.fixture(scope="module")
def crawl_files(shared_data):
    pages = (shared_data / "real-pages.warc.gz").read_bytes()
    files = {PAGES: pages, TRUNCATED: (shared_data / "warc/resiliparse/CC-truncated-record.warc.gz").read_bytes()}
    files.update({path: (shared_data / local).read_bytes() for path, local in RANDOM_WARCS.items()})
    files[f"crawl-data/{CRAWL}/warc.paths.gz"] = gzip.compress("".join(p + "\n" for p in RANDOM_WARCS).encode())
    index = record_index(pages, PAGES)
    # The cut record: the index says the whole file (what the crawler wrote before it died).
    truncated_url = "http://www.houstonpress.com/"
    index[truncated_url] = {"url": truncated_url, "filename": TRUNCATED, "offset": "0",
                            "length": str(len(files[TRUNCATED])), "status": "200", "mime": "text/html"}
    return files, index


@pytest.fixture
def cc(cc_http_server, crawl_files):
    files, index = crawl_files
    cc_http_server.files = dict(files)
    cc_http_server.cdx = {url: [line] for url, line in index.items()}
    cc_http_server.faults.clear()
    cc_http_server.log.clear()
    return cc_http_server


def manifest_urls(shared_data: Path) -> list[str]:
    """The original URLs of the packed pages (the index.tsv rows whose URL is known)."""
    with open(shared_data / "real-pages.index.tsv", newline="") as f:
        return [r["target_uri"] for r in csv.DictReader(f, delimiter="\t") if r["url_source"] == "manifest"]


def client(cc) -> CdxClient:
    return CdxClient(cc.base_url, CRAWL, POLICY)


# ---------------------------------------------------------------------------------------------
# Index lookup and Range fetch


def test_lookup_and_range_fetch_give_exactly_the_indexed_record(cc, shared_data):
    urls = manifest_urls(shared_data)[:5]
    for url in urls:
        (hit,) = client(cc).lookup(url)
        data, attempts = fetch_record(cc.base_url, hit, POLICY)
        assert attempts == 1 and len(data) == hit.length
        assert data == cc.files[PAGES][hit.offset:hit.offset + hit.length]
        (rec,) = list(ArchiveIterator(io.BytesIO(data)))
        assert rec.rec_type == "response" and rec.rec_headers.get_header("WARC-Target-URI") == url
    ranges = [rng for path, rng, status in cc.log if path == PAGES]
    assert all(status == 206 for path, _, status in cc.log if path == PAGES)
    assert ranges == [f"bytes={h['offset']}-{int(h['offset']) + int(h['length']) - 1}"
                      for h in (cc.cdx[u][0] for u in urls)]


def test_index_429_and_503_are_retried_then_answered(cc, shared_data):
    url = manifest_urls(shared_data)[0]
    cc.faults["cdx:" + url] = ["429", "503"]
    cdx = client(cc)
    assert cdx.lookup(url) == [CdxHit.from_json(cc.cdx[url][0])]
    assert [s for k, _, s in cc.log if k == "cdx:" + url] == [429, 503, 200]
    assert cdx.retries == 2


def test_index_that_keeps_failing_is_a_counted_fault_not_a_hang(cc, shared_data):
    url = manifest_urls(shared_data)[0]
    cc.faults["cdx:" + url] = ["503"] * 10
    with pytest.raises(CdxError) as err:
        client(cc).lookup(url)
    assert err.value.kind == "gave_up" and len(cc.log) == POLICY.retries + 1


def test_url_the_index_does_not_have_gives_no_captures(cc):
    assert client(cc).lookup("https://not-crawled.example.org/page") == []


def test_best_capture_is_the_latest_200_html():
    def hit(status, mime, ts):
        return CdxHit("u", "f", 0, 1, status, mime, None, ts)

    assert best_capture([hit("301", "text/html", "3"), hit("200", "application/pdf", "2"), hit("200", "text/html", "1")]) \
        == hit("200", "text/html", "1")
    assert best_capture([hit("200", "text/html", "1"), hit("200", "text/html", "2")]).timestamp == "2"
    assert best_capture([hit("404", "text/html", "1")]) is None


def test_range_ignored_by_the_server_is_detected_before_reading_the_file(cc, shared_data):
    (hit,) = client(cc).lookup(manifest_urls(shared_data)[0])
    cc.faults[PAGES] = ["ignore_range"]
    with pytest.raises(RangeIgnored):
        fetch_record(cc.base_url, hit, POLICY)
    assert [s for p, _, s in cc.log if p == PAGES] == [200]


def test_body_cut_short_is_fetched_again_from_the_bytes_received(cc, shared_data):
    (hit,) = client(cc).lookup(manifest_urls(shared_data)[1])
    cc.faults[PAGES] = ["drop:700"]
    data, attempts = fetch_record(cc.base_url, hit, POLICY)
    assert data == cc.files[PAGES][hit.offset:hit.offset + hit.length] and attempts == 2
    first, resumed = [rng for p, rng, _ in cc.log if p == PAGES]
    start = int(resumed.split("=")[1].split("-")[0])
    # urllib3 may drop the partial chunk it was reading, so the resume starts at or after the offset.
    assert hit.offset <= start <= hit.offset + 700 and resumed.endswith(f"-{hit.offset + hit.length - 1}")


def test_range_beyond_the_end_of_the_file_is_a_transfer_failure(cc):
    size = len(cc.files[TRUNCATED])
    short = CdxHit("u", TRUNCATED, 0, size + 5000)  # the index promises more than the file holds
    with pytest.raises(TransferError, match="HTTP 416"):
        fetch_record(cc.base_url, short, POLICY)
    # what there is, then the rest asked for: not satisfiable, not retried
    assert [(rng, s) for p, rng, s in cc.log if p == TRUNCATED] == [(f"bytes=0-{size + 4999}", 206),
                                                                     (f"bytes={size}-{size + 4999}", 416)]


def test_token_bucket_keeps_the_rate():
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    bucket = TokenBucket(4.0, burst=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        bucket.acquire()
    # two free (the burst), then one every 1/4 s
    assert now[0] == pytest.approx(8 / 4)
    assert TokenBucket.per_worker(4.0, 4) == 1.0 and TokenBucket(None).acquire() == 0.0


def test_random_records_are_whole_distinct_responses_at_warcio_offsets(cc):
    path = next(iter(RANDOM_WARCS))
    data = cc.files[path]
    truth = {int(v["offset"]): int(v["length"]) for v in record_index(data, path).values()}
    picks = sample_records(cc.base_url + path, 6, random.Random(3), POLICY, window_bytes=32 << 10)
    assert len(picks) == 6 and len({p.offset for p in picks}) == 6
    for p in picks:
        assert truth[p.offset] == len(p.data) and data[p.offset:p.offset + len(p.data)] == p.data
    again = sample_records(cc.base_url + path, 6, random.Random(3), POLICY, window_bytes=32 << 10)
    assert [p.offset for p in again] == [p.offset for p in picks]


# ---------------------------------------------------------------------------------------------
# externallinks dump

DUMP = r"""-- MySQL dump 10.19  Distrib 10.3.38-MariaDB, for debian-linux-gnu (x86_64)
/*!40101 SET NAMES binary*/;
DROP TABLE IF EXISTS `externallinks`;
CREATE TABLE `externallinks` (
  `el_id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `el_from` int(8) unsigned NOT NULL DEFAULT 0,
  `el_to_domain_index` varbinary(255) NOT NULL DEFAULT '',
  `el_to_path` blob DEFAULT NULL,
  PRIMARY KEY (`el_id`),
  KEY `el_from` (`el_from`)
) ENGINE=InnoDB AUTO_INCREMENT=9 DEFAULT CHARSET=binary;
/*!40000 ALTER TABLE `externallinks` DISABLE KEYS */;
INSERT INTO `externallinks` VALUES (1,12,'https://org.example.www.','/a?b=1&c=\'d\''),(2,12,'http://com.example.:8080','/it\'s;(a),b'),(3,25,'mailto:com.example@bob','');
INSERT INTO `externallinks` VALUES (4,25,'https://V4.192.0.2.1.',NULL),(5,30,'https://uk.co.bbc.news.','/x\\y\nz'),(6,30,'https://V6.2001.db8.0.0.0.0.0.1.','/v6');
INSERT INTO `externallinks` VALUES (7,31,'https://org.wikipedia.en.','/wiki/O''Brien');
/*!40000 ALTER TABLE `externallinks` ENABLE KEYS */;
"""
DUMP_URLS = ["https://www.example.org/a?b=1&c='d'", "http://example.com:8080/it's;(a),b", "https://192.0.2.1/",
             "https://news.bbc.co.uk/x\\y\nz", "https://[2001:db8:0:0:0:0:0:1]/v6", "https://en.wikipedia.org/wiki/O'Brien"]
# Before MediaWiki 1.41: the URL itself in el_to, and no CREATE TABLE to say so (layout by arity).
OLD_DUMP = r"""INSERT INTO `externallinks` VALUES (1,12,'https://www.example.org/a','https://org.example.www./a','https://org.example.www./a'),(2,13,'ftp://files.example.org/x','ftp://org.example.files./x','ftp://org.example.files./x');
INSERT INTO `pagelinks` VALUES (1,0,'Not_a_link');
INSERT INTO `externallinks` VALUES (3,14,'http://example.com/p?q=\'1\'','http://com.example./p','http://com.example./p');
"""


@pytest.mark.parametrize("chunk_bytes", [1, 7, 64, 1 << 20])
def test_dump_rows_are_the_same_whatever_the_chunk_size(chunk_bytes):
    reader = SqlDumpReader(io.BytesIO(DUMP.encode()), chunk_bytes=chunk_bytes)
    rows = list(reader.rows())
    assert reader.columns == ("el_id", "el_from", "el_to_domain_index", "el_to_path")
    assert reader.statements == 3 and [r[0] for r in rows] == list(range(1, 8))
    assert rows[0] == (1, 12, "https://org.example.www.", "/a?b=1&c='d'")
    assert rows[3] == (4, 25, "https://V4.192.0.2.1.", None)
    assert rows[6][3] == "/wiki/O'Brien"


def test_modern_and_old_dumps_give_their_http_urls():
    counts = Counter()
    assert list(externallinks_urls(io.BytesIO(gzip.decompress(gzip.compress(DUMP.encode()))), counts)) == DUMP_URLS
    assert counts == {"rows": 7, "urls": 6, "not_http": 1}
    old = Counter()
    assert list(externallinks_urls(io.BytesIO(OLD_DUMP.encode()), old)) == \
        ["https://www.example.org/a", "http://example.com/p?q='1'"]
    assert old == {"rows": 3, "urls": 2, "not_http": 1}


def test_cited_urls_sampled_from_a_gzipped_dump(tmp_path):
    from curate.classifiers.build_data import PositivesConfig, read_cited_urls

    dump = tmp_path / "enwiki-20990101-externallinks.sql.gz"
    dump.write_bytes(gzip.compress(DUMP.encode()))
    urls, info = read_cited_urls(PositivesConfig(externallinks=str(dump), count=4, seed=1))
    assert info == {"input": str(dump), "rows": 7, "urls": 6, "not_http": 1, "sampled": 4}
    assert set(urls) <= set(DUMP_URLS) and len(urls) == 4
    assert urls == read_cited_urls(PositivesConfig(externallinks=str(dump), count=4, seed=1))[0]
    # the six URLs are on six registered domains (IP addresses count as their own): one per domain keeps all
    everything = read_cited_urls(PositivesConfig(externallinks=str(dump), count=10, seed=1))[0]
    assert sorted(everything) == sorted(DUMP_URLS)


def mysqldump_quote(value: str) -> str:
    """A string literal as mysqldump writes it (mysql_real_escape_string)."""
    table = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\0": "\\0", "\x1a": "\\Z"}
    return "'" + "".join(table.get(ch, ch) for ch in value) + "'"


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 2**40), st.text(max_size=20), st.one_of(st.none(), st.text(max_size=20))), min_size=1, max_size=6),
       per_statement=st.integers(1, 3), chunk_bytes=st.integers(1, 40))
def test_quoted_values_round_trip_through_any_chunking(rows, per_statement, chunk_bytes):
    def literal(v):
        return "NULL" if v is None else str(v) if isinstance(v, int) else mysqldump_quote(v)

    statements = [rows[i:i + per_statement] for i in range(0, len(rows), per_statement)]
    dump = "".join("INSERT INTO `externallinks` VALUES " + ",".join("(" + ",".join(map(literal, r)) + ")" for r in s) + ";\n"
                   for s in statements)
    got = list(SqlDumpReader(io.BytesIO(dump.encode()), chunk_bytes=chunk_bytes).rows())
    assert got == rows


_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


@given(scheme=st.sampled_from(["http", "https"]), labels=st.lists(_label, min_size=1, max_size=5),
       port=st.one_of(st.none(), st.integers(1, 65535)),
       path=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30).map(lambda p: "/" + p))
def test_domain_index_turns_back_into_the_url(scheme, labels, port, path):
    # MediaWiki's LinkFilter::makeIndexes: host labels reversed with a trailing dot, then the port.
    index = f"{scheme}://{'.'.join(reversed(labels))}." + (f":{port}" if port else "")
    host = ".".join(labels)
    assert url_from_index(index, path) == f"{scheme}://{host}{f':{port}' if port else ''}{path}"


@given(urls=st.lists(st.integers(0, 300).map(lambda i: f"https://site{i % 40}.example/{i}"), unique=True, max_size=120),
       n=st.integers(1, 30), seed=st.integers(0, 3), order=st.randoms())
def test_url_sample_is_deterministic_order_free_and_one_per_domain(urls, n, seed, order):
    shuffled = list(urls)
    order.shuffle(shuffled)
    first = sample_urls(urls, n, seed)
    assert first == sample_urls(shuffled, n, seed) and len(first) == min(n, len(urls)) and set(first) <= set(urls)
    domain = lambda u: u.split("/")[2]  # noqa: E731
    per_domain = sample_urls(urls + urls, n, seed, domain)
    assert per_domain == sample_urls(shuffled, n, seed, domain)
    assert len({domain(u) for u in per_domain}) == len(per_domain) == min(n, len({domain(u) for u in urls}))


# ---------------------------------------------------------------------------------------------
# Config


def test_config_errors_name_the_field(tmp_path):
    base = {"positives": {"url_list": "u.txt"}, "common_crawl": {"crawl": CRAWL}, "output": {"path": str(tmp_path)}}
    assert parse_build_config(base).negative_count == 10_000
    with pytest.raises(ConfigError, match=r"positives\.count"):
        parse_build_config({**base, "positives": {"url_list": "u.txt", "count": 0}})
    with pytest.raises(ConfigError, match="exactly one of externallinks, url_list"):
        parse_build_config({**base, "positives": {"url_list": "u.txt", "externallinks": "d.sql.gz"}})
    with pytest.raises(ConfigError, match=r"common_crawl\.crawl"):
        parse_build_config({**base, "common_crawl": {"crawl": "2024-10"}})
    with pytest.raises(ConfigError, match=r"negatives\.window_byts: unknown key"):
        parse_build_config({**base, "negatives": {"window_byts": 1}})
    with pytest.raises(ConfigError, match="config file not found"):
        load_build_config(tmp_path / "missing.yaml")
    example = load_build_config(Path(__file__).parents[1] / "examples" / "classifier-data.yaml")
    assert example.common_crawl.cdx_url == "https://index.commoncrawl.org/" and example.negative_count == 10_000


def test_cli_rejects_a_bad_config_naming_the_field_before_starting_ray(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"positives": {"url_list": "u.txt"}, "common_crawl": {"crawl": CRAWL, "cdx_rps": 2},
                                   "output": {"path": str(tmp_path)}}))
    assert main(["classifier", "build-data", str(bad)]) == 2
    assert "common_crawl.cdx_rps: unknown key" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# End to end: `curate classifier build-data CONFIG`


@pytest.mark.ray
def test_url_list_in_labelled_texts_out(ray_session, cc, shared_data, tmp_path):
    cited = manifest_urls(shared_data)[:10]
    missing = ["https://not-crawled.example.org/a", "https://not-crawled.example.org/b"]
    truncated = "http://www.houstonpress.com/"
    (tmp_path / "cited.txt").write_text("# cited by Wikipedia\n" + "\n".join([*cited, *missing, truncated, "mailto:x@y.org"]) + "\n")
    cc.faults["cdx:" + cited[0]] = ["503", "429"]  # retried, then found
    # Fetch faults in request order are not predictable across tasks; put them on one page each.
    cc.faults[PAGES] = []
    config = {
        "positives": {"url_list": str(tmp_path / "cited.txt"), "count": 100, "one_per_domain": False},
        "negatives": {"count": 6, "warc_files": 2, "window_bytes": 32768},
        "common_crawl": {"crawl": CRAWL, "cdx_url": cc.base_url, "data_url": cc.base_url, "retries": 2, "backoff_s": 0.01,
                         "cdx_requests_per_s": None, "data_requests_per_s": None},
        "output": {"path": str(tmp_path / "out")},
        "chunk_size": 6,
        "concurrency": 2,
    }
    (tmp_path / "build.yaml").write_text(yaml.safe_dump(config))
    assert main(["classifier", "build-data", str(tmp_path / "build.yaml")]) == 0

    out = tmp_path / "out"
    data = pq.read_table(out / "data.parquet")
    counts = json.loads((out / "counts.json").read_text())
    assert set(data.column_names) >= {"text", "label", "url", "domain", "source"}
    rows = data.to_pylist()
    pos = [r for r in rows if r["label"] == "wiki"]
    neg = [r for r in rows if r["label"] == "cc"]
    assert pos and neg and len(pos) + len(neg) == len(rows) and all(r["text"] for r in rows)
    assert {r["source"] for r in pos} == {"wikipedia_cited"} and {r["source"] for r in neg} == {"cc_random"}
    assert {r["url"] for r in pos} <= set(cited)  # the captured URL is the cited one
    assert {r["warc_filename"] for r in neg} <= set(RANDOM_WARCS)
    by_url = {r["url"]: r for r in pos}
    for url, row in by_url.items():  # the exact record the index points at
        line = cc.cdx[url][0]
        assert (row["warc_filename"], row["warc_offset"], row["warc_length"]) == (PAGES, int(line["offset"]), int(line["length"]))

    p = counts["positives"]
    assert counts["positives_input"] == {"input": str(tmp_path / "cited.txt"), "rows": 14, "urls": 13, "not_http": 1, "sampled": 13}
    assert p["asked"] == 13 and p["found"] == 11 and p["faults"]["index:not_found"] == 2
    assert p["fetched"] == 11 and p["faults"]["read:warc:truncated"] == 1
    assert p["requests"]["cdx_retries"] == 2
    steps = list(p["steps"].values())
    assert list(p["steps"])[:2] == ["read", "extract"] and steps == sorted(steps, reverse=True)
    assert p["kept"] == steps[-1] == len(pos)
    assert sum(p["dropped"].values()) == p["fetched"] - p["kept"]  # every fetched record accounted for
    n = counts["negatives"]
    assert n["asked"] == 6 and n["fetched"] == 6 and n["kept"] == len(neg)
    assert sum(n["dropped"].values()) == n["fetched"] - n["kept"]

    # A rerun reuses every chunk and gives the same file; a lost chunk is redone alone.
    before = (out / "data.parquet").read_bytes()
    assert main(["classifier", "build-data", str(tmp_path / "build.yaml")]) == 0
    assert json.loads((out / "counts.json").read_text())["chunks_run"] == 0
    (out / "work" / "chunks" / "pos-00001.json").unlink()
    assert main(["classifier", "build-data", str(tmp_path / "build.yaml")]) == 0
    again = json.loads((out / "counts.json").read_text())
    assert again["chunks_run"] == 1 and again["positives"] == {**p, "seconds": again["positives"]["seconds"],
                                                               "requests": again["positives"]["requests"]}
    assert pq.read_table(out / "data.parquet").equals(pq.read_table(io.BytesIO(before)))


@pytest.mark.ray
def test_fetch_faults_are_counted_per_kind(ray_session, cc, shared_data, tmp_path):
    """One chunk, so the requests come in URL order: the first page's Range is ignored, the second
    page's body is cut and resumed."""
    cited = manifest_urls(shared_data)[20:23]
    (tmp_path / "cited.txt").write_text("\n".join(cited) + "\n")
    config = parse_build_config({
        "positives": {"url_list": str(tmp_path / "cited.txt"), "count": 3, "one_per_domain": False},
        "negatives": {"count": 1, "warc_files": 1, "window_bytes": 32768},
        "common_crawl": {"crawl": CRAWL, "cdx_url": cc.base_url, "data_url": cc.base_url, "retries": 2, "backoff_s": 0.01},
        "output": {"path": str(tmp_path / "out")},
        "filters": {name: {"enabled": False} for name in
                    ("url", "language", "gopher_repetition", "gopher_quality", "c4", "fineweb", "pii")},
        "chunk_size": 3, "concurrency": 1,
    })
    from curate.classifiers.build_data import positive_chunk

    order = sample_urls(cited, 3, 0)
    cc.faults[PAGES] = ["ignore_range", "drop:500"]
    table, counts = positive_chunk(config, order)
    assert counts["faults"] == {"fetch:range_ignored": 1}
    assert counts["fetched"] == 2 and counts["requests"]["data"] == 3  # the cut one took two requests
    assert sorted(table.column("url").to_pylist()) == sorted(order[1:])


# ---------------------------------------------------------------------------------------------
# The columnar index


def columnar_index(root: Path, lines: list[dict]) -> None:
    """A copy of Common Crawl's columnar index layout and column names holding `lines`, sorted
    by domain and URL like the real one (by SURT), in small row groups; and the same captures
    under another crawl, at other offsets, which no lookup may return."""
    import pyarrow as pa

    from curate.pipeline.warc import _domain_extractor, registered_domain

    extractor = _domain_extractor()
    rows = sorted(({"url": h["url"], "url_host_registered_domain": registered_domain(h["url"], extractor),
                    "warc_filename": h["filename"], "warc_record_offset": int(h["offset"]),
                    "warc_record_length": int(h["length"]), "fetch_status": int(h["status"]),
                    "content_mime_type": h["mime"], "content_digest": h.get("digest")} for h in lines),
                  key=lambda r: (r["url_host_registered_domain"], r["url"]))
    for crawl, shift in ((CRAWL, 0), ("CC-MAIN-2099-02", 7)):
        folder = root / f"crawl={crawl}" / "subset=warc"
        folder.mkdir(parents=True)
        table = pa.Table.from_pylist([{**r, "warc_record_offset": r["warc_record_offset"] + shift} for r in rows])
        pq.write_table(table, folder / "part-00000.parquet", row_group_size=16)


def test_columnar_lookup_finds_the_cdx_captures_and_reads_few_row_groups(cc, shared_data, tmp_path):
    from curate.pipeline.cc_index import ColumnarIndex
    from curate.pipeline.warc import _domain_extractor, registered_domain

    columnar_index(tmp_path / "warc", [v[0] for v in cc.cdx.values()])
    index = ColumnarIndex(str(tmp_path / "warc"), CRAWL)
    urls = manifest_urls(shared_data)[30:36] + ["https://not-crawled.example.org/x"]
    extractor = _domain_extractor()
    domains = sorted({registered_domain(u, extractor) for u in urls})
    found = index.lookup_many(urls, domains)
    assert set(found) == set(urls[:-1])
    for url, hits in found.items():  # the very captures the CDX API gives
        (cdx_hit,) = client(cc).lookup(url)
        assert [(h.filename, h.offset, h.length, h.status) for h in hits] == \
            [(cdx_hit.filename, cdx_hit.offset, cdx_hit.length, "200")]
    # pushed down: the row-group statistics leave only the groups holding those domains
    expr = index.lookup_filter(urls, domains)
    (fragment,) = index.dataset.get_fragments(filter=expr)
    kept = fragment.split_by_row_group(filter=expr, schema=index.dataset.schema)
    assert fragment.num_row_groups == 25 and 1 <= len(kept) <= len(domains)  # 389 captures, 16 a group


def test_chunk_through_the_columnar_index(cc, shared_data, tmp_path):
    from curate.classifiers.build_data import positive_chunk

    columnar_index(tmp_path / "warc", [v[0] for v in cc.cdx.values()])
    urls = manifest_urls(shared_data)[40:43] + ["https://not-crawled.example.org/x"]
    config = parse_build_config({
        "positives": {"url_list": "unused.txt"},
        "common_crawl": {"crawl": CRAWL, "index": "columnar", "columnar_url": str(tmp_path / "warc"),
                         "data_url": cc.base_url, "cdx_url": "http://127.0.0.1:9/"},  # the CDX API is never asked
        "output": {"path": str(tmp_path / "out")},
        "filters": {name: {"enabled": False} for name in
                    ("url", "language", "gopher_repetition", "gopher_quality", "c4", "fineweb", "pii")},
    })
    table, counts = positive_chunk(config, urls)
    assert counts["found"] == counts["fetched"] == 3 and counts["faults"] == {"index:not_found": 1}
    assert counts["requests"]["columnar_scans"] == 1 and "cdx" not in {k for k, v in counts["requests"].items() if v}
    assert sorted(table.column("url").to_pylist()) == sorted(urls[:3])
    assert not [k for k, _, _ in cc.log if k.startswith("cdx:")]
