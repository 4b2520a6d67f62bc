"""Dedup benchmark: curate vs datasketch and datatrove, same documents, same cores, one run.

    .venv/bin/python benchmarks/bench_dedup.py [--copies 1] [--pipeline-copies 20] [--memory-copies 25]
                                               [--num-cpus 2] [--skip-pipeline] [--skip-memory]

Input: the 1,656 Wikipedia articles of ../shared/data; a corpus of k copies holds the articles
and k-1 near copies of each (one word in 50 changed).

1. MinHash signature throughput, shingling included (112 permutations, 5-grams, the same
   normalised text), one core: curate's batch numpy vs datasketch `MinHash.update` per shingle
   (its usual use) and `MinHash.bulk`, and vs datatrove's `MinhashDedupSignature` step.
2. Whole fuzzy dedup from the same Parquet files, same cores: curate's MinHashDedup on local Ray
   vs datatrove's four MinHash stages (signature, buckets, cluster, filter) through
   LocalPipelineExecutor with as many workers.
3. Peak memory of curate's fuzzy dedup at 1x vs 4x input: driver RSS, Ray workers' private
   memory (heap; summed, and the largest single worker), and the object store's bytes in use
   (the input blocks and the shuffle's pieces live there; it spills to disk when full).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_edits import WIKI  # noqa: E402

from curate.dedup.config import MinHashConfig  # noqa: E402
from curate.dedup.minhash import SignatureBuilder, normalize_text  # noqa: E402

DOCS_PER_FILE = 2000  # input files (= Ray blocks, datatrove tasks) of a fixed size, so 4x input is 4x the files


def load() -> str:
    return f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"


def datatrove_config():
    """datatrove's default MinHash (14 x 8, 5-grams, xxhash) with 32-bit hashes like ours."""
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.hashing import HashConfig

    return MinhashConfig(hash_config=HashConfig(precision=32, hash_fc="xxhash"))


def articles() -> list[str]:
    with gzip.open(WIKI, "rt", encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh]


def near_copy(text: str, c: int) -> str:
    return text if c == 0 else " ".join(w if i % 50 else f"c{c}" for i, w in enumerate(text.split()))


def load_texts(copies: int) -> list[str]:
    base = articles()
    return [near_copy(t, c) for c in range(copies) for t in base]


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def median_time(fn, runs: int = 3) -> float:
    """Median of a few runs, for the runs short enough that one load spike would decide them."""
    return float(np.median([timed(fn)[0] for _ in range(runs)]))


def bench_signatures(texts: list[str]) -> None:
    from datasketch import MinHash
    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    print(f"\n== signatures ({load()})")
    arr = pa.array(texts, pa.large_string())
    builder = SignatureBuilder(ngram=5, num_perm=112, seed=1)
    builder(arr.slice(0, 50))  # warm-up: first-call allocations
    t_ours = median_time(lambda: builder(arr))

    def shingle_lists() -> list[list[bytes]]:  # the same normalised words and 5-grams as curate's
        out = []
        for t in normalize_text(arr).to_pylist():
            w = t.split()
            out.append([" ".join(w[i : i + 5]).encode() for i in range(max(len(w) - 4, 1))] if w else [])
        return out

    def ds_update() -> None:
        for sh in shingle_lists():
            m = MinHash(num_perm=112, seed=1)
            for s in sh:
                m.update(s)

    t_update, _ = timed(ds_update)
    t_bulk = median_time(lambda: MinHash.bulk(shingle_lists(), num_perm=112, seed=1))
    with tempfile.TemporaryDirectory() as tmp:
        step = MinhashDedupSignature(output_folder=tmp, config=datatrove_config())
        docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
        t_dt, _ = timed(lambda: step.run(iter(docs), rank=0, world_size=1))

    n_chars = sum(len(t) for t in texts)
    print(f"{len(texts)} docs, {n_chars / 1e6:.1f} M chars, 112 permutations, 5-grams, 1 core, shingling included "
          "(curate and bulk: median of 3 runs)")
    for name, t in [("curate (numpy batch)", t_ours), ("datasketch update/shingle", t_update),
                    ("datasketch bulk", t_bulk), ("datatrove MinhashDedupSignature", t_dt)]:
        print(f"{name:34s} {t:8.2f} s  {len(texts) / t:10.0f} docs/s  curate speed-up x{t / t_ours:6.1f}")
    print(load())


