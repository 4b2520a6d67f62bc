"""The global dedup stages: exact (text hash, optional URL) and MinHash LSH fuzzy dedup.

Both run as layers of Ray tasks (see `curate.dedup.shuffle`) over work units (row ranges) of the
input's blocks, which stay in the object store, in order, for the whole stage. Only small keyed
rows travel through the shuffles (keys, node ids, 8-bit sketches; a document's id, score and
(unit, row) address); the texts never do: the decisions are routed back to the unit and row they
came from, and one task per unit writes them. Every decision (survivor, component, verification) depends on the data
alone, so the output is the same whatever the number of workers, blocks or partitions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.data

from curate import schema
from curate.dedup.config import ExactConfig, MinHashConfig
from curate.dedup.minhash import SignatureBuilder, band_keys, sketch, sketch_jaccard
from curate.dedup.shuffle import (
    PART, Out, connected_components, edge_table, labels_of, local_components, node_ids,
    partition_of, run_layer, survivor_order, wait_all,
)
from curate.dedup.text import digest_strings, hash_strings, normalize_text
from curate.pipeline.global_stage import GlobalContext, GlobalStage, read_input_blocks

# Columns of the address rows that order two copies of one record: hash of warc_path, warc_offset.
SOURCE, OFFSET = "_source", "_offset"

# Work units: a task handles at most this many bytes (by block metadata) or rows of a block, so a
# task's memory is bounded whatever the size of the input's blocks (Ray Data reads Parquet into
# blocks of up to 128 MiB), and a few large blocks still spread over every core.
_UNIT_BYTES = 8 << 20
_UNIT_ROWS = 5_000
# Decisions travel back to groups of units: this many per partition, and at least _MIN_GROUPS.
_GROUPS_PER_PARTITION = 4
_MIN_GROUPS = 64
# Text bytes signed at once inside a task: bounds the shingle arrays (~40 bytes per text byte).
_SIGN_BYTES = 2 << 20


class _Units:
    """The stage's input as work units (block, first row, rows) over Arrow blocks that stay in the
    object store, in order; `apply` replaces every unit by its updated rows."""

    def __init__(self, ds: ray.data.Dataset, ctx: GlobalContext) -> None:
        self.units: list[tuple[ray.ObjectRef, int, int]] = []
        self.rows = 0
        if ctx.input_files:  # one read task per row group, no Ray Data execution (its fixed cost is seconds)
            for block in read_input_blocks(ctx):
                self._add(block.ref, 0, block.rows, block.bytes)
        else:
            for bundle in ds.materialize().iter_internal_ref_bundles():
                slices = getattr(bundle, "slices", None) or [None] * len(bundle.block_refs)
                for ref, meta, cut in zip(bundle.block_refs, bundle.metadata, slices):
                    lo, hi = (cut.start_offset, cut.end_offset) if cut is not None else (0, meta.num_rows)
                    self._add(ref, lo, hi - lo, (meta.size_bytes or 0) * (hi - lo) // max(meta.num_rows, 1))
        self.num_partitions = max(ctx.num_cpus * 2, -(-self.rows // ctx.rows_per_partition), 1)

    def _add(self, ref: ray.ObjectRef, lo: int, n: int, size: int) -> None:
        """Rows lo..lo+n of block `ref` (`size` bytes), as units of bounded size."""
        if n <= 0:
            return
        k = max(1, -(-size // _UNIT_BYTES), -(-n // _UNIT_ROWS))
        bounds = np.linspace(lo, lo + n, k + 1).astype(np.int64)
        self.units += [(ref, int(a), int(b - a)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        self.rows += n

    def __len__(self) -> int:
        return len(self.units)

    @property
    def num_groups(self) -> int:
        """Updates travel to groups of consecutive units, so a routing layer makes partitions x
        groups objects, not partitions x units (which a large run would make millions)."""
        return min(len(self.units), max(_GROUPS_PER_PARTITION * self.num_partitions, _MIN_GROUPS))

    def group_of(self) -> np.ndarray:
        return (np.arange(len(self.units)) * self.num_groups // max(len(self.units), 1)).astype(np.int64)

    def scatter(self, fn: Callable, spec: tuple, *args: Any) -> list[Out]:
        """fn(rows of unit u, u, *args) once per unit."""
        return run_layer(_on_rows, [[[ref]] for ref, _, _ in self.units], spec,
                         [(fn, lo, n, u, *args) for u, (_, lo, n) in enumerate(self.units)])

    def apply(self, updates: Out, reason: str) -> None:
        """Write the updates (split by unit group) into their units' rows as duplicates with `reason`."""
        self.rewrite(updates, _apply_updates, reason)

    def rewrite(self, updates: Out, fn: Callable, *args: Any, extra: Out | None = None) -> Out:
        """fn(rows of unit u, the updates of unit u, [extra piece u], *args) -> (new rows, counters)
        once per unit; the new rows become the units. Returns the counters (one per unit)."""
        group = self.group_of()
        inputs = [[[ref], updates.column(group[u]), [extra.pieces[u]] if extra is not None else []]
                  for u, (ref, _, _) in enumerate(self.units)]
        rows, counters = run_layer(_rewrite_rows, inputs, (None, None),
                                   [(fn, u, lo, n, extra is not None, *args) for u, (_, lo, n) in enumerate(self.units)])
        self.units = [(ref, 0, n) for ref, (_, _, n) in zip(rows.pieces, self.units)]
        return counters

    def refs(self) -> list[ray.ObjectRef]:
        return [ref for ref, _, _ in self.units]

    def dataset(self) -> ray.data.Dataset:
        return ray.data.from_arrow_refs(self.refs())


