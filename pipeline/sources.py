"""Where WARC files come from: local paths and globs, URLs, or a Common Crawl crawl listing.

`resolve_inputs` turns the `input:` section into a deterministic list of `InputFile`s;
`open_input` opens one as a binary stream. Files on local disk or an object store (`s3://`,
anything fsspec reaches) open through the run's storage layer, with its endpoint and
credentials; HTTP(S) files stream with retries and exponential backoff, and a connection that
breaks mid-file resumes with an HTTP Range request where the server supports it, so a flaky
link never restarts (or silently truncates) a 1 GB WARC.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import logging
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import BinaryIO

import requests

from curate.config import CommonCrawlInput, LocalInput, RemoteInput, UrlInput
from curate.pipeline.storage import LOCAL, Storage, is_local

log = logging.getLogger(__name__)

WARC_SUFFIXES = (".warc.gz", ".warc")
_CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class InputFile:
    uri: str  # local absolute path or http(s):// / s3:// URL
    crawl: str | None = None

    @property
    def key(self) -> str:
        """Stable, filesystem-safe name for per-input bookkeeping (resume markers, parts)."""
        base = os.path.basename(self.uri.rstrip("/"))[:60]
        digest = hashlib.sha1(self.uri.encode()).hexdigest()[:12]
        return f"{digest}-{base}"


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5
    backoff_s: float = 1.0  # first wait; doubles each retry, with jitter
    timeout_s: float = 60.0

    def delay(self, failures: int) -> float:
        """Seconds to wait before the next attempt after `failures` failures in a row."""
        return self.backoff_s * (2 ** (failures - 1)) * (1 + random.random() * 0.25)

    @classmethod
    def of(cls, cfg: LocalInput | UrlInput | CommonCrawlInput) -> RetryPolicy:
        """The input section's retry settings (local inputs have none: the defaults)."""
        if isinstance(cfg, RemoteInput):
            return cls(retries=cfg.retries, backoff_s=cfg.backoff_s, timeout_s=cfg.timeout_s)
        return cls()


class InputError(ValueError):
    """The input section names nothing that can be read."""


class TransferError(OSError):
    """A remote file could not be fetched to its end: retries ran out, or a dropped connection
    cannot be resumed. Counted per file as `warc:transfer_failed`, never raised out of a run."""


class RangeIgnored(TransferError):
    """A byte-range request was answered with something other than that range (a 200 with the
    whole file, or a 206 starting elsewhere): the server does not serve ranges."""


def resolve_inputs(cfg: LocalInput | UrlInput | CommonCrawlInput, storage: Storage = LOCAL) -> list[InputFile]:
    if isinstance(cfg, LocalInput):
        return _resolve_paths(cfg, storage)
    if isinstance(cfg, UrlInput):
        return [InputFile(u, cfg.crawl) for u in dict.fromkeys(cfg.urls)]
    return _resolve_commoncrawl(cfg, storage)


def _resolve_paths(cfg: LocalInput, storage: Storage) -> list[InputFile]:
    found: dict[str, None] = {}
    for pattern in cfg.paths:
        if not is_local(pattern):
            found.update(dict.fromkeys(_resolve_in_store(pattern, storage)))
            continue
        expanded = os.path.expanduser(pattern)
        matches = sorted(glob.glob(expanded, recursive=True)) if glob.has_magic(expanded) else [expanded]
        if not matches:
            raise InputError(f"input.paths: {pattern!r} matches no file")
        for m in matches:
            p = Path(m)
            if p.is_dir():
                for f in sorted(p.rglob("*")):
                    if f.is_file() and f.name.endswith(WARC_SUFFIXES):
                        found[str(f.resolve())] = None
            elif p.exists():
                found[str(p.resolve())] = None
            else:
                raise InputError(f"input.paths: {m!r} does not exist")
    if not found:
        raise InputError("input.paths: no .warc.gz / .warc files found")
    return [InputFile(p, cfg.crawl) for p in found]


