"""Distributed building blocks over Ray Data: key partitioning, survivor choice, connected components.

Every step hashes a key into a partition column and runs one `groupby(partition).map_groups`, so a
task sees all rows of its keys at once and resolves them with vectorized Arrow/numpy code (not one
Python call per key). Only scalars (change counts) ever come back to the driver.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray.data

from curate.dedup.minhash import fmix64

PART = "_part"


def digest_strings(values: pa.Array | pa.ChunkedArray, nbytes: int = 16) -> list[bytes | None]:
    """blake2b digests, one per string: collision-safe keys for exact matching (one call per document)."""
    return [None if v is None else hashlib.blake2b(v.encode(), digest_size=nbytes).digest() for v in values.to_pylist()]


def node_ids(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Stable int64 graph node per document id (first 8 bytes of its blake2b digest)."""
    raw = b"".join(d if d is not None else b"\0" * 8 for d in digest_strings(ids, 8))
    return np.frombuffer(raw, dtype=np.int64).copy()


def partition_of(keys: np.ndarray, num_partitions: int) -> np.ndarray:
    """Partition index of int64 keys, re-mixed so structured keys spread evenly."""
    return (fmix64(keys.astype(np.int64).view(np.uint64)) % np.uint64(num_partitions)).astype(np.int64)


def total(ds: ray.data.Dataset, column: str) -> int:
    """Sum of an integer column: one scalar per block comes back, never the rows (and no
    200-partition aggregate shuffle, which dominates on small data)."""

    def block_sum(t: pa.Table) -> pa.Table:
        return pa.table({"s": [int(pc.sum(t.column(column)).as_py() or 0)]})

    return sum(r["s"] for r in ds.map_batches(block_sum, batch_format="pyarrow", batch_size=None).take_all())


def apply_by_partition(ds: ray.data.Dataset, fn: Callable[[pa.Table], pa.Table], num_partitions: int) -> ray.data.Dataset:
    """Run `fn` once per partition (all rows with the same `_part`), in parallel."""
    return ds.groupby(PART, num_partitions=num_partitions).map_groups(fn, batch_format="pyarrow")


