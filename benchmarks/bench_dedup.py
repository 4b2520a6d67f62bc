"""Dedup benchmark: curate vs datasketch and datatrove on the same documents and cores, like with like.

    .venv/bin/python benchmarks/bench_dedup.py [--copies 1] [--pipeline-copies 5] [--memory-copies 25]
                                               [--num-cpus 2] [--skip-pipeline] [--skip-memory]

Input: the 1,656 Wikipedia articles of ../shared/data; a corpus of k copies holds the articles
and k-1 near copies of each (one word in 50 changed), so the true duplicate groups are known:
one group per article, and all but one document of a group should go.

1. MinHash signatures on the same work, one core, warm: curate's batch numpy
   (`SignatureBuilder`) vs datasketch `MinHash.update` per shingle and `MinHash.bulk`, and vs
   datatrove's own signature code (`get_shingles` + `get_signature` of MinhashDedupSignature,
   without its bucket files); and datatrove's whole signature step (bucket files written and
   sorted) vs curate's whole signature step (`_sign`: signatures, band keys, sketches, the
   partitioned tables for the shuffle).
2. Whole fuzzy dedup from the same Parquet files, same cores, each tool in a fresh process:
   start-up (imports, Ray start) reported apart, then a cold run (first in the process: Ray
   workers start and import) and a warm run (the same again). curate with verification on (its
   default) and off (LSH trusted, as datatrove does) vs datatrove's four MinHash stages through
   LocalPipelineExecutor with as many workers. The duplicate sets are compared: ids removed by
   both / only one, and per true group how many documents were kept (1 = right, 2+ = missed
   duplicates, 0 = a group merged into another).
3. Peak memory of curate's fuzzy dedup at 1x vs 4x input: driver RSS, Ray workers' private
   memory (heap; summed, and the largest single worker), and the object store's bytes in use.

The machine these figures come from is shared (other engineers' jobs run at the same time): each
section prints the load average; treat the figures as conservative.
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
import pyarrow.compute as pc
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

    from curate.dedup.stages import _sign

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
        t_dt_sig, _ = timed(lambda: [step.get_signature(sh) for t in texts if (sh := step.get_shingles(t)).size])
        docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
        t_dt_step, _ = timed(lambda: step.run(iter(docs), rank=0, world_size=1))
    table = pa.table({"id": [str(i) for i in range(len(texts))], "text": arr})
    cfg = MinHashConfig()
    t_our_step = median_time(lambda: _sign(table, 0, cfg, 4))

    n_chars = sum(len(t) for t in texts)
    print(f"{len(texts)} docs, {n_chars / 1e6:.1f} M chars, 112 permutations, 5-grams, 1 core, shingling included "
          "(curate and bulk: median of 3 runs)")
    print("signatures only:")
    for name, t in [("curate SignatureBuilder (numpy batch)", t_ours), ("datasketch update/shingle", t_update),
                    ("datasketch bulk", t_bulk), ("datatrove get_shingles+get_signature", t_dt_sig)]:
        print(f"  {name:40s} {t:8.2f} s  {len(texts) / t:10.0f} docs/s  curate speed-up x{t / t_ours:6.1f}")
    print("whole signature step:")
    for name, t in [("curate _sign (sigs, band keys, sketches)", t_our_step),
                    ("datatrove MinhashDedupSignature.run", t_dt_step)]:
        print(f"  {name:40s} {t:8.2f} s  {len(texts) / t:10.0f} docs/s  curate speed-up x{t / t_our_step:6.1f}")
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


def curate_fuzzy(files: list[str], num_cpus: int, verify: bool = True) -> tuple[float, dict, set[str]]:
    """curate's MinHashDedup over the files, as the runner runs it: seconds, stats and the ids it
    dropped (collected after the clock stops)."""
    import ray
    import ray.data

    from curate.dedup.stages import MinHashDedup
    from curate.pipeline.global_stage import GlobalContext

    cfg = MinHashConfig() if verify else MinHashConfig(verify_jaccard=None)
    # as the runner does: the dataset is a read of these files, and the stage is told so
    ctx = GlobalContext(work_dir=Path(tempfile.mkdtemp()), num_cpus=num_cpus, input_files=files)
    t, out = timed(lambda: MinHashDedup(cfg).run(ray.data.read_parquet(files), ctx))
    rows = pa.concat_tables([b.select(["id", "drop_reason"]) for b in ray.get(out.to_arrow_refs())])
    assert rows.num_rows == sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    dropped = rows.filter(pc.equal(rows.column("drop_reason"), "dup:minhash"))
    return t, ctx.stats, set(dropped.column("id").to_pylist())


def datatrove_fuzzy(folder: Path, num_files: int, workers: int) -> tuple[float, set[str]]:
    """datatrove's four MinHash stages: seconds and the ids its .remove files name (file k is
    task k; a .remove file lists the dropped rows of its file)."""
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
    removed = set()
    for path in (tmp / "remove").glob("*.remove"):
        rank = int(path.name.split(".")[0])
        removed |= {f"d{rank * DOCS_PER_FILE + int(i):08d}" for i in np.fromfile(path, dtype="<u4")}
    return t, removed


def cold_and_warm(tool: str, folder: Path, num_cpus: int) -> None:
    """In this fresh process: start-up (interpreter, imports, Ray), a cold run, a warm run; one JSON line."""
    files = sorted(str(p) for p in folder.glob("*.parquet"))
    if tool == "datatrove":
        import datatrove.pipeline.dedup.minhash  # noqa: F401 -- its imports are its start-up
        startup = time.time() - psutil.Process().create_time()
        runs = [datatrove_fuzzy(folder, len(files), num_cpus) for _ in range(2)]
    else:
        import ray

        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        import curate.dedup.stages  # noqa: F401
        startup = time.time() - psutil.Process().create_time()
        runs = [(t, ids) for t, _, ids in (curate_fuzzy(files, num_cpus, verify=tool == "curate-verify") for _ in range(2))]
    assert runs[0][1] == runs[1][1], "a rerun removed other documents"
    print("RESULT " + json.dumps({"tool": tool, "startup": startup, "cold": runs[0][0], "warm": runs[1][0],
                                  "removed": sorted(runs[1][1])}))


def compare_sets(results: dict[str, dict], docs: int, groups: int) -> None:
    """Duplicate sets side by side: overlaps, and kept documents per true group."""
    names = list(results)
    print("removed-id overlap (both / only first / only second; ids differ where the tools keep another member of a group):")
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ra, rb = set(results[a]["removed"]), set(results[b]["removed"])
            per_group = [np.bincount([int(i[1:]) % groups for i in r], minlength=groups) for r in (ra, rb)]
            print(f"  {a:14s} vs {b:14s} {len(ra & rb):7d} / {len(ra - rb):6d} / {len(rb - ra):6d}   "
                  f"groups where both remove as many: {np.count_nonzero(per_group[0] == per_group[1])}/{groups}")
    print("kept documents per true group (1 = right; 2+ = duplicates missed; 0 = group merged away):")
    for name in names:
        kept = np.full(groups, docs // groups, np.int64)
        for doc_id in results[name]["removed"]:
            kept[int(doc_id[1:]) % groups] -= 1
        values, counts = np.unique(kept, return_counts=True)
        print(f"  {name:14s} " + ", ".join(f"{c} groups kept {v}" for v, c in zip(values.tolist(), counts.tolist())))


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
        t, stats, _ = curate_fuzzy(files, num_cpus)
    print("MEMORY " + json.dumps({"seconds": t, "duplicates": stats["duplicates_minhash"], "driver": mem.driver,
                                  "heap": mem.heap, "worker": mem.worker, "worker_name": mem.worker_name,
                                  "store": mem.store}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=1, help="signature benchmark input, in corpus copies")
    ap.add_argument("--pipeline-copies", type=int, default=5, help="whole-dedup input, in corpus copies")
    ap.add_argument("--memory-copies", type=int, default=25, help="1x of the memory benchmark (4x is 4 times that)")
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--skip-pipeline", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-run", nargs="+", help=argparse.SUPPRESS)  # internal: one measurement, in a child process
    ap.add_argument("--cold", nargs=2, metavar=("TOOL", "FOLDER"), help=argparse.SUPPRESS)  # internal: one tool, fresh process
    args = ap.parse_args()
    if args.memory_run:
        return memory_run(args.memory_run, args.num_cpus)
    if args.cold:
        return cold_and_warm(args.cold[0], Path(args.cold[1]), args.num_cpus)

    bench_signatures(load_texts(args.copies))
    tmp = Path(tempfile.mkdtemp())
    if not args.skip_pipeline:
        folder = tmp / "pipeline"
        files = write_parquet(args.pipeline_copies, folder)
        groups = len(articles())
        docs = args.pipeline_copies * groups
        print(f"\n== whole fuzzy dedup: {docs} docs in {len(files)} Parquet files, {args.num_cpus} cores, "
              f"each tool in a fresh process ({load()})")
        results = {}
        for tool in ("curate-verify", "curate-lsh", "datatrove"):
            cmd = [sys.executable, __file__, "--num-cpus", str(args.num_cpus), "--cold", tool, str(folder)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            results[tool] = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
        base = results["datatrove"]
        print(f"{'tool':14s} {'start-up s':>10s} {'cold s':>8s} {'warm s':>8s} {'removed':>8s}  "
              f"{'datatrove/curate cold':>22s} {'warm':>6s}")
        for tool, r in results.items():
            print(f"{tool:14s} {r['startup']:10.1f} {r['cold']:8.2f} {r['warm']:8.2f} {len(r['removed']):8d}  "
                  f"{base['cold'] / r['cold']:22.1f} {base['warm'] / r['warm']:6.1f}")
        compare_sets(results, docs, groups)
        print(load())

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
