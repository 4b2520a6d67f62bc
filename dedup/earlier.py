"""Dedup against earlier runs, and this run's index for later ones.

Every run writes `<output>/dedup-index/`: one row per document it kept (id, the 128-bit digest
of its normalised text, its MinHash band keys and 8-bit sketch, under `dedup.earlier`'s own key settings;
~250 bytes a document, no text) in Parquet part files, and `index.json` last (run label, the
settings the keys depend on, the files). A run that names earlier runs (`dedup.earlier.runs`:
their output folders or index folders) drops every document exact- or near-duplicate to
something they kept, as `dup:earlier:<run>` with `dup_of` the earlier document's id.

Layers of Ray tasks, as the other dedup stages (texts stay in their units):
1. one task per unit computes digests, signatures and band keys of its active documents: exact
   rows by digest and band rows by band key, partitioned, and its index rows (kept whole);
2. one task per earlier index file emits the same two kinds of rows, partitioned the same way;
3. one task per partition matches digests, and band keys whose sketches agree (the earlier
   run's kept documents are not near-duplicates of one another, so their buckets stay small);
4. one task per unit drops the matched documents (earliest-listed run, exact before near,
   smallest earlier id) and writes the index rows of the documents it keeps.

It runs after the in-run dedup stages, so the index holds the text a run keeps, compared at the
same point of the next run.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray.data

from curate import schema
from curate.dedup.config import EarlierConfig, MinHashKeys, TextKey
from curate.dedup.minhash import band_keys, sketch, sketch_jaccard
from curate.dedup.shuffle import PART, Out, partition_of, run_layer, wait_all
from curate.dedup.stages import _sketches, _signed, _Units
from curate.dedup.text import digest_strings, normalize_text
from curate.pipeline.global_stage import GlobalContext, GlobalStage
from curate.pipeline.storage import Storage, basename, is_local, join

INDEX_DIR = "dedup-index"
INDEX_META = "index.json"
INDEX_FORMAT = 1
REASON_PREFIX = "dup:earlier:"


def _key_settings(text: TextKey, minhash: MinHashKeys) -> dict[str, Any]:
    """What the index keys depend on: two runs' keys compare only if these agree."""
    return {
        "text": text.model_dump(),
        "minhash": minhash.model_dump(include={"ngram", "num_bands", "rows_per_band", "seed"}),
    }


def read_index_meta(path: str, settings: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """(index folder, its index.json) for an earlier run's output folder or index folder; the
    error names what is missing or which setting differs."""
    folder = Path(path)
    if not (folder / INDEX_META).is_file() and (folder / INDEX_DIR / INDEX_META).is_file():
        folder = folder / INDEX_DIR
    if not (folder / INDEX_META).is_file():
        raise ValueError(f"dedup.earlier.runs: {path} holds no finished dedup index ({INDEX_DIR}/{INDEX_META})")
    meta = json.loads((folder / INDEX_META).read_text())
    for section, values in settings.items():
        for key, value in values.items():
            if meta["settings"][section][key] != value:
                raise ValueError(f"dedup.earlier.runs: {path} was indexed with dedup.earlier.{section}.{key}="
                                 f"{meta['settings'][section][key]!r}, this run has {value!r}: their keys do not compare")
    return folder, meta


def _digest_columns(d: np.ndarray) -> dict[str, np.ndarray]:
    return {"d0": d[:, 0].view(np.int64), "d1": d[:, 1].view(np.int64)}


def _fixed(values: np.ndarray, width: int) -> pa.FixedSizeBinaryArray:
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), values.shape[0], [None, pa.py_buffer(np.ascontiguousarray(values).tobytes())])