def _resolve_in_store(pattern: str, storage: Storage) -> list[str]:
    """The WARC files of an object-store path: a glob, a "folder" (every WARC under it), or one
    object, as URLs in sorted order."""
    if glob.has_magic(pattern):
        matches = storage.glob(pattern)
        if not matches:
            raise InputError(f"input.paths: {pattern!r} matches no file")
        return matches
    under = [u for u in storage.glob(pattern.rstrip("/") + "/**") if u.endswith(WARC_SUFFIXES)]
    if under:
        return under
    if storage.exists(pattern):
        return [pattern]
    raise InputError(f"input.paths: {pattern!r} does not exist")


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")


def _resolve_commoncrawl(cfg: CommonCrawlInput, storage: Storage) -> list[InputFile]:
    listing_url = _join(cfg.base_url, f"crawl-data/{cfg.crawl}/warc.paths.gz")
    try:
        with open_input(listing_url, RetryPolicy.of(cfg), storage) as f:
            raw = f.read()
        paths = [line.strip() for line in gzip.decompress(raw).decode().splitlines() if line.strip()]
    except (OSError, EOFError, UnicodeDecodeError) as err:
        # Without the listing nothing can run: say so in one line, not a traceback.
        raise InputError(f"cannot read the file list {listing_url}: {err}") from err
    if not paths:
        raise InputError(f"{listing_url} lists no WARC files")
    if isinstance(cfg.files, list):
        bad = [i for i in cfg.files if i >= len(paths)]
        if bad:
            raise InputError(f"input.files: indices {bad} out of range (the crawl has {len(paths)} files)")
        chosen = [paths[i] for i in cfg.files]
    else:
        # Deterministic sample: the same seed always picks the same files, spread over the crawl.
        order = list(range(len(paths)))
        random.Random(cfg.seed).shuffle(order)
        chosen = [paths[i] for i in sorted(order[: cfg.files])]
    return [InputFile(_join(cfg.base_url, p), cfg.crawl) for p in chosen]


def open_input(uri: str, policy: RetryPolicy | None = None, storage: Storage = LOCAL) -> BinaryIO:
    """HTTP(S) with retries and resumption; anything else (a local path, `s3://`, ...) through
    the storage layer, with its endpoint and credentials."""
    if uri.startswith(("http://", "https://")):
        return io.BufferedReader(RetryingHTTPStream(uri, policy or RetryPolicy()), buffer_size=1 << 20)
    return storage.open(uri)  # type: ignore[return-value]


