"""Distributed building blocks on Ray: a keyed all-to-all shuffle, survivor choice, connected components.

The global dedup stages run as layers of Ray tasks over the object store. A task of a layer
concatenates its inputs, runs a vectorized Arrow/numpy function and splits each output table by
its `_part` column into as many pieces as the next layer has tasks; task p of the next layer takes
piece p of every producer. That is a map/reduce shuffle in the shape of Ray Data's pull-based
shuffle, with each reduce fused into the next map, so a step costs one layer of tasks and no extra
pass over the data (Ray Data's `groupby().map_groups()` costs seconds of fixed overhead per step,
which dominated on 2 cores). Only object references and small counters ever reach the driver:
never rows, edges or signatures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from curate.dedup.text import fmix64, hash_strings

PART = "_part"
# An output spec per function output: an int n splits the table by its `_part` column into n
# pieces; None returns the value whole (a small table or a dict of counters).
Spec = tuple[int | None, ...]


def node_ids(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Stable int64 graph node per document key (a vectorized 64-bit hash of its bytes)."""
    return hash_strings(keys).view(np.int64)


def partition_of(keys: np.ndarray, num_partitions: int) -> np.ndarray:
    """Partition index of int64 keys, re-mixed so structured keys spread evenly."""
    return (fmix64(keys.astype(np.int64).view(np.uint64)) % np.uint64(num_partitions)).astype(np.int64)


def split_by_part(table: pa.Table, num_parts: int, fanout: int | None = None) -> list[pa.Table]:
    """The rows of each partition 0..num_parts-1 (by the `_part` column, which is dropped). With
    more partitions than `fanout`, `fanout` pieces instead, each the rows of a run of consecutive
    partitions (see `piece_of`), sorted by partition and keeping `_part`, for `cut_part`."""
    part = table.column(PART).to_numpy()
    ranged = fanout is not None and num_parts > fanout
    if not ranged:
        table = table.drop_columns([PART])
    if num_parts == 1:
        return [table]
    order = np.argsort(part, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(part, minlength=num_parts))])
    if ranged:
        bounds = bounds[_first_parts(num_parts, fanout)]
    ordered = table.take(pa.array(order))
    return [ordered.slice(bounds[i], bounds[i + 1] - bounds[i]) for i in range(len(bounds) - 1)]


def _first_parts(num_parts: int, fanout: int) -> np.ndarray:
    """The first partition of each of `fanout` pieces, then `num_parts`."""
    return np.arange(fanout + 1) * num_parts // fanout


def piece_of(p: int, num_parts: int, fanout: int) -> int:
    """The piece of a split into `fanout` pieces that holds partition p."""
    return int(np.searchsorted(_first_parts(num_parts, fanout), p, side="right") - 1)


def cut_part(piece: pa.Table, p: int) -> pa.Table:
    """Partition p's rows of a piece sorted by `_part` (a zero-copy slice), without `_part`."""
    part = piece.column(PART).to_numpy()
    lo, hi = np.searchsorted(part, [p, p + 1])
    return piece.slice(int(lo), int(hi - lo)).drop_columns([PART])


def _concat(tables: Sequence[Any]) -> Any:
    if not tables:
        return None
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables)


# Most pieces one task's output is split into. A split into more partitions makes this many
# pieces of consecutive partitions each, so a layer makes tasks x SHUFFLE_FANOUT objects: linear
# in the partitions, where one piece per partition made tasks x partitions (quadratic, as both
# grow with the input). A consumer cuts its partition out of a piece as a zero-copy slice; across
# nodes a piece travels once to each node that needs any of its partitions.
SHUFFLE_FANOUT = 64


@ray.remote
def _layer_task(fn: Callable, spec: Spec, fanout: int, sizes: list[int], parts: list[int | None], args: tuple,
                *inputs: Any) -> Any:
    groups, k = [], 0
    for n, p in zip(sizes, parts):
        pieces = inputs[k : k + n]
        groups.append(_concat(pieces if p is None else [cut_part(t, p) for t in pieces]))
        k += n
    result = fn(*groups, *args)
    if len(spec) == 1:
        result = (result,)
    flat: list[Any] = []
    for n, value in zip(spec, result):
        flat.extend([value] if n is None else split_by_part(value, n, fanout))
    return flat[0] if len(flat) == 1 else tuple(flat)


