"""The global dedup stages: exact (text hash, optional URL) and MinHash LSH fuzzy dedup."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray.data

from curate import schema
from curate.dedup.config import DedupConfig, ExactConfig, MinHashConfig
from curate.dedup.minhash import SignatureBuilder, band_keys, estimated_jaccard, normalize_text
from curate.dedup.shuffle import (
    PART, apply_by_partition, connected_components, join_on, total, digest_strings, node_ids, partition_of, survivor_order,
)
from curate.pipeline.global_stage import GlobalContext, GlobalStage

KEY = "_key"


def _num_partitions(ds: ray.data.Dataset, ctx: GlobalContext, rows_per_partition: int) -> int:
    rows = ds.count()  # metadata-only on a materialized dataset
    return max(ctx.num_cpus * 2, -(-rows // rows_per_partition), 1)


def normalize_url(urls: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Scheme, `www.`, fragment and trailing slash do not make a different page."""
    u = pc.utf8_lower(urls)
    u = pc.replace_substring_regex(u, pattern=r"^[a-z][a-z0-9+.-]*://(www\.)?", replacement="")
    u = pc.replace_substring_regex(u, pattern=r"#.*$", replacement="")
    return pc.replace_substring_regex(u, pattern=r"/+$", replacement="")


def _resolve_groups(reason: str) -> Callable[[pa.Table], pa.Table]:
    """Inside one partition: in each key group the survivor stays, the rest get `reason` and `dup_of`."""

    def resolve(table: pa.Table) -> pa.Table:
        active = pc.is_valid(table.column(KEY)).to_numpy(zero_copy_only=False)
        idx = np.flatnonzero(active)
        if idx.size > 1:
            sub = table.take(idx)
            order, first = survivor_order(sub.column(KEY), sub.column(schema.WIKI_SCORE), sub.column(schema.ID))
            rows = idx[order]
            is_dup = first != np.arange(order.size)
            survivor_ids = table.column(schema.ID).take(rows[first]).to_numpy(zero_copy_only=False)
            reasons = np.full(table.num_rows, None, object)
            dup_of = np.array(table.column(schema.DUP_OF).to_pylist(), object)
            reasons[rows[is_dup]] = reason
            dup_of[rows[is_dup]] = survivor_ids[is_dup]
            table = schema.set_column(table, schema.DUP_OF, pa.array(dup_of, pa.string()))
            table = schema.mark_dropped(table, pa.array(reasons, pa.string()))
        return schema.conform(table)

    return resolve


class ExactDedup(GlobalStage):
    """Exact duplicates by a 128-bit digest of the normalised text (and optionally the URL).

    One shuffle of the rows themselves per key kind: rows are partitioned by key (inactive rows by
    id), every partition resolves its groups, and all rows come out again.
    """

    name: ClassVar[str] = "dedup_exact"
    reason_namespaces: ClassVar[tuple[str, ...]] = ("dup",)

    def __init__(self, cfg: ExactConfig, rows_per_partition: int = 500_000) -> None:
        self.cfg = cfg
        self.rows_per_partition = rows_per_partition

    def _keyed(self, kind: str, num_partitions: int) -> Callable[[pa.Table], pa.Table]:
        cfg = self.cfg

        def add_key(batch: pa.Table) -> pa.Table:
            batch = schema.conform(batch)
            if kind == "url":
                values = normalize_url(batch.column(schema.URL))
            else:
                values = normalize_text(batch.column(schema.TEXT), cfg.lowercase, cfg.strip_punctuation, cfg.collapse_whitespace)
            active = schema.active_mask(batch).to_numpy(zero_copy_only=False)
            digests = digest_strings(values)
            keys = pa.array([d if a else None for d, a in zip(digests, active)], pa.binary())
            # the partition follows the key, so equal keys meet; inactive rows go by id
            by = np.array([int.from_bytes(d[:8], "little", signed=True) if a and d is not None else 0 for d, a in zip(digests, active)], np.int64)
            inactive_or_null = ~active | pc.is_null(keys).to_numpy(zero_copy_only=False)
            by[inactive_or_null] = node_ids(batch.column(schema.ID))[inactive_or_null]
            return batch.append_column(KEY, keys).append_column(PART, pa.array(partition_of(by, num_partitions)))

        return add_key

    def run(self, ds: ray.data.Dataset, ctx: GlobalContext) -> ray.data.Dataset:
        num_partitions = _num_partitions(ds, ctx, self.rows_per_partition)
        kinds = ["text"] + (["url"] if self.cfg.url else [])
        for kind in kinds:
            t0 = time.perf_counter()
            reason = "dup:exact" if kind == "text" else "dup:url"
            keyed = ds.map_batches(self._keyed(kind, num_partitions), batch_format="pyarrow")
            ds = apply_by_partition(keyed, _resolve_groups(reason), num_partitions).materialize()
            ctx.stats[f"{kind}_seconds"] = round(time.perf_counter() - t0, 3)
            ctx.stats[f"duplicates_{reason.split(':')[1]}"] = _count_reason(ds, reason)
        return ds


