"""Single Common Crawl records by index lookup and HTTP Range, and random records of a crawl.

- `CdxClient.lookup(url)`: the captures of one URL in one crawl, from the CDX server API
  (`https://index.commoncrawl.org/<crawl>-index?url=...&output=json`, one JSON object per line
  with `filename`, `offset`, `length`, `status`, `mime`, `digest`, `url`, `timestamp`). Requests
  go through a token bucket (the index is one server shared by every user; build-data's default
  is one request a second in total) and are retried with exponential backoff on 429, 5xx and connection errors, waiting at
  least as long as a `Retry-After` header asks.
- `fetch_record(data_url, hit)`: exactly that capture's bytes (one gzip member: one WARC
  record), by `Range: bytes=offset-(offset+length-1)`, through the pipeline's own retrying HTTP
  stream (a short body is resumed, a server that ignores Range raises `RangeIgnored`).
- `sample_records(...)`: random response records of one WARC file: random byte windows, cut at
  the first gzip member that is a WARC record, complete members after it.
- `ColumnarIndex.lookup_many(urls)`: the same captures from the columnar index (Parquet), one
  scan per batch of URLs with the filter pushed down, for sets too large for the CDX server.

The records are plain bytes, so any reader takes them; `curate classifier build-data` runs them
through `pipeline.warc`, extraction and the filters.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import requests

from curate.pipeline.sources import RetryingHTTPStream, RetryPolicy, TransferError

log = logging.getLogger(__name__)

_RETRY_STATUS = (429, 500, 502, 503, 504)
_GZIP_MAGIC = b"\x1f\x8b\x08"


class TokenBucket:
    """At most `rate` acquisitions a second on average, bursts of up to `burst`; thread-safe.

    `rate=None` never waits. Each worker holds its own bucket, so a crawl-wide limit is split
    over the workers that run at once (see `per_worker`)."""

    def __init__(self, rate: float | None, burst: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be > 0 (or None for no limit)")
        self.rate, self.burst = rate, max(burst, 1.0)
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()
        self.waited_s = 0.0

    @staticmethod
    def per_worker(total_rate: float | None, workers: int) -> float | None:
        return None if total_rate is None else total_rate / max(1, workers)

    def acquire(self) -> float:
        """Take one token, sleeping until one is there; returns the seconds slept."""
        if self.rate is None:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
            # The token is taken now; the wait pays for it, so concurrent callers queue up.
            self._tokens -= 1
        if wait:
            self._sleep(wait)
            self.waited_s += wait
        return wait


@dataclass(frozen=True)
class CdxHit:
    """One capture in the index: where its WARC record is."""

    url: str
    filename: str
    offset: int
    length: int
    status: str | None = None
    mime: str | None = None
    digest: str | None = None
    timestamp: str | None = None

    @classmethod
    def from_json(cls, obj: dict) -> CdxHit:
        return cls(url=obj["url"], filename=obj["filename"], offset=int(obj["offset"]), length=int(obj["length"]),
                   status=obj.get("status"), mime=obj.get("mime"), digest=obj.get("digest"), timestamp=obj.get("timestamp"))


class CdxError(OSError):
    """The index could not answer for a URL: retries ran out, or an answer that is not CDX JSON.
    `kind` names the fault for the counters (`http_400`, `gave_up`, `bad_json`, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def best_capture(hits: list[CdxHit]) -> CdxHit | None:
    """The capture to fetch: a 200 (redirects and errors have no page), HTML before other
    types, then the latest. None when no capture is a 200."""
    ok = [h for h in hits if h.status == "200"]
    if not ok:
        return None
    return max(ok, key=lambda h: ("html" in (h.mime or ""), h.timestamp or ""))


class CdxClient:
    """Lookups in one crawl's CDX index. `requests` and `retries` count what was sent (for stats)."""

    def __init__(self, api_url: str, crawl: str, policy: RetryPolicy, limiter: TokenBucket | None = None,
                 session: requests.Session | None = None) -> None:
        self.endpoint = f"{api_url.rstrip('/')}/{crawl}-index"
        self.policy = policy
        self.limiter = limiter or TokenBucket(None)
        self.session = session or requests.Session()
        self.requests = 0
        self.retries = 0

    def lookup(self, url: str) -> list[CdxHit]:
        """Every capture of `url` (the server matches it SURT-canonicalized: scheme, `www.` and
        case of the host do not matter); [] when the crawl has none."""
        query = f"{self.endpoint}?url={quote(url, safe='')}&output=json"
        failures = 0
        while True:
            self.limiter.acquire()
            self.requests += 1
            wait_at_least = 0.0
            try:
                resp = self.session.get(query, timeout=self.policy.timeout_s)
            except requests.RequestException as err:
                reason = f"{type(err).__name__}: {err}"
            else:
                if resp.status_code == 200:
                    return _parse_cdx_lines(resp.text, url)
                if resp.status_code == 404:  # pywb's "No Captures found for: <url>"
                    return []
                if resp.status_code not in _RETRY_STATUS:
                    raise CdxError(f"http_{resp.status_code}", f"{query}: HTTP {resp.status_code}: {resp.text[:200]}")
                reason = f"HTTP {resp.status_code}"
                wait_at_least = _retry_after(resp)
            failures += 1
            if failures > self.policy.retries:
                raise CdxError("gave_up", f"{query}: gave up after {failures} failed attempts ({reason})")
            self.retries += 1
            delay = max(self.policy.delay(failures), wait_at_least)
            log.warning("CDX lookup of %s: %s, retrying in %.1fs", url, reason, delay)
            time.sleep(delay)


def _retry_after(resp: requests.Response) -> float:
    try:
        return float(resp.headers.get("Retry-After", 0))
    except ValueError:  # an HTTP date: not worth parsing, the backoff applies
        return 0.0


def _parse_cdx_lines(text: str, url: str) -> list[CdxHit]:
    hits = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            hits.append(CdxHit.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as err:
            raise CdxError("bad_json", f"CDX answer for {url}: {line[:200]!r}: {err}") from err
    return hits


def fetch_range(url: str, start: int, length: int, policy: RetryPolicy, *, session: requests.Session | None = None,
                throttle: Callable[[], object] | None = None) -> tuple[bytes, int | None, int]:
    """Bytes `start .. start+length-1` of `url`, the file's total size (from Content-Range) and
    the number of requests it took. Raises `RangeIgnored`, `TransferError`, `FileNotFoundError`."""
    stream = RetryingHTTPStream(url, policy, session, byte_range=(start, length), throttle=throttle)
    with stream:
        data = stream.readall()
    if len(data) != length:  # the stream resumes short answers; this is a bug guard
        raise TransferError(f"{url}: got {len(data)} of {length} bytes at {start}")
    return data, stream.total_size, stream.attempts


def fetch_record(data_url: str, hit: CdxHit, policy: RetryPolicy, **kwargs) -> tuple[bytes, int]:
    """The capture's WARC record (one gzip member) and the requests it took."""
    data, _, attempts = fetch_range(_join(data_url, hit.filename), hit.offset, hit.length, policy, **kwargs)
    return data, attempts


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")


class ColumnarIndex:
    """Lookups in Common Crawl's columnar index: the Parquet table under
    `s3://commoncrawl/cc-index/table/cc-main/warc/` (hive partitions `crawl=`, `subset=`), or a
    copy of part of it. One scan per batch of URLs, with the filter pushed down to Parquet: the
    files are sorted by SURT key, so the row-group statistics of `url_host_registered_domain`
    skip all but the row groups of the batch's domains. URLs match exactly as crawled (the CDX
    API also matches `http`/`https` and `www.` variants)."""

    COLUMNS = ("url", "warc_filename", "warc_record_offset", "warc_record_length", "fetch_status",
               "content_mime_type", "content_digest", "fetch_time")

    def __init__(self, root: str, crawl: str) -> None:
        import pyarrow.dataset as ds

        self.dataset = ds.dataset(root, format="parquet", partitioning="hive")
        self.crawl = crawl
        self.scans = 0

    def lookup_filter(self, urls: list[str], domains: list[str]):
        import pyarrow.compute as pc

        names = set(self.dataset.schema.names)
        expr = pc.field("url_host_registered_domain").isin(domains) & pc.field("url").isin(urls)
        if "crawl" in names:  # partition columns, when the root is above them
            expr = expr & (pc.field("crawl") == self.crawl)
        if "subset" in names:
            expr = expr & (pc.field("subset") == "warc")
        return expr

    def lookup_many(self, urls: list[str], domains: list[str]) -> dict[str, list[CdxHit]]:
        """url -> its captures, for every URL of the batch that has any."""
        columns = [c for c in self.COLUMNS if c in self.dataset.schema.names]
        table = self.dataset.to_table(columns=columns, filter=self.lookup_filter(urls, domains))
        self.scans += 1
        found: dict[str, list[CdxHit]] = {}
        for row in table.to_pylist():
            fetched = row.get("fetch_time")
            found.setdefault(row["url"], []).append(CdxHit(
                url=row["url"], filename=row["warc_filename"], offset=row["warc_record_offset"],
                length=row["warc_record_length"], status=None if row.get("fetch_status") is None else str(row["fetch_status"]),
                mime=row.get("content_mime_type"), digest=row.get("content_digest"),
                timestamp=fetched.strftime("%Y%m%d%H%M%S") if fetched is not None else None))
        return found


# ---------------------------------------------------------------------------------------------
# Random records of a WARC file


@dataclass(frozen=True)
class SampledRecord:
    offset: int  # of the record's gzip member in the WARC file
    data: bytes  # the member: one WARC record, gzipped


def gzip_members(buf: bytes, start: int) -> list[tuple[int, int]]:
    """(offset, length) of the complete gzip members that follow each other from `start`; the
    last, cut off by the end of `buf`, is left out."""
    members, pos, view = [], start, memoryview(buf)
    while pos < len(buf):
        d = zlib.decompressobj(31)
        data = view[pos:]
        try:
            while not d.eof and data:
                d.decompress(data, 1 << 20)  # bounded output: a member may inflate a lot
                data = d.unconsumed_tail
        except zlib.error:
            break
        if not d.eof:
            break
        # unused_data is what follows the member: a suffix of buf.
        length = len(buf) - pos - len(d.unused_data)
        members.append((pos, length))
        pos += length
    return members


def first_record_start(buf: bytes, start: int = 0) -> int | None:
    """The first offset >= `start` where a gzip member holding a WARC record begins."""
    pos = buf.find(_GZIP_MAGIC, start)
    while pos != -1:
        d = zlib.decompressobj(31)
        try:
            head = d.decompress(buf[pos:pos + 4096], 8)
        except zlib.error:
            head = b""
        if head.startswith(b"WARC/"):
            return pos
        pos = buf.find(_GZIP_MAGIC, pos + 1)
    return None


def _warc_type(member: bytes) -> str | None:
    head = zlib.decompressobj(31).decompress(member, 2048)
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"warc-type:"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
        if not line:
            break
    return None


@dataclass
class SampleStats:
    windows: int = 0  # byte windows fetched
    requests: int = 0
    empty_windows: int = 0  # windows without a complete response record


def sample_records(warc_url: str, n: int, rng: random.Random, policy: RetryPolicy, *, window_bytes: int = 1 << 19,
                   per_window: int = 1, max_windows: int | None = None, session: requests.Session | None = None,
                   throttle: Callable[[], object] | None = None, stats: SampleStats | None = None) -> list[SampledRecord]:
    """Up to `n` distinct response records from random places of one WARC file.

    Each window of `window_bytes` starts at a uniformly random offset; its first `per_window`
    complete response members are taken (neighbouring records often share a site, so few per
    window keeps the sample spread). A record larger than a window cannot be taken: the sample
    leans towards pages under `window_bytes` compressed (the CC responses in shared/data are
    3-19 kB gzipped; the default window is 512 KiB)."""
    stats = stats if stats is not None else SampleStats()
    max_windows = max_windows if max_windows is not None else 4 * n + 4
    session = session or requests.Session()
    # One byte tells the file size (Content-Range) without a HEAD the server may not support.
    _, size, attempts = fetch_range(warc_url, 0, 1, policy, session=session, throttle=throttle)
    stats.requests += attempts
    if not size:
        raise TransferError(f"{warc_url}: the server did not say the file size")
    taken: dict[int, SampledRecord] = {}
    windows = 0
    while len(taken) < n and windows < max_windows:
        start = rng.randrange(max(1, size - window_bytes // 2))
        length = min(window_bytes, size - start)
        buf, _, attempts = fetch_range(warc_url, start, length, policy, session=session, throttle=throttle)
        windows += 1
        stats.windows += 1
        stats.requests += attempts
        got = 0
        first = first_record_start(buf)
        for off, ln in gzip_members(buf, first) if first is not None else []:
            member = buf[off:off + ln]
            if _warc_type(member) != "response" or start + off in taken:
                continue
            taken[start + off] = SampledRecord(start + off, member)
            got += 1
            if got >= per_window or len(taken) >= n:
                break
        if not got:
            stats.empty_windows += 1
    return sorted(taken.values(), key=lambda r: r.offset)