class Column(list):
    """The refs of partition `part` from every producer; `part` set when the refs are ranged
    pieces that the consumer cuts the partition out of."""

    part: int | None = None


class Out:
    """One output of a layer: `pieces[t]` is task t's output, a list of refs for a split output
    (one per partition, or with `num_parts` > `fanout` one per run of partitions), or one ref
    for a whole one."""

    def __init__(self, pieces: list[Any], num_parts: int | None = None, fanout: int | None = None) -> None:
        self.pieces = pieces
        self.num_parts, self.fanout = num_parts, fanout

    @property
    def ranged(self) -> bool:
        return self.num_parts is not None and self.fanout is not None and self.num_parts > self.fanout

    def column(self, p: int) -> Column:
        """Partition p of every producer: the input of task p of the next layer."""
        if not self.ranged:
            return Column(t[p] for t in self.pieces)
        piece = piece_of(p, self.num_parts, self.fanout)  # type: ignore[arg-type]
        col = Column(t[piece] for t in self.pieces)
        col.part = p
        return col

    def refs(self) -> list[ray.ObjectRef]:
        return [r for t in self.pieces for r in (t if isinstance(t, list) else [t])]

    def get(self) -> list[Any]:
        """The values of a whole (unsplit) output: small things only, such as counters."""
        return ray.get(self.pieces)


def run_layer(fn: Callable, inputs: list[list[list[ray.ObjectRef]]], spec: Spec,
              args: Sequence[tuple] | None = None, fanout: int | None = None) -> list[Out]:
    """One Ray task per entry of `inputs`: task i runs fn(group_0, group_1, ..., *args[i]) where
    group g is the concatenation of the tables `inputs[i][g]` (None when it has none; a `Column`
    of ranged pieces gives its partition's rows), and fn returns one value per entry of `spec`.
    Returns one `Out` per spec entry. `fanout`: most pieces per split (SHUFFLE_FANOUT)."""
    fanout = fanout or SHUFFLE_FANOUT
    widths = [1 if n is None else min(n, fanout) for n in spec]
    num_returns = sum(widths)
    outs: list[list[Any]] = [[] for _ in spec]
    for i, groups in enumerate(inputs):
        refs = [r for g in groups for r in g]
        res = _layer_task.options(num_returns=num_returns).remote(
            fn, spec, fanout, [len(g) for g in groups], [getattr(g, "part", None) for g in groups],
            tuple(args[i]) if args else (), *refs)
        res = [res] if num_returns == 1 else list(res)
        k = 0
        for j, (n, w) in enumerate(zip(spec, widths)):
            outs[j].append(res[k] if n is None else res[k : k + w])
            k += w
    return [Out(o, n, fanout) for o, n in zip(outs, spec)]


def wait_all(*outs: Out) -> None:
    """Block until every task behind `outs` has finished (for per-step timings), fetching nothing."""
    refs = [r for o in outs for r in o.refs()]
    if refs:
        ray.wait(refs, num_returns=len(refs), fetch_local=False)