def _on_rows(block: pa.Table, fn: Callable, lo: int, n: int, *args: Any) -> Any:
    return fn(block.slice(lo, n), *args)


def _rewrite_rows(block: pa.Table, updates: pa.Table | None, extra: Any, fn: Callable, unit: int, lo: int, n: int,
                  has_extra: bool, *args: Any) -> tuple[pa.Table, dict[str, Any]]:
    if updates is not None:  # the updates of the unit's group: keep this unit's
        updates = updates.filter(pc.equal(updates.column("unit"), unit))
    return fn(block.slice(lo, n), updates, *([extra] if has_extra else []), *args)


def _apply_updates(docs: pa.Table, updates: pa.Table | None, reason: str) -> tuple[pa.Table, dict[str, Any]]:
    """Rows `updates.row` get `dup_of` (and drop reason `reason`) where it is set, and
    `minhash_cluster` where the updates carry a cluster. `docs` is a block of the run's schema."""
    if updates is None or updates.num_rows == 0:
        return docs, {}
    pos = np.full(docs.num_rows, -1, np.int64)
    pos[updates.column("row").to_numpy()] = np.arange(updates.num_rows)
    take = pa.array(np.maximum(pos, 0), mask=pos < 0)
    dup_of = updates.column("dup_of").take(take)
    is_dup = pc.is_valid(dup_of)
    docs = schema.set_column(docs, schema.DUP_OF, pc.if_else(is_dup, dup_of, docs.column(schema.DUP_OF)))
    if "cluster" in updates.column_names:
        cluster = updates.column("cluster").take(take)
        docs = schema.set_column(docs, schema.MINHASH_CLUSTER, pc.coalesce(cluster, docs.column(schema.MINHASH_CLUSTER)))
    return schema.mark_dropped(docs, pc.if_else(is_dup, pa.scalar(reason), pa.scalar(None, pa.string()))), {}


