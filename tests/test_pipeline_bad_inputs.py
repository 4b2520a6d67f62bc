"""The bad-input corpus: every case of a hostile or broken WARC is counted under its own reason,
nothing raises, and every good record around it is kept.

Each case is one record (or one file-level fault) placed between two real pages from
`real-pages.warc.gz`, in a gzipped WARC (one member per record, as Common Crawl writes them) and,
where the case is about framing, in an uncompressed one too. The real pages must come out whole
and identical to reading them alone; the bad record must carry exactly its expected reason.
Pages that reach extraction are run through the real `Extract` stage as well.
"""

from __future__ import annotations

import gzip
import io
import random
import zlib
from collections import Counter
from pathlib import Path

import brotli
import pytest

from curate.config import ExtractConfig, ReadConfig
from curate.pipeline.extract import Extract
from curate.pipeline.sources import InputFile
from curate.pipeline.warc import ReadReport, WarcReader

PARA = "<p>" + "The committee met on Tuesday to discuss the new library budget and its opening hours. " * 4 + "</p>"
PAGE = f"<!DOCTYPE html><html><head><title>t</title></head><body><article>{PARA * 3}</article></body></html>"


def warc_record(block: bytes, *, rec_type: str = "response", uri: str = "http://example.com/page",
                version: str = "1.0", length: int | None = None, extra: str = "", rid: str | None = None) -> bytes:
    """One WARC record; `length` overrides the true Content-Length (a lying record)."""
    rid = rid or f"<urn:uuid:{random.Random(block + uri.encode()).randbytes(16).hex()}>"
    head = (f"WARC/{version}\r\nWARC-Type: {rec_type}\r\nWARC-Record-ID: {rid}\r\nWARC-Target-URI: {uri}\r\n"
            f"WARC-Date: 2024-05-18T10:00:00Z\r\nContent-Type: application/http; msgtype=response\r\n{extra}"
            f"Content-Length: {len(block) if length is None else length}\r\n\r\n")
    return head.encode("latin-1") + block + b"\r\n\r\n"


def http_block(body: bytes, *, status: str = "HTTP/1.1 200 OK", headers: str = "Content-Type: text/html; charset=utf-8") -> bytes:
    return f"{status}\r\n{headers}\r\n\r\n".encode("latin-1") + body


def chunked(body: bytes, size: int = 100) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


@pytest.fixture(scope="module")
def good(shared_data) -> list[bytes]:
    """Two real records (their raw bytes, gzip-decoded), from the shared real pages."""
    data = (shared_data / "real-pages.warc.gz").read_bytes()
    out, z, rest = [], None, data
    while rest and len(out) < 3:
        z = zlib.decompressobj(31)
        out.append(z.decompress(rest))
        rest = z.unused_data
    return out[1:3]  # skip the warcinfo record


def read(data: bytes, **cfg) -> tuple[list[dict], ReadReport]:
    report = ReadReport("case.warc.gz")
    rows = [r for b in WarcReader(ReadConfig(**cfg)).read(InputFile("case.warc.gz"), io.BytesIO(data), report)
            for r in b.to_pylist()]
    return rows, report


def gz(*records: bytes) -> bytes:
    return b"".join(gzip.compress(r, compresslevel=1, mtime=0) for r in records)


HTML = PAGE.encode()
GERMAN = ("<html><body><article><p>Die Stadtbücherei öffnet länger: Über die Öffnungszeiten und das Budget für "
          "Bücher wurde am Dienstag im Ausschuss gesprochen. Größere Räume sind geplant.</p></article></body></html>")
