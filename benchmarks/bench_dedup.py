"""Dedup benchmark: curate vs datasketch and datatrove, same documents, same cores, one process.

    .venv/bin/python benchmarks/bench_dedup.py [--copies 1] [--skip-pipeline]

1. MinHash signature throughput, shingling included (112 permutations, 5-grams, same normalised
   text): curate's batch numpy vs datasketch `MinHash.update` per shingle (its usual use) and
   `MinHash.bulk`, and vs datatrove's `MinhashDedupSignature` stage.
2. Whole fuzzy dedup: curate's MinHashDedup on local Ray vs datatrove's four MinHash stages
   (signature, buckets, cluster, filter) through LocalPipelineExecutor.
3. Peak memory (RSS of this process and its children, sampled) of curate's fuzzy dedup at 1x vs 4x input.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_edits import WIKI  # noqa: E402

from curate import schema  # noqa: E402
from curate.dedup.config import MinHashConfig  # noqa: E402
from curate.dedup.minhash import SignatureBuilder, normalize_text  # noqa: E402


def datatrove_config():
    """datatrove's default MinHash (14 x 8, 5-grams) with 32-bit sha1 hashes like ours; its default
    xxhash backend is not installed here."""
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.hashing import HashConfig

    return MinhashConfig(hash_config=HashConfig(precision=32, hash_fc="sha1"))


def load_texts(copies: int) -> list[str]:
    with gzip.open(WIKI, "rt", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh]
    # copies beyond the first get one word changed in 50 so they are near (not exact) duplicates
    out = list(texts)
    for c in range(1, copies):
        out += [" ".join(w if i % 50 else f"c{c}" for i, w in enumerate(t.split())) for t in texts]
    return out


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def bench_signatures(texts: list[str]) -> None:
    from datasketch import MinHash

    arr = pa.array(texts, pa.large_string())
    builder = SignatureBuilder(ngram=5, num_perm=112, seed=1)
    t_ours, _ = timed(lambda: builder(arr))

    def shingle_lists() -> list[list[bytes]]:
        norm = normalize_text(arr).to_pylist()
        out = []
        for t in norm:
            w = t.split()
            out.append([" ".join(w[i : i + 5]).encode() for i in range(max(len(w) - 4, 1))] if w else [])
        return out

    def ds_update() -> None:
        for sh in shingle_lists():
            m = MinHash(num_perm=112, seed=1)
            for s in sh:
                m.update(s)

    def ds_bulk() -> None:
        MinHash.bulk(shingle_lists(), num_perm=112, seed=1)

    t_update, _ = timed(ds_update)
    t_bulk, _ = timed(ds_bulk)

    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    with tempfile.TemporaryDirectory() as tmp:
        step = MinhashDedupSignature(output_folder=tmp, config=datatrove_config())
        docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
        t_dt, _ = timed(lambda: step.run(iter(docs), rank=0, world_size=1))

    n_chars = sum(len(t) for t in texts)
    print(f"\n== signatures: {len(texts)} docs, {n_chars / 1e6:.1f} M chars, 112 permutations, 5-grams, 1 core")
    for name, t in [("curate (numpy batch)", t_ours), ("datasketch update/shingle", t_update),
                    ("datasketch bulk", t_bulk), ("datatrove MinhashDedupSignature", t_dt)]:
        print(f"{name:34s} {t:8.2f} s  {len(texts) / t:10.0f} docs/s  curate speed-up x{t / t_ours:6.1f}")


def curate_fuzzy(texts: list[str], num_cpus: int) -> tuple[float, int]:
    import ray.data

    from curate.dedup.stages import MinHashDedup
    from curate.pipeline.global_stage import GlobalContext

    table = schema.from_rows([{"id": f"d{i:08d}", "text": t} for i, t in enumerate(texts)])
    ds = ray.data.from_arrow(table).repartition(max(num_cpus * 2, len(texts) // 2000)).materialize()
    ctx = GlobalContext(work_dir=Path(tempfile.mkdtemp()), num_cpus=num_cpus)
    t, out = timed(lambda: MinHashDedup(MinHashConfig()).run(ds, ctx))
    print(f"curate stats: {ctx.stats}")
    return t, ctx.stats["duplicates_minhash"]


def datatrove_fuzzy(texts: list[str], workers: int) -> tuple[float, int]:
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature,
    )

    cfg = datatrove_config()
    tmp = Path(tempfile.mkdtemp())
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    kept = []

    def collect(data, rank: int = 0, world_size: int = 1):
        for d in data:
            kept.append(d.id)
            yield d

    def run() -> None:
        kw = dict(logging_dir=None, skip_completed=False, workers=workers)
        LocalPipelineExecutor([docs, MinhashDedupSignature(output_folder=str(tmp / "sigs"), config=cfg)], tasks=1, **kw).run()
        LocalPipelineExecutor([MinhashDedupBuckets(input_folder=str(tmp / "sigs"), output_folder=str(tmp / "buckets"), config=cfg)],
                              tasks=cfg.num_buckets, **kw).run()
        LocalPipelineExecutor([MinhashDedupCluster(input_folder=str(tmp / "buckets"), output_folder=str(tmp / "remove"), config=cfg)], tasks=1, **kw).run()
        LocalPipelineExecutor([docs, MinhashDedupFilter(input_folder=str(tmp / "remove")), collect], tasks=1, **kw).run()

    t, _ = timed(run)
    return t, len(docs) - len(kept)


class PeakRss:
    """Peak summed RSS of this process and all its children (Ray workers, raylet, object store)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def __enter__(self) -> "PeakRss":
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=1, help="input size for the signature benchmark, in corpus copies")
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--skip-pipeline", action="store_true")
    args = ap.parse_args()

    bench_signatures(load_texts(args.copies))
    if args.skip_pipeline:
        return

    import ray

    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    texts = load_texts(2)
    t_c, d_c = curate_fuzzy(texts, args.num_cpus)
    t_d, d_d = datatrove_fuzzy(texts, args.num_cpus)
    print(f"\n== whole fuzzy dedup: {len(texts)} docs, {args.num_cpus} cores")
    print(f"curate MinHashDedup (Ray)          {t_c:8.2f} s  duplicates {d_c}")
    print(f"datatrove 4 MinHash stages (local) {t_d:8.2f} s  duplicates {d_d}   curate speed-up x{t_d / t_c:.2f}")

    print("\n== peak memory of curate's fuzzy dedup (RSS, this process + Ray children)")
    for copies in (1, 4):
        texts = load_texts(copies)
        with PeakRss() as rss:
            t, d = curate_fuzzy(texts, args.num_cpus)
        print(f"{copies}x input ({len(texts)} docs): peak {rss.peak / 2**30:.2f} GiB, {t:.1f} s, {d} duplicates")


if __name__ == "__main__":
    main()
