"""The WARC reader's own record framing against warcio's ArchiveIterator on the same file: every
response record's payload read, best of `--repeat`, one core.

    nice .venv/bin/python benchmarks/bench_read.py [--repeat 3] [FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from curate.config import ReadConfig
from curate.pipeline.sources import InputFile
from curate.pipeline.warc import ReadReport, WarcReader

SHARED = Path(os.environ.get("CURATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def curate_read(path: str) -> int:
    with open(path, "rb") as fh:
        return sum(b.num_rows for b in WarcReader(ReadConfig()).read(InputFile(path), fh, ReadReport(path)))


def warcio_read(path: str) -> int:
    n = 0
    with open(path, "rb") as fh:
        for rec in ArchiveIterator(fh):
            if rec.rec_type == "response":
                rec.content_stream().read()
                n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?", default=str(SHARED / "real-pages.warc.gz"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    best = {}
    for name, fn in (("warcio", warcio_read), ("curate", curate_read)):
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            n = fn(args.file)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
        print(f"{name}: {n} responses in {best[name]:.3f} s")
    print(f"curate / warcio: {best['curate'] / best['warcio']:.2f}x (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    sys.exit(main())