def _count_reason(ds: ray.data.Dataset, reason: str) -> int:
    def flag(batch: pa.Table) -> pa.Table:
        return pa.table({"n": pc.equal(batch.column(schema.DROP_REASON), reason).fill_null(False).cast(pa.int64())})

    return total(ds.map_batches(flag, batch_format="pyarrow"), "n")


class MinHashDedup(GlobalStage):
    """Near duplicates by MinHash LSH: signatures -> band buckets -> candidate edges -> connected
    components -> one survivor per component. Every step is a Ray Data map or partitioned groupby."""

    name: ClassVar[str] = "dedup_minhash"
    reason_namespaces: ClassVar[tuple[str, ...]] = ("dup",)

    def __init__(self, cfg: MinHashConfig, rows_per_partition: int = 500_000) -> None:
        self.cfg = cfg
        self.rows_per_partition = rows_per_partition

    # -- step 1: signatures of active documents
    def _sign(self) -> Callable[[pa.Table], pa.Table]:
        cfg = self.cfg

        def sign(batch: pa.Table) -> pa.Table:
            batch = batch.filter(schema.active_mask(batch))
            sig, has = SignatureBuilder(cfg.ngram, cfg.num_perm, cfg.seed)(batch.column(schema.TEXT))
            keep = np.flatnonzero(has)  # a text without words has no shingles and no near-duplicates
            sig = np.ascontiguousarray(sig[keep])
            width = sig.shape[1] * 4
            sig_col = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(keep), [None, pa.py_buffer(sig.tobytes())])
            return pa.table({
                "node": node_ids(batch.column(schema.ID).take(keep)),
                schema.ID: batch.column(schema.ID).take(keep),
                schema.WIKI_SCORE: batch.column(schema.WIKI_SCORE).take(keep),
                "sig": sig_col,
            })

        return sign

    # -- step 2: band buckets -> candidate edges (bucket's smallest node -> every other member)
    def _bands(self, num_partitions: int) -> Callable[[pa.Table], pa.Table]:
        cfg = self.cfg

        def explode(t: pa.Table) -> pa.Table:
            sig = _sig_matrix(t, cfg.num_perm)
            keys = band_keys(sig, cfg.num_bands, cfg.rows_per_band).reshape(-1)
            rows = np.repeat(np.arange(t.num_rows), cfg.num_bands)
            cols = {KEY: keys, "node": t.column("node").to_numpy()[rows], PART: partition_of(keys, num_partitions)}
            if cfg.verify_jaccard is not None:
                cols["sig"] = t.column("sig").take(pa.array(rows))
            return pa.table(cols)

        return explode

    def _bucket_edges(self, table: pa.Table) -> pa.Table:
        keys, nodes = table.column(KEY).to_numpy(), table.column("node").to_numpy()
        order = np.lexsort((nodes, keys))
        k, n = keys[order], nodes[order]
        new = np.concatenate([[True], k[1:] != k[:-1]]) if k.size else np.zeros(0, bool)
        anchor_pos = np.maximum.accumulate(np.where(new, np.arange(k.size), 0)) if k.size else np.zeros(0, np.int64)
        member = ~new & (n != n[anchor_pos])
        if self.cfg.verify_jaccard is not None and member.any():
            sig = _sig_matrix(table.take(order), self.cfg.num_perm)
            j = estimated_jaccard(sig[member], sig[anchor_pos[member]])
            member[np.flatnonzero(member)[j < self.cfg.verify_jaccard]] = False
        return pa.table({"u": n[anchor_pos[member]], "v": n[member]})

    # -- step 4: survivor per component
    @staticmethod
    def _choose_survivors(table: pa.Table) -> pa.Table:
        nodes = table.column("node").to_numpy()
        _, first_seen = np.unique(nodes, return_index=True)  # the root appears once per edge; keep one row
        table = table.take(np.sort(first_seen))
        order, first = survivor_order(table.column("label"), table.column(schema.WIKI_SCORE), table.column(schema.ID))
        ids = table.column(schema.ID).take(order)
        survivor_ids = ids.take(pa.array(first))
        is_dup = first != np.arange(order.size)
        return pa.table({
            "node": table.column("node").take(order),
            "_dup_of": pc.if_else(pa.array(is_dup), survivor_ids, pa.scalar(None, pa.string())),
            "_cluster": table.column("label").take(order),
            "_size": np.diff(np.concatenate([np.flatnonzero(~is_dup), [order.size]]))[np.cumsum(~is_dup) - 1],
            "_survivor": ~is_dup,
        })

    def run(self, ds: ray.data.Dataset, ctx: GlobalContext) -> ray.data.Dataset:
        cfg, timings = self.cfg, {}
        num_partitions = _num_partitions(ds, ctx, self.rows_per_partition)

        t0 = time.perf_counter()
        sigs = ds.map_batches(self._sign(), batch_format="pyarrow").materialize()
        timings["signatures"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        bands = sigs.map_batches(self._bands(num_partitions), batch_format="pyarrow")
        edges = apply_by_partition(bands, self._bucket_edges, num_partitions).materialize()
        timings["buckets"] = time.perf_counter() - t0
        ctx.stats["candidate_edges"] = edges.count()
        if ctx.stats["candidate_edges"] == 0:
            # No two documents share a band bucket: nothing is a near-duplicate. (The joins
            # below cannot take an empty, schema-less dataset.)
            ctx.stats.update({"component_rounds": 0, "cluster_size_histogram": {}, "duplicates_minhash": 0,
                              "seconds": {k: round(v, 3) for k, v in timings.items()}})
            return ds.map_batches(schema.conform, batch_format="pyarrow").materialize()

        t0 = time.perf_counter()
        labels, rounds = connected_components(edges, num_partitions, cfg.max_iterations)
        labels = labels.materialize()
        timings["components"] = time.perf_counter() - t0
        ctx.stats["component_rounds"] = rounds

        t0 = time.perf_counter()
        info = sigs.select_columns(["node", schema.ID, schema.WIKI_SCORE])
        members = join_on(labels, info, "node", "inner", num_partitions)
        members = members.map_batches(
            lambda t: t.append_column(PART, pa.array(partition_of(t.column("label").to_numpy(), num_partitions))),
            batch_format="pyarrow",
        )
        assignment = apply_by_partition(members, self._choose_survivors, num_partitions).materialize()
        ctx.stats["cluster_size_histogram"] = _cluster_histogram(assignment)
        timings["survivors"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        with_node = ds.map_batches(lambda t: schema.conform(t).append_column("node", pa.array(node_ids(t.column(schema.ID)))),
                                   batch_format="pyarrow")
        joined = join_on(with_node.materialize(), assignment, "node", "left outer", num_partitions)
        out = joined.map_batches(_apply_assignment, batch_format="pyarrow").materialize()
        timings["apply"] = time.perf_counter() - t0
        ctx.stats["duplicates_minhash"] = _count_reason(out, "dup:minhash")
        ctx.stats["seconds"] = {k: round(v, 3) for k, v in timings.items()}
        return out


def _sig_matrix(t: pa.Table, num_perm: int) -> np.ndarray:
    col = t.column("sig").combine_chunks() if isinstance(t.column("sig"), pa.ChunkedArray) else t.column("sig")
    if len(col) == 0:
        return np.zeros((0, num_perm), np.uint32)
    buf = col.buffers()[1]
    return np.frombuffer(buf, dtype=np.uint32, count=(col.offset + len(col)) * num_perm)[col.offset * num_perm :].reshape(len(col), num_perm)


def _apply_assignment(t: pa.Table) -> pa.Table:
    active = schema.active_mask(t)
    t = t.drop_columns([c for c in ("_size", "_survivor") if c in t.column_names])
    dup = pc.and_(pc.is_valid(t.column("_dup_of")), active)
    t = schema.set_column(t, schema.DUP_OF, pc.if_else(dup, t.column("_dup_of"), t.column(schema.DUP_OF)))
    t = schema.set_column(t, schema.MINHASH_CLUSTER, pc.if_else(pc.is_valid(t.column("_cluster")), t.column("_cluster"), t.column(schema.MINHASH_CLUSTER)))
    t = schema.mark_dropped(t, pc.if_else(dup, pa.scalar("dup:minhash"), pa.scalar(None, pa.string())))
    return schema.conform(t)


def _cluster_histogram(assignment: ray.data.Dataset) -> dict[str, int]:
    """Number of components per size (members incl. the survivor); keys are strings for JSON."""

    def sizes(t: pa.Table) -> pa.Table:
        size = t.column("_size").to_numpy()[t.column("_survivor").to_numpy(zero_copy_only=False)]
        uniq, counts = np.unique(size, return_counts=True)
        return pa.table({"size": uniq.astype(np.int64), "n": counts.astype(np.int64)})

    hist: dict[int, int] = {}
    for r in assignment.map_batches(sizes, batch_format="pyarrow", batch_size=None).take_all():  # a few rows per block
        hist[r["size"]] = hist.get(r["size"], 0) + r["n"]
    return {str(k): hist[k] for k in sorted(hist)}


def build_stages(cfg: DedupConfig) -> list[GlobalStage]:
    stages: list[GlobalStage] = []
    if cfg.exact.enabled:
        stages.append(ExactDedup(cfg.exact, cfg.rows_per_partition))
    if cfg.minhash.enabled:
        stages.append(MinHashDedup(cfg.minhash, cfg.rows_per_partition))
    return stages