# (case, bad record, reason of its row (None: it is a good document; "-": no row), extraction outcome)
RECORD_CASES = [
    ("content_length_longer", warc_record(http_block(HTML), length=len(http_block(HTML)) + 5000), "error:warc:length_mismatch"),
    ("content_length_shorter", warc_record(http_block(HTML), length=100), "error:warc:length_mismatch"),
    ("content_length_not_a_number", warc_record(http_block(HTML), length=None, extra="X: y\r\n").replace(
        b"Content-Length: ", b"Content-Length: abc"), "error:warc:bad_header"),
    ("pdf_labelled_html", warc_record(http_block(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n" * 20)), "warc:mislabelled:application/pdf"),
    ("png_labelled_html", warc_record(http_block(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)), "warc:mislabelled:image/png"),
    ("random_bytes_labelled_html", warc_record(http_block(random.Random(7).randbytes(20_000))), "warc:binary"),
    ("page_of_50_mb", warc_record(http_block(b"<html><body>" + b"<p>lorem ipsum dolor</p>" * 2_200_000)), "warc:too_large"),
    ("malformed_status_line", warc_record(http_block(HTML, status="HTTP/1.1 OK")), "error:warc:bad_http_status"),
    ("status_line_not_http", warc_record(http_block(HTML, status="hello there")), "error:warc:bad_http_status"),
    ("http_404", warc_record(http_block(HTML, status="HTTP/1.1 404 Not Found")), "warc:http_404"),
    ("header_line_without_colon", warc_record(http_block(HTML, headers="Content-Type text/html\r\nBroken")), None),
    ("chunked_body", warc_record(http_block(chunked(HTML), headers="Content-Type: text/html\r\nTransfer-Encoding: chunked")), None),
    ("gzip_body", warc_record(http_block(gzip.compress(HTML), headers="Content-Type: text/html\r\nContent-Encoding: gzip")), None),
    ("brotli_body", warc_record(http_block(brotli.compress(HTML), headers="Content-Type: text/html\r\nContent-Encoding: br")), None),
    ("broken_chunked_body", warc_record(http_block(chunked(HTML)[:-40] + b"zz\r\n" + b"x" * 40,
                                                  headers="Content-Type: text/html\r\nTransfer-Encoding: chunked")),
     "error:warc:undecodable_body:chunked"),
    ("broken_gzip_body", warc_record(http_block(gzip.compress(HTML)[:-30] + b"\x00" * 30,
                                               headers="Content-Type: text/html\r\nContent-Encoding: gzip")),
     "error:warc:undecodable_body:gzip"),
    ("broken_brotli_body", warc_record(http_block(brotli.compress(HTML)[:40], headers="Content-Type: text/html\r\nContent-Encoding: br")),
     "error:warc:undecodable_body:br"),
    ("zstd_body", warc_record(http_block(b"\x28\xb5\x2f\xfd" + random.Random(3).randbytes(500),
                                         headers="Content-Type: text/html\r\nContent-Encoding: zstd")),
     "error:warc:undecodable_body:zstd"),
    ("revisit_record", warc_record(http_block(b""), rec_type="revisit"), "-"),
    ("warc_1_1_record", warc_record(http_block(HTML), version="1.1"), None),
    ("angle_bracket_uri", warc_record(http_block(HTML), uri="<https://example.org/a>"), None),
    ("idn_uri", warc_record(http_block(HTML), uri="https://bücher.example.de/straße"), None),
    ("hostless_uri", warc_record(http_block(HTML), uri="http:///no-host/path"), None),
    ("urn_uri", warc_record(http_block(HTML), uri="urn:x-test:page"), None),
    ("bogus_charset", warc_record(http_block(HTML, headers="Content-Type: text/html; charset=x-no-such-charset")), None),
    ("lying_charset_utf16", warc_record(http_block(HTML, headers="Content-Type: text/html; charset=utf-16")), None),
    ("lying_charset_utf8_on_latin1", warc_record(http_block(GERMAN.encode("latin-1"))), None),
    ("nul_bytes_in_page", warc_record(http_block(HTML[:3000] + b"\x00\x00" + HTML[3000:])), None),
    ("lone_surrogates", warc_record(http_block(HTML.replace(b"budget", b"bud\xed\xa0\x80get"))), None),
    ("nested_tags_10e6", warc_record(http_block(b"<html><body>" + b"<b>" * 1_000_000 + HTML)), None),
]
# Framing cases that must also hold in an uncompressed WARC.
PLAIN_CASES = {"content_length_longer", "content_length_shorter", "content_length_not_a_number", "revisit_record",
               "chunked_body", "malformed_status_line"}


CASES = [(*c, True) for c in RECORD_CASES] + [(*c, False) for c in RECORD_CASES if c[0] in PLAIN_CASES]


@pytest.mark.parametrize(("case", "bad", "reason", "compressed"), CASES,
                         ids=[f"{c[0]}-{'gzip' if c[3] else 'plain'}" for c in CASES])
def test_one_bad_record_costs_only_itself(case, bad, reason, compressed, good):
    expected_good, _ = read(gz(*good))
    records = [good[0], bad, good[1]]
    rows, report = read(gz(*records) if compressed else b"".join(records))
    assert report.error is None, report.error_detail
    kept = [r for r in rows if r["id"] in {g["id"] for g in expected_good}]
    # Both real pages around the bad record are read whole (offsets differ: the bad one sits between).
    assert [{k: v for k, v in r.items() if k != "warc_offset"} for r in kept] == \
           [{k: v for k, v in r.items() if k != "warc_offset"} for r in expected_good]
    others = [r for r in rows if r not in kept]
    if reason == "-":
        assert others == [] and report.records_by_type["revisit"] == 1
    else:
        assert [r["drop_reason"] for r in others] == [reason]
    assert sum(report.records_by_type.values()) == 3  # every record counted, the bad one too


def test_documents_of_the_corpus_extract_or_get_a_reason(good):
    """The cases that reach extraction do not crash it; decodable pages give their text."""
    ok = [(c, b) for c, b, r in RECORD_CASES if r is None]
    rows, report = read(gz(*[b for _, b in ok]))
    assert report.error is None and [r["drop_reason"] for r in rows] == [None] * len(ok)
    from curate import schema

    out = Extract(ExtractConfig(timeout_s=30)).__call__(schema.from_rows(rows, schema.RAW_SCHEMA)).to_pylist()
    result = {case: (r["drop_reason"], r["text"] or "") for (case, _), r in zip(ok, out)}
    for case in ("chunked_body", "gzip_body", "brotli_body", "warc_1_1_record", "angle_bracket_uri", "idn_uri",
                 "hostless_uri", "urn_uri", "bogus_charset", "lying_charset_utf16", "nul_bytes_in_page",
                 "header_line_without_colon"):
        assert result[case][0] is None and "library budget" in result[case][1], case
    assert "Größere Räume" in result["lying_charset_utf8_on_latin1"][1]
    assert "bud" in result["lone_surrogates"][1]
    assert result["nested_tags_10e6"][0] in (None, "extract:empty")
    by_case = {case: r for (case, _), r in zip(ok, rows)}
    assert by_case["angle_bracket_uri"]["url"] == "https://example.org/a"
    assert by_case["idn_uri"]["domain"] == "example.de"
    assert by_case["hostless_uri"]["domain"] is None and by_case["urn_uri"]["domain"] is None


def test_file_level_faults_keep_every_complete_record(good):
    whole = gz(*good, *good[::-1])
    cases = {
        "empty_file": (b"", "warc:empty_file", 0),
        "not_gzip_not_warc": (b"just some text\n" * 20, "warc:not_warc", 0),
        "gzip_of_text": (gzip.compress(b"plain text, gzipped\n" * 20), "warc:not_warc", 0),
        # cut inside the third member: two records whole, the third a truncated record
        "gzip_cut_mid_member": (whole[: len(gz(*good)) + 500], "warc:truncated", 2),
        "plain_truncated_record": (b"".join(good) + good[0][: len(good[0]) // 2], "warc:truncated", 2),
    }
    for case, (data, error, complete) in cases.items():
        rows, report = read(data)
        assert report.error == error, case
        assert [r["drop_reason"] for r in rows][:complete] == [None] * complete, case
        assert [r["drop_reason"] for r in rows][complete:] == (["error:warc:truncated_record"] if complete else []), case


def test_corrupt_gzip_member_is_skipped_to_the_next_member(good):
    broken = bytearray(gzip.compress(good[0], mtime=0))
    broken[len(broken) // 2: len(broken) // 2 + 64] = b"\x00" * 64  # damage the deflate data
    rows, report = read(gz(good[1]) + bytes(broken) + gz(good[1], good[0]))
    assert report.error is None
    assert [r["drop_reason"] for r in rows] == [None, "error:warc:corrupt_gzip_member", None, None]
    assert report.records_by_type == Counter({"response": 3, "invalid": 1})


def test_real_files_read_as_before(shared_data):
    """The framing agrees with warcio on every shared WARC: same records, same offsets."""
    from warcio.archiveiterator import ArchiveIterator

    for path in sorted(Path(shared_data).rglob("*.warc.gz")):
        if "truncated" in path.name:
            continue
        with open(path, "rb") as fh:
            it = ArchiveIterator(fh)
            expected = []
            for rec in it:
                if rec.rec_type == "response":
                    rec.content_stream().read()
                    expected.append(it.get_record_offset())
        rows, report = read(path.read_bytes())
        assert report.error is None and sum(report.record_faults.values()) == 0, path
        assert [r["warc_offset"] for r in rows] == expected, path