def _address(docs: pa.Table, rows: np.ndarray, unit: int) -> dict[str, Any]:
    """id, score, place in the crawl and (unit, row) of the given rows: what survivor choice and
    routing back need. The place (a hash of warc_path, and warc_offset) separates two copies of
    one WARC record (same id) read from two input files."""
    take = pa.array(rows)
    offsets = docs.column(schema.WARC_OFFSET).take(take)
    return {
        schema.ID: docs.column(schema.ID).take(take),
        schema.WIKI_SCORE: docs.column(schema.WIKI_SCORE).take(take).cast(pa.float32())
        if schema.WIKI_SCORE in docs.column_names else pa.nulls(rows.size, pa.float32()),
        SOURCE: hash_strings(docs.column(schema.WARC_PATH).take(take)).view(np.int64),
        OFFSET: pc.fill_null(offsets, -1).to_numpy(zero_copy_only=False).astype(np.int64),
        "unit": np.full(rows.size, unit, np.int64),
        "row": rows.astype(np.int64),
    }


def _survivors(groups: pa.Array, table: pa.Table, with_cluster: bool, group_of_unit: np.ndarray) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Per group (key or component) the survivor rule; returns the updates for every member (dup_of
    null for the survivor), split by unit group, and the sorted positions and survivor flags."""
    order, first = survivor_order(groups, table.column(schema.WIKI_SCORE), table.column(schema.ID),
                                  table.column(SOURCE), table.column(OFFSET))
    is_dup = first != np.arange(order.size)
    ids = table.column(schema.ID).take(pa.array(order))
    cols: dict[str, Any] = {
        "row": table.column("row").take(pa.array(order)),
        "dup_of": pc.if_else(pa.array(is_dup), ids.take(pa.array(first)), pa.scalar(None, pa.string())),
    }
    if with_cluster:
        cols["cluster"] = groups.take(pa.array(order))
    cols["unit"] = table.column("unit").take(pa.array(order)).to_numpy()
    cols[PART] = group_of_unit[cols["unit"]]
    return pa.table(cols), order, is_dup


# --- exact


def _exact_keys(docs: pa.Table, unit: int, kind: str, cfg: ExactConfig, num_partitions: int) -> pa.Table:
    """(key, id, score, unit, row) of the active rows with a text (or URL), partitioned by key."""
    docs = schema.conform(docs)
    rows = np.flatnonzero(schema.active_mask(docs).to_numpy(zero_copy_only=False))
    column = docs.column(schema.URL if kind == "url" else schema.TEXT).take(pa.array(rows))
    values = normalize_url(column) if kind == "url" else normalize_text(column, cfg.lowercase, cfg.strip_punctuation, cfg.collapse_whitespace)
    has = pc.is_valid(values).to_numpy(zero_copy_only=False)
    rows = rows[has]
    digests = digest_strings(values.filter(pa.array(has)))
    key = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(rows), [None, pa.py_buffer(digests.tobytes())])
    return pa.table({"key": key, **_address(docs, rows, unit), PART: partition_of(digests[:, 0].view(np.int64), num_partitions)})


def _exact_resolve(keys: pa.Table | None, group_of_unit: np.ndarray) -> tuple[pa.Table, int]:
    if keys is None or keys.num_rows == 0:
        return pa.table({"row": pa.array([], pa.int64()), "dup_of": pa.array([], pa.string()), "unit": pa.array([], pa.int64()),
                         PART: pa.array([], pa.int64())}), 0
    updates, _, is_dup = _survivors(keys.column("key").combine_chunks(), keys, False, group_of_unit)
    return updates.filter(pa.array(is_dup)), int(is_dup.sum())


def normalize_url(urls: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Scheme, `www.`, fragment and trailing slash do not make a different page."""
    u = pc.utf8_lower(urls)
    u = pc.replace_substring_regex(u, pattern=r"^[a-z][a-z0-9+.-]*://(www\.)?", replacement="")
    u = pc.replace_substring_regex(u, pattern=r"#.*$", replacement="")
    return pc.replace_substring_regex(u, pattern=r"/+$", replacement="")


