"""Main-text extraction: raw page bytes -> `text`, with trafilatura (default) or resiliparse.

The result for a page depends on that page alone (trafilatura's cross-document `deduplicate`
cache stays off), so it never matters which worker or batch a page lands in. Each page gets a
hard time limit (it is extracted in a child process that is killed when the limit passes): a
pathological page becomes `error:extract_timeout` instead of stalling a worker.

A record whose payload this actor already extracted (same `WARC-Payload-Digest`, size and
header charset: the same bytes decoded the same way) takes that result from a small LRU instead
of running trafilatura again; both rows go on, so the dedup stages still see and decide both.
"""

from __future__ import annotations

import codecs
import json
import os
import pickle
import re
from collections import OrderedDict
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
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
        if enc.startswith(("utf-16", "utf-32")) and b"\x00" not in payload[:4096]:
            # Mostly-ASCII markup in UTF-16/32 is full of NUL bytes; without them the label lies
            # (and decoding would "succeed" into CJK-looking garbage).
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


def _engine(cfg: ExtractConfig) -> Callable[[str], str | None]:
    if cfg.engine == "trafilatura":
        import trafilatura

        kwargs = trafilatura_kwargs(cfg)
        return lambda html: trafilatura.extract(html, **kwargs)
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    return lambda html: extract_plain_text(HTMLTree.parse(html), main_content=True)


def extract_page(extract: Callable[[str], str | None], cfg: ExtractConfig, payload: bytes,
                 header_charset: str | None) -> tuple[str | None, str | None, str | None, dict[str, int]]:
    """(text, charset, drop reason, counts) of one page, in this process and without a time
    limit; counts: invalid UTF-8 sequences replaced, whether mojibake was repaired."""
    html, charset, invalid = decode_html_counted(payload, header_charset)
    info = {"invalid_utf8_sequences": invalid, "mojibake_repaired": 0}
    try:
        text = extract(html)
    except Exception as err:  # noqa: BLE001 -- one bad page must not fail the batch
        return None, charset, f"error:extract:{type(err).__name__}", info
    text = (text or "").strip()
    if len(text) < max(cfg.min_text_chars, 1):
        return None, charset, "extract:empty", info
    if cfg.repair_mojibake:
        fixed = repair_mojibake(text)
        info["mojibake_repaired"] = int(fixed != text)
        text = fixed
    return text, charset, None, info


def repair_mojibake(text: str) -> str:
    """UTF-8 read as Latin-1/cp1252 somewhere upstream (`schÃ¶n`) -> `schön`, with ftfy.
    ftfy's own badness check is a single regex search, so clean text costs almost nothing."""
    import ftfy
    from ftfy.badness import is_bad

    return ftfy.fix_encoding(text) if is_bad(text) else text


# ---------------------------------------------------------------------------------------------
# The time limit. A signal cannot stop a page: trafilatura's own `except Exception` blocks
# swallow the exception, and lxml or resiliparse C code does not see it until it returns. So
# pages are extracted in a child process, one persistent per stage instance, fed one page at a
# time through a pipe; a page over the limit gets the child killed (and a new one started when
# the next page comes). Pickling a page and two pipe round trips cost far less than extracting it.

_HEADER = struct.Struct("<Q")


def _send(fd: int, data: bytes) -> None:
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _recv(fd: int, deadline: float | None = None) -> bytes | None:
    """One message; None at EOF. With a deadline, raises TimeoutError when it passes first."""
    header = _read_exactly(fd, _HEADER.size, deadline)
    if header is None:
        return None
    body = _read_exactly(fd, _HEADER.unpack(header)[0], deadline)
    if body is None:
        raise EOFError("the extraction process ended mid-message")
    return body


