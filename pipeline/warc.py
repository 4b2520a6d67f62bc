"""WARC reading: records in, document rows (with raw page bytes) out.

Every `response` record becomes one row, and so does every record that cannot be parsed at all. HTTP 200 HTML pages go on to extraction; the others
get a `warc:` drop reason (`warc:http_404`, `warc:not_html:application/pdf`, `warc:too_large`,
`warc:binary`, ...). Other record types (request, metadata, warcinfo, revisit) are counted by
type. A file that cannot be read to its end (truncated gzip, not a WARC, a download that failed
for good) keeps every complete record before the fault and reports the fault as a file-level
error (`warc:truncated`, `warc:not_warc`, `warc:transfer_failed`, ...).

One bad record never costs the rest of its file: a record whose Content-Length lies
(`error:warc:length_mismatch`), whose header or gzip member is broken (`error:warc:bad_header`,
`error:warc:corrupt_gzip_member`) or whose HTTP body cannot be decoded
(`error:warc:undecodable_body:<encoding>`) is counted under its reason, and reading goes on at
the next gzip member or the next `WARC/` header line.

The HTTP `Content-Type` and the bytes decide what is HTML; `WARC-Identified-Payload-Type`
(libmagic's guess, absent in many WARCs) is only a tie-breaker when the server sent no type.
"""

from __future__ import annotations

import io
import re
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import BinaryIO
from urllib.parse import urlsplit

import pyarrow as pa
import tldextract
from warcio.statusandheaders import StatusAndHeaders, StatusAndHeadersParser, StatusAndHeadersParserException

from curate import schema
from curate.config import ReadConfig
from curate.pipeline.sources import InputFile, TransferError

HTML_TYPES = ("text/html", "application/xhtml+xml", "application/html")
_CHARSET_RE = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)
_HTML_SNIFF_RE = re.compile(rb"<\s*(!doctype\s+html|html|head|body|meta|title|div|p|script)\b", re.I)


@dataclass
class ReadReport:
    """What reading one input file found; persisted as its completion marker."""

    uri: str
    records_by_type: Counter = field(default_factory=Counter)  # "invalid": no parseable header
    rows: int = 0  # document rows emitted (one per response record and per invalid record)
    record_faults: Counter = field(default_factory=Counter)  # faulty records of any type, by reason
    skipped_bytes: int = 0  # bytes between records that belong to no record (after a fault)
    error: str | None = None  # file-level fault, e.g. "warc:truncated"
    error_detail: str | None = None
    seconds: float = 0.0  # spent opening and reading the file
    cpu_seconds: float = 0.0  # of which the reading process had the CPU

    def to_json(self) -> dict:
        return {
            "uri": self.uri,
            "records_by_type": dict(sorted(self.records_by_type.items())),
            "rows": self.rows,
            "record_faults": dict(sorted(self.record_faults.items())),
            "skipped_bytes": self.skipped_bytes,
            "error": self.error,
            "error_detail": self.error_detail,
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
        }


def _domain_extractor() -> tldextract.TLDExtract:
    # The bundled public-suffix snapshot: no network at run time.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def registered_domain(url: str | None, extractor: tldextract.TLDExtract) -> str | None:
    try:
        host = urlsplit(url).hostname if url else None
        if not host:  # urn:, data:, http:///path ...
            return None
        parts = extractor(host)
    except ValueError:  # e.g. an invalid IPv6 literal in the host
        return None
    if parts.suffix and parts.domain:
        return f"{parts.domain}.{parts.suffix}".lower()
    return parts.domain.lower() or None  # IP addresses, localhost


def clean_target_uri(uri: str | None) -> str | None:
    if uri is None:
        return None
    uri = uri.strip()
    # wget writes WARC/1.0-draft style `<https://...>`.
    if uri.startswith("<") and uri.endswith(">"):
        uri = uri[1:-1]
    return uri


# An e-mail address in a URL's path, query or fragment (`?email=a%40b.org`): stored without it.
_URL_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])", re.I)
URL_EMAIL_PLACEHOLDER = "<EMAIL>"


def redact_url_emails(url: str | None) -> str | None:
    if not url:
        return url
    # After the authority (scheme://user@host), so `user@host` is left alone.
    authority = url.find("//")
    cut = url.find("/", authority + 2) if authority >= 0 else url.find(":") + 1
    if cut < 0:
        cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    return url[:cut] + _URL_EMAIL_RE.sub(URL_EMAIL_PLACEHOLDER, url[cut:])


