"""Extraction benchmark: WARC -> trafilatura main text -> Parquet, datatrove vs curate.

    .venv/bin/python benchmarks/bench_extract.py [--copies 8] [--workers 2] [--inputs both] [--single-file] [--keep]

Same input, same cores, one run. Both sides are timed as whole commands in a subprocess, so
interpreter and framework start-up (Ray for curate, the process pool for datatrove) count.

Input: ../shared/data/real-pages.warc.gz (388 real HTML responses) copied `--copies` times
into a temp folder as separate files, because datatrove parallelises per file (one task per
file): that is the setup that lets it use every worker. `--single-file` concatenates the copies
into one file instead (gzip members concatenate); datatrove then has one task, so one worker.

Two forms of that input (`--inputs both`, the default, runs each in turn):
  cc-shaped   the records with `WARC-Identified-Payload-Type: text/html` added, as Common Crawl
              writes every record of a real crawl. Both engines then extract exactly the same
              documents, so documents/s compares like with like.
  as-is       the file exactly as shipped. Its records carry no `WARC-Identified-Payload-Type`,
              so datatrove's reader guesses the type with libmagic and drops ~76 real HTML
              pages per copy as JavaScript/XML: it extracts fewer documents.

Besides documents/s the table shows where the time goes: `ms/doc` is the time inside the
extraction step per document (datatrove's Trafilatura step timer; curate's extract stage, whose
CPU share is in the note), and `fixed s` is the wall time that extraction spread over the
workers does not explain: start-up, reading, writing, shutdown and idle workers.

The job is the same on both sides: trafilatura with favor_precision=True and no deduplication,
10 s per-document timeout, zstd Parquet. curate runs with every filter and dedup stage disabled.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from curate.pipeline import registry

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SHARED_DATA = Path(os.environ.get("CURATE_SHARED_DATA", REPO.parent / "shared" / "data"))
WARC = SHARED_DATA / "real-pages.warc.gz"


@dataclass
class Result:
    engine: str
    wall_s: float
    input_records: int
    docs_written: int
    note: str = ""
    # Seconds spent extracting, summed over the workers (time inside the extraction step).
    extract_s: float = 0.0
    workers: int = 1

    @property
    def fixed_s(self) -> float:
        """Wall time not explained by extraction spread over the workers: start-up, reading,
        writing, shutdown, idle workers."""
        return self.wall_s - self.extract_s / self.workers

    @property
    def records_per_s(self) -> float:
        return self.input_records / self.wall_s

    @property
    def docs_per_s(self) -> float:
        return self.docs_written / self.wall_s


def count_responses(path: Path) -> int:
    """HTML response records in one WARC: what a user feeds in (warcinfo etc. excluded)."""
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as fh:
        return sum(1 for rec in ArchiveIterator(fh) if rec.rec_type == "response")


def cc_shaped(src: Path, target: Path) -> None:
    """`src` with `WARC-Identified-Payload-Type: text/html` on every response, as Common Crawl
    records it. The record blocks are copied unchanged, so their digests still hold."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.warcwriter import WARCWriter

    with open(src, "rb") as fh, open(target, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        for record in ArchiveIterator(fh):
            if record.rec_type == "response":
                record.rec_headers.add_header("WARC-Identified-Payload-Type", "text/html")
            writer.write_record(record)


def build_input(folder: Path, copies: int, single_file: bool, form: str) -> list[Path]:
    folder.mkdir(parents=True)
    source = WARC
    if form == "cc-shaped":
        source = folder.parent / f"{WARC.name}.cc-shaped"
        cc_shaped(WARC, source)
    if single_file:
        # A .warc.gz of one gzip member per record stays valid when concatenated.
        target = folder / "pages-all.warc.gz"
        with open(target, "wb") as out:
            for _ in range(copies):
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out)
        return [target]
    files = []
    for i in range(copies):
        target = folder / f"pages-{i:03d}.warc.gz"
        shutil.copyfile(source, target)
        files.append(target)
    return files


def count_parquet_rows(folder: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.rglob("*.parquet"))