def _read_exactly(fd: int, n: int, deadline: float | None) -> bytes | None:
    parts, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError()
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def serve() -> None:
    """Child main: the config (JSON), then pages in on stdin; results out on the original stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    cfg = ExtractConfig.model_validate_json(_recv(0) or b"{}")
    if cfg.engine == "trafilatura" and cfg.fast_prune:
        from curate.pipeline import fast_prune

        fast_prune.install()  # process-wide, which is why only this child does it
    out = os.dup(1)
    os.dup2(2, 1)  # a stray print() in a library must not corrupt the protocol
    extract = _engine(cfg)
    _send(out, b"ready")
    while (msg := _recv(0)) is not None:
        payload, charset = pickle.loads(msg)
        _send(out, pickle.dumps(extract_page(extract, cfg, payload, charset), protocol=pickle.HIGHEST_PROTOCOL))


class ExtractionProcess:
    """The parent's side of one child: `run` returns a page's result, or a timeout / crash reason."""

    START_TIMEOUT_S = 300.0  # importing trafilatura on a loaded machine

    def __init__(self, cfg: ExtractConfig) -> None:
        self.cfg = cfg
        self.proc: subprocess.Popen | None = None
        self.ready = False
        self.starts = 0

    def spawn(self) -> None:
        """Start a child without waiting for it: it imports its engine while the caller goes on."""
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from curate.pipeline.extract import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
        )
        self.starts += 1
        self.ready = False
        # The engine's own settings (the registry's section class adds `resources`, and is built at
        # run time, so it cannot be pickled by reference).
        settings = self.cfg.model_dump(include=set(ExtractConfig.model_fields))
        _send(self.proc.stdin.fileno(), json.dumps(settings).encode())

    def _wait_ready(self) -> None:
        # The clock of the first page starts once the child is ready, not while it imports.
        assert self.proc is not None
        if _recv(self.proc.stdout.fileno(), time.monotonic() + self.START_TIMEOUT_S) != b"ready":
            raise RuntimeError("the extraction process did not start")
        self.ready = True

    def run(self, payload: bytes, header_charset: str | None) -> tuple[str | None, str | None, str | None, dict[str, int]]:
        if self.proc is None or self.proc.poll() is not None:
            self.spawn()
        if not self.ready:
            self._wait_ready()
        assert self.proc is not None
        msg = pickle.dumps((payload, header_charset), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            _send(self.proc.stdin.fileno(), msg)
            reply = _recv(self.proc.stdout.fileno(), time.monotonic() + self.cfg.timeout_s)
        except TimeoutError:
            self.stop()
            return None, header_charset, "error:extract_timeout", {}
        except (BrokenPipeError, EOFError):
            reply = None
        if reply is None:  # the child died on this page (a crash in C code, out of memory)
            self.stop()
            return None, header_charset, "error:extract:process_died", {}
        return pickle.loads(reply)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                pipe.close()
            self.proc = None


class Extract(Stage):
    name: ClassVar[str] = "extract"
    reason_namespaces: ClassVar[tuple[str, ...]] = ("extract", "extract_timeout")

    def __init__(self, cfg: ExtractConfig) -> None:
        self.cfg = cfg
        self.child = ExtractionProcess(cfg)
        # trafilatura's import (~1.5 s) overlaps the rest of the actor's start and the first read.
        self.child.spawn()
        self.counts = {"timeouts": 0, "errors": 0, "extracted": 0, "reused": 0,
                       "invalid_utf8_pages": 0, "invalid_utf8_sequences": 0, "mojibake_repaired": 0}
        self._done: OrderedDict[tuple, tuple[str | None, str | None, str | None]] = OrderedDict()

    def extract_reusing(self, payload: bytes, header_charset: str | None, digest: str | None) -> tuple[str | None, str | None, str | None]:
        """`extract_one`, or the result of an earlier record with the same payload digest."""
        if not (self.cfg.reuse_by_digest and digest):
            return self.extract_one(payload, header_charset)
        key = (digest, len(payload), header_charset)
        if (hit := self._done.get(key)) is not None:
            self._done.move_to_end(key)
            self.counts["reused"] += 1
            return hit
        result = self.extract_one(payload, header_charset)
        if result[2] != "error:extract_timeout":  # a timeout depends on the machine's load, not the page
            self._done[key] = result
            if len(self._done) > self.cfg.reuse_cache_entries:
                self._done.popitem(last=False)
        return result

    def extract_one(self, payload: bytes, header_charset: str | None) -> tuple[str | None, str | None, str | None]:
        """(text, charset, drop reason), within the time limit."""
        self.counts["extracted"] += 1
        text, charset, reason, info = self.child.run(payload, header_charset)
        if reason == "error:extract_timeout":
            self.counts["timeouts"] += 1
        elif reason and reason.startswith("error:"):
            self.counts["errors"] += 1
        if info.get("invalid_utf8_sequences"):
            self.counts["invalid_utf8_pages"] += 1
            self.counts["invalid_utf8_sequences"] += info["invalid_utf8_sequences"]
        self.counts["mojibake_repaired"] += info.get("mojibake_repaired", 0)
        return text, charset, reason

    def __call__(self, batch: pa.Table) -> pa.Table:
        raw = batch.column(schema.RAW_HTML).to_pylist()
        charsets = batch.column(schema.CHARSET).to_pylist()
        digests = batch.column(schema.PAYLOAD_DIGEST).to_pylist() if schema.PAYLOAD_DIGEST in batch.column_names else [None] * len(raw)
        active = schema.active_mask(batch).to_pylist()
        texts, reasons, used = [], [], []
        for payload, cs, digest, ok in zip(raw, charsets, digests, active):
            if not ok or payload is None:
                texts.append(None), reasons.append(None), used.append(cs)
                continue
            text, charset, reason = self.extract_reusing(payload, cs, digest)
            texts.append(text), reasons.append(reason), used.append(charset)
        out = schema.set_column(batch, schema.TEXT, texts)
        out = schema.set_column(out, schema.CHARSET, used)
        out = schema.mark_dropped(out, reasons)
        # The raw page never leaves extraction (conform keeps DOC_SCHEMA's columns): blocks stay small.
        return schema.conform(out)

    def stats(self) -> dict:
        return {**self.counts, "process_starts": self.child.starts}

    def __del__(self) -> None:
        self.child.stop()