def _current_keys(docs: pa.Table, unit: int, text: TextKey, minhash: MinHashKeys,
                  num_partitions: int) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Exact rows (d0, d1, unit, row) by digest, band rows (key, sketch, unit, row) by band key,
    and the index rows (row, id, digest, bands, sketch) of the active documents with shingles."""
    sig, rows = _signed(docs, minhash)
    texts = docs.column(schema.TEXT).take(pa.array(rows))
    d = digest_strings(normalize_text(texts, text.lowercase, text.strip_punctuation, text.collapse_whitespace))
    keys = band_keys(sig, minhash.num_bands, minhash.rows_per_band)
    sk = sketch(sig)
    where = {"unit": np.full(rows.size, unit, np.int64), "row": rows.astype(np.int64)}
    exact_rows = pa.table({**_digest_columns(d), **where, PART: partition_of(d[:, 0].view(np.int64), num_partitions)})
    flat = keys.reshape(-1)
    band_rows = pa.table({"key": flat, "sketch": _fixed(np.repeat(sk, minhash.num_bands, axis=0), minhash.num_perm),
                          **{k: np.repeat(v, minhash.num_bands) for k, v in where.items()},
                          PART: partition_of(flat, num_partitions)})
    index_rows = pa.table({"row": where["row"], schema.ID: docs.column(schema.ID).take(pa.array(rows)),
                           "digest": _fixed(d, 16), "bands": _fixed(keys, 8 * minhash.num_bands),
                           "sketch": _fixed(sk, minhash.num_perm)})
    return exact_rows, band_rows, index_rows


def _earlier_keys(_: None, path: str, rank: int, minhash: MinHashKeys, num_partitions: int) -> tuple[pa.Table, pa.Table]:
    """The exact and band rows of one earlier index file, tagged with the run's rank."""
    index = pq.read_table(path)
    n = index.num_rows
    d = _sketches(index.column("digest"), 16).view(np.uint64).reshape(n, 2)
    keys = _sketches(index.column("bands"), 8 * minhash.num_bands).view(np.int64).reshape(-1)
    tag = {"rank": np.full(n, rank, np.int64), "dup_of": index.column(schema.ID)}
    exact_rows = pa.table({**_digest_columns(d), **tag, PART: partition_of(d[:, 0].view(np.int64), num_partitions)})
    take = pa.array(np.repeat(np.arange(n), minhash.num_bands))
    band_rows = pa.table({"key": keys, "sketch": index.column("sketch").take(take), "rank": tag["rank"][take.to_numpy()],
                          "dup_of": tag["dup_of"].take(take), PART: partition_of(keys, num_partitions)})
    return exact_rows, band_rows


