"""Finer resume: a rerun after changing one Gopher threshold, against the first run and a clean
run of the new config.

    .venv/bin/python benchmarks/bench_resume.py [--pages N] [--topics] [--workers 2] [--keep]

Input: the example data (examples/sample.yaml: every WARC under ../shared/data), or with
`--pages N` only the first N responses of real-pages.warc.gz. Stages: the example's filters and
dedup; the topic labels (MiniLM) with `--topics`; no training. Three runs on one local Ray
(started once, its start-up reported apart):
  1. first run, filters.gopher_quality.min_doc_words 50 (the default), into out/;
  2. rerun into out/ with min_doc_words 200: every input from the extraction cache;
  3. clean run of the new config into clean/ (output.cache_extraction off).
Reported: seconds of each, rerun / first, documents extracted in each (the extract stage's
counter), whether shards/ and rejected/ of 2 and 3 are byte-equal, what the rerun named as
changed, and the extraction cache's size per 1,000 documents.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def first_responses(src: Path, pages: int, dst: Path) -> Path:
    """The first `pages` responses of `src`, cut at a gzip member boundary."""
    from warcio.archiveiterator import ArchiveIterator

    end, seen = 0, 0
    with open(src, "rb") as fh:
        it = ArchiveIterator(fh)
        for record in it:
            record.content_stream().read()
            seen += record.rec_type == "response"
            end = it.get_record_offset() + it.get_record_length()
            if seen == pages:
                break
    dst.write_bytes(src.read_bytes()[:end])
    return dst


def config(tmp: Path, pages: int | None, topics: bool) -> dict:
    raw = yaml.safe_load((REPO / "examples" / "sample.yaml").read_text())
    raw.pop("train", None)
    if pages:
        raw["input"]["paths"] = [str(first_responses(SHARED / "real-pages.warc.gz", pages, tmp / "pages.warc.gz"))]
    else:
        raw["input"]["paths"] = [str(SHARED / "**" / "*.warc.gz")]
    if not topics:  # the mixture and caps reweight by topic labels
        raw["classifiers"] = {"topics": {"enabled": False}}
        raw.pop("mixture", None)
    raw["output"]["path"] = str(tmp / "out")
    return raw


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


def timed_run(raw: dict, workers: int) -> tuple[float, dict]:
    from curate.config import parse_config
    from curate.pipeline.runner import Runner

    t0 = time.perf_counter()
    stats = Runner(parse_config(raw)).run(num_cpus=workers).stats
    return time.perf_counter() - t0, stats


def extracted(stats: dict) -> int:
    return next(f.get("counters", {}).get("extracted", 0) for f in stats["funnel"] if f["stage"] == "extract")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=None, help="first N responses of real-pages.warc.gz instead of the example data")
    ap.add_argument("--topics", action="store_true", help="keep the example's topic labels (MiniLM), caps and mixture")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the output folders")
    args = ap.parse_args()

    import ray

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_start = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    try:
        first_raw = config(tmp, args.pages, args.topics)
        changed = copy.deepcopy(first_raw)
        changed.setdefault("filters", {})["gopher_quality"] = {"min_doc_words": 200}
        clean = copy.deepcopy(changed)
        clean["output"] = {**clean["output"], "path": str(tmp / "clean"), "cache_extraction": False}
        s_first, first = timed_run(first_raw, args.workers)
        s_rerun, rerun = timed_run(changed, args.workers)
        s_clean, clean_stats = timed_run(clean, args.workers)
        equal = {sub: files(tmp / "out" / sub) == files(tmp / "clean" / sub) for sub in ("shards", "rejected")}
        cache = rerun["resume"]["extraction_cache"]
        result = {
            "documents_read": first["read"],
            "ray_start_seconds": round(ray_start, 1),
            "first_run_seconds": round(s_first, 1),
            "rerun_seconds": round(s_rerun, 1),
            "clean_run_seconds": round(s_clean, 1),
            "rerun_over_first": round(s_rerun / s_first, 3),
            "extracted": {"first": extracted(first), "rerun": extracted(rerun), "clean": extracted(clean_stats)},
            "kept": {"first": first["kept"], "rerun": rerun["kept"], "clean": clean_stats["kept"]},
            "byte_equal_to_clean": equal,
            "changed": rerun["resume"]["changed"],
            "redo_from": rerun["resume"]["redo_from"],
            "cache_bytes": cache["bytes"],
            "cache_bytes_per_1000_docs": cache["bytes_per_1000_docs"],
            "input_bytes_per_1000_docs": round(1000 * sum(Path(p).stat().st_size for r in first_raw["input"]["paths"]
                                                          for p in sorted(Path("/").glob(r.lstrip("/")))) / first["read"]),
        }
        print(json.dumps(result, indent=2))
        return 0 if all(equal.values()) and result["extracted"]["rerun"] == 0 else 1
    finally:
        ray.shutdown()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"outputs kept in {tmp}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
