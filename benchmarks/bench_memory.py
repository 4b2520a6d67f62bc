"""Memory flat in input size, and per-document throughput on 1 vs 2 CPUs.

    .venv/bin/python benchmarks/bench_memory.py memory [--copies 1,8] [--cpus 2] [--engine resiliparse] [--no-dedup] [--object-store-mb N]
    .venv/bin/python benchmarks/bench_memory.py throughput [--copies 4] [--cpus 1,2] [--engine trafilatura]

Input: `--copies` copies of ../shared/data/real-pages.warc.gz (388 pages) as separate files,
each copy with its own WARC-Record-IDs (every id in a copy's headers replaced by a uuid5 of the
copy and the old id), so no row shares an id with another copy's.

`memory`: one `curate run` per copy count, each in a fresh process with its own local Ray
(resiliparse extraction by default, filters, exact and MinHash dedup; no classifiers), sampled every 0.25 s while it runs: the
driver's RSS, the largest Ray worker's RSS (any process titled `ray::...` below the driver)
and the object store's use (Ray's own memory summary). Goal: 8x within 1.3x of 1x for all three.

`throughput`: the per-document phase (read, extract, filters, PII; no dedup) on `--cpus` CPUs
of this node, each run pinned (taskset) to that many cores. Start-up (process start to the first part file: imports, Ray, actor start, the
first batch) is reported apart; steady state is the documents written after the first part
file over the time between the first and the last part file. Goal: >= 1.7x from 1 to 2 CPUs.

Both print `uptime` before and after: on a shared machine the figures are conservative.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WARC = REPO.parent / "shared" / "data" / "real-pages.warc.gz"
_UUID = re.compile(rb"<urn:uuid:([0-9a-fA-F-]{36})>")


def _members(data: bytes):
    """The decompressed gzip members of a .warc.gz (one record each)."""
    while data:
        d = zlib.decompressobj(wbits=31)
        yield d.decompress(data)
        data = d.unused_data


def distinct_copy(source: Path, target: Path, copy: int) -> None:
    """`source` with every record id in its WARC headers made this copy's own."""
    out = []
    for record in _members(source.read_bytes()):
        head, sep, body = record.partition(b"\r\n\r\n")
        head = _UUID.sub(lambda m: b"<urn:uuid:%s>" % str(uuid.uuid5(uuid.NAMESPACE_OID, f"{copy}:{m.group(1).decode()}")).encode(), head)
        out.append(gzip.compress(head + sep + body, compresslevel=6))
    target.write_bytes(b"".join(out))


