"""The document schema: every column name and type, declared once.

A document is a row of an Arrow table. Every batch that flows between stages carries all of
these columns (unset ones are null), so blocks always concatenate and the output Parquet has
one stable schema that `datasets.load_dataset("parquet", ...)` reads as is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# Core columns: where a document came from and its text.
ID = "id"
URL = "url"
DOMAIN = "domain"
CRAWL = "crawl"
WARC_PATH = "warc_path"
WARC_OFFSET = "warc_offset"
FETCH_TIME = "fetch_time"
TEXT = "text"
# Bookkeeping: why a row was dropped (null = still kept) and, for duplicates, of what.
DROP_REASON = "drop_reason"
DUP_OF = "dup_of"
# Columns stages compute.
HTML_BYTES = "html_bytes"
CHARSET = "charset"
LANG = "lang"
LANG_SCORE = "lang_score"
WIKI_SCORE = "wiki_score"
TOPIC = "topic"
MINHASH_CLUSTER = "minhash_cluster"
WEIGHT = "weight"
PII_COUNTS = "pii_counts"

# The raw page travels only between reading and extraction; it is never written out.
RAW_HTML = "raw_html"
# The record's WARC-Payload-Digest, with the raw page: extraction reuses the text of a payload it
# already extracted in this run.
PAYLOAD_DIGEST = "payload_digest"

DOC_FIELDS: list[pa.Field] = [
    pa.field(TEXT, pa.large_string()),
    pa.field(ID, pa.string()),
    pa.field(URL, pa.string()),
    pa.field(DOMAIN, pa.string()),
    pa.field(CRAWL, pa.string()),
    pa.field(WARC_PATH, pa.string()),
    pa.field(WARC_OFFSET, pa.int64()),
    # Milliseconds: the coarsest unit Parquet stores, so the type survives a round trip.
    pa.field(FETCH_TIME, pa.timestamp("ms", tz="UTC")),
    pa.field(DROP_REASON, pa.string()),
    pa.field(DUP_OF, pa.string()),
    pa.field(HTML_BYTES, pa.int64()),
    pa.field(CHARSET, pa.string()),
    pa.field(LANG, pa.string()),
    pa.field(LANG_SCORE, pa.float32()),
    pa.field(WIKI_SCORE, pa.float32()),
    pa.field(TOPIC, pa.string()),
    pa.field(MINHASH_CLUSTER, pa.int64()),
    pa.field(WEIGHT, pa.float32()),
    # A list of (kind, count) structs, not a map: `datasets` has no feature type for Arrow maps.
    pa.field(PII_COUNTS, pa.list_(pa.struct([("kind", pa.string()), ("count", pa.int32())]))),
]

DOC_SCHEMA = pa.schema(DOC_FIELDS)
# What the reader hands to extraction: the document schema plus the raw page bytes.
RAW_SCHEMA = DOC_SCHEMA.append(pa.field(RAW_HTML, pa.large_binary())).append(pa.field(PAYLOAD_DIGEST, pa.string()))

# Drop reasons in this namespace are errors (the record could not be processed), not
# rejections; the accounting identity keeps them apart.
ERROR_PREFIX = "error:"


def with_fields(extra: Iterable[pa.Field]) -> pa.Schema:
    """DOC_SCHEMA plus the extra columns that enabled stages write (e.g. another classifier's
    score); a name that is already a core column must keep its type."""
    out = DOC_SCHEMA
    for f in extra:
        i = out.get_field_index(f.name)
        if i < 0:
            out = out.append(f)
        elif out.field(i).type != f.type:
            raise ValueError(f"column {f.name!r} is {out.field(i).type} in the document schema, a stage declares {f.type}")
    return out


def empty(schema: pa.Schema = DOC_SCHEMA) -> pa.Table:
    return schema.empty_table()


def from_rows(rows: Iterable[Mapping[str, Any]], schema: pa.Schema = DOC_SCHEMA) -> pa.Table:
    """Build a batch from dicts; missing columns are null."""
    rows = list(rows)
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(cols, schema=schema)


def conform(table: pa.Table, schema: pa.Schema = DOC_SCHEMA) -> pa.Table:
    """Return `table` with exactly `schema`'s columns, in order: missing ones null, extra ones
    dropped, types cast. Used at stage boundaries so every block has one schema."""
    n = table.num_rows
    arrays = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            arrays.append(col if col.type == f.type else col.cast(f.type))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def active_mask(table: pa.Table) -> pa.ChunkedArray:
    """Rows no stage has dropped yet (drop_reason is null)."""
    return pc.is_null(table.column(DROP_REASON))


def set_column(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray | list) -> pa.Table:
    idx = table.schema.get_field_index(name)
    field = table.schema.field(idx)
    if not isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pa.array(values, type=field.type)
    elif values.type != field.type:
        values = values.cast(field.type)
    return table.set_column(idx, field, values)


def mark_dropped(table: pa.Table, reasons: list[str | None] | pa.Array) -> pa.Table:
    """Set drop_reason where `reasons` is non-null and the row is still active.

    A row keeps the first reason it was given: later stages never overwrite an earlier drop.
    """
    new = reasons if isinstance(reasons, (pa.Array, pa.ChunkedArray)) else pa.array(reasons, pa.string())
    merged = pc.coalesce(table.column(DROP_REASON), new)
    return set_column(table, DROP_REASON, merged)
