"""Paragraph (line) exact dedup over the whole run, CCNet / Dolma style.

Repeated headers, footers, menus and cookie banners are the same lines on many pages. Three
layers of Ray tasks over the stage's work units (see `curate.dedup.stages`):

1. one task per unit splits its active texts into paragraphs, normalises and hashes them (a
   vectorized 64-bit hash over the whole batch, as CCNet keeps 64 bits of a SHA-1) and emits one
   row per distinct paragraph hash of the unit: its count there and, for `all_but_first`, its
   first occurrence in crawl order (warc_path, warc_offset, id, paragraph index), partitioned by
   hash;
2. one task per hash partition sums the counts and picks the first occurrence in the run; every
   (unit, hash) of a paragraph to remove goes back to its unit group, with the one occurrence to
   keep where the unit holds it;
3. one task per unit rewrites its texts without those paragraphs and drops the documents left
   shorter than `min_chars` (`dup:paragraph`; a dropped row keeps its original text, for
   inspection in rejected/).

Only hashes, counts and addresses travel; texts stay in their blocks. Every decision depends on
the data alone (counts are sums, the first occurrence is a total order on the crawl position),
so the result is the same whatever the number of workers, blocks or partitions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray.data

from curate import schema
from curate.dedup.config import ParagraphConfig
from curate.dedup.shuffle import PART, Out, partition_of, run_layer, wait_all
from curate.dedup.stages import _Units
from curate.dedup.text import hash_strings, normalize_text
from curate.pipeline.global_stage import GlobalContext, GlobalStage

REASON = "dup:paragraph"
# The crawl order that decides which occurrence of a paragraph is "the first" (then its position).
_ORDER = ["key", "path", "offset", "id", "index"]


@dataclass
class Paragraphs:
    """The paragraphs of a unit's active documents that have a text."""

    rows: np.ndarray  # the documents (rows of the unit)
    lists: pa.ListArray  # their paragraphs, one list per document
    doc: np.ndarray  # per paragraph: its document, an index into `rows`
    index: np.ndarray  # per paragraph: its position in the document
    key: np.ndarray  # per paragraph: int64 hash of its normalised form
    counted: np.ndarray  # per paragraph: the normalised form is not empty (empty ones are never removed)


def split_paragraphs(docs: pa.Table, cfg: ParagraphConfig) -> Paragraphs:
    """Split, normalise and hash the paragraphs of the active rows, vectorized over the batch."""
    texts = docs.column(schema.TEXT)
    rows = np.flatnonzero(pc.and_(schema.active_mask(docs), pc.is_valid(texts)).to_numpy(zero_copy_only=False))
    lists = pc.split_pattern(texts.take(pa.array(rows)).combine_chunks(), cfg.separator)
    flat = pc.list_flatten(lists)
    doc = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
    starts = np.asarray(lists.offsets)[:-1].astype(np.int64)
    index = np.arange(doc.size) - starts[doc] if doc.size else np.zeros(0, np.int64)
    norm = normalize_text(flat, cfg.lowercase, cfg.strip_punctuation, cfg.collapse_whitespace)
    if cfg.digits_to_zero:
        norm = pc.replace_substring_regex(norm, pattern=r"\p{Nd}", replacement="0")
    counted = pc.greater(pc.binary_length(norm), 0).to_numpy(zero_copy_only=False) if len(norm) else np.zeros(0, bool)
    return Paragraphs(rows, lists, doc, index, hash_strings(norm).view(np.int64), counted)


def _keys(docs: pa.Table, unit: int, cfg: ParagraphConfig, num_partitions: int) -> pa.Table:
    """One row per distinct paragraph hash of the unit: its count here and (all_but_first) its
    first occurrence in crawl order, partitioned by hash."""
    p = split_paragraphs(docs, cfg)
    sel = np.flatnonzero(p.counted)
    doc_rows = p.rows[p.doc[sel]]
    cols: dict[str, Any] = {"key": p.key[sel]}
    if cfg.mode == "all_but_first":
        take = pa.array(doc_rows)
        cols.update({
            "path": pc.fill_null(docs.column(schema.WARC_PATH).take(take), ""),
            "offset": pc.fill_null(docs.column(schema.WARC_OFFSET).take(take), -1),
            "id": pc.fill_null(docs.column(schema.ID).take(take), ""),
            "index": p.index[sel],
            "row": doc_rows,
        })
    table = pa.table(cols)
    if table.num_rows:
        table = table.take(pc.sort_indices(table, sort_keys=[(c, "ascending") for c in _ORDER if c in cols]))
    key = table.column("key").to_numpy()
    first = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]])) if key.size else np.zeros(0, np.int64)
    out = table.take(pa.array(first))
    out = out.append_column("count", pa.array(np.diff(np.append(first, key.size)), pa.int64()))
    out = out.append_column("unit", pa.array(np.full(first.size, unit, np.int64)))
    return out.append_column(PART, pa.array(partition_of(key[first], num_partitions)))


