"""Training data: read documents, pre-tokenize them to a memory-mapped token file, pack on demand.

Why pre-tokenized memmaps rather than tokenizing while training: tokenization runs once, in the
Rust tokenizer's parallel batch encoder, and is cached (a resumed run skips it); afterwards a
batch is a few `numpy` slices of a memmap, so the data path costs microseconds per batch
(`benchmarks/bench_train.py` measures both ways) and exact resume is a single integer.

The packed stream is a deterministic function of (seed, pool): documents are visited in seeded
per-epoch permutations (or drawn by mixture weight), joined with EOS and cut into fixed
`seq_len` windows. The stream is generated in fixed-size blocks, so its prefix never depends on
how much of it is asked for: sequence `i` is the same whatever the budget or world size.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from curate.train.tokenizer import EOS, encode_batch

GROUP_COLUMN = "__group"
SCORE_COLUMN = "__score"
WEIGHT_COLUMN = "__weight"


# ----------------------------------------------------------------------------- reading documents


def expand(patterns: Sequence[str]) -> list[Path]:
    """Sorted, de-duplicated files matching the globs; a glob that matches nothing is an error."""
    files: list[Path] = []
    for pattern in patterns:
        hits = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        if not hits:
            raise FileNotFoundError(f"no files match {pattern!r}")
        files.extend(Path(h) for h in hits if Path(h).is_file())
    return list(dict.fromkeys(files))


def _read_jsonl(path: Path) -> pa.Table:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return pa.Table.from_pylist(rows) if rows else pa.table({"text": pa.array([], pa.large_string())})


def read_table(path: Path, text_column: str, extra: Sequence[str] = ()) -> pa.Table:
    """One file as a table holding `text` plus whichever of `extra` columns it has."""
    name = path.name
    if name.endswith(".parquet"):
        available = set(pq.read_schema(path).names)
        if text_column not in available:
            raise ValueError(f"{path}: no column {text_column!r}")
        table = pq.read_table(path, columns=[c for c in dict.fromkeys([text_column, *extra]) if c in available])
    elif name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
        table = _read_jsonl(path)
        if table.num_rows and text_column not in table.column_names:
            raise ValueError(f"{path}: no field {text_column!r}")
    elif name.endswith((".txt", ".txt.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            # A plain-text file is one document per blank-line-separated block.
            docs = [d.strip() for d in fh.read().split("\n\n") if d.strip()]
        table = pa.table({text_column: pa.array(docs, pa.large_string())})
    else:
        raise ValueError(f"{path}: unsupported file type (want .parquet, .jsonl[.gz], .txt[.gz])")
    if text_column not in table.column_names:
        table = table.append_column(text_column, pa.array([], pa.large_string()))
    return table


@dataclass(frozen=True)
class RowFilter:
    """Selects rows of the training data for the annealing pool (all set conditions must hold)."""

    score_column: str | None = None
    min_score: float | None = None
    domains: tuple[str, ...] | None = None
    domain_column: str = "domain"

    def describe(self) -> str:
        return json.dumps([self.score_column, self.min_score, self.domains, self.domain_column])

    def mask(self, table: pa.Table) -> pa.ChunkedArray | pa.Array:
        keep = pa.array(np.ones(table.num_rows, dtype=bool))
        if self.min_score is not None:
            if self.score_column not in table.column_names:
                return pa.array(np.zeros(table.num_rows, dtype=bool))
            keep = pc.and_(keep, pc.fill_null(pc.greater_equal(table[self.score_column], self.min_score), False))
        if self.domains is not None:
            if self.domain_column not in table.column_names:
                return pa.array(np.zeros(table.num_rows, dtype=bool))
            keep = pc.and_(keep, pc.fill_null(pc.is_in(table[self.domain_column], pa.array(list(self.domains))), False))
        return keep


def read_documents(
    paths: Sequence[Path], text_column: str = "text", group_column: str | None = None, row_filter: RowFilter | None = None,
    weight_column: str | None = None,
) -> pa.Table:
    """All non-empty documents of `paths` as a table (`text`, `__group`, and `__weight` when
    `weight_column` is given: a file without that column is an error), in file order."""
    extra = [c for c in (group_column, weight_column, row_filter and row_filter.score_column,
                         row_filter and row_filter.domain_column) if c]
    texts: list[pa.ChunkedArray] = []
    groups: list[pa.ChunkedArray] = []
    weights: list[pa.ChunkedArray] = []
    for path in paths:
        table = read_table(path, text_column, extra)
        if row_filter is not None:
            table = table.filter(row_filter.mask(table))
        text = pc.cast(table[text_column], pa.large_string())
        nonempty = pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0), False)
        table, text = table.filter(nonempty), text.filter(nonempty)
        texts.append(text)
        if group_column and group_column in table.column_names:
            groups.append(pc.cast(table[group_column], pa.string()))
        else:
            groups.append(pa.chunked_array([pa.nulls(table.num_rows, pa.string())]))
        if weight_column:
            if weight_column not in table.column_names:
                raise ValueError(f"{path}: no column {weight_column!r} (the manifest's per-row sampling weights)")
            weights.append(pc.fill_null(pc.cast(table[weight_column], pa.float64()), 0.0))
    if not texts:
        out = {"text": pa.array([], pa.large_string()), GROUP_COLUMN: pa.array([], pa.string())}
        return pa.table({**out, WEIGHT_COLUMN: pa.array([], pa.float64())} if weight_column else out)
    out = {
        "text": pa.chunked_array([c for t in texts for c in t.chunks], pa.large_string()),
        GROUP_COLUMN: pa.chunked_array([c for g in groups for c in g.chunks], pa.string()),
    }
    if weight_column:
        out[WEIGHT_COLUMN] = pa.chunked_array([c for w in weights for c in w.chunks], pa.float64())
    return pa.table(out)


def files_fingerprint(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------- tokenized pool


class TokenPool:
    """Documents as one flat memory-mapped token array (each document followed by EOS).

    Files in `folder`: tokens.bin (uint16 or uint32), docs.npz (start, length, group id and, when
    the documents carry one, sampling weight per document), meta.json (cache key, dtype, group
    names). A folder whose key matches is reused.
    """

    def __init__(self, folder: Path):
        meta = json.loads((folder / "meta.json").read_text())
        self.folder = folder
        self.key: str = meta["key"]
        self.groups: list[str | None] = meta["groups"]
        docs = np.load(folder / "docs.npz")
        self.starts: np.ndarray = docs["starts"]
        self.lengths: np.ndarray = docs["lengths"]
        self.group_ids: np.ndarray = docs["group_ids"]
        # Expected repeats per epoch of each document (the `weight` column), when the pool has them.
        self.weights: np.ndarray | None = docs["weights"] if "weights" in docs.files else None
        self.text_bytes: int = int(meta.get("text_bytes", 0))
        n = int(self.lengths.sum())
        self.tokens = np.memmap(folder / "tokens.bin", dtype=np.dtype(meta["dtype"]), mode="r", shape=(n,)) if n else np.zeros(0, np.uint16)

    @property
    def num_docs(self) -> int:
        return len(self.lengths)

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    @classmethod
    def build(cls, folder: Path, key: str, docs: pa.Table, tokenizer, chunk_docs: int = 2048) -> TokenPool:
        """Tokenize `docs` into `folder` (or reuse it when its key matches)."""
        meta_path = folder / "meta.json"
        if meta_path.is_file() and json.loads(meta_path.read_text()).get("key") == key:
            return cls(folder)
        folder.mkdir(parents=True, exist_ok=True)
        eos = tokenizer.convert_tokens_to_ids(EOS)
        dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.uint32
        group_values = docs[GROUP_COLUMN].to_pylist()
        groups = sorted({g for g in group_values if g is not None}) + ([None] if None in group_values else [])
        group_index = {g: i for i, g in enumerate(groups)}
        lengths: list[int] = []
        tmp = folder / "tokens.bin.tmp"
        with open(tmp, "wb") as out:
            texts = docs["text"]
            for lo in range(0, docs.num_rows, chunk_docs):
                batch = texts.slice(lo, chunk_docs).to_pylist()
                for ids in encode_batch(tokenizer, batch):
                    arr = np.empty(len(ids) + 1, dtype=dtype)
                    arr[:-1] = ids
                    arr[-1] = eos
                    out.write(arr.tobytes())
                    lengths.append(len(arr))
        os.replace(tmp, folder / "tokens.bin")
        lens = np.asarray(lengths, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64) if len(lens) else np.zeros(0, np.int64)
        gids = np.asarray([group_index[g] for g in group_values], dtype=np.int32)
        per_doc = {"weights": docs[WEIGHT_COLUMN].to_numpy()} if WEIGHT_COLUMN in docs.column_names else {}
        np.savez(folder / "docs.npz", starts=starts, lengths=lens, group_ids=gids, **per_doc)
        text_bytes = int(pc.sum(pc.binary_length(pc.cast(docs["text"], pa.large_binary()))).as_py() or 0)
        meta = {"key": key, "dtype": np.dtype(dtype).name, "groups": groups, "text_bytes": text_bytes}
        meta_path.write_text(json.dumps(meta))
        return cls(folder)


# ----------------------------------------------------------------------------- packed stream


class PackedStream:
    """Sequence `i` = tokens [i*L, (i+1)*L) of a deterministic, endless document stream.

    Document order: with `doc_weights` (the pool's per-document weights, expected repeats per
    epoch) each epoch holds document d floor(w_d) times plus once more when a seeded draw falls
    below the fraction, in a seeded permutation, so token shares over an epoch follow the
    weights; with `weights` (group -> target token share) each slot draws a group with
    probability proportional to weight / mean document length, then takes that group's next
    document in its seeded per-epoch permutation; without either, whole-pool seeded per-epoch
    permutations (or file order when `shuffle` is false, e.g. for evaluation).
    """

    BLOCK = 4096  # document draws per generation block (prefix stability)

    def __init__(self, pool: TokenPool, seq_len: int, seed: int, weights: dict[str, float] | None = None, shuffle: bool = True,
                 doc_weights: bool = False):
        if pool.num_docs == 0 or pool.num_tokens < 2:
            raise ValueError(f"no training text in {pool.folder}")
        if doc_weights and (pool.weights is None or float(pool.weights.sum()) <= 0):
            raise ValueError(f"{pool.folder}: per-document weights requested but the pool has none above 0")
        self.pool, self.seq_len, self.seed, self.shuffle = pool, seq_len, seed, shuffle
        self.doc_weights = doc_weights
        self.group_probs = self._group_probs(weights) if weights else None
        self._order: list[np.ndarray] = []  # generated blocks of document ids
        self._cum = np.zeros(0, np.int64)  # cumulative tokens at the end of each stream document
        self._group_cursor: dict[int, int] = {}
        self._epoch_cursor = 0

    def _group_probs(self, weights: dict[str, float]) -> np.ndarray:
        probs = np.zeros(len(self.pool.groups))
        for gi, name in enumerate(self.pool.groups):
            members = self.pool.group_ids == gi
            w = float(weights.get(name, 0.0)) if name is not None else 0.0
            if w > 0 and members.any():
                probs[gi] = w / self.pool.lengths[members].mean()
        if probs.sum() <= 0:
            raise ValueError("mixture weights select no documents of the pool (no domain in common)")
        return probs / probs.sum()

    def _members(self, gi: int, epoch: int) -> np.ndarray:
        ids = np.flatnonzero(self.pool.group_ids == gi)
        return np.random.default_rng([self.seed, 1, gi, epoch]).permutation(ids)

    def _weighted_epoch(self, epoch: int) -> np.ndarray:
        w = self.pool.weights
        whole = np.floor(w)
        extra = np.random.default_rng([self.seed, 3, epoch]).random(len(w)) < (w - whole)
        ids = np.repeat(np.arange(len(w), dtype=np.int64), (whole + extra).astype(np.int64))
        return np.random.default_rng([self.seed, 4, epoch]).permutation(ids)

    def _next_block(self) -> np.ndarray:
        b = len(self._order)
        if self.doc_weights:
            while not len(block := self._weighted_epoch(self._epoch_cursor)):  # all-fractional weights can draw nothing
                self._epoch_cursor += 1
            self._epoch_cursor += 1
            return block
        if self.group_probs is None:
            n = self.pool.num_docs
            if not self.shuffle:
                return np.arange(n, dtype=np.int64)
            return np.random.default_rng([self.seed, 0, b]).permutation(n).astype(np.int64)
        draws = np.random.default_rng([self.seed, 2, b]).choice(len(self.group_probs), size=self.BLOCK, p=self.group_probs)
        block = np.empty(self.BLOCK, dtype=np.int64)
        for gi in np.unique(draws):
            slots = np.flatnonzero(draws == gi)
            size = int((self.pool.group_ids == gi).sum())
            cursor = self._group_cursor.get(int(gi), 0)
            picked = []
            need = len(slots)
            while need:
                epoch, off = divmod(cursor, size)
                take = min(need, size - off)
                picked.append(self._members(int(gi), epoch)[off : off + take])
                cursor += take
                need -= take
            self._group_cursor[int(gi)] = cursor
            block[slots] = np.concatenate(picked)
        return block

    def _ensure(self, n_tokens: int) -> None:
        while len(self._cum) == 0 or self._cum[-1] < n_tokens:
            block = self._next_block()
            self._order.append(block)
            base = self._cum[-1] if len(self._cum) else 0
            self._cum = np.concatenate([self._cum, base + np.cumsum(self.pool.lengths[block])])

    def doc_tokens(self, n_tokens: int) -> np.ndarray:
        """Tokens each pool document contributes to the first `n_tokens` of the stream (its
        realised mixture over a budget)."""
        self._ensure(n_tokens)
        order = np.concatenate(self._order)
        before = np.concatenate([[0], self._cum[:-1]])
        take = np.clip(n_tokens - before, 0, self.pool.lengths[order])
        return np.bincount(order, weights=take, minlength=self.pool.num_docs)

    def sequence(self, i: int) -> np.ndarray:
        lo, hi = i * self.seq_len, (i + 1) * self.seq_len
        self._ensure(hi)
        order = np.concatenate(self._order) if len(self._order) > 1 else self._order[0]
        if len(self._order) > 1:  # keep one flat array so later lookups stay O(log n)
            self._order = [order]
        out = np.empty(self.seq_len, dtype=np.int64)
        j = int(np.searchsorted(self._cum, lo, side="right"))
        pos = lo
        while pos < hi:
            doc = order[j]
            doc_start_in_stream = self._cum[j] - self.pool.lengths[doc]
            off = pos - doc_start_in_stream
            take = min(hi - pos, int(self.pool.lengths[doc] - off))
            src = self.pool.starts[doc] + off
            out[pos - lo : pos - lo + take] = self.pool.tokens[src : src + take]
            pos += take
            j += 1
        return out

    def batch(self, first: int, count: int) -> np.ndarray:
        return np.stack([self.sequence(first + k) for k in range(count)])


# ----------------------------------------------------------------------------- step plan + loader


@dataclass(frozen=True)
class StepPlan:
    """Which stream and which sequences every (step, micro-batch, rank) reads.

    The global batch of a step is the same for any world size with equal
    world_size * micro_batch_size * grad_accum, so a run can resume on a different GPU count.
    """

    total_steps: int
    anneal_steps: int
    micro_batch_size: int
    grad_accum: int
    world_size: int

    @property
    def pretrain_steps(self) -> int:
        return self.total_steps - self.anneal_steps

    @property
    def sequences_per_step(self) -> int:
        return self.micro_batch_size * self.grad_accum * self.world_size

    def locate(self, step: int, micro: int, rank: int) -> tuple[bool, int]:
        """(is_anneal, index of the first sequence) for this micro-batch of this rank."""
        anneal = step >= self.pretrain_steps
        local_step = step - self.pretrain_steps if anneal else step
        first = (local_step * self.grad_accum + micro) * self.world_size * self.micro_batch_size + rank * self.micro_batch_size
        return anneal, first


class BatchLoader:
    """Yields (step, micro, input_ids) from `start_step` on, prepared by a background thread.

    The thread keeps `prefetch` batches ready (pinned when feeding a GPU), so the model never
    waits on data; order is fixed by the plan, not by thread timing.
    """

    def __init__(
        self,
        plan: StepPlan,
        main: PackedStream,
        anneal: PackedStream | None,
        start_step: int,
        rank: int = 0,
        prefetch: int = 4,
        pin_memory: bool = False,
    ):
        if plan.anneal_steps and anneal is None:
            raise ValueError("plan has annealing steps but no annealing stream")
        self.plan, self.main, self.anneal, self.rank = plan, main, anneal, rank
        self.start_step, self.pin = start_step, pin_memory
        self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="curate-train-loader", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        """Block until there is room or the loader is closed (False: stop producing)."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for step in range(self.start_step, self.plan.total_steps):
                for micro in range(self.plan.grad_accum):
                    is_anneal, first = self.plan.locate(step, micro, self.rank)
                    stream = self.anneal if is_anneal else self.main
                    batch = torch.from_numpy(stream.batch(first, self.plan.micro_batch_size))
                    if self.pin:
                        batch = batch.pin_memory()
                    if not self._put((step, micro, batch)):
                        return
            self._put(None)
        except BaseException as err:  # surface loader failures in the training thread
            self._put(err)

    def __iter__(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
