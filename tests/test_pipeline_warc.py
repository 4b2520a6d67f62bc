"""WARC reading on real data: what becomes a document, and every fault counted, never raised."""

from __future__ import annotations

import gzip
import io
import os
from collections import Counter
from pathlib import Path

import pytest

from curate import schema
from curate.config import ReadConfig
from curate.pipeline.extract import decode_html
from curate.pipeline.sources import InputFile
from curate.pipeline.warc import ReadReport, WarcReader, classify_payload


def read_all(path: Path | str, data: bytes | None = None, **cfg):
    reader = WarcReader(ReadConfig(**cfg))
    report = ReadReport(str(path))
    stream = io.BytesIO(data) if data is not None else open(path, "rb")
    rows = [r for b in reader.read(InputFile(str(path)), stream, report) for r in b.to_pylist()]
    return rows, report


def test_real_pages_all_become_documents(shared_data):
    rows, report = read_all(shared_data / "real-pages.warc.gz")
    assert report.error is None and report.records_by_type == {"warcinfo": 1, "response": 388}
    assert len(rows) == 388 and all(r["drop_reason"] is None and r["raw_html"] for r in rows)
    index = [line.split("\t") for line in (shared_data / "real-pages.index.tsv").read_text().splitlines()[1:]]
    assert [r["id"] for r in rows] == [i[0].strip("<>").removeprefix("urn:uuid:") for i in index]
    assert [r["url"] for r in rows] == [i[1] for i in index]
    assert len({r["id"] for r in rows}) == 388
    offsets = [r["warc_offset"] for r in rows]
    assert offsets == sorted(offsets) and offsets[0] > 0


def test_common_crawl_sample_keeps_metadata(shared_data):
    rows, report = read_all(shared_data / "warc/resiliparse/CC-MAIN-2020-34-sample.warc.gz")
    assert report.records_by_type["request"] == 17 and report.records_by_type["metadata"] == 16
    assert len(rows) == 16
    r = rows[0]
    assert r["url"].startswith("http") and r["domain"] and "." in r["domain"]
    assert r["fetch_time"].year == 2020


def test_wget_angle_bracket_uris_are_cleaned(shared_data):
    rows, _ = read_all(shared_data / "warc/dolma-wget/sample-0000.warc.gz")
    assert rows and all(not r["url"].startswith("<") for r in rows)
    assert any(r["domain"] == "semanticscholar.org" for r in rows)


def test_truncated_common_crawl_record_is_a_counted_error(shared_data):
    rows, report = read_all(shared_data / "warc/resiliparse/CC-truncated-record.warc.gz")
    assert report.error == "warc:truncated"
    assert [r["drop_reason"] for r in rows] == ["error:warc:truncated_record"]


def test_gzip_cut_mid_stream_keeps_every_complete_record(shared_data):
    data = (shared_data / "real-pages.warc.gz").read_bytes()
    full, _ = read_all("x", data)
    rows, report = read_all("cut.warc.gz", data[: len(data) // 2])
    assert report.error == "warc:truncated"
    complete = [r for r in rows if r["drop_reason"] is None]
    assert len(complete) >= 150
    assert [r["id"] for r in complete] == [r["id"] for r in full[: len(complete)]]
    assert rows[-1]["drop_reason"] == "error:warc:truncated_record"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "warc:empty_file"),
        (b"hello, this is not a WARC file\n" * 50, "warc:not_warc"),
        (os.urandom(4096).replace(b"\x1f", b"\x00"), "warc:not_warc"),
        (gzip.compress(b"plain text, gzipped, not a WARC\n" * 20), "warc:not_warc"),
    ],
)
def test_non_warc_inputs_are_counted_errors(data, error):
    rows, report = read_all("bad.warc.gz", data)
    assert rows == [] and report.error == error


def test_non_html_non_200_and_giant_pages_get_reasons(shared_data):
    rows, _ = read_all(shared_data / "real-pages.warc.gz", max_record_bytes=50_000)
    reasons = Counter(r["drop_reason"] for r in rows)
    assert reasons["warc:too_large"] > 0 and reasons[None] > 0
    assert all(r["raw_html"] is None for r in rows if r["drop_reason"])


def test_payload_classification():
    assert classify_payload("text/html; charset=utf-8", None, b"<html>") is None
    assert classify_payload("application/pdf", None, b"%PDF-1.4") == "warc:not_html:application/pdf"
    assert classify_payload(None, None, b"<!DOCTYPE html><html><body>x") is None  # no type: bytes decide
    assert classify_payload(None, "application/javascript", b"var x = 1;").startswith("warc:not_html")
    assert classify_payload("text/html", None, b"\x89PNG\r\n\x1a\n\x00\x00\x00") == "warc:mislabelled:image/png"
    assert classify_payload("text/html", None, b"<p>x\x00\x01 binary") == "warc:binary"


def test_charset_header_then_meta_then_detection():
    text = "Größe und Übermaß"
    assert decode_html(text.encode("latin-1"), "iso-8859-1") == (text, "iso8859-1")
    meta = b'<meta charset="windows-1252"><p>' + "café".encode("cp1252")
    assert "café" in decode_html(meta, None)[0]
    # a wrong header falls through to the next source instead of crashing
    assert "café" in decode_html(meta, "utf-8")[0]
    assert decode_html("日本語のテキスト".encode("shift_jis") * 20, None)[0].startswith("日本語")
    out, _ = decode_html(b"\xff\xfe\xfa broken \x80\x81 bytes", "no-such-charset")
    assert "broken" in out  # undecodable bytes are replaced, never raised