class ExactDedup(GlobalStage):
    """Exact duplicates by a 128-bit digest of the normalised text (and optionally the URL).

    Per key kind: one task per unit emits (key, id, score, address) of its active rows,
    partitioned by key; one task per partition picks each key's survivor; one task per unit
    writes `dup:exact` (or `dup:url`) and `dup_of`.
    """

    name: ClassVar[str] = "dedup_exact"
    reason_namespaces: ClassVar[tuple[str, ...]] = ("dup:exact", "dup:url")

    def __init__(self, cfg: ExactConfig) -> None:
        self.cfg = cfg

    def run(self, ds: ray.data.Dataset, ctx: GlobalContext) -> ray.data.Dataset:
        units = _Units(ds, ctx)
        parts, seconds = units.num_partitions, {}
        for kind in ["text"] + (["url"] if self.cfg.url else []):
            t0 = time.perf_counter()
            reason = "dup:exact" if kind == "text" else "dup:url"
            (keys,) = units.scatter(_exact_keys, (parts,), kind, self.cfg, parts)
            updates, counts = run_layer(_exact_resolve, [[keys.column(p)] for p in range(parts)], (units.num_groups, None),
                                        [(units.group_of(),)] * parts)
            units.apply(updates, reason)
            ctx.stats[f"duplicates_{reason.split(':')[1]}"] = sum(counts.get())
            wait_all(Out(units.refs()))
            seconds[kind] = round(time.perf_counter() - t0, 3)
        ctx.stats["step_seconds"] = seconds
        return units.dataset()


# --- MinHash


def _signed(docs: pa.Table, cfg: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """(signatures, rows) of the active documents that have shingles, signed a few MiB of text at
    a time (that bounds the shingle arrays)."""
    active = np.flatnonzero(schema.active_mask(docs).to_numpy(zero_copy_only=False))
    builder = SignatureBuilder(cfg.ngram, cfg.num_perm, cfg.seed)
    texts = docs.column(schema.TEXT).take(pa.array(active)).combine_chunks()
    sizes = pc.binary_length(texts).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    cuts = np.searchsorted(np.cumsum(sizes), np.arange(_SIGN_BYTES, max(sizes.sum(), 1), _SIGN_BYTES), side="right")
    sigs, keep = [], []
    for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [active.size]])):
        if hi > lo:
            sig, has = builder(texts.slice(lo, hi - lo))
            sigs.append(sig[has])
            keep.append(active[lo:hi][has])
    sig = np.concatenate(sigs) if sigs else np.zeros((0, cfg.num_perm), np.uint32)
    return sig, np.concatenate(keep) if keep else np.zeros(0, np.int64)


def _sign(docs: pa.Table, unit: int, cfg: MinHashConfig, num_partitions: int) -> tuple[pa.Table, pa.Table]:
    """Band rows (key, node[, sketch]) partitioned by band key, and the address rows (node, id,
    score, unit, row) partitioned by node, of the active documents that have shingles."""
    docs = schema.conform(docs)
    sig, rows = _signed(docs, cfg)
    node = node_ids(_record_keys(docs.take(pa.array(rows))))
    keys = band_keys(sig, cfg.num_bands, cfg.rows_per_band).reshape(-1)
    bands: dict[str, Any] = {"key": keys, "node": np.repeat(node, cfg.num_bands)}
    if cfg.verify_jaccard is not None:
        sk = np.repeat(sketch(sig), cfg.num_bands, axis=0)
        bands["sketch"] = pa.FixedSizeBinaryArray.from_buffers(pa.binary(cfg.num_perm), len(keys), [None, pa.py_buffer(sk.tobytes())])
    bands[PART] = partition_of(keys, num_partitions)
    info = {"node": node, **_address(docs, rows, unit), PART: partition_of(node, num_partitions)}
    return pa.table(bands), pa.table(info)


def _record_keys(docs: pa.Table) -> pa.Array:
    """id, warc_path and warc_offset joined: one graph node per row, even for two copies of one
    WARC record (same id) read from two input files, which must meet as a candidate pair."""
    sep = "\x00"
    path = pc.fill_null(docs.column(schema.WARC_PATH), "")
    offset = pc.fill_null(docs.column(schema.WARC_OFFSET).cast(pa.string()), "")
    return pc.binary_join_element_wise(pc.fill_null(docs.column(schema.ID), ""), path, offset, sep)