def survivor_order(keys: pa.Array, scores: pa.Array, ids: pa.Array, sources: pa.Array | np.ndarray,
                   offsets: pa.Array | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort rows by key and, inside a key, by the survivor rule: highest non-null score, then
    smallest id, then smallest (source, offset), so that two copies of one record (same id, from
    two input files) are ordered the same way however the rows were split or shuffled.

    Returns (order, first_of_group): `order` sorts the rows; `first_of_group[i]` is the position in
    `order` of the survivor of sorted row i's group.
    """
    score = pc.fill_null(scores.cast(pa.float64()), -np.inf)
    table = pa.table({"k": keys, "s": score, "i": ids, "src": sources, "off": offsets})
    order = pc.sort_indices(table, sort_keys=[("k", "ascending"), ("s", "descending"), ("i", "ascending"),
                                              ("src", "ascending"), ("off", "ascending")]).to_numpy()
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


# --- connected components


def local_components(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components of the edges (u, v) seen by one task (scipy's union-find-like BFS), as star
    edges (node, root) with root the smallest node of its component; roots get no edge."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_components

    if u.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    nodes, inverse = np.unique(np.concatenate([u, v]), return_inverse=True)
    graph = coo_matrix((np.ones(u.size, np.int8), (inverse[: u.size], inverse[u.size :])), shape=(nodes.size, nodes.size))
    _, label = scipy_components(graph, directed=False)
    first = np.full(label.max() + 1, nodes.size, np.int64)
    np.minimum.at(first, label, np.arange(nodes.size))  # nodes are sorted: the first index is the smallest node
    root = nodes[first[label]]
    keep = root != nodes
    return nodes[keep], root[keep]


def edge_table(u: np.ndarray, v: np.ndarray, num_partitions: int, both: bool = False) -> pa.Table:
    """Edges (u, v) partitioned by u; with `both`, also (v, u) partitioned by v."""
    if both:
        u, v = np.concatenate([u, v]), np.concatenate([v, u])
    return pa.table({"u": u.astype(np.int64), "v": v.astype(np.int64), PART: partition_of(u, num_partitions)})


def _grouped(table: pa.Table | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unique (u, v) pairs sorted by u then v, the start of each u-run, and each row's run index."""
    if table is None or table.num_rows == 0:
        e = np.zeros(0, np.int64)
        return e, e, e, e
    uv = np.unique(np.stack([table.column("u").to_numpy(), table.column("v").to_numpy()], axis=1), axis=0)
    u, v = uv[:, 0], uv[:, 1]
    new = np.concatenate([[True], u[1:] != u[:-1]])
    return u, v, np.flatnonzero(new), np.cumsum(new) - 1


def large_star(edges: pa.Table | None, num_partitions: int) -> tuple[pa.Table, int]:
    """Kiveris et al. large-star: every strictly larger neighbour of u links to the smallest node
    of u's neighbourhood. Input: both directions of every edge, grouped by u. Output: (larger,
    smaller) edges partitioned by the larger end, for small-star."""
    u, v, starts, run = _grouped(edges)
    if u.size == 0:
        return edge_table(u, v, num_partitions), 0
    local_min = np.minimum(u[starts], np.minimum.reduceat(v, starts))[run]
    keep = v > u
    return edge_table(v[keep], local_min[keep], num_partitions), int(np.count_nonzero(keep & (local_min != u)))


def small_star(edges: pa.Table | None, num_partitions: int) -> tuple[pa.Table, int]:
    """Small-star: u and all its smaller neighbours link to the smallest of them. Input: (larger,
    smaller) edges grouped by the larger end. Output: both directions, for the next large-star."""
    u, v, starts, run = _grouped(edges)
    if u.size == 0:
        return edge_table(u, v, num_partitions), 0
    local_min = np.minimum.reduceat(v, starts)[run]
    src = np.concatenate([v, u[starts]])
    dst = np.concatenate([local_min, local_min[starts]])
    keep = src != dst
    return edge_table(src[keep], dst[keep], num_partitions, both=True), int(np.count_nonzero(v != local_min))


def connected_components(edges: Out, num_partitions: int, max_iterations: int) -> tuple[Out, int]:
    """Distributed connected components (large-star / small-star rounds until nothing changes).

    `edges` holds both directions of every edge, split into `num_partitions` by the first end.
    Returns the converged edges in the same layout, where every edge touches its component's
    smallest node (its root, so the label of a node a of edge (a, b) is min(a, b)), and the
    number of rounds.
    """
    current = edges
    for rounds in range(1, max_iterations + 1):
        spec = (num_partitions, None)
        large, large_changes = run_layer(large_star, [[current.column(p)] for p in range(num_partitions)], spec,
                                         [(num_partitions,)] * num_partitions)
        small, small_changes = run_layer(small_star, [[large.column(p)] for p in range(num_partitions)], spec,
                                         [(num_partitions,)] * num_partitions)
        current = small
        if sum(large_changes.get()) + sum(small_changes.get()) == 0:
            return current, rounds
    raise RuntimeError(f"connected components did not converge in {max_iterations} rounds")


def labels_of(edges: pa.Table | None) -> tuple[np.ndarray, np.ndarray]:
    """(node, label) from converged edges: every edge (a, b) touches the root, so label(a) = min(a, b)."""
    if edges is None or edges.num_rows == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a, b = edges.column("u").to_numpy(), edges.column("v").to_numpy()
    node, first = np.unique(a, return_index=True)
    return node, np.minimum(a, b)[first]