def write_parquet(copies: int, folder: Path) -> list[str]:
    """The corpus of `copies` copies as Parquet files of DOCS_PER_FILE rows, one file in memory at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    base = articles()
    total = copies * len(base)
    files = []
    for k, lo in enumerate(range(0, total, DOCS_PER_FILE)):
        idx = range(lo, min(lo + DOCS_PER_FILE, total))
        texts = [near_copy(base[i % len(base)], i // len(base)) for i in idx]
        path = folder / f"part-{k:05d}.parquet"
        pq.write_table(pa.table({"id": [f"d{i:08d}" for i in idx], "text": pa.array(texts, pa.large_string())}), path)
        files.append(str(path))
    return files


def curate_fuzzy(files: list[str], num_cpus: int) -> tuple[float, dict]:
    import ray.data

    from curate.dedup.stages import MinHashDedup
    from curate.pipeline.global_stage import GlobalContext

    # as the runner does: the dataset is a read of these files, and the stage is told so
    ctx = GlobalContext(work_dir=Path(tempfile.mkdtemp()), num_cpus=num_cpus, input_files=files)

    def run() -> None:
        out = MinHashDedup(MinHashConfig()).run(ray.data.read_parquet(files), ctx)
        assert out.count() == sum(pq.ParquetFile(f).metadata.num_rows for f in files)

    t, _ = timed(run)
    return t, ctx.stats


def datatrove_fuzzy(folder: Path, num_files: int, workers: int) -> tuple[float, int]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader

    cfg = datatrove_config()
    tmp = Path(tempfile.mkdtemp())

    def run() -> None:
        def ex(steps, tasks, name):
            return LocalPipelineExecutor(steps, tasks=tasks, workers=workers, logging_dir=str(tmp / "logs" / name),
                                         skip_completed=False).run()

        ex([ParquetReader(str(folder)), MinhashDedupSignature(output_folder=str(tmp / "sigs"), config=cfg)], num_files, "sigs")
        ex([MinhashDedupBuckets(input_folder=str(tmp / "sigs"), output_folder=str(tmp / "buckets"), config=cfg)],
           cfg.num_buckets, "buckets")
        ex([MinhashDedupCluster(input_folder=str(tmp / "buckets"), output_folder=str(tmp / "remove"), config=cfg)], 1, "cluster")
        ex([ParquetReader(str(folder)), MinhashDedupFilter(input_folder=str(tmp / "remove"))], num_files, "filter")

    t, _ = timed(run)
    removed = sum(p.stat().st_size for p in (tmp / "remove").glob("*.remove")) // 4  # one uint32 per removed doc
    return t, removed


class PeakMemory:
    """Peaks, sampled every 0.1 s: this process's RSS, Ray workers' private memory (RSS less
    shared pages, i.e. heap, summed and largest), and the object store's bytes in use."""

    def __init__(self) -> None:
        import ray
        from ray._private.internal_api import get_state_from_address

        self.state = get_state_from_address(ray.get_runtime_context().gcs_address)
        self.driver = self.heap = self.worker = self.store = 0
        self.worker_name = ""
        self._stop = threading.Event()

    def _sample(self) -> None:
        from ray._private.internal_api import get_memory_info_reply

        me = psutil.Process()
        while not self._stop.is_set():
            self.driver = max(self.driver, me.memory_info().rss)
            heaps = {}
            for p in me.children(recursive=True):
                try:
                    name = (p.cmdline() or [""])[0]
                    if name.startswith("ray::"):
                        m = p.memory_info()
                        heaps[f"{name} ({p.pid})"] = m.rss - m.shared
                except psutil.Error:
                    pass
            self.heap = max(self.heap, sum(heaps.values()))
            for name, heap in heaps.items():
                if heap > self.worker:
                    self.worker, self.worker_name = heap, name
            try:
                self.store = max(self.store, get_memory_info_reply(self.state).store_stats.object_store_bytes_used)
            except Exception:  # noqa: BLE001 - a missed sample only
                pass
            time.sleep(0.1)

    def __enter__(self) -> "PeakMemory":
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def memory_run(files: list[str], num_cpus: int) -> None:
    """One memory measurement in this (fresh) process: prints one JSON line."""
    import ray

    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    curate_fuzzy(files[:1], num_cpus)  # warm-up, as in the pipeline run
    with PeakMemory() as mem:
        t, stats = curate_fuzzy(files, num_cpus)
    print("MEMORY " + json.dumps({"seconds": t, "duplicates": stats["duplicates_minhash"], "driver": mem.driver,
                                  "heap": mem.heap, "worker": mem.worker, "worker_name": mem.worker_name,
                                  "store": mem.store}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=1, help="signature benchmark input, in corpus copies")
    ap.add_argument("--pipeline-copies", type=int, default=20, help="whole-dedup input, in corpus copies")
    ap.add_argument("--memory-copies", type=int, default=25, help="1x of the memory benchmark (4x is 4 times that)")
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--skip-pipeline", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-run", nargs="+", help=argparse.SUPPRESS)  # internal: one measurement, in a child process
    args = ap.parse_args()
    if args.memory_run:
        return memory_run(args.memory_run, args.num_cpus)

    bench_signatures(load_texts(args.copies))
    tmp = Path(tempfile.mkdtemp())
    if not args.skip_pipeline:
        import ray

        t_start, _ = timed(lambda: ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False))
        ray.data.DataContext.get_current().enable_progress_bars = False
        files = write_parquet(args.pipeline_copies, tmp / "pipeline")
        docs = args.pipeline_copies * len(articles())
        print(f"\n== whole fuzzy dedup: {docs} docs in {len(files)} Parquet files, {args.num_cpus} cores ({load()})")
        curate_fuzzy(files[:1], args.num_cpus)  # warm-up: Ray workers start and import curate once
        t_c, stats = curate_fuzzy(files, args.num_cpus)
        print(f"curate stats: {json.dumps(stats)}")
        t_d, d_d = datatrove_fuzzy(tmp / "pipeline", len(files), args.num_cpus)
        print(f"curate MinHashDedup (Ray tasks)    {t_c:8.2f} s  (+{t_start:.1f} s Ray start)  duplicates {stats['duplicates_minhash']}")
        print(f"datatrove 4 MinHash stages (local) {t_d:8.2f} s  duplicates {d_d}")
        print(f"curate speed-up x{t_d / t_c:.2f} (x{t_d / (t_c + t_start):.2f} counting Ray start)  ({load()})")
        ray.shutdown()

    if not args.skip_memory:
        print(f"\n== peak memory of curate's fuzzy dedup, each size in a fresh process and Ray ({load()})")
        rows = []
        for mult in (1, 4):
            files = write_parquet(args.memory_copies * mult, tmp / f"memory-{mult}")
            cmd = [sys.executable, __file__, "--num-cpus", str(args.num_cpus), "--memory-run", *files]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            m = json.loads(next(line for line in out.splitlines() if line.startswith("MEMORY "))[7:])
            rows.append(m)
            print(f"{mult}x input ({args.memory_copies * mult * len(articles())} docs, {len(files)} files): "
                  f"{m['seconds']:.1f} s, {m['duplicates']} duplicates; driver RSS {m['driver'] / 2**20:.0f} MiB, "
                  f"workers' heap {m['heap'] / 2**20:.0f} MiB (largest {m['worker'] / 2**20:.0f} MiB: {m['worker_name']}), "
                  f"object store {m['store'] / 2**20:.0f} MiB")
        one, four = rows
        print(f"4x / 1x: driver RSS x{four['driver'] / one['driver']:.2f}, workers' heap x{four['heap'] / one['heap']:.2f}, "
              f"largest worker x{four['worker'] / one['worker']:.2f}, object store x{four['store'] / max(one['store'], 1):.2f}"
              f"  ({load()})")


if __name__ == "__main__":
    main()
