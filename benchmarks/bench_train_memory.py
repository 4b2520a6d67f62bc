"""The trainer's peak RSS on 1x vs 8x shards, same token budget (issue 13: within 1.3x).

The trainer streams each shard into a token file and reads memory-mapped windows, so its memory
should not grow with the corpus. Shards are real text (the Wikipedia sample and the Common Crawl
documents of ../shared/data), each article repeated `--copies` times per 1x (with distinct ids),
written as `--shards` Parquet files; 8x is eight times as many such files. Each size trains in a
fresh process (tokenizer trained on a bounded sample, tokenize, a few steps, anneal on the
`wiki_score >= 0.9` rows, checkpoint, save), and the process reports its own peak RSS
(`ru_maxrss`).

    nice .venv/bin/python benchmarks/bench_train_memory.py [--copies 4] [--shards 2] [--steps 12]

Run with another checkout's Python (e.g. main's venv) to measure that trainer on the same data.
Measured 2026-12-01 on the shared 2-core machine with `--copies 1` (4 MiB of text at 1x, 29 MiB
at 8x): this trainer 680 -> 690 MiB (1.01x); the previous one (whole corpus in RAM) 757 -> 822
MiB (1.09x). At these sizes torch's own ~600 MiB dominates both; the growth per MiB of text
(0.4 vs 2.6 MiB) is what scales.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

CHILD = """
import json, resource, sys, time
from pathlib import Path
from curate.train.config import TrainConfig
from curate.train.loop import TrainInputs, train
spec, shards, out = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
cfg = TrainConfig.model_validate(spec)
t0 = time.perf_counter()
train(cfg, TrainInputs([shards + "/*.parquet"], out), resume=False)
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - t0}))
"""


def real_documents() -> list[dict]:
    with gzip.open(SHARED / "wikipedia" / "enwiki-sample.jsonl.gz", "rt") as fh:
        docs = [{"text": a["text"], "domain": "en.wikipedia.org", "wiki_score": 0.95} for a in map(json.loads, fh)]
    for path in sorted((SHARED / "cc-text" / "dolma").glob("*.jsonl.gz")):
        if "expected" not in path.name:
            with gzip.open(path, "rt") as fh:
                docs += [{"text": d["text"], "domain": "commoncrawl", "wiki_score": 0.1} for d in map(json.loads, fh)]
    return docs


def write_shards(folder: Path, docs: list[dict], copies: int, n_shards: int, first_id: int) -> int:
    """`n_shards` Parquet files holding `copies` copies of every document; returns text bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"doc-{first_id + c}-{i}", **d} for c in range(copies) for i, d in enumerate(docs)]
    per = -(-len(rows) // n_shards)
    for k in range(n_shards):
        part = rows[k * per : (k + 1) * per]
        pq.write_table(pa.Table.from_pylist(part), folder / f"shard-{first_id + k:05d}.parquet", row_group_size=2048)
    return sum(len(r["text"].encode()) for r in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=4, help="copies of the real documents in the 1x corpus")
    ap.add_argument("--shards", type=int, default=2, help="Parquet files of the 1x corpus")
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"missing {SHARED}", file=sys.stderr)
        return 2
    docs = real_documents()
    work = Path(tempfile.mkdtemp(prefix="bench_train_memory_"))
    spec = {
        "max_steps": args.steps, "seq_len": 128, "micro_batch_size": 8, "progress": False, "checkpoint_interval": 6,
        "tokenizer": {"vocab_size": 2048, "sample_docs": 1000},
        "model": {"preset": "tiny", "hidden_size": 64, "num_layers": 2},
        "anneal": {"fraction": 0.25, "score_column": "wiki_score", "min_score": 0.9},
    }
    print(f"python {sys.executable}; budget {args.steps} steps x 8 x 128 tokens; the machine is shared (figures conservative)")
    results = {}
    for scale in (1, 8):
        shards = work / f"x{scale}"
        text_bytes = sum(write_shards(shards, docs, args.copies, args.shards, first_id=1000 * k) for k in range(scale))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec), str(shards), str(work / f"model{scale}")],
                              capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results[scale] = res["peak_rss_mib"]
        print(f"{scale}x: {len(list(shards.glob('*.parquet')))} shards, {text_bytes / 2**20:,.0f} MiB of text -> "
              f"peak RSS {res['peak_rss_mib']:,.0f} MiB ({time.perf_counter() - t0:.0f} s)")
    print(f"peak RSS 8x / 1x: {results[8] / results[1]:.2f} (goal <= 1.3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
