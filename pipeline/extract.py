"""Main-text extraction: raw page bytes -> `text`, with trafilatura (default) or resiliparse.

The result for a page depends on that page alone (trafilatura's cross-document `deduplicate`
cache stays off), so it never matters which worker or batch a page lands in. Each page gets a
time limit; a pathological page becomes `error:extract_timeout` instead of stalling a worker.
"""

from __future__ import annotations

import codecs
import re
import signal
import threading
from contextlib import contextmanager
from typing import ClassVar

import pyarrow as pa

from curate import schema
from curate.pipeline.config import ExtractConfig
from curate.pipeline.stage import Stage

_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def _known(enc: str | None) -> str | None:
    if not enc:
        return None
    try:
        return codecs.lookup(enc).name
    except LookupError:
        return None


def decode_html(payload: bytes, header_charset: str | None) -> tuple[str, str]:
    """Bytes -> (text, charset used). HTTP header first, then `<meta>`, then detection;
    undecodable bytes are replaced, never raised."""
    text, charset, _ = decode_html_counted(payload, header_charset)
    return text, charset


def decode_html_counted(payload: bytes, header_charset: str | None) -> tuple[str, str, int]:
    """decode_html, plus how many invalid UTF-8 sequences were replaced with U+FFFD.

    A page in UTF-8 (declared or not) with a few invalid bytes, such as one stray Latin-1
    byte, is decoded as UTF-8 with replacement, as browsers do: re-guessing the whole page
    from a few bad bytes (charset_normalizer then often picks cp1250 or iso8859_10) would
    break every other non-ASCII character. Only when invalid sequences outnumber the valid
    multi-byte characters is a UTF-8 declaration taken to be wrong."""
    if payload.startswith(codecs.BOM_UTF8):
        return payload[3:].decode("utf-8", "replace"), "utf-8", 0
    meta = _META_CHARSET_RE.search(payload[:4096])
    for enc in (_known(header_charset), _known(meta.group(1).decode("ascii", "ignore")) if meta else None):
        if not enc:
            continue
        if enc == "utf-8":
            decoded = _mostly_utf8(payload)
            if decoded is not None:
                return decoded[0], "utf-8", decoded[1]
            continue  # a wrong declaration is common; try the next source
        try:
            return payload.decode(enc), enc, 0
        except UnicodeDecodeError:
            continue
    decoded = _mostly_utf8(payload)
    if decoded is not None:
        return decoded[0], "utf-8", decoded[1]
    from charset_normalizer import from_bytes

    best = from_bytes(payload[:200_000]).best()
    enc = best.encoding if best else "utf-8"
    return payload.decode(enc, "replace"), enc, 0


def _mostly_utf8(payload: bytes) -> tuple[str, int] | None:
    """(text, invalid sequences replaced) when the bytes are UTF-8 apart from a few invalid
    sequences (no more than the valid non-ASCII characters); None when they are not UTF-8."""
    try:
        return payload.decode("utf-8"), 0
    except UnicodeDecodeError:
        pass
    text = payload.decode("utf-8", "replace")
    invalid = text.count("\ufffd") - payload.count("\ufffd".encode())  # minus genuine U+FFFD characters
    valid_non_ascii = len(text) - len(text.encode("ascii", "ignore")) - text.count("\ufffd")
    return (text, invalid) if invalid <= valid_non_ascii else None


class ExtractTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """SIGALRM-based limit; a no-op off the main thread (signals only reach the main thread)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def _raise(signum, frame):
        raise ExtractTimeout()

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def trafilatura_kwargs(cfg: ExtractConfig) -> dict:
    """The exact settings used for every page (also by the direct-call comparison test)."""
    return {
        "favor_precision": cfg.favor_precision,
        "include_comments": cfg.include_comments,
        "include_tables": cfg.include_tables,
        "deduplicate": False,
        "with_metadata": False,
        "output_format": "txt",
    }


class Extract(Stage):
    name: ClassVar[str] = "extract"
    reason_namespaces: ClassVar[tuple[str, ...]] = ("extract", "extract_timeout")

    def __init__(self, cfg: ExtractConfig) -> None:
        self.cfg = cfg
        if cfg.engine == "trafilatura":
            import trafilatura

            kwargs = trafilatura_kwargs(cfg)
            self._extract = lambda html: trafilatura.extract(html, **kwargs)
        else:
            from resiliparse.extract.html2text import extract_plain_text
            from resiliparse.parse.html import HTMLTree

            self._extract = lambda html: extract_plain_text(HTMLTree.parse(html), main_content=True)
        self.counts = {"timeouts": 0, "errors": 0, "invalid_utf8_pages": 0, "invalid_utf8_sequences": 0, "mojibake_repaired": 0}

    def extract_one(self, payload: bytes, header_charset: str | None) -> tuple[str | None, str, str | None]:
        """(text, charset, drop reason)."""
        html, charset, invalid = decode_html_counted(payload, header_charset)
        if invalid:
            self.counts["invalid_utf8_pages"] += 1
            self.counts["invalid_utf8_sequences"] += invalid
        try:
            with time_limit(self.cfg.timeout_s):
                text = self._extract(html)
        except ExtractTimeout:
            self.counts["timeouts"] += 1
            return None, charset, "error:extract_timeout"
        except Exception as err:  # noqa: BLE001 -- one bad page must not fail the batch
            self.counts["errors"] += 1
            return None, charset, f"error:extract:{type(err).__name__}"
        text = (text or "").strip()
        if len(text) < max(self.cfg.min_text_chars, 1):
            return None, charset, "extract:empty"
        if self.cfg.repair_mojibake:
            text = self._repair_mojibake(text)
        return text, charset, None

    def _repair_mojibake(self, text: str) -> str:
        """UTF-8 read as Latin-1/cp1252 somewhere upstream (`schÃ¶n`) -> `schön`, with ftfy.
        ftfy's own badness check is a single regex search, so clean text costs almost nothing."""
        import ftfy
        from ftfy.badness import is_bad

        if not is_bad(text):
            return text
        fixed = ftfy.fix_encoding(text)
        if fixed != text:
            self.counts["mojibake_repaired"] += 1
        return fixed

    def __call__(self, batch: pa.Table) -> pa.Table:
        raw = batch.column(schema.RAW_HTML).to_pylist()
        charsets = batch.column(schema.CHARSET).to_pylist()
        active = schema.active_mask(batch).to_pylist()
        texts, reasons, used = [], [], []
        for payload, cs, ok in zip(raw, charsets, active):
            if not ok or payload is None:
                texts.append(None), reasons.append(None), used.append(cs)
                continue
            text, charset, reason = self.extract_one(payload, cs)
            texts.append(text), reasons.append(reason), used.append(charset)
        out = schema.set_column(batch, schema.TEXT, texts)
        out = schema.set_column(out, schema.CHARSET, used)
        out = schema.mark_dropped(out, reasons)
        # The raw page never leaves extraction: downstream blocks stay small.
        return schema.conform(out.drop_columns([schema.RAW_HTML]))

    def stats(self) -> dict:
        return dict(self.counts)

