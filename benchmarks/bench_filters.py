"""curate's filter stages vs datatrove's filters on the same real documents, one process.

    .venv/bin/python benchmarks/bench_filters.py [--data ../shared/data] [--repeat 1]

Both sides run the FineWeb recipe in the same order on one core: LanguageFilter(en, 0.65),
GopherRepetition, GopherQuality, C4Quality(filter_no_terminal_punct=False), FineWebQuality.
datatrove runs as its own pipeline (chained `run` generators over Documents); curate runs its
stages on pyarrow batches of 256 rows. The input is every extracted page of the shared data
plus the Wikipedia and Dolma texts. Also checks that both keep exactly the same documents.

datatrove's LanguageFilter wants `fasteners` (only for downloading lid.176.bin); we give it
the bundled lid.176.ftz directly and skip that dependency check, so no download happens.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pyarrow as pa

import filters_corpus
from curate import schema
from curate.config import FiltersConfig
from curate.pipeline import registry
from curate.filters.lang import bundled_model_path, load_fasttext
from curate.filters.words import splitter_for

BATCH = 256


def datatrove_pipeline():
    from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter, LanguageFilter

    LanguageFilter._requires_dependencies = []
    lid = LanguageFilter(languages=["en"], language_threshold=0.65)
    lid.model._model = load_fasttext(bundled_model_path())
    return [lid, GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter()]


def run_datatrove(docs: list[dict]) -> tuple[float, set[str]]:
    from datatrove.data import Document

    filters = datatrove_pipeline()
    data = [Document(text=d["text"], id=d["id"], metadata={"url": d["url"]}) for d in docs]
    start = time.perf_counter()
    stream = iter(data)
    for f in filters:
        stream = f.run(stream)
    kept = {doc.id for doc in stream}
    return time.perf_counter() - start, kept


def run_curate(docs: list[dict]) -> tuple[float, set[str]]:
    cfg = FiltersConfig()
    cfg.language.backend = "fasttext"  # the same lid.176 datatrove's LanguageFilter uses
    cfg.url.enabled = False
    cfg.pii.enabled = False
    stages = registry.build_stages(cfg, group="filters")
    # Fresh word caches: a repeat must not reuse the previous run's tokenizations.
    splitter_for.cache_clear()
    splitter_for("en")
    table = schema.from_rows([{"id": d["id"], "text": d["text"], "url": d["url"], "domain": d["domain"]} for d in docs])
    batches = [table.slice(i, BATCH) for i in range(0, table.num_rows, BATCH)]
    start = time.perf_counter()
    out = []
    for batch in batches:
        for stage in stages:
            batch = stage(batch)
        out.append(batch)
    elapsed = time.perf_counter() - start
    result = pa.concat_tables(out)
    kept = {i for i, r in zip(result.column(schema.ID).to_pylist(), result.column(schema.DROP_REASON).to_pylist()) if r is None}
    return elapsed, kept


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs per side")
    args = ap.parse_args()
    docs = filters_corpus.corpus(Path(args.data))
    n = len(docs)
    print(f"{n} documents, {sum(len(d['text']) for d in docs) / 1e6:.1f} M characters, 1 process")
    # Warm both (spaCy/fastText load, first-call caches) on a few docs outside the timing.
    run_datatrove(docs[:20])
    run_curate(docs[:20])
    dt_times, cu_times = [], []
    for _ in range(args.repeat):
        t, dt_kept = run_datatrove(docs)
        dt_times.append(t)
        t, cu_kept = run_curate(docs)
        cu_times.append(t)
    dt, cu = min(dt_times), min(cu_times)
    print(f"datatrove filters: {dt:7.2f} s  {n / dt:8.1f} docs/s  kept {len(dt_kept)}")
    print(f"curate stages:     {cu:7.2f} s  {n / cu:8.1f} docs/s  kept {len(cu_kept)}")
    print(f"speed-up: {dt / cu:.2f}x   same kept documents: {dt_kept == cu_kept}")


if __name__ == "__main__":
    main()
