"""The URLs Wikipedia cites: MediaWiki's `externallinks` table from a SQL dump, or a URL list.

`enwiki-<date>-externallinks.sql.gz` is a mysqldump: a `CREATE TABLE` naming the columns, then
`INSERT INTO `externallinks` VALUES (...),(...);` statements of ~1 MB each. `SqlDumpReader`
reads it as a stream (any chunk size, statements and strings may cross chunk boundaries),
with mysqldump's string escapes (`\\'`, `\\\\`, `\\n`, ... and SQL's doubled `''`).

The table's layout changed in MediaWiki 1.41 (2023): modern dumps have
`el_id, el_from, el_to_domain_index, el_to_path`, where the domain index is the URL's scheme and
host with the labels reversed (`https://org.wikipedia.en.`, `http://V4.192.0.2.1.:8080`) and the
path keeps path, query and fragment; older dumps have `el_to` (the URL itself) with `el_index`.
Both are read; the layout comes from the dump's `CREATE TABLE` or the INSERT's column list, else
from the number of values per row.

`sample_urls` picks N of them deterministically: bottom-N by a seeded hash, so the sample does
not depend on the order of the dump and one pass with O(N) memory suffices.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import hashlib
import heapq
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

SqlValue = str | int | float | None

# One row of VALUES: a parenthesised list of quoted strings (mysqldump's backslash escapes or
# SQL's doubled quote) and bare tokens, then the separator: `,` (another row) or `;` (the end).
_STRING_BODY = r"[^'\\]*(?:(?:\\.|'')[^'\\]*)*"
_ROW_RE = re.compile(r"\s*\(((?:[^'()]+|'" + _STRING_BODY + r"')*)\)\s*([,;])", re.S)
_VALUE_RE = re.compile(r"\s*(?:'(" + _STRING_BODY + r")'|([^,']*?))\s*(?:,|$)", re.S)
_INSERT_RE = re.compile(r"(?:INSERT|REPLACE)(?:\s+IGNORE)?\s+INTO\s+`?(\w+)`?\s*(?:\(([^)]*)\))?\s*VALUES\s*", re.I)
_CREATE_RE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?`?(\w+)`?", re.I)
_COLUMN_DEF_RE = re.compile(r"\s*`(\w+)`\s+\w")
_DOMAIN_INDEX_RE = re.compile(r"(https?)://([^/:]*)(?::(\d+))?", re.I)
_HTTP_URL_RE = re.compile(r"https?://[^/]", re.I)
_ESCAPE_RE = re.compile(r"\\(.)|''", re.S)
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "%": "\\%", "_": "\\_"}

# Column layouts by number of values, for dumps without a CREATE TABLE or column list.
LAYOUTS: dict[int, tuple[str, ...]] = {
    4: ("el_id", "el_from", "el_to_domain_index", "el_to_path"),  # MediaWiki >= 1.41
    5: ("el_id", "el_from", "el_to", "el_index", "el_index_60"),  # 1.32 - 1.40
    3: ("el_from", "el_to", "el_index"),  # older
}


class SqlDumpError(ValueError):
    """The dump is not parseable mysqldump output (a statement that never ends, a bad row)."""


def _unescape(match: re.Match) -> str:
    ch = match.group(1)
    if ch is None:  # ''
        return "'"
    return _ESCAPES.get(ch, ch)


def parse_values(inner: str) -> tuple[SqlValue, ...]:
    """The values inside one row's parentheses: strings unescaped, NULL as None, numbers as
    int/float, anything else as its text."""
    out: list[SqlValue] = []
    pos = 0
    while pos < len(inner):
        m = _VALUE_RE.match(inner, pos)
        if m is None or m.end() == pos:
            raise SqlDumpError(f"bad value at {inner[pos:pos + 60]!r}")
        out.append(_value(m.group(1), m.group(2)))
        pos = m.end()
    return tuple(out)


def _value(quoted: str | None, bare: str | None) -> SqlValue:
    if quoted is not None:
        return _ESCAPE_RE.sub(_unescape, quoted) if "\\" in quoted or "''" in quoted else quoted
    return _bare(bare or "")


@functools.lru_cache(maxsize=8)
def _row_of(arity: int) -> re.Pattern:
    """A regex for a whole row of `arity` values (one match instead of one per value: most of
    the time of a dump pass is spent here)."""
    value = r"\s*(?:'(" + _STRING_BODY + r")'|([^,'()\s]*))\s*"
    return re.compile(r"\s*\(" + ",".join([value] * arity) + r"\)\s*([,;])", re.S)


def _bare(token: str) -> SqlValue:
    if token.upper() == "NULL":
        return None
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        return token


class SqlDumpReader:
    """Rows of one table's INSERT statements, streamed from a mysqldump.

    `columns` is the table's layout once known (from CREATE TABLE, an INSERT column list, or
    None for the caller to decide by row length). Memory stays at about one chunk plus one row.
    """

    def __init__(self, stream: BinaryIO, table: str = "externallinks", chunk_bytes: int = 1 << 20,
                 max_row_bytes: int = 64 << 20) -> None:
        self.stream = stream
        self.table = table
        self.chunk_bytes = chunk_bytes
        self.max_row_bytes = max_row_bytes
        self.columns: tuple[str, ...] | None = None
        self.statements = 0  # INSERT statements of the table read
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buf = ""
        self._eof = False

    def _more(self) -> bool:
        """Append the next chunk to the buffer; False at the end of the stream."""
        if self._eof:
            return False
        raw = self.stream.read(self.chunk_bytes)
        if not raw:
            self._eof = True
            self._buf += self._decoder.decode(b"", final=True)
            return False
        self._buf += self._decoder.decode(raw)
        return True

    def _fill(self, pos: int, n: int) -> bool:
        """Read until `n` characters follow `pos` (or the stream ends); whether any do."""
        while len(self._buf) - pos < n and self._more():
            pass
        return pos < len(self._buf)

    def _skip_line(self, pos: int) -> int:
        while (nl := self._buf.find("\n", pos)) == -1:
            self._buf, pos = "", 0  # a long line of another statement: never kept whole
            if not self._more():
                return 0
        return nl + 1

    def rows(self) -> Iterator[tuple[SqlValue, ...]]:
        pos = 0
        while True:
            if pos > self.chunk_bytes:  # drop what has been read
                self._buf, pos = self._buf[pos:], 0
            if not self._fill(pos, 4096):
                return
            # Statements start at line starts; their head decides whether the line matters.
            head = self._buf[pos:pos + 4096]
            lead = len(head) - len(head.lstrip())
            if (m := _CREATE_RE.match(head, lead)) and m.group(1) == self.table:
                pos = self._read_create(self._skip_line(pos + lead))
            elif (m := _INSERT_RE.match(head, lead)) and m.group(1) == self.table:
                if m.group(2):
                    self.columns = tuple(c.strip().strip("`") for c in m.group(2).split(","))
                self.statements += 1
                pos = yield from self._read_values(pos + m.end())
            else:
                pos = self._skip_line(pos + lead)

    def _read_line(self, pos: int) -> tuple[str, int] | None:
        """The line at `pos` and the position after it; None at the end of the stream."""
        while (nl := self._buf.find("\n", pos)) == -1:
            if len(self._buf) - pos > self.max_row_bytes or not self._more():
                return (self._buf[pos:], len(self._buf)) if pos < len(self._buf) else None
        return self._buf[pos:nl], nl + 1

    def _read_create(self, pos: int) -> int:
        """Column names of the CREATE TABLE whose body starts at `pos`, up to its `)` line."""
        columns = []
        while (got := self._read_line(pos)) is not None:
            line, pos = got
            if line.lstrip().startswith(")"):
                break
            if m := _COLUMN_DEF_RE.match(line):
                columns.append(m.group(1))
        self.columns = tuple(columns)
        return pos

    def _read_values(self, pos: int) -> Iterator[tuple[SqlValue, ...]]:
        """Rows of one INSERT statement from `pos`; returns the position after its `;`."""
        fast: re.Pattern | None = None
        while True:
            if fast is not None and (m := fast.match(self._buf, pos)) is not None:
                groups = m.groups()
                yield tuple(_value(groups[i], groups[i + 1]) for i in range(0, len(groups) - 1, 2))
            else:
                m = _ROW_RE.match(self._buf, pos)
                if m is None:
                    # A row cut by the end of the buffer: read on (a row never ends inside a
                    # string or before its separator, so a partial row cannot match early).
                    if len(self._buf) - pos > self.max_row_bytes or not self._more():
                        raise SqlDumpError(f"unterminated or malformed row in INSERT INTO {self.table}: "
                                           f"{self._buf[pos:pos + 80]!r}")
                    continue
                row = parse_values(m.group(1))
                fast = _row_of(len(row))
                yield row
            pos = m.end()
            if m.group(m.re.groups) == ";":
                return pos
            if pos > self.chunk_bytes:
                self._buf, pos = self._buf[pos:], 0


def url_from_index(domain_index: str, path: str | None) -> str | None:
    """The URL of a modern externallinks row (MediaWiki's LinkFilter::reverseIndexes plus the
    path); None for schemes other than http(s) (mailto:, news:, ftp: ...)."""
    m = _DOMAIN_INDEX_RE.fullmatch(domain_index)
    if m is None:
        return None
    scheme, host, port = m.group(1).lower(), m.group(2), m.group(3)
    if host.startswith("V4."):
        host = host[3:].rstrip(".")
    elif host.startswith("V6."):
        host = "[" + host[3:].rstrip(".").replace(".", ":") + "]"
    else:
        host = ".".join(reversed(host.rstrip(".").split(".")))
    if not host:
        return None
    return f"{scheme}://{host}{':' + port if port else ''}{path or '/'}"


def link_url(row: tuple[SqlValue, ...], columns: tuple[str, ...]) -> str | None:
    """The http(s) URL of one externallinks row in either layout, else None."""
    return _link_reader(columns)(row)


@functools.lru_cache(maxsize=8)
def _link_reader(columns: tuple[str, ...]) -> Callable[[tuple[SqlValue, ...]], str | None]:
    """row -> URL for one column layout (the positions are looked up once, not per row)."""
    index_at = columns.index("el_to_domain_index") if "el_to_domain_index" in columns else None
    path_at = columns.index("el_to_path") if "el_to_path" in columns else None
    to_at = columns.index("el_to") if "el_to" in columns else None

    def read(row: tuple[SqlValue, ...]) -> str | None:
        index = row[index_at] if index_at is not None else None
        if isinstance(index, str) and index:
            path = row[path_at] if path_at is not None else None
            return url_from_index(index, path if isinstance(path, str) else None)
        to = row[to_at] if to_at is not None else None
        if isinstance(to, str) and _HTTP_URL_RE.match(to):
            return to
        return None

    return read


def externallinks_urls(stream: BinaryIO, counts: Counter | None = None) -> Iterator[str]:
    """The http(s) URLs of an externallinks dump, in dump order; `counts` gets `rows`,
    `urls` and `not_http` (mailto:, ftp:, protocol-less rows...)."""
    counts = counts if counts is not None else Counter()
    reader = SqlDumpReader(stream)
    for row in reader.rows():
        columns = reader.columns or LAYOUTS.get(len(row))
        if columns is None or len(columns) != len(row):
            raise SqlDumpError(f"externallinks row with {len(row)} values and no known column layout "
                               f"(columns {reader.columns})")
        counts["rows"] += 1
        url = link_url(row, columns)
        if url is None:
            counts["not_http"] += 1
            continue
        counts["urls"] += 1
        yield url


def url_list(stream: BinaryIO, counts: Counter | None = None) -> Iterator[str]:
    """URLs of a plain list: one per line; blank lines and `#` comments skipped."""
    counts = counts if counts is not None else Counter()
    for raw in stream:
        line = raw.decode("utf-8", "replace").strip()
        if not line or line.startswith("#"):
            continue
        counts["rows"] += 1
        if _HTTP_URL_RE.match(line):
            counts["urls"] += 1
            yield line
        else:
            counts["not_http"] += 1


def maybe_gunzip(stream: BinaryIO, name: str) -> BinaryIO:
    return gzip.GzipFile(fileobj=stream) if name.endswith(".gz") else stream


def sample_urls(urls: Iterable[str], n: int, seed: int, group_of: Callable[[str], str | None] | None = None) -> list[str]:
    """`n` distinct URLs: the `n` smallest by a seeded hash of the URL (the same for any order
    of the input). With `group_of` (e.g. the registered domain), at most one URL per group: the
    group's smallest. A group is thereby picked with a chance that grows with how many of its
    URLs are cited, but no group contributes two pages. Ordered by hash (a shuffle)."""
    if n <= 0:
        return []
    key = seed.to_bytes(8, "little", signed=True)
    best: dict[str, tuple[int, str]] = {}  # group -> (hash, url)
    heap: list[tuple[int, str, str]] = []  # (-hash, group, url): the largest kept hash on top
    for url in urls:
        h = int.from_bytes(hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=8, key=key).digest(), "big")
        # Most URLs lose here, before the (costly) group is computed.
        if len(best) >= n and h >= -heap[0][0]:
            continue
        group = url if group_of is None else (group_of(url) or url)
        old = best.get(group)
        if old is not None and old[0] <= h:
            continue
        best[group] = (h, url)
        heapq.heappush(heap, (-h, group, url))
        while len(best) > n or best.get(heap[0][1]) != (-heap[0][0], heap[0][2]):
            neg, g, u = heapq.heappop(heap)
            if best.get(g) == (-neg, u):  # the live entry (else a replaced one)
                del best[g]
    return [u for _, u in sorted(best.values())]