def build_inputs(folder: Path, copies: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(copies):
        target = folder / f"pages-{i:03d}.warc.gz"
        if not target.exists():
            distinct_copy(WARC, target, i)
    return folder


def config(inputs: Path, out: Path, num_cpus: int, dedup: bool, engine: str, store_mb: int | None) -> dict:
    return {
        "input": {"source": "local", "paths": [str(inputs / "*.warc.gz")]},
        "output": {"path": str(out), "rows_per_shard": 1000},
        "ray": {"num_cpus": num_cpus, "dashboard_port": 0, "per_document_object_store_mb": store_mb},
        # Every copy repeats the first one's payloads, which a crawl does not: no digest reuse.
        "extract": {"engine": engine, "timeout_s": 10, "reuse_by_digest": False},
        "dedup": {"exact": {"enabled": dedup}, "minhash": {"enabled": dedup}},
    }


# ---------------------------------------------------------------------------------------------
# One run, in its own process (the child)


class Sampler(threading.Thread):
    """Peaks of the driver's RSS, the largest Ray worker's RSS and the object store's use."""

    def __init__(self, period_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        import psutil

        self.me = psutil.Process()
        self.period_s = period_s
        self.stop = threading.Event()
        self.driver_rss = self.worker_rss = self.worker_private = self.store_bytes = 0
        self.worker_name = ""

    def _store_bytes(self) -> int:
        import ray
        from ray._private.internal_api import memory_summary

        if not ray.is_initialized():
            return 0
        summary = memory_summary(ray.get_runtime_context().gcs_address, stats_only=True)
        used = re.search(r"Plasma memory usage (\d+) MiB", summary)
        return int(used.group(1)) << 20 if used else 0

    def run(self) -> None:
        import psutil

        last_store = 0.0
        while not self.stop.is_set():
            self.driver_rss = max(self.driver_rss, self.me.memory_info().rss)
            for p in self.me.children(recursive=True):
                try:
                    name = p.name()
                    if not name.startswith("ray::"):
                        continue
                    mem = p.memory_info()
                except psutil.Error:
                    continue
                if mem.rss > self.worker_rss:
                    self.worker_rss, self.worker_name = mem.rss, name
                self.worker_private = max(self.worker_private, mem.rss - mem.shared)
            if time.monotonic() - last_store > 1.0:  # a summary costs a round trip to every raylet
                try:
                    self.store_bytes = max(self.store_bytes, self._store_bytes())
                except Exception:  # noqa: BLE001 -- Ray starting or shutting down
                    pass
                last_store = time.monotonic()
            self.stop.wait(self.period_s)


def child(args: argparse.Namespace) -> None:
    t_start = time.perf_counter()
    sampler = Sampler()
    sampler.start()
    from curate import session
    from curate.config import parse_config
    from curate.pipeline.runner import Runner

    cfg = parse_config(config(Path(args.inputs), Path(args.out), args.num_cpus, args.dedup, args.engine, args.object_store_mb))
    session.start(cfg.ray)
    result = Runner(cfg).run(num_cpus=args.num_cpus)
    sampler.stop.set()
    sampler.join()
    wall = time.perf_counter() - t_start
    parts = sorted((p.stat().st_mtime, p) for p in Path(args.out, "work", "docs").rglob("part-*.parquet"))
    import pyarrow.parquet as pq

    rows = [pq.ParquetFile(p).metadata.num_rows for _, p in parts]
    first, last = parts[0][0], parts[-1][0]
    json.dump({
        "wall_s": wall, "docs": result.stats["read"], "kept": result.stats["kept"],
        "per_document_s": result.stats["seconds_this_invocation"]["per_document"],
        "startup_s": first - args.t0, "steady_docs": sum(rows[1:]), "steady_s": last - first, "part_files": len(parts),
        "driver_rss": sampler.driver_rss, "worker_rss": sampler.worker_rss, "worker_private": sampler.worker_private,
        "worker_name": sampler.worker_name, "object_store": sampler.store_bytes,
    }, open(args.result, "w"))


def run_child(inputs: Path, num_cpus: int, dedup: bool, engine: str, work: Path, store_mb: int | None) -> dict:
    out, result = work / f"out-{uuid.uuid4().hex[:6]}", work / f"result-{uuid.uuid4().hex[:6]}.json"
    cmd = [sys.executable, __file__, "child", "--inputs", str(inputs), "--out", str(out), "--num-cpus", str(num_cpus),
           "--result", str(result), "--t0", str(time.time()), "--engine", engine] + (["--dedup"] if dedup else [])
    cmd += ["--object-store-mb", str(store_mb)] if store_mb else []
    log = work / f"{out.name}.log"
    with open(log, "wb") as fh:
        # The whole run (driver, Ray's own processes, readers, extraction children) on its own
        # `num_cpus` cores: "1 CPU" is one core for everything, not one core of actors plus a
        # second core for everything else.
        pin = ["taskset", "-c", f"0-{num_cpus - 1}"] if num_cpus <= (os.cpu_count() or 1) else []
        proc = subprocess.run([*pin, *cmd], stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"run failed (rc={proc.returncode}); {log}:\n{log.read_text(errors='replace')[-3000:]}")
    return json.loads(result.read_text())


# ---------------------------------------------------------------------------------------------


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def memory(args: argparse.Namespace, work: Path) -> None:
    copies = [int(c) for c in args.copies.split(",")]
    results = {}
    for c in copies:
        r = run_child(build_inputs(work / f"in-{c}", c), int(args.cpus.split(",")[0]), not args.no_dedup, args.engine, work, args.object_store_mb)
        results[c] = r
        print(f"{c}x ({r['docs']} docs, {r['wall_s']:.0f} s): driver {_mib(r['driver_rss'])}, largest worker "
              f"{_mib(r['worker_rss'])} ({r['worker_name']}; {_mib(r['worker_private'])} not shared), "
              f"object store {_mib(r['object_store'])}", flush=True)
    lo, hi = results[copies[0]], results[copies[-1]]
    for key in ("driver_rss", "worker_rss", "worker_private", "object_store"):
        ratio = hi[key] / max(lo[key], 1)
        print(f"{key}: {hi[key] / 2**20:.0f} / {lo[key] / 2**20:.0f} MiB = {ratio:.2f}x ({'within' if ratio <= 1.3 else 'over'} 1.3x)")


def throughput(args: argparse.Namespace, work: Path) -> None:
    inputs = build_inputs(work / f"in-{args.copies}", int(args.copies))
    rates = {}
    for n in [int(c) for c in args.cpus.split(",")]:
        r = run_child(inputs, n, False, args.engine, work, args.object_store_mb)
        rates[n] = r["steady_docs"] / max(r["steady_s"], 1e-9)
        print(f"{n} CPU: {r['docs']} docs, wall {r['wall_s']:.1f} s, start-up {r['startup_s']:.1f} s, per-document phase "
              f"{r['per_document_s']:.1f} s, steady {rates[n]:.1f} docs/s ({r['steady_docs']} docs in {r['steady_s']:.1f} s, "
              f"{r['part_files']} part files)", flush=True)
    if len(rates) == 2:
        a, b = sorted(rates)
        print(f"speed-up {a} -> {b} CPUs (steady state): {rates[b] / rates[a]:.2f}x (goal >= 1.7x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["memory", "throughput", "child"])
    ap.add_argument("--copies", default=None)
    ap.add_argument("--cpus", default=None)
    ap.add_argument("--work", default=None, help="keep inputs and outputs here (default: a temp folder)")
    ap.add_argument("--engine", default=None, help="extract.engine (default: resiliparse for memory, to keep an 8x run short; "
                    "trafilatura, the real cost, for throughput)")
    # child only
    ap.add_argument("--object-store-mb", type=int, default=None, help="ray.per_document_object_store_mb (default: the runner's)")
    ap.add_argument("--inputs")
    ap.add_argument("--out")
    ap.add_argument("--result")
    ap.add_argument("--num-cpus", type=int)
    ap.add_argument("--t0", type=float)
    ap.add_argument("--dedup", action="store_true")
    ap.add_argument("--no-dedup", action="store_true", help="memory: without the global dedup stages (what they hold apart)")
    args = ap.parse_args()
    if args.mode == "child":
        return child(args)
    args.copies = args.copies or ("1,8" if args.mode == "memory" else "4")
    args.cpus = args.cpus or ("2" if args.mode == "memory" else "1,2")
    args.engine = args.engine or ("resiliparse" if args.mode == "memory" else "trafilatura")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-memory-"))
    print(f"uptime before: {_uptime()}  (os.cpu_count()={os.cpu_count()}; work in {work})", flush=True)
    (memory if args.mode == "memory" else throughput)(args, work)
    print(f"uptime after: {_uptime()}")


if __name__ == "__main__":
    main()