def _sketches(col: pa.ChunkedArray | pa.Array, num_perm: int) -> np.ndarray:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    buf = np.frombuffer(col.buffers()[1], np.uint8)
    return buf[col.offset * num_perm : (col.offset + len(col)) * num_perm].reshape(len(col), num_perm)


# Sketch comparisons per vectorized pass while verifying a partition's buckets (~112 bytes each).
_VERIFY_PAIRS = 1 << 18


def _buckets(bands: pa.Table | None, cfg: MinHashConfig, num_partitions: int) -> tuple[pa.Table, dict[str, int]]:
    """Band buckets of one partition -> candidate pairs -> (verified) edges -> this partition's
    components, as star edges in both directions partitioned for the first large-star.

    Without verification every bucket is one clique, so each member is linked to the bucket's
    smallest node. With it, each member is checked against every earlier member among the
    bucket's first `verify_leaders` (all pairs of a bucket up to that size): a similar pair B-C
    is found even when the smallest node is unlike both."""
    if bands is None or bands.num_rows == 0:
        e = np.zeros(0, np.int64)
        return edge_table(e, e, num_partitions), {"candidate_pairs": 0, "verified_pairs": 0}
    keys, nodes = bands.column("key").to_numpy(), bands.column("node").to_numpy()
    order = np.lexsort((nodes, keys))
    k, n = keys[order], nodes[order]
    new = np.concatenate([[True], k[1:] != k[:-1]])
    start = np.maximum.accumulate(np.where(new, np.arange(k.size), 0))
    if cfg.verify_jaccard is None:
        member = ~new & (n != n[start])
        u, v = local_components(n[start[member]], n[member])
        return edge_table(u, v, num_partitions, both=True), {"candidate_pairs": int(member.sum()), "verified_pairs": int(member.sum())}
    sk = _sketches(bands.column("sketch"), cfg.num_perm)
    partners = np.minimum(np.arange(k.size) - start, cfg.verify_leaders)  # earlier members position q is checked against
    cum = np.cumsum(partners)
    cuts = np.searchsorted(cum, np.arange(_VERIFY_PAIRS, max(int(cum[-1]), 1), _VERIFY_PAIRS), side="left")
    us, vs, candidates = [], [], 0
    for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [k.size]])):
        q = np.repeat(np.arange(lo, hi), partners[lo:hi])  # pairs (p, q): p from q's bucket start on
        p = start[q] + np.arange(q.size) - np.repeat(cum[lo:hi] - partners[lo:hi] - (cum[lo - 1] if lo else 0), partners[lo:hi])
        distinct = n[p] != n[q]
        p, q = p[distinct], q[distinct]
        candidates += p.size
        similar = sketch_jaccard(sk[order[p]], sk[order[q]]) >= cfg.verify_jaccard
        us.append(n[p[similar]])
        vs.append(n[q[similar]])
    u, v = np.concatenate(us), np.concatenate(vs)
    verified = u.size
    u, v = local_components(u, v)
    return edge_table(u, v, num_partitions, both=True), {"candidate_pairs": candidates, "verified_pairs": verified}


def _members(edges: pa.Table | None, info: pa.Table | None, num_partitions: int) -> pa.Table:
    """Join the converged edges (partitioned by node) with the address rows (by node): every
    document of a component with its label, partitioned by label."""
    node, label = labels_of(edges)
    if info is None or node.size == 0:
        info_nodes = np.zeros(0, np.int64)
        info = None
    else:
        info_nodes = info.column("node").to_numpy()
    order = np.argsort(info_nodes, kind="stable")
    lo = np.searchsorted(info_nodes[order], node, side="left")
    hi = np.searchsorted(info_nodes[order], node, side="right")
    rows = order[np.repeat(lo, hi - lo) + (np.arange((hi - lo).sum()) - np.repeat(np.cumsum(hi - lo) - (hi - lo), hi - lo))]
    labels = np.repeat(label, hi - lo)
    cols: dict[str, Any] = {"label": labels}
    if info is None:
        cols.update({schema.ID: pa.array([], pa.string()), schema.WIKI_SCORE: pa.array([], pa.float32()),
                     SOURCE: np.zeros(0, np.int64), OFFSET: np.zeros(0, np.int64),
                     "unit": np.zeros(0, np.int64), "row": np.zeros(0, np.int64)})
    else:
        picked = info.take(pa.array(rows, pa.int64()))
        cols.update({c: picked.column(c) for c in (schema.ID, schema.WIKI_SCORE, SOURCE, OFFSET, "unit", "row")})
    cols[PART] = partition_of(labels, num_partitions)
    return pa.table(cols)