class RetryingHTTPStream(io.RawIOBase):
    """A read-only stream over HTTP(S) GET that survives dropped connections.

    On a connection error or 5xx/429 it waits (exponential backoff with jitter) and re-requests
    from the current position with `Range: bytes=<pos>-`. Every failure that brought no new
    bytes counts against `policy.retries`; any progress resets the count, so a flaky link that
    keeps delivering finishes, and one that never does ends in `TransferError` instead of
    reconnecting forever. A server that ignores Range (answers 200 instead of 206) after bytes
    were already consumed cannot be resumed safely: that is a `TransferError`, never a silent
    restart that would duplicate records.

    `byte_range=(start, length)` reads exactly those bytes of the file (one WARC record by its
    index offset and length): every request carries a closed Range, an answer that is not that
    range raises `RangeIgnored` before its body is read, and a body that ends short is resumed
    like a dropped connection. `throttle`, if given, is called before every request (a rate
    limiter shared by all requests of a worker).
    """

    # Byte offsets must be those of the file itself: a server that gzips the response on the
    # fly would make Range offsets (of the encoded bytes) disagree with the bytes we counted.
    _HEADERS = {"Accept-Encoding": "identity"}

    def __init__(self, url: str, policy: RetryPolicy, session: requests.Session | None = None, *,
                 byte_range: tuple[int, int] | None = None, throttle: Callable[[], object] | None = None) -> None:
        super().__init__()
        self.url = url
        self.policy = policy
        self._range = byte_range
        self._throttle = throttle
        self._session = session or requests.Session()
        self._pos = 0
        self._resp: requests.Response | None = None
        self._iter = None
        self._buf = b""
        self._eof = False
        self.total_size: int | None = None  # the whole file's size, from Content-Range (ranged reads)
        self._failures = 0  # failures since the last byte arrived
        self.attempts = 0  # requests made, for tests and logs
        self._connect()

    def readable(self) -> bool:
        return True

    def _failed(self, err: Exception) -> None:
        """Count a failure that brought no bytes; give up or wait before the next attempt."""
        self._failures += 1
        if self._failures > self.policy.retries:
            raise TransferError(f"{self.url}: gave up at byte {self._pos} after {self._failures} failed attempts: {err}")
        delay = self.policy.delay(self._failures)
        log.warning("retrying %s at byte %d in %.1fs (%s)", self.url, self._pos, delay, err)
        time.sleep(delay)

    def _connect(self) -> None:
        while True:
            self.attempts += 1
            headers = dict(self._HEADERS)
            if self._range is not None:
                start, length = self._range
                headers["Range"] = f"bytes={start + self._pos}-{start + length - 1}"
            elif self._pos:
                headers["Range"] = f"bytes={self._pos}-"
            if self._throttle is not None:
                self._throttle()
            try:
                resp = self._session.get(self.url, headers=headers, stream=True, timeout=self.policy.timeout_s)
            except requests.RequestException as err:
                self._failed(err)
                continue
            if resp.status_code in (429, 500, 502, 503, 504):
                resp.close()
                self._failed(requests.HTTPError(f"HTTP {resp.status_code}"))
                continue
            if resp.status_code >= 400:
                resp.close()
                if self._pos:  # the file went away mid-download
                    raise TransferError(f"{self.url}: HTTP {resp.status_code} when resuming at byte {self._pos}")
                if resp.status_code == 404:
                    raise FileNotFoundError(f"{self.url}: HTTP 404")
                raise OSError(f"{self.url}: HTTP {resp.status_code}")
            if self._range is not None:
                self._check_range(resp)
            elif self._pos and resp.status_code != 206:
                resp.close()
                raise TransferError(f"{self.url}: connection dropped at byte {self._pos} and the server does not support Range")
            self._resp = resp
            self._iter = resp.iter_content(chunk_size=1 << 16)
            return

    def readinto(self, b) -> int:  # type: ignore[override]
        while not self._buf and not self._eof:
            try:
                self._buf = next(self._iter)  # type: ignore[arg-type]
            except StopIteration:
                if self._range is not None and self._pos < self._range[1]:
                    # The answer ended before the range did: fetch the rest like a dropped connection.
                    self._close_resp()
                    self._failed(EOFError(f"range ended at byte {self._pos} of {self._range[1]}"))
                    self._connect()
                    continue
                self._eof = True
            except (requests.RequestException, ConnectionError, OSError) as err:
                log.warning("%s: read failed at byte %d: %s", self.url, self._pos, err)
                self._close_resp()
                self._failed(err)
                self._connect()
            else:
                if self._range is not None:  # never more than the range, whatever the server sends
                    self._buf = self._buf[: self._range[1] - self._pos]
                    self._eof = len(self._buf) == self._range[1] - self._pos
                if self._buf:
                    self._failures = 0
        if not self._buf:
            return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        self._pos += n
        return n

    def _check_range(self, resp: requests.Response) -> None:
        """Raise `RangeIgnored` unless `resp` is a 206 starting at the byte asked for."""
        start = self._range[0] + self._pos  # type: ignore[index]
        got = _CONTENT_RANGE_RE.match(resp.headers.get("Content-Range", ""))
        if resp.status_code != 206 or got is None or int(got.group(1)) != start:
            resp.close()
            raise RangeIgnored(f"{self.url}: asked for bytes from {start}, got HTTP {resp.status_code} "
                               f"Content-Range {resp.headers.get('Content-Range')!r}")
        self.total_size = int(got.group(3)) if got.group(3) != "*" else None

    def _close_resp(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None

    def close(self) -> None:
        self._close_resp()
        super().close()