def _resolve(rows: pa.Table | None, cfg: ParagraphConfig, group_of_unit: np.ndarray) -> tuple[pa.Table, dict[str, int]]:
    """Per hash: the run's count and first occurrence. Updates (unit, key, keep_row, keep_index)
    for every unit holding a paragraph to remove (keep_row -1: remove every occurrence there)."""
    if rows is None or rows.num_rows == 0:
        return _no_updates(), {"repeated_paragraphs": 0}
    rows = rows.take(pc.sort_indices(rows, sort_keys=[(c, "ascending") for c in _ORDER if c in rows.column_names]))
    key = rows.column("key").to_numpy()
    new = np.concatenate([[True], key[1:] != key[:-1]])
    starts = np.flatnonzero(new)
    total = np.add.reduceat(rows.column("count").to_numpy(), starts)
    group = np.cumsum(new) - 1
    threshold = 2 if cfg.mode == "all_but_first" else cfg.min_occurrences
    remove = total[group] >= threshold
    unit = rows.column("unit").to_numpy()
    if cfg.mode == "all_but_first":  # the first row of a key holds the run's first occurrence
        keep_row = np.where(new, rows.column("row").to_numpy(), -1)
        keep_index = np.where(new, rows.column("index").to_numpy(), -1)
    else:
        keep_row = keep_index = np.full(key.size, -1, np.int64)
    sel = np.flatnonzero(remove)
    updates = pa.table({"unit": unit[sel], "key": key[sel], "keep_row": keep_row[sel], "keep_index": keep_index[sel],
                        PART: group_of_unit[unit[sel]]})
    return updates, {"repeated_paragraphs": int(np.count_nonzero(total >= threshold))}


def _no_updates() -> pa.Table:
    e = pa.array([], pa.int64())
    return pa.table({"unit": e, "key": e, "keep_row": e, "keep_index": e, PART: e})


def _rewrite(docs: pa.Table, updates: pa.Table | None, cfg: ParagraphConfig) -> tuple[pa.Table, dict[str, int]]:
    """The unit's texts without the paragraphs to remove; documents left too short are dropped."""
    counters = {"paragraphs_removed": 0, "characters_removed": 0, "documents_rewritten": 0, "documents_dropped": 0}
    if updates is None or updates.num_rows == 0:
        return docs, counters
    p = split_paragraphs(docs, cfg)
    order = np.argsort(updates.column("key").to_numpy(), kind="stable")
    ukey = updates.column("key").to_numpy()[order]
    pos = np.minimum(np.searchsorted(ukey, p.key), max(ukey.size - 1, 0))
    found = p.counted & (ukey[pos] == p.key)
    keep_here = (updates.column("keep_row").to_numpy()[order][pos] == p.rows[p.doc]) & (
        updates.column("keep_index").to_numpy()[order][pos] == p.index)
    remove = found & ~keep_here
    removed_per_doc = np.bincount(p.doc[remove], minlength=p.rows.size)
    kept_per_doc = np.diff(np.asarray(p.lists.offsets).astype(np.int64)) - removed_per_doc
    values = pc.list_flatten(p.lists).filter(pa.array(~remove))
    offsets = pa.array(np.concatenate([[0], np.cumsum(kept_per_doc)]).astype(np.int32))
    new_texts = pc.binary_join(pa.ListArray.from_arrays(offsets, values), pa.scalar(cfg.separator, pa.large_string()))
    old_texts = docs.column(schema.TEXT).take(pa.array(p.rows))
    touched = removed_per_doc > 0
    left = pc.utf8_length(pc.utf8_trim_whitespace(new_texts)).to_numpy(zero_copy_only=False)
    short = touched & (left < cfg.min_chars)
    rewritten = touched & ~short
    counters.update({
        "paragraphs_removed": int(remove.sum()),
        "characters_removed": int((pc.utf8_length(old_texts).to_numpy(zero_copy_only=False)
                                   - pc.utf8_length(new_texts).to_numpy(zero_copy_only=False))[touched].sum()),
        "documents_rewritten": int(rewritten.sum()),
        "documents_dropped": int(short.sum()),
    })
    at = np.full(docs.num_rows, -1, np.int64)
    at[p.rows[rewritten]] = np.flatnonzero(rewritten)
    text = pc.if_else(pa.array(at >= 0), new_texts.take(pa.array(np.maximum(at, 0))), docs.column(schema.TEXT))
    docs = schema.set_column(docs, schema.TEXT, text)
    reasons = np.full(docs.num_rows, None, object)
    reasons[p.rows[short]] = REASON
    return schema.mark_dropped(docs, pa.array(reasons, pa.string())), counters


class ParagraphDedup(GlobalStage):
    """Repeated paragraphs (lines) removed from the texts; documents left too short dropped as
    `dup:paragraph`. See the module docstring for the three layers."""

    name: ClassVar[str] = "dedup_paragraph"
    reason_namespaces: ClassVar[tuple[str, ...]] = ("dup:paragraph",)

    def __init__(self, cfg: ParagraphConfig) -> None:
        self.cfg = cfg

    def run(self, ds: ray.data.Dataset, ctx: GlobalContext) -> ray.data.Dataset:
        t0 = time.perf_counter()
        units = _Units(ds, ctx)
        parts = units.num_partitions
        (keys,) = units.scatter(_keys, (parts,), self.cfg, parts)
        updates, counts = run_layer(_resolve, [[keys.column(p)] for p in range(parts)], (units.num_groups, None),
                                    [(self.cfg, units.group_of())] * parts)
        del keys
        counters = units.rewrite(updates, _rewrite, self.cfg)
        totals: dict[str, int] = {"repeated_paragraphs": sum(c["repeated_paragraphs"] for c in counts.get())}
        for c in counters.get():
            for k, v in c.items():
                totals[k] = totals.get(k, 0) + v
        ctx.stats.update(totals)
        wait_all(Out(units.refs()))
        ctx.stats["step_seconds"] = {"paragraphs": round(time.perf_counter() - t0, 3)}
        return units.dataset()
