"""Scoring throughput of the classifier stage: documents per second on one core.

Goal: >= 2,000 documents/s per core on the extracted texts of `real-pages.warc.gz`. The texts are
extracted once with the pipeline's own trafilatura settings and cached in `.bench/` (git-ignored);
then the `classifiers.wiki_quality` stage (normalisation + batched fastText predict + histogram)
scores them `--repeat` times in this one process. CPU time of the process is what counts
(wall time is printed too: on a shared machine it is the larger one).

    .venv/bin/python benchmarks/bench_classifier.py [--repeat 20] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
WARC = REPO.parent / "shared" / "data" / "real-pages.warc.gz"
CACHE = REPO / ".bench" / "real-pages-texts.parquet"


def extracted_texts() -> pa.Table:
    """The trafilatura texts of every page of real-pages.warc.gz (cached)."""
    if CACHE.exists():
        return pq.read_table(CACHE)
    from warcio.archiveiterator import ArchiveIterator

    from curate.pipeline.config import ExtractConfig
    from curate.pipeline.extract import Extract
    from curate.pipeline.warc import header_charset

    extract = Extract(ExtractConfig())
    texts = []
    with open(WARC, "rb") as fh:
        for record in ArchiveIterator(fh):
            if record.rec_type != "response":
                continue
            charset = header_charset(record.http_headers.get_header("Content-Type"))
            text, _, reason = extract.extract_one(record.content_stream().read(), charset)
            if reason is None:
                texts.append(text)
    table = pa.table({"text": pa.array(texts, pa.large_string())})
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, CACHE)
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=20, help="passes over the texts")
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()

    from curate import schema
    from curate.classifiers.config import WikiQualityConfig
    from curate.classifiers.stage import WikiQuality

    texts = extracted_texts()
    batch = schema.from_rows([{schema.TEXT: t} for t in texts.column("text").to_pylist()])
    chars = sum(len(t) for t in texts.column("text").to_pylist())
    stage = WikiQuality(WikiQualityConfig(enabled=True, batch_size=args.batch_size))
    stage(batch)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.repeat):
        stage(batch)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    docs = batch.num_rows * args.repeat
    print(f"{batch.num_rows} extracted texts of {WARC.name} (mean {chars / batch.num_rows:,.0f} chars), "
          f"{args.repeat} passes, batch {args.batch_size}, one process")
    print(f"  {docs / cpu:,.0f} docs/s per core (CPU time)   {docs / wall:,.0f} docs/s wall   "
          f"goal 2,000 docs/s per core: {'met' if docs / cpu >= 2000 else 'NOT met'}")
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (above the core count skews wall time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
