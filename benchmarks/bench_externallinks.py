"""How fast an externallinks dump is read and sampled: the first pass of `curate classifier build-data`.

    .venv/bin/python benchmarks/bench_externallinks.py [--rows 1000000] [--count 10000]

No real dump is available offline, so this writes one in mysqldump's shape: the modern layout
(`el_id, el_from, el_to_domain_index, el_to_path`), ~1 MB extended INSERT lines, gzip. The
domain indexes and paths are built from the real URLs of shared/data (real-pages.index.tsv)
with numbered path variants, so string lengths and escapes are those of real links. Reports
compressed MB/s and rows/s of parsing alone and of parsing + sampling one URL per domain,
and what that means for the ~4.9 GB enwiki dump.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import random
import time
from pathlib import Path
from urllib.parse import urlsplit

from curate.classifiers.externallinks import externallinks_urls, sample_urls
from curate.pipeline.warc import _domain_extractor, registered_domain

ENWIKI_DUMP_GB = 4.9  # enwiki-*-externallinks.sql.gz, 2025


def sql_quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def make_dump(urls: list[str], rows: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    out = io.StringIO()
    out.write("CREATE TABLE `externallinks` (\n  `el_id` int(10) unsigned NOT NULL,\n  `el_from` int(8) unsigned NOT NULL,\n"
              "  `el_to_domain_index` varbinary(255) NOT NULL,\n  `el_to_path` blob DEFAULT NULL\n) ENGINE=InnoDB;\n")
    line: list[str] = []
    size = 0
    for i in range(rows):
        parts = urlsplit(rng.choice(urls))
        index = f"{parts.scheme}://{'.'.join(reversed(parts.hostname.split('.')))}."
        path = (parts.path or "/") + (f"?{parts.query}&v={i}" if parts.query else f"?v={i}")
        value = f"({i},{rng.randrange(1, 70_000_000)},{sql_quote(index)},{sql_quote(path)})"
        line.append(value)
        size += len(value)
        if size > 1_000_000:
            out.write("INSERT INTO `externallinks` VALUES " + ",".join(line) + ";\n")
            line, size = [], 0
    if line:
        out.write("INSERT INTO `externallinks` VALUES " + ",".join(line) + ";\n")
    return gzip.compress(out.getvalue().encode(), compresslevel=6)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--count", type=int, default=10_000)
    args = ap.parse_args()
    with open(Path(args.data) / "real-pages.index.tsv", newline="") as f:
        urls = [r["target_uri"] for r in csv.DictReader(f, delimiter="\t") if r["url_source"] == "manifest"]
    dump = make_dump(urls, args.rows)
    mb = len(dump) / 1e6
    print(f"dump: {args.rows:,} rows, {mb:.1f} MB gzipped")

    t0 = time.perf_counter()
    n = sum(1 for _ in externallinks_urls(gzip.GzipFile(fileobj=io.BytesIO(dump))))
    parse_s = time.perf_counter() - t0
    print(f"parse:           {parse_s:6.1f} s  {mb / parse_s:5.2f} MB/s gz  {n / parse_s:9,.0f} rows/s")

    extractor = _domain_extractor()
    t0 = time.perf_counter()
    sample = sample_urls(externallinks_urls(gzip.GzipFile(fileobj=io.BytesIO(dump))), args.count, 0,
                         lambda u: registered_domain(u, extractor))
    both_s = time.perf_counter() - t0
    print(f"parse + sample:  {both_s:6.1f} s  {mb / both_s:5.2f} MB/s gz  {n / both_s:9,.0f} rows/s "
          f"({len(sample):,} URLs, one per domain)")
    print(f"=> the {ENWIKI_DUMP_GB} GB enwiki dump: ~{ENWIKI_DUMP_GB * 1000 / (mb / both_s) / 60:.0f} min in one process")


if __name__ == "__main__":
    main()
