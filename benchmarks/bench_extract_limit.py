"""Cost of the hard per-page time limit: the `Extract` stage (pages sent to a persistent child
process through a pipe) against calling trafilatura in-process on the same decoded pages, on
every page of real-pages.warc.gz. Both sides run in this process's core, one after the other,
best of `--repeat`; first the fixed cost per page, measured on a tiny page.

    nice .venv/bin/python benchmarks/bench_extract_limit.py [--repeat 2] [--overhead-only]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from curate import schema
from curate.config import ExtractConfig, ReadConfig
from curate.pipeline.extract import Extract, _engine, extract_page
from curate.pipeline.sources import InputFile
from curate.pipeline.warc import ReadReport, WarcReader

SHARED = Path(os.environ.get("CURATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--overhead-only", action="store_true", help="only the fixed cost per page (tiny pages)")
    args = ap.parse_args()
    path = SHARED / "real-pages.warc.gz"
    with open(path, "rb") as fh:
        batches = list(WarcReader(ReadConfig()).read(InputFile(str(path)), fh, ReadReport(str(path))))
    rows = [r for b in batches for r in b.to_pylist() if r[schema.RAW_HTML]]
    cfg = ExtractConfig()
    extract = _engine(cfg)
    stage = Extract(cfg)
    stage.extract_one(b"<html><body><p>warm up</p></body></html>", None)  # start the child outside the clock
    tiny = b"<html><body><article><p>" + b"A short page of text. " * 20 + b"</p></article></body></html>"
    t0 = time.perf_counter()
    for _ in range(300):
        extract_page(extract, cfg, tiny, None)
    t_direct = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(300):
        stage.extract_one(tiny, None)
    t_child = time.perf_counter() - t0
    print(f"fixed cost of the child per page: {1000 * (t_child - t_direct) / 300:.2f} ms "
          f"(tiny page: in-process {1000 * t_direct / 300:.2f} ms, through the child {1000 * t_child / 300:.2f} ms)")
    if args.overhead_only:
        return
    best_direct = best_child = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        direct = [extract_page(extract, cfg, r[schema.RAW_HTML], r[schema.CHARSET]) for r in rows]
        best_direct = min(best_direct, time.perf_counter() - t0)
        t0 = time.perf_counter()
        child = [stage.extract_one(r[schema.RAW_HTML], r[schema.CHARSET]) for r in rows]
        best_child = min(best_child, time.perf_counter() - t0)
    assert child == direct, "the child must give exactly the in-process results"
    n = len(rows)
    print(f"{n} pages: in-process {1000 * best_direct / n:.1f} ms/page, through the child {1000 * best_child / n:.1f} ms/page, "
          f"ratio {best_child / best_direct:.3f} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    sys.exit(main())