def _pairs(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) for every i and every j in lo[i]..hi[i]-1."""
    count = hi - lo
    i = np.repeat(np.arange(lo.size), count)
    return i, lo[i] + np.arange(i.size) - np.repeat(np.cumsum(count) - count, count)


def _match(cur_exact: pa.Table | None, old_exact: pa.Table | None, cur_bands: pa.Table | None, old_bands: pa.Table | None,
           minhash: MinHashKeys, group_of_unit: np.ndarray) -> tuple[pa.Table, dict[str, int]]:
    """Current documents whose digest, or a band key with agreeing sketches, is in an earlier
    index: (unit, row, rank, kind 0 exact / 1 near, dup_of) partitioned by unit group."""
    found = []
    for kind, cur, old, key_cols in ((0, cur_exact, old_exact, ["d0", "d1"]), (1, cur_bands, old_bands, ["key"])):
        if cur is None or old is None or cur.num_rows == 0 or old.num_rows == 0:
            continue
        old = old.take(pc.sort_indices(old, sort_keys=[(c, "ascending") for c in key_cols]))
        first = old.column(key_cols[0]).to_numpy()
        probe = cur.column(key_cols[0]).to_numpy()
        i, j = _pairs(np.searchsorted(first, probe, "left"), np.searchsorted(first, probe, "right"))
        same = np.ones(i.size, bool)
        for c in key_cols[1:]:  # the rest of the key (the second half of a digest)
            same &= cur.column(c).to_numpy()[i] == old.column(c).to_numpy()[j]
        if kind == 1 and minhash.verify_jaccard is not None:
            same[same] = sketch_jaccard(_sketches(cur.column("sketch"), minhash.num_perm)[i[same]],
                                        _sketches(old.column("sketch"), minhash.num_perm)[j[same]]) >= minhash.verify_jaccard
        i, j = i[same], j[same]
        found.append(pa.table({"unit": cur.column("unit").to_numpy()[i], "row": cur.column("row").to_numpy()[i],
                               "rank": old.column("rank").to_numpy()[j], "kind": np.full(i.size, kind, np.int64),
                               "dup_of": old.column("dup_of").take(pa.array(j))}))
    if not found:
        e = pa.array([], pa.int64())
        return pa.table({"unit": e, "row": e, "rank": e, "kind": e, "dup_of": pa.array([], pa.string()), PART: e}), {"pairs": 0}
    matches = pa.concat_tables(found)
    return matches.append_column(PART, pa.array(group_of_unit[matches.column("unit").to_numpy()])), {"pairs": matches.num_rows}


def _drop_and_index(docs: pa.Table, matches: pa.Table | None, index_rows: pa.Table, labels: list[str],
                    index_dir: str | None, storage: Storage) -> tuple[pa.Table, dict[str, Any]]:
    """Drop the matched rows (earliest-listed run, exact before near, smallest earlier id) and
    write the index rows of the others."""
    counters: dict[str, Any] = {f"duplicates_{label}": 0 for label in labels}
    matched = np.zeros(0, np.int64)
    if matches is not None and matches.num_rows:
        matches = matches.take(pc.sort_indices(matches, sort_keys=[("row", "ascending"), ("rank", "ascending"),
                                                                   ("kind", "ascending"), ("dup_of", "ascending")]))
        row = matches.column("row").to_numpy()
        first = np.flatnonzero(np.concatenate([[True], row[1:] != row[:-1]]))
        matched, rank = row[first], matches.column("rank").to_numpy()[first]
        reasons = np.full(docs.num_rows, None, object)
        reasons[matched] = [REASON_PREFIX + labels[r] for r in rank.tolist()]  # one string per dropped document
        dup_of = np.full(docs.num_rows, -1, np.int64)
        dup_of[matched] = first
        take = pa.array(np.maximum(dup_of, 0), mask=dup_of < 0)
        docs = schema.set_column(docs, schema.DUP_OF, pc.coalesce(matches.column("dup_of").take(take), docs.column(schema.DUP_OF)))
        docs = schema.mark_dropped(docs, pa.array(reasons, pa.string()))
        for r, n in zip(*np.unique(rank, return_counts=True)):
            counters[f"duplicates_{labels[r]}"] = int(n)
    kept = index_rows.filter(pa.array(~np.isin(index_rows.column("row").to_numpy(), matched))).drop_columns(["row"])
    counters["indexed"] = kept.num_rows
    if index_dir is not None and kept.num_rows:
        name = f"part-{uuid.uuid4().hex}.parquet"
        storage.write_parquet(kept, join(index_dir, name), compression="zstd")
        counters["files"] = [name]
    return docs, counters


class EarlierRunsDedup(GlobalStage):
    """Drops documents exact- or near-duplicate to what earlier runs kept (`dup:earlier:<run>`),
    and writes this run's index into its output folder. See the module docstring."""

    name: ClassVar[str] = "dedup_earlier"
    reason_namespaces: ClassVar[tuple[str, ...]] = ("dup:earlier",)

    def __init__(self, cfg: EarlierConfig) -> None:
        self.cfg = cfg
        self.settings = _key_settings(cfg.text, cfg.minhash)
        # Read and checked when the stage is built, before any of its work.
        self.earlier = [read_index_meta(path, self.settings) for path in cfg.runs]

    def run(self, ds: ray.data.Dataset, ctx: GlobalContext) -> ray.data.Dataset:
        t0 = time.perf_counter()
        writes = self.cfg.write_index and ctx.run_dir is not None
        if not writes and not self.earlier:
            return ds  # nothing to match and nowhere to write
        index_dir = None
        if writes:
            index_dir = join(ctx.run_dir, INDEX_DIR)
            ctx.storage.rmtree(index_dir)
            ctx.storage.mkdir(index_dir)
        units = _Units(ds, ctx)
        parts, every = units.num_partitions, range(units.num_partitions)
        exact_rows, band_rows, index_rows = units.scatter(_current_keys, (parts, parts, None), self.cfg.text, self.cfg.minhash, parts)
        files = [(str(folder / f), rank) for rank, (folder, meta) in enumerate(self.earlier) for f in meta["files"]]
        labels = [meta["run"] if [m["run"] for _, m in self.earlier].count(meta["run"]) == 1 else f"{meta['run']}#{rank}"
                  for rank, (_, meta) in enumerate(self.earlier)]  # two runs in folders of one name stay apart
        matches = Out([])
        if files:
            old_exact, old_bands = run_layer(_earlier_keys, [[[]] for _ in files], (parts, parts),
                                             [(path, rank, self.cfg.minhash, parts) for path, rank in files])
            matches, pairs = run_layer(
                _match, [[exact_rows.column(p), old_exact.column(p), band_rows.column(p), old_bands.column(p)] for p in every],
                (units.num_groups, None), [(self.cfg.minhash, units.group_of())] * parts)
            ctx.stats["matched_pairs"] = sum(c["pairs"] for c in pairs.get())
        del exact_rows, band_rows
        counters = units.rewrite(matches, _drop_and_index, labels, index_dir, ctx.storage, extra=index_rows)
        totals: dict[str, Any] = {"indexed": 0, **{f"duplicates_{label}": 0 for label in labels}}
        written: list[str] = []
        for c in counters.get():
            written += c.pop("files", [])
            for k, v in c.items():
                totals[k] += v
        ctx.stats.update(totals)
        ctx.stats["duplicates_earlier"] = sum(totals[f"duplicates_{label}"] for label in labels)
        wait_all(Out(units.refs()))
        if index_dir is not None:  # written last: the index is complete once it exists
            run_name = Path(ctx.run_dir).resolve().name if is_local(str(ctx.run_dir)) else basename(ctx.run_dir)
            meta = {"format": INDEX_FORMAT, "run": run_name, "documents": totals["indexed"],
                    "settings": self.settings, "files": sorted(written)}
            ctx.storage.write_text(join(index_dir, INDEX_META), json.dumps(meta, indent=2))
        ctx.stats["step_seconds"] = {"earlier": round(time.perf_counter() - t0, 3)}
        return units.dataset()