def survivor_order(keys: pa.Array, scores: pa.Array, ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Sort rows by key and, inside a key, by the survivor rule (highest non-null score, then smallest id).

    Returns (order, first_of_group): `order` sorts the rows; `first_of_group[i]` is the position in
    `order` of the survivor of sorted row i's group.
    """
    score = pc.fill_null(scores.cast(pa.float64()), -np.inf)
    table = pa.table({"k": keys, "s": score, "i": ids})
    order = pc.sort_indices(table, sort_keys=[("k", "ascending"), ("s", "descending"), ("i", "ascending")]).to_numpy()
    sorted_keys = table.column("k").take(order)
    if sorted_keys.type == pa.int64():
        k = sorted_keys.to_numpy()
        new_group = np.concatenate([[True], k[1:] != k[:-1]]) if k.size else np.zeros(0, bool)
    else:
        k = sorted_keys.combine_chunks()
        new_group = np.ones(len(k), bool)
        if len(k) > 1:
            new_group[1:] = pc.not_equal(k[1:], k[:-1]).to_numpy(zero_copy_only=False)
    first = np.maximum.accumulate(np.where(new_group, np.arange(len(new_group)), 0)) if len(new_group) else np.zeros(0, np.int64)
    return order, first


# --- connected components: large-star / small-star (Kiveris et al., "Connected Components in MapReduce and Beyond")


def _edges(u: np.ndarray, v: np.ndarray, changed: int, num_partitions: int) -> pa.Table:
    flags = np.zeros(u.size, np.int64)
    if u.size:
        flags[0] = changed  # one row carries the partition's change count; the driver sums them
    return pa.table({"u": u, "v": v, "changed": flags, PART: partition_of(u, num_partitions)})


def _grouped(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unique (u, v) pairs sorted by u then v, the start of each u-run, and each row's run index."""
    uv = np.unique(np.stack([table.column("u").to_numpy(), table.column("v").to_numpy()], axis=1), axis=0)
    u, v = uv[:, 0], uv[:, 1]
    starts = np.flatnonzero(np.concatenate([[True], u[1:] != u[:-1]])) if u.size else np.zeros(0, np.int64)
    run = np.cumsum(np.concatenate([[True], u[1:] != u[:-1]])) - 1 if u.size else np.zeros(0, np.int64)
    return u, v, starts, run


def _large_star(num_partitions: int) -> Callable[[pa.Table], pa.Table]:
    def step(table: pa.Table) -> pa.Table:
        u, v, starts, run = _grouped(table)
        if u.size == 0:
            return _edges(u, v, 0, num_partitions)
        local_min = np.minimum(u[starts], np.minimum.reduceat(v, starts))[run]
        keep = v > u  # connect every strictly larger neighbour to the smallest node of the neighbourhood
        changed = int(np.count_nonzero(keep & (local_min != u)))
        return _edges(v[keep], local_min[keep], changed, num_partitions)

    return step


def _small_star(num_partitions: int) -> Callable[[pa.Table], pa.Table]:
    def step(table: pa.Table) -> pa.Table:
        u, v, starts, run = _grouped(table)  # here every v < u
        if u.size == 0:
            return _edges(u, v, 0, num_partitions)
        local_min = np.minimum.reduceat(v, starts)[run]
        # every smaller neighbour and u itself attach to the smallest neighbour
        src = np.concatenate([v, u[starts]])
        dst = np.concatenate([local_min, local_min[starts]])
        keep = src != dst
        changed = int(np.count_nonzero(v != local_min))
        return _edges(src[keep], dst[keep], changed, num_partitions)

    return step


def _both_directions(num_partitions: int) -> Callable[[pa.Table], pa.Table]:
    def fn(t: pa.Table) -> pa.Table:
        u, v = t.column("u").to_numpy(), t.column("v").to_numpy()
        return _edges(np.concatenate([u, v]), np.concatenate([v, u]), 0, num_partitions)

    return fn


def _larger_first(num_partitions: int) -> Callable[[pa.Table], pa.Table]:
    def fn(t: pa.Table) -> pa.Table:
        u, v = t.column("u").to_numpy(), t.column("v").to_numpy()
        return _edges(np.maximum(u, v), np.minimum(u, v), 0, num_partitions)

    return fn


def connected_components(edges: ray.data.Dataset, num_partitions: int, max_iterations: int) -> tuple[ray.data.Dataset, int]:
    """Edges (int64 columns u, v) -> rows (node, label) for every node on an edge; label = smallest
    node of its component. Returns the labels and the number of rounds it took."""
    current = edges.select_columns(["u", "v"])
    for rounds in range(1, max_iterations + 1):
        large = apply_by_partition(current.map_batches(_both_directions(num_partitions), batch_format="pyarrow"),
                                   _large_star(num_partitions), num_partitions).materialize()
        small = apply_by_partition(large.map_batches(_larger_first(num_partitions), batch_format="pyarrow"),
                                   _small_star(num_partitions), num_partitions).materialize()
        changes = total(large, "changed") + total(small, "changed")
        current = small.select_columns(["u", "v"])
        if changes == 0:
            break
    else:
        raise RuntimeError(f"connected components did not converge in {max_iterations} rounds")

    def star_labels(t: pa.Table) -> pa.Table:
        # at the fixed point every edge is (node, root) with root the component's smallest node
        u, v = t.column("u").to_numpy(), t.column("v").to_numpy()
        return pa.table({"node": np.concatenate([u, v]), "label": np.concatenate([v, v])})

    return current.map_batches(star_labels, batch_format="pyarrow"), rounds


SIDE = "_side"


def join_on(left: ray.data.Dataset, right: ray.data.Dataset, key: str, join_type: str, num_partitions: int) -> ray.data.Dataset:
    """Join where `right`'s keys are unique (a lookup table), on an int64 column: both sides are tagged, padded to one schema, unioned and
    co-partitioned by `key`; each partition joins its halves by a sorted lookup. (Ray's
    `Dataset.join` needs polars and Arrow's join cannot carry map columns such as pii_counts.)
    `join_type` is "inner" or "left outer"."""
    left_schema = left.schema().base_schema
    right_schema = right.schema().base_schema
    right_only = [f for f in right_schema if f.name not in left_schema.names]
    union_schema = pa.schema(list(left_schema) + right_only + [pa.field(SIDE, pa.int8()), pa.field(PART, pa.int64())])

    def tag(side: int) -> Callable[[pa.Table], pa.Table]:
        def fn(t: pa.Table) -> pa.Table:
            cols = {}
            for f in union_schema:
                if f.name == SIDE:
                    cols[f.name] = pa.array(np.full(t.num_rows, side, np.int8))
                elif f.name == PART:
                    cols[f.name] = pa.array(partition_of(t.column(key).to_numpy(), num_partitions))
                elif f.name in t.column_names and (side == 0 or f.name == key or f.name not in left_schema.names):
                    cols[f.name] = t.column(f.name).cast(f.type)
                else:
                    cols[f.name] = pa.nulls(t.num_rows, f.type)
            return pa.table(cols, schema=union_schema)

        return fn

    left_names = [n for n in left_schema.names]
    right_names = [key] + [f.name for f in right_only]

    def join_partition(t: pa.Table) -> pa.Table:
        side = t.column(SIDE).to_numpy()
        lt = t.filter(pa.array(side == 0)).select(left_names)
        rt = t.filter(pa.array(side == 1)).select(right_names)
        return _lookup_join(lt, rt, key, join_type)

    both = left.map_batches(tag(0), batch_format="pyarrow").union(right.map_batches(tag(1), batch_format="pyarrow"))
    return apply_by_partition(both, join_partition, num_partitions)


def _lookup_join(left: pa.Table, right: pa.Table, key: str, join_type: str) -> pa.Table:
    rkeys = right.column(key).to_numpy()
    order = np.argsort(rkeys, kind="stable")
    sorted_keys = rkeys[order]
    lkeys = left.column(key).to_numpy()
    pos = np.minimum(np.searchsorted(sorted_keys, lkeys), max(sorted_keys.size - 1, 0))
    matched = sorted_keys[pos] == lkeys if sorted_keys.size else np.zeros(lkeys.size, bool)
    if join_type == "inner":
        left, pos, matched = left.filter(pa.array(matched)), pos[matched], matched[matched]
    elif join_type != "left outer":
        raise ValueError(f"unsupported join_type {join_type!r}")
    take = pa.array(order[pos] if sorted_keys.size else np.zeros(pos.size, np.int64), mask=~matched)
    for name in right.column_names:
        if name != key:
            left = left.append_column(name, right.column(name).take(take) if right.num_rows else pa.nulls(left.num_rows, right.schema.field(name).type))
    return left