def _choose(members: pa.Table | None, group_of_unit: np.ndarray) -> tuple[pa.Table, dict[str, Any]]:
    """One survivor per component; updates (row, dup_of, cluster, unit) split by unit group, and counters."""
    if members is None or members.num_rows == 0:
        empty = pa.table({"row": pa.array([], pa.int64()), "dup_of": pa.array([], pa.string()),
                          "cluster": pa.array([], pa.int64()), "unit": pa.array([], pa.int64()), PART: pa.array([], pa.int64())})
        return empty, {"duplicates": 0, "sizes": {}}
    labels = members.column("label").combine_chunks()
    updates, order, is_dup = _survivors(labels, members, True, group_of_unit)
    sizes = np.diff(np.append(np.flatnonzero(~is_dup), order.size))
    size, count = np.unique(sizes, return_counts=True)
    return updates, {"duplicates": int(is_dup.sum()), "sizes": dict(zip(size.tolist(), count.tolist()))}


class MinHashDedup(GlobalStage):
    """Near duplicates by MinHash LSH: signatures -> band buckets (verified candidate pairs, local
    components) -> distributed connected components -> one survivor per component -> written
    back to the units. Each step is one layer of Ray tasks; see the module docstring."""

    name: ClassVar[str] = "dedup_minhash"
    reason_namespaces: ClassVar[tuple[str, ...]] = ("dup:minhash",)

    def __init__(self, cfg: MinHashConfig) -> None:
        self.cfg = cfg

    def run(self, ds: ray.data.Dataset, ctx: GlobalContext) -> ray.data.Dataset:
        cfg, seconds = self.cfg, {}
        clock = time.perf_counter()

        def lap(name: str, *outs: Out) -> None:
            nonlocal clock
            wait_all(*outs)
            now = time.perf_counter()
            seconds[name] = round(now - clock, 3)
            clock = now

        units = _Units(ds, ctx)
        lap("read")
        parts, every = units.num_partitions, range(units.num_partitions)
        bands, info = units.scatter(_sign, (parts, parts), cfg, parts)
        lap("signatures", bands, info)

        edges, counts = run_layer(_buckets, [[bands.column(p)] for p in every], (parts, None), [(cfg, parts)] * parts)
        del bands
        lap("buckets", edges, counts)
        for key in ("candidate_pairs", "verified_pairs"):
            ctx.stats[key] = sum(c[key] for c in counts.get())

        components, rounds = connected_components(edges, parts, cfg.max_iterations)
        del edges
        ctx.stats["component_rounds"] = rounds
        lap("components", components)

        (members,) = run_layer(_members, [[components.column(p), info.column(p)] for p in every], (parts,), [(parts,)] * parts)
        updates, chosen = run_layer(_choose, [[members.column(p)] for p in every], (units.num_groups, None),
                                    [(units.group_of(),)] * parts)
        del components, info, members
        lap("survivors", updates, chosen)
        hist: dict[int, int] = {}
        for c in chosen.get():
            for size, n in c["sizes"].items():
                hist[size] = hist.get(size, 0) + n
        ctx.stats["duplicates_minhash"] = sum(c["duplicates"] for c in chosen.get())
        ctx.stats["cluster_size_histogram"] = {str(k): hist[k] for k in sorted(hist)}

        units.apply(updates, "dup:minhash")
        lap("apply", Out(units.refs()))
        ctx.stats["step_seconds"] = seconds
        return units.dataset()
