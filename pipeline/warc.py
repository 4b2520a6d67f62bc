"""WARC reading: records in, document rows (with raw page bytes) out.

Every `response` record becomes one row. HTTP 200 HTML pages go on to extraction; the others
get a `warc:` drop reason (`warc:http_404`, `warc:not_html:application/pdf`, `warc:too_large`,
`warc:binary`, ...). Other record types (request, metadata, warcinfo, revisit) are counted by
type. A file that cannot be read to its end (truncated gzip, not a WARC, a download that failed
for good) keeps every complete record before the fault and reports the fault as a file-level
error (`warc:truncated`, `warc:not_warc`, `warc:transfer_failed`, ...).

The HTTP `Content-Type` and the bytes decide what is HTML; `WARC-Identified-Payload-Type`
(libmagic's guess, absent in many WARCs) is only a tie-breaker when the server sent no type.
"""

from __future__ import annotations

import io
import re
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import BinaryIO

import pyarrow as pa
import tldextract
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

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
    records_by_type: Counter = field(default_factory=Counter)
    rows: int = 0  # document rows emitted (one per response record)
    error: str | None = None  # file-level fault, e.g. "warc:truncated"
    error_detail: str | None = None
    seconds: float = 0.0  # spent opening and reading the file
    cpu_seconds: float = 0.0  # of which the reading process had the CPU

    def to_json(self) -> dict:
        return {
            "uri": self.uri,
            "records_by_type": dict(sorted(self.records_by_type.items())),
            "rows": self.rows,
            "error": self.error,
            "error_detail": self.error_detail,
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
        }


def _domain_extractor() -> tldextract.TLDExtract:
    # The bundled public-suffix snapshot: no network at run time.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def registered_domain(url: str | None, extractor: tldextract.TLDExtract) -> str | None:
    if not url:
        return None
    parts = extractor(url)
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


def classify_payload(content_type: str | None, identified: str | None, head: bytes) -> str | None:
    """None if the payload is HTML, else the drop reason."""
    if b"\x00" in head[:2048] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "warc:binary"
    mime = (content_type or "").split(";")[0].strip().lower()
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

    def read(self, source: InputFile, stream: BinaryIO, report: ReadReport) -> Iterator[pa.Table]:
        rows: list[dict] = []
        head = stream.read(5)
        if not head:
            report.error = "warc:empty_file"
            return
        if not (head.startswith(b"\x1f\x8b") or head.startswith(b"WARC/")):
            # warcio would try to parse any text as (ARC) records; refuse what is not a WARC.
            report.error, report.error_detail = "warc:not_warc", f"starts with {head!r}"
            return
        iterator = ArchiveIterator(_Prefixed(head, stream), arc2warc=False, ensure_http_headers=False)
        try:
            for record in iterator:
                if record.format != "warc":
                    # warcio falls back to ARC parsing for any gzipped text; that is not a WARC.
                    raise ArchiveLoadFailed(f"not a WARC record (format {record.format})")
                report.records_by_type[record.rec_type] += 1
                if record.rec_type != "response":
                    continue
                row = self._base_row(source, record)
                try:
                    self._fill_payload(row, record)
                    _drain_or_raise(record)
                    # Only after the payload is read: warcio reads the record to its end here.
                    self._set_offset(row, iterator.get_record_offset(), source)
                except (EOFError, zlib.error, OSError) as err:
                    self._set_offset(row, iterator.offset, source)
                    # The record itself is cut short: account for it, then stop like any cut file.
                    cut = "transfer_failed" if isinstance(err, TransferError) else "truncated_record"
                    row[schema.DROP_REASON] = f"error:warc:{cut}"
                    rows.append(row)
                    raise _Truncated(err) from err
                rows.append(row)
                if len(rows) >= self.cfg.records_per_batch:
                    report.rows += len(rows)
                    yield schema.from_rows(rows, schema.RAW_SCHEMA)
                    rows = []
        except _Truncated as err:
            failed = isinstance(err.__cause__, TransferError)
            report.error = "warc:transfer_failed" if failed else "warc:truncated"
            report.error_detail = repr(err.__cause__)[:300]
        except TransferError as err:  # the download failed between two records
            report.error, report.error_detail = "warc:transfer_failed", repr(err)[:300]
        except ArchiveLoadFailed as err:
            report.error, report.error_detail = ("warc:truncated" if report.records_by_type else "warc:not_warc"), str(err)[:300]
        except (EOFError, zlib.error) as err:
            report.error, report.error_detail = "warc:truncated", repr(err)[:300]
        except Exception as err:  # noqa: BLE001 -- any fault in one file must not stop the run
            report.error, report.error_detail = f"warc:read_error:{type(err).__name__}", repr(err)[:300]
        if not report.error and not report.records_by_type:
            report.error = "warc:empty_file"
        if rows:
            report.rows += len(rows)
            yield schema.from_rows(rows, schema.RAW_SCHEMA)

    def _base_row(self, source: InputFile, record) -> dict:
        h = record.rec_headers
        url = clean_target_uri(h.get_header("WARC-Target-URI"))
        return {
            "_record_id": h.get_header("WARC-Record-ID"),
            schema.URL: url,
            schema.DOMAIN: registered_domain(url, self._domains),
            schema.CRAWL: source.crawl,
            schema.WARC_PATH: source.uri,
            schema.FETCH_TIME: _parse_date(h.get_header("WARC-Date")),
        }

    @staticmethod
    def _set_offset(row: dict, offset: int, source: InputFile) -> None:
        row[schema.WARC_OFFSET] = offset
        row[schema.ID] = record_id(row.pop("_record_id"), source.uri, offset)

    def _fill_payload(self, row: dict, record) -> None:
        http = record.http_headers
        status = http.get_statuscode() if http is not None else None
        if status != "200":
            row[schema.DROP_REASON] = f"warc:http_{status or 'none'}"
            return
        content_type = http.get_header("Content-Type")
        limit = self.cfg.max_record_bytes
        payload = record.content_stream().read(limit + 1)
        row[schema.HTML_BYTES] = len(payload)
        if len(payload) > limit:
            row[schema.DROP_REASON] = "warc:too_large"
            return
        if not payload.strip():
            row[schema.DROP_REASON] = "warc:empty_payload"
            return
        reason = classify_payload(content_type, record.rec_headers.get_header("WARC-Identified-Payload-Type"), payload[:8192])
        if reason:
            row[schema.DROP_REASON] = reason
            return
        row[schema.CHARSET] = header_charset(content_type)
        row[schema.RAW_HTML] = payload
        row[schema.PAYLOAD_DIGEST] = record.rec_headers.get_header("WARC-Payload-Digest")


class _Prefixed(io.RawIOBase):
    """`stream` with already-read `head` bytes put back in front (works for unseekable streams)."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._head, self._stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._stream.read(len(b))
        b[: len(data)] = data
        return len(data)


class _Truncated(Exception):
    pass


def _drain_or_raise(record) -> None:
    """Read the rest of the record block; warcio returns a short block quietly when the file
    ends early, so compare against the declared Content-Length."""
    raw = record.raw_stream
    while raw.read(1 << 16):
        pass
    if getattr(raw, "limit", 0) > 0:
        raise EOFError(f"record block ends {raw.limit} bytes before its Content-Length")