def run_timed(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> float:
    """Run a whole command, wall clock from spawn to exit; its output goes to a log file."""
    t0 = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{cmd[0]} failed (rc={proc.returncode}); log {log_path}:\n{tail}")
    return wall


# ---------------------------------------------------------------------------------------------
# datatrove

def datatrove_ready() -> None:
    """datatrove's WarcReader needs cchardet and python-magic (the project's `bench` extra)."""
    probe = subprocess.run([sys.executable, "-c", "import cchardet, magic"], capture_output=True)
    if probe.returncode != 0:
        raise SystemExit(f"datatrove's WarcReader needs cchardet and magic: {VENV_BIN / 'pip'} install -e '.[bench]'"
                         " (python-magic also needs the system's libmagic1)")

DATATROVE_SCRIPT = textwrap.dedent(
    """
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import ParquetWriter

    if __name__ == "__main__":
        LocalPipelineExecutor(
            pipeline=[
                WarcReader({input_dir!r}),
                Trafilatura(favour_precision=True, deduplicate=False, timeout=10),
                ParquetWriter({output_dir!r}, compression="zstd"),
            ],
            tasks={tasks},
            workers={workers},
            logging_dir={logging_dir!r},
        ).run()
    """
)


def datatrove_steps(logging_dir: Path) -> dict[str, dict]:
    """The merged per-step record datatrove writes: {step name: {"stats": ..., "time_stats": ...}}."""
    merged = json.loads((logging_dir / "stats.json").read_text())
    return {step["name"]: step for step in merged}


def _stat(stats: dict, key: str) -> int:
    v = stats.get(key, 0)
    return int(v["total"] if isinstance(v, dict) else v)


def run_datatrove(input_dir: Path, n_files: int, workers: int, work: Path, input_records: int) -> Result:
    out, logs = work / "dt-out", work / "dt-logs"
    script = work / "dt_job.py"
    script.write_text(
        DATATROVE_SCRIPT.format(
            input_dir=str(input_dir), output_dir=str(out), tasks=n_files, workers=workers, logging_dir=str(logs)
        )
    )
    wall = run_timed([sys.executable, str(script)], work / "dt.log")
    written = count_parquet_rows(out)
    steps = datatrove_steps(logs)
    reader = next((s.get("stats", {}) for name, s in steps.items() if "WARC" in name.upper()), {})
    extractor_step = next((s for name, s in steps.items() if "Trafilatura" in name), {})
    extractor = extractor_step.get("stats", {})
    read_docs = _stat(reader, "documents")
    extract_s = float(extractor_step.get("time_stats", {}).get("total", 0.0))
    note = (
        f"read {read_docs} docs ({input_records - read_docs} records dropped at reading); "
        f"extractor: {_stat(extractor, 'timeout')} timeouts, {_stat(extractor, 'clean_error')} errors, "
        f"{_stat(extractor, 'total') - _stat(extractor, 'forwarded')} dropped in all"
    )
    if n_files < workers:
        note += f"; {n_files} task(s): datatrove uses only {n_files} worker(s) of {workers}"
    return Result("datatrove", wall, input_records, written, note, extract_s, min(workers, n_files))


# ---------------------------------------------------------------------------------------------
# curate


def curate_config(input_glob: str, output_dir: Path, workers: int) -> dict:
    off = {"enabled": False}
    return {
        "input": {"source": "local", "paths": [input_glob], "crawl": "bench"},
        "output": {"path": str(output_dir), "compression": "zstd"},
        # Port 0: let the OS choose, so a parallel Ray (other tests, other users) cannot clash.
        "ray": {"num_cpus": workers, "dashboard_port": 0},
        # Reuse by payload digest off: the copies repeat every page, which a real crawl does not.
        "extract": {"engine": "trafilatura", "favor_precision": True, "timeout_s": 10, "reuse_by_digest": False},
        "filters": {
            name: dict(off)
            for name in ("url", "language", "gopher_repetition", "gopher_quality", "c4", "fineweb", "pii")
        },
        # Every dedup stage off, whichever the registry has: the copies would be duplicates of each other.
        "dedup": {e.key: dict(off) for e in registry.ENTRIES if e.group == "dedup"},
    }


def run_curate(input_dir: Path, workers: int, work: Path, input_records: int) -> Result:
    out = work / "curate-out"
    config_path = work / "curate.yaml"
    config_path.write_text(yaml.safe_dump(curate_config(str(input_dir / "*.warc.gz"), out, workers), sort_keys=False))
    wall = run_timed([str(VENV_BIN / "curate"), "run", str(config_path), "--no-progress"], work / "curate.log")
    stats = json.loads((out / "stats.json").read_text())
    shard_rows = count_parquet_rows(out / "shards")
    if shard_rows != stats["kept"]:
        raise SystemExit(f"curate: stats.json kept={stats['kept']} but shards hold {shard_rows} rows")
    extract = next(f for f in stats["funnel"] if f["stage"] == "extract")
    note = (f"read {stats.get('read')} docs; kept {stats['kept']}, rejected {stats.get('rejected')}, errored {stats.get('errored')}; "
            f"extract {extract['seconds']:.1f} s in the workers, of which {extract.get('cpu_seconds', 0):.1f} s on a CPU")
    return Result("curate", wall, input_records, shard_rows, note, extract["seconds"], workers)


# ---------------------------------------------------------------------------------------------


def versions() -> str:
    import datatrove
    import ray
    import trafilatura

    dt_version = getattr(datatrove, "__version__", None)
    if dt_version is None:
        from importlib.metadata import version

        dt_version = version("datatrove")
    return f"ray {ray.__version__}, datatrove {dt_version}, trafilatura {trafilatura.__version__}, python {sys.version.split()[0]}"


def print_table(results: list[Result]) -> None:
    print(f"{'engine':<10} {'wall s':>8} {'input recs':>10} {'docs out':>9} {'recs/s':>8} {'docs/s':>8} "
          f"{'ms/doc':>7} {'fixed s':>8}")
    for r in results:
        # ms/doc: time inside the extraction step per document; fixed s: the rest of the wall time.
        print(
            f"{r.engine:<10} {r.wall_s:>8.2f} {r.input_records:>10} {r.docs_written:>9} "
            f"{r.records_per_s:>8.1f} {r.docs_per_s:>8.1f} {1000 * r.extract_s / max(r.docs_written, 1):>7.1f} "
            f"{r.fixed_s:>8.1f}"
        )
    for r in results:
        print(f"  {r.engine}: {r.note}")


def run_form(form: str, args: argparse.Namespace, root: Path) -> tuple[float, float]:
    """Both engines on one form of the input; returns the (documents/s, records/s) ratios."""
    work = root / form
    input_dir = work / "input"
    files = build_input(input_dir, args.copies, args.single_file, form)
    input_records = count_responses(WARC) * args.copies
    layout = "1 concatenated file" if args.single_file else f"{len(files)} files"
    print(f"\n== input {form}: {args.copies} x {WARC.name} as {layout}, {input_records} HTML response records; "
          f"workers={args.workers}")
    if args.single_file:
        print("note: --single-file: datatrove parallelises per file, so it runs ONE task on one worker")
    runners = {
        "datatrove": lambda: run_datatrove(input_dir, len(files), args.workers, work, input_records),
        "curate": lambda: run_curate(input_dir, args.workers, work, input_records),
    }
    order = ["datatrove", "curate"] if args.order == "datatrove-first" else ["curate", "datatrove"]
    by_engine = {}
    for engine in order:
        # Other users of the same cores skew the result; the 1-min load average shows it.
        print(f"running {engine} ... (load average {os.getloadavg()[0]:.2f})", flush=True)
        by_engine[engine] = runners[engine]()
    dt, cu = by_engine["datatrove"], by_engine["curate"]
    print(f"done (load average {os.getloadavg()[0]:.2f}; above {args.workers} means the cores were shared)")
    print_table([dt, cu])
    rec_ratio = cu.records_per_s / dt.records_per_s
    doc_ratio = cu.docs_per_s / dt.docs_per_s if dt.docs_per_s else float("inf")
    # The work is extraction: documents extracted per second is the rate that matters. On the
    # as-is input datatrove's reader drops real pages before extracting, so per input record it
    # does less work; both ratios are shown.
    print(f"[{form}] curate/datatrove documents extracted/s: {doc_ratio:.2f}x    input records/s: {rec_ratio:.2f}x")
    return doc_ratio, rec_ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=8, help="copies of real-pages.warc.gz (388 pages each)")
    ap.add_argument("--workers", type=int, default=2, help="CPU cores for each engine")
    ap.add_argument("--inputs", choices=["both", "cc-shaped", "as-is"], default="both",
                    help="which form of the input to run (see above)")
    ap.add_argument("--single-file", action="store_true", help="concatenate the copies into one input file")
    ap.add_argument("--order", choices=["datatrove-first", "curate-first"], default="datatrove-first")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (logs, outputs) and print its path")
    args = ap.parse_args()

    datatrove_ready()
    root = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    forms = ["cc-shaped", "as-is"] if args.inputs == "both" else [args.inputs]
    try:
        print(f"versions: {versions()}")
        ratios = {form: run_form(form, args, root) for form in forms}
        print("\nsummary (curate / datatrove, whole commands, start-up included):")
        for form, (doc_ratio, rec_ratio) in ratios.items():
            print(f"  {form:<10} documents extracted/s {doc_ratio:.2f}x   input records/s {rec_ratio:.2f}x")
    finally:
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