def record_id(raw: str | None, uri: str, offset: int) -> str:
    """Stable document id: the WARC-Record-ID's UUID, or a UUID derived from file and offset."""
    if raw:
        raw = raw.strip().strip("<>")
        return raw[len("urn:uuid:"):] if raw.lower().startswith("urn:uuid:") else raw
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{uri}#{offset}"))


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return None


def header_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = _CHARSET_RE.search(content_type)
    return m.group(1).lower() if m else None


# Formats servers often label text/html by mistake, known by their first bytes.
_MAGIC = ((b"%PDF-", "application/pdf"), (b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
          (b"GIF8", "image/gif"), (b"PK\x03\x04", "application/zip"), (b"\x1f\x8b", "application/gzip"),
          (b"\x28\xb5\x2f\xfd", "application/zstd"), (b"RIFF", "application/riff"), (b"OggS", "audio/ogg"),
          (b"\x00\x00\x00", "application/octet-stream"))


_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x0c")


def _looks_binary(head: bytes) -> bool:
    """Many control bytes: not text (a stray NUL inside a page does not make it binary; UTF-16
    with a byte-order mark is text)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    sample = head[:4096]
    return len(sample) - len(sample.translate(None, _CONTROL_BYTES)) > 0.02 * len(sample)


def classify_payload(content_type: str | None, identified: str | None, head: bytes) -> str | None:
    """None if the payload is HTML, else the drop reason."""
    mime = (content_type or "").split(";")[0].strip().lower()
    if not mime or mime in HTML_TYPES:
        start = head.lstrip()[:8]
        for magic, kind in _MAGIC:
            if start.startswith(magic):
                return f"warc:mislabelled:{kind}"
    if _looks_binary(head):
        return "warc:binary"
    if mime:
        return None if mime in HTML_TYPES else f"warc:not_html:{mime[:64]}"
    ident = (identified or "").split(";")[0].strip().lower()
    if ident and ident in HTML_TYPES:
        return None
    # No declared type: the bytes decide.
    return None if _HTML_SNIFF_RE.search(head[:4096]) else f"warc:not_html:{ident or 'unknown'}"


class WarcReader:
    """Reads one WARC stream into batches of `schema.RAW_SCHEMA` rows."""

    def __init__(self, cfg: ReadConfig) -> None:
        self.cfg = cfg
        self._domains = _domain_extractor()
        # Record blocks are held in memory up to this size; beyond it a page is too large anyway.
        self._cap = cfg.max_record_bytes + MAX_HEADER_BYTES

    def read(self, source: InputFile, stream: BinaryIO, report: ReadReport) -> Iterator[pa.Table]:
        rows: list[dict] = []
        src = _Source(stream.read)
        try:
            head = src.peek(5)
            if not head:
                report.error = "warc:empty_file"
                return
            if head.startswith(b"\x1f\x8b"):
                records = _gzip_records(src, self._cap, report)
            elif head.startswith(b"WARC/"):
                records = _plain_records(src, self._cap, report)
            else:
                report.error, report.error_detail = "warc:not_warc", f"starts with {head!r}"
                return
            for rec in records:
                row = self._row(source, rec, report)
                if row is None:
                    continue
                rows.append(row)
                if len(rows) >= self.cfg.records_per_batch:
                    report.rows += len(rows)
                    yield schema.from_rows(rows, schema.RAW_SCHEMA)
                    rows = []
        except _NotWarc as err:
            report.error, report.error_detail = "warc:not_warc", str(err)[:300]
        except _FileCut:
            report.error = "warc:truncated"
        except TransferError as err:  # the download failed for good; every record before it is kept
            report.error, report.error_detail = "warc:transfer_failed", repr(err)[:300]
        except Exception as err:  # noqa: BLE001 -- any fault in one file must not stop the run
            report.error, report.error_detail = f"warc:read_error:{type(err).__name__}", repr(err)[:300]
        if not report.error and not report.records_by_type:
            report.error = "warc:empty_file"
        if rows:
            report.rows += len(rows)
            yield schema.from_rows(rows, schema.RAW_SCHEMA)

    def _row(self, source: InputFile, rec: _RawRecord, report: ReadReport) -> dict | None:
        """The document row of a response (or unparseable) record; None for other records."""
        h = rec.headers
        rec_type = (h.get_header("WARC-Type") or "unknown") if h is not None else "invalid"
        report.records_by_type[rec_type] += 1
        if rec.fault:
            report.record_faults[rec.fault] += 1
        if rec_type not in ("response", "invalid"):
            return None
        url = redact_url_emails(clean_target_uri(h.get_header("WARC-Target-URI"))) if h is not None else None
        row = {
            schema.ID: record_id(h.get_header("WARC-Record-ID") if h is not None else None, source.uri, rec.offset),
            schema.URL: url,
            schema.DOMAIN: registered_domain(url, self._domains),
            schema.CRAWL: source.crawl,
            schema.WARC_PATH: source.uri,
            schema.WARC_OFFSET: rec.offset,
            schema.FETCH_TIME: _parse_date(h.get_header("WARC-Date")) if h is not None else None,
            schema.DROP_REASON: rec.fault,
        }
        if rec.fault is None:
            self._fill_payload(row, rec)
        return row

    def _fill_payload(self, row: dict, rec: _RawRecord) -> None:
        block = io.BytesIO(rec.block)
        try:
            http = _HTTP_HEADERS.parse(block)
        except (StatusAndHeadersParserException, EOFError, ValueError):
            row[schema.DROP_REASON] = "error:warc:bad_http_header"
            return
        status = http.get_statuscode() or ""
        if not http.protocol.upper().startswith("HTTP/") or not _STATUS_RE.match(status):
            row[schema.DROP_REASON] = "error:warc:bad_http_status"
            return
        if status != "200":
            row[schema.DROP_REASON] = f"warc:http_{status}"
            return
        limit = self.cfg.max_record_bytes
        body = block.read()
        if rec.clipped or len(body) > limit:
            row[schema.HTML_BYTES] = rec.declared - block.tell() + len(body) if rec.clipped else len(body)
            row[schema.DROP_REASON] = "warc:too_large"
            return
        try:
            payload = decode_http_body(body, http, limit)
        except UndecodableBody as err:
            row[schema.DROP_REASON] = f"error:warc:undecodable_body:{err.encoding}"
            return
        row[schema.HTML_BYTES] = len(payload)
        if len(payload) > limit:
            row[schema.DROP_REASON] = "warc:too_large"
            return
        if not payload.strip():
            row[schema.DROP_REASON] = "warc:empty_payload"
            return
        content_type = http.get_header("Content-Type")
        reason = classify_payload(content_type, rec.headers.get_header("WARC-Identified-Payload-Type"), payload[:8192])
        if reason:
            row[schema.DROP_REASON] = reason
            return
        row[schema.CHARSET] = header_charset(content_type)
        row[schema.RAW_HTML] = payload
        row[schema.PAYLOAD_DIGEST] = rec.headers.get_header("WARC-Payload-Digest")


# ---------------------------------------------------------------------------------------------
# HTTP bodies stored with their transfer or content encoding. Crawlers often store the decoded
# body but keep the header: a body that does not look encoded is taken as it is.


class UndecodableBody(ValueError):
    def __init__(self, encoding: str) -> None:
        super().__init__(f"cannot decode a {encoding} body")
        self.encoding = encoding


def decode_http_body(body: bytes, http: StatusAndHeaders, limit: int) -> bytes:
    """Undo `Transfer-Encoding: chunked` and each `Content-Encoding` (at most `limit` + 1 bytes
    of output, so a compression bomb stays small). Raises UndecodableBody."""
    if "chunked" in (http.get_header("Transfer-Encoding") or "").lower():
        body = _dechunk(body)
    encodings = [e.strip().lower() for e in (http.get_header("Content-Encoding") or "").split(",")]
    for enc in reversed([e for e in encodings if e and e != "identity"]):
        body = _decode_content(body, enc, limit)
    return body


_CHUNK_SIZE_RE = re.compile(rb"([0-9A-Fa-f]{1,8})[ \t]*(;[^\r\n]*)?\r?\n")


def _dechunk(body: bytes) -> bytes:
    if not _CHUNK_SIZE_RE.match(body):
        return body  # stored de-chunked
    out, i = [], 0
    while True:
        m = _CHUNK_SIZE_RE.match(body, i)
        if m is None:
            raise UndecodableBody("chunked")
        size, i = int(m.group(1), 16), m.end()
        if size == 0:
            return b"".join(out)
        end = body[i + size:i + size + 2]
        if i + size > len(body) or not (end == b"\r\n" or end.startswith(b"\n")):
            raise UndecodableBody("chunked")
        out.append(body[i:i + size])
        i += size + (2 if end == b"\r\n" else 1)


def _decode_content(body: bytes, enc: str, limit: int) -> bytes:
    if enc in ("gzip", "x-gzip"):
        if not body.startswith(b"\x1f\x8b"):
            return body
        return _inflate(body, 31, enc, limit)
    if enc == "deflate":
        for wbits in (15, -15):  # zlib-wrapped as the RFC says, or raw as many servers send
            try:
                return _inflate(body, wbits, enc, limit)
            except UndecodableBody:
                continue
    elif enc == "br":
        import brotli

        try:
            d = brotli.Decompressor()
            out = d.process(body, output_buffer_limit=limit + 1)
            if len(out) <= limit and not d.is_finished():
                raise UndecodableBody(enc)
            return out
        except brotli.error:
            pass
    elif enc == "zstd" and not body.startswith(b"\x28\xb5\x2f\xfd"):
        return body
    if _HTML_SNIFF_RE.search(body[:4096]):
        return body  # labelled encoded, stored decoded
    raise UndecodableBody(re.sub(r"[^a-z0-9_.-]", "_", enc)[:32])


def _inflate(body: bytes, wbits: int, enc: str, limit: int) -> bytes:
    z = zlib.decompressobj(wbits)
    try:
        out = z.decompress(body, limit + 1)
    except zlib.error:
        raise UndecodableBody(enc) from None
    if len(out) <= limit and not z.eof:
        raise UndecodableBody(enc)  # cut short
    return out


# ---------------------------------------------------------------------------------------------
# Record framing. warcio parses headers, but one record whose Content-Length lies would make its
# iterator stop (gzip) or read into the next record (plain), losing the rest of the file. So the
# framing is ours: a gzip member or the next `WARC/` line is where a record ends for sure, and a
# record that disagrees with its declared length is counted and skipped, never the file.

_CHUNK = 1 << 16
MAX_HEADER_BYTES = 1 << 16  # a WARC header block longer than this is not a header
_GZIP_MAGIC = b"\x1f\x8b\x08"
_RECORD_START = b"\nWARC/1."  # a WARC/1.0 or 1.1 header line at the start of a line
_EMBEDDED_HEADER = re.compile(rb"\r\n\r\nWARC/1\.[01]\r?\n")
_WARC_HEADERS = StatusAndHeadersParser(["WARC/1.1", "WARC/1.0", "WARC/0.17", "WARC/0.18"], verify=True)
_HTTP_HEADERS = StatusAndHeadersParser(["HTTP/1.0", "HTTP/1.1"], verify=False)
_STATUS_RE = re.compile(r"^[1-5]\d\d$")
# HTTP bodies stored still encoded: how to undo each encoding (anything else is not decodable here).
_CONTENT_DECODERS = ("gzip", "x-gzip", "deflate", "br")


class _Source:
    """A forward-only byte stream with look-ahead and push-back; `pos` is the next byte's offset."""

    def __init__(self, read: Callable[[int], bytes], pos: int = 0) -> None:
        self._read, self.pos = read, pos
        self._buf, self._i = b"", 0
        self.eof = False

    def _avail(self) -> int:
        return len(self._buf) - self._i

    def _fill(self, n: int) -> None:
        if self._avail() >= n or self.eof:
            return
        parts, have = [self._buf[self._i:]], self._avail()
        while have < n:
            data = self._read(max(n - have, _CHUNK))
            if not data:
                self.eof = True
                break
            parts.append(data)
            have += len(data)
        self._buf, self._i = b"".join(parts), 0

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return self._buf[self._i:self._i + n]

    def read(self, n: int) -> bytes:
        self._fill(n)
        out = self._buf[self._i:self._i + n]
        self._i += len(out)
        self.pos += len(out)
        return out

    def read_some(self) -> bytes:
        """What is buffered, else one read of the underlying stream (b"" at its end)."""
        return self.read(self._avail() or _CHUNK)

    def readline(self, limit: int) -> bytes:
        while True:
            j = self._buf.find(b"\n", self._i, self._i + limit)
            if j >= 0:
                return self.read(j + 1 - self._i)
            if self._avail() >= limit or self.eof:
                return self.read(min(limit, self._avail()))
            self._fill(self._avail() + _CHUNK)

    def unread(self, data: bytes) -> None:
        if data:
            self._buf, self._i = data + self._buf[self._i:], 0
            self.pos -= len(data)

    def skip(self, n: int) -> int:
        done = 0
        while done < n and (got := len(self.read(min(_CHUNK, n - done)))):
            done += got
        return done

    def skip_blank(self) -> None:
        while self.peek(1) in (b"\r", b"\n"):
            self.read(1)

    def scan(self, marker: bytes, keep: int = 0) -> int:
        """Discard bytes up to the next `marker` plus its first `keep` bytes (all of them at the
        end of the stream); returns how many were discarded."""
        skipped = 0
        while True:
            self._fill(len(marker) + _CHUNK)
            j = self._buf.find(marker, self._i)
            if j >= 0:
                skipped += self.skip(j - self._i + keep)
                return skipped
            if self.eof:
                return skipped + self.skip(self._avail())
            skipped += self.skip(max(0, self._avail() - len(marker)))


class _MemberCorrupt(ValueError):
    """A gzip member whose deflate data is invalid."""


class _GzipMember:
    """Reads one gzip member of `src`; at its end the bytes after it are put back into `src`.
    `cut` tells that the file ended inside the member."""

    _KEEP_BYTES = 32 << 20  # compressed bytes kept to rescan after a corrupt member

    def __init__(self, src: _Source) -> None:
        self.src, self.offset = src, src.pos
        self.cut = False
        self._z = zlib.decompressobj(31)
        self._seen: list[bytes] | None = []  # what this member consumed, to rescan if corrupt
        self._seen_bytes = 0

    def read(self, n: int) -> bytes:
        z = self._z
        while not z.eof:
            data = z.unconsumed_tail
            if not data:
                data = self.src.read_some()
                if not data:
                    self.cut = True
                    return b""
                self._remember(data)
            try:
                out = z.decompress(data, max(n, 1))
            except zlib.error as err:
                raise _MemberCorrupt(str(err)) from None
            if z.eof:
                self.src.unread(z.unused_data)
            if out:
                return out
        return b""

    def _remember(self, data: bytes) -> None:
        if self._seen is not None:
            self._seen.append(data)
            self._seen_bytes += len(data)
            if self._seen_bytes > self._KEEP_BYTES:
                self._seen = None

    def rewind_past_header(self) -> None:
        """After corruption: put back what the member consumed, minus its first byte, so the
        search for the next member starts right after this one's header."""
        if self._seen is not None:
            self.src.unread(b"".join(self._seen)[1:] if self._seen else b"")
        self._seen = None


@dataclass
class _RawRecord:
    offset: int
    headers: StatusAndHeaders | None  # None when the header block could not be parsed
    block: bytes = b""  # the record block, at most the reader's cap
    declared: int = 0  # Content-Length
    clipped: bool = False  # the block was longer than the cap; the rest was skipped
    fault: str | None = None  # error:warc:<why> for a record that cannot be used


def _read_header_block(r: _Source) -> bytes | None:
    """The `WARC/...` line and the header lines up to the blank line; None if cut or too long."""
    lines, size = [], 0
    while size <= MAX_HEADER_BYTES:
        line = r.readline(MAX_HEADER_BYTES)
        if not line:
            return None
        if not line.strip():
            return b"".join(lines) + b"\r\n"
        lines.append(line)
        size += len(line)
    return None


def _next_record(r: _Source, offset: int, cap: int) -> _RawRecord:
    """Parse one record at `r`'s position. The caller checks what follows the block: a block
    shorter than its Content-Length comes back as `truncated_record`."""
    raw_headers = _read_header_block(r)
    if raw_headers is None:
        return _RawRecord(offset, None, fault="error:warc:truncated_record" if r.eof else "error:warc:bad_header")
    try:
        headers = _WARC_HEADERS.parse(io.BytesIO(raw_headers))
        declared = int(headers.get_header("Content-Length") or "")
        if declared < 0:
            raise ValueError("negative Content-Length")
    except (StatusAndHeadersParserException, ValueError, EOFError):
        return _RawRecord(offset, None, fault="error:warc:bad_header")
    block = r.read(min(declared, cap))
    rec = _RawRecord(offset, headers, block, declared, clipped=declared > cap)
    got = len(block) + (r.skip(declared - cap) if rec.clipped else 0)
    if got < declared:
        rec.fault = "error:warc:truncated_record"
    return rec


class _NotWarc(Exception):
    pass


class _FileCut(Exception):
    """The file ends inside a record (emitted before as `truncated_record`, if it had a header)."""


def _plain_records(src: _Source, cap: int, report: ReadReport) -> Iterator[_RawRecord]:
    """Records of an uncompressed WARC. A record that does not end where its Content-Length says
    is counted as `length_mismatch`; reading resumes at the next `WARC/` header line."""
    while True:
        src.skip_blank()
        offset = src.pos
        if not src.peek(1):
            return
        if not src.peek(5).startswith(b"WARC/"):
            if not report.records_by_type:
                raise _NotWarc(f"starts with {src.peek(16)!r}")
            report.skipped_bytes += src.scan(_RECORD_START, keep=1)
            continue
        rec = _next_record(src, offset, cap)
        if rec.fault is None and (src.peek(4) == b"\r\n\r\n" or _at_record_start(src)):
            src.skip_blank()
            yield rec
            continue
        if rec.headers is None:
            yield rec
            if rec.fault == "error:warc:truncated_record":
                raise _FileCut()
            report.skipped_bytes += src.scan(_RECORD_START, keep=1)
            continue
        embedded = None if rec.clipped else _EMBEDDED_HEADER.search(rec.block)
        if embedded is not None:
            # Declared longer than the block: the next record's header is inside; read on from it.
            src.unread(rec.block[embedded.start() + 4:])
            rec.block, rec.fault = rec.block[:embedded.start()], "error:warc:length_mismatch"
            yield rec
            continue
        if rec.fault == "error:warc:truncated_record":
            yield rec
            raise _FileCut()
        rec.fault = "error:warc:length_mismatch"  # declared shorter: the rest of the block follows
        yield rec
        report.skipped_bytes += src.scan(_RECORD_START, keep=1)


def _at_record_start(src: _Source) -> bool:
    """After a block: blank lines, then the next header or the end (lenient about how many)."""
    ahead = src.peek(16)
    rest = ahead.lstrip(b"\r\n")
    return rest.startswith(b"WARC/") or (not rest and len(ahead) < 16)


def _gzip_records(src: _Source, cap: int, report: ReadReport) -> Iterator[_RawRecord]:
    """Records of a record-at-a-time gzipped WARC: a gzip member ends its record, whatever the
    record's Content-Length says. A corrupt member is counted and skipped to the next member."""
    while src.peek(1):
        if not src.peek(3).startswith(_GZIP_MAGIC):
            if not report.records_by_type:
                raise _NotWarc(f"starts with {src.peek(16)!r}")
            report.skipped_bytes += src.scan(_GZIP_MAGIC)  # bytes between members
            continue
        member = _GzipMember(src)
        try:
            yield from _member_records(member, cap, report)
        except _MemberCorrupt:
            if not report.records_by_type:
                raise _NotWarc("not a valid gzip stream") from None
            member.rewind_past_header()
            report.skipped_bytes += src.scan(_GZIP_MAGIC)
            yield _RawRecord(member.offset, None, fault="error:warc:corrupt_gzip_member")


def _member_records(member: _GzipMember, cap: int, report: ReadReport) -> Iterator[_RawRecord]:
    r = _Source(member.read)
    first = True
    while True:
        r.skip_blank()
        if not r.peek(1):
            if member.cut:
                raise _FileCut()
            return
        if not r.peek(5).startswith(b"WARC/"):
            if not report.records_by_type:
                raise _NotWarc(f"gzip member starts with {r.peek(16)!r}")
            # Declared shorter than the member (or junk after a record): the member ends it.
            report.skipped_bytes += r.skip(1 << 62)
            if member.cut:
                raise _FileCut()
            return
        # Records sharing one member (a whole-file gzip) get the member's offset plus their
        # position inside it: unique and in file order, though not a seekable offset.
        offset = member.offset if first else member.offset + r.pos
        first = False
        rec = _next_record(r, offset, cap)
        if member.cut:
            if rec.headers is not None or rec.fault != "error:warc:bad_header":
                rec.fault = "error:warc:truncated_record"
                yield rec
            raise _FileCut()
        if rec.fault == "error:warc:truncated_record":
            # The member ended cleanly before the declared length: the length lies.
            rec.fault = "error:warc:length_mismatch"
        trusted = rec.headers is not None
        if trusted and rec.fault is None:
            r.skip_blank()
            if r.peek(1) and not r.peek(5).startswith(b"WARC/"):
                rec.fault, trusted = "error:warc:length_mismatch", False  # declared shorter than the member
        yield rec
        if not trusted:  # nothing more in this member can be trusted
            report.skipped_bytes += r.skip(1 << 62)
            if member.cut:
                raise _FileCut()
            return
