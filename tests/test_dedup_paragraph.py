"""Paragraph (line) dedup on Ray: Dolma's expected spans, a Python reference for both modes, normalisation."""

from __future__ import annotations

import gzip
import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate import schema
from curate.dedup import stages
from curate.dedup.config import ParagraphConfig
from curate.dedup.paragraph import ParagraphDedup
from curate.pipeline.global_stage import GlobalContext

EXACT = dict(lowercase=False, strip_punctuation=False, collapse_whitespace=False, digits_to_zero=False)


def _run(table: pa.Table, cfg: ParagraphConfig, blocks: int, seed: int = 0) -> tuple[pa.Table, dict]:
    """The stage over `table` in shuffled row order, as `blocks` Parquet files of small row groups
    (the runner's way in; no Ray Data execution, which costs seconds per call)."""
    import ray

    shuffled = table.take(np.random.default_rng(seed).permutation(table.num_rows))
    folder = Path(tempfile.mkdtemp())
    files = []
    for k, rows in enumerate(np.array_split(np.arange(table.num_rows), blocks)):
        files.append(str(folder / f"part-{k}.parquet"))
        pq.write_table(shuffled.take(pa.array(rows, pa.int64())), files[-1], row_group_size=3)
    ctx = GlobalContext(work_dir=folder, num_cpus=2, input_files=files)
    out = pa.concat_tables(ray.get(ParagraphDedup(cfg).run(None, ctx).to_arrow_refs()))
    return out.sort_by([("warc_path", "ascending"), ("warc_offset", "ascending")]), ctx.stats


def _dolma(shared_data: Path) -> tuple[list[dict], list[list[list[int]]]]:
    folder = shared_data / "cc-text" / "dolma"
    with gzip.open(folder / "documents-000.jsonl.gz", "rt") as fh:
        docs = [json.loads(line) for line in fh]
    with gzip.open(folder / "expected-dedupe-paragraphs.jsonl.gz", "rt") as fh:
        expected = [json.loads(line) for line in fh]
    assert [d["id"] for d in docs] == [e["id"] for e in expected]
    return docs, [e["attributes"]["bff_duplicate_paragraph_spans"] for e in expected]


def test_all_but_first_removes_exactly_dolmas_duplicate_paragraph_spans(ray_session, shared_data):
    """Dolma's BFF splits on "\\n" and reports [start, end) in characters of every paragraph already
    seen earlier in the file (end runs past the newline; its last span may overshoot the text by
    one). With the same exact comparison and file order as crawl order, the rewritten text is the
    document without exactly those paragraphs, whatever the blocks, units and row order."""
    docs, spans = _dolma(shared_data)
    table = schema.from_rows([dict(id=d["id"], text=d["text"], warc_path="documents-000.json.gz", warc_offset=i)
                              for i, d in enumerate(docs)])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stages, "_UNIT_ROWS", 3)  # 4 units: counts and first occurrences must combine across them
        out, stats = _run(table, ParagraphConfig(**EXACT, min_chars=0), blocks=3)
    removed = 0
    for doc, doc_spans, text in zip(docs, spans, out.column("text").to_pylist()):
        paragraphs = doc["text"].split("\n")
        starts = np.cumsum([0] + [len(p) + 1 for p in paragraphs])[:-1]
        gone = {s for s, _, _ in doc_spans}
        assert gone <= set(starts.tolist())  # every span starts at a paragraph
        assert text == "\n".join(p for p, s in zip(paragraphs, starts) if s not in gone)
        removed += len(gone)
    assert removed == 43 and stats["paragraphs_removed"] == 43 and stats["documents_rewritten"] == 1
    assert out.column("drop_reason").null_count == out.num_rows


def _reference(docs: list[dict], cfg: ParagraphConfig) -> tuple[list[str], list[str | None]]:
    """Plain Python: texts after removal and drop reasons, in (warc_path, warc_offset) order."""
    docs = sorted(docs, key=lambda d: (d["warc_path"], d["warc_offset"]))
    counts = Counter(p for d in docs for p in d["text"].split("\n") if p)
    seen: set[str] = set()
    texts, reasons = [], []
    for d in docs:
        kept = []
        for p in d["text"].split("\n"):
            if cfg.mode == "all_but_first":
                drop = bool(p) and p in seen
                seen.add(p)
            else:
                drop = bool(p) and counts[p] >= cfg.min_occurrences
            if not drop:
                kept.append(p)
        new = "\n".join(kept)
        short = new != d["text"] and len(new.strip()) < cfg.min_chars
        texts.append(d["text"] if short else new)
        reasons.append("dup:paragraph" if short else None)
    return texts, reasons


lines = st.sampled_from(["Home", "About us", "Cookie policy", "", "A long paragraph of real content here."] +
                        [f"unique line {i}" for i in range(12)])


@given(st.lists(st.lists(lines, min_size=1, max_size=8), min_size=1, max_size=12),
       st.sampled_from(["all_but_first", "threshold"]), st.integers(2, 4), st.integers(0, 30), st.integers(1, 4))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_both_modes_match_a_python_reference(ray_session, pages, mode, min_occurrences, min_chars, blocks):
    docs = [dict(id=f"d{i}", text="\n".join(p), warc_path=f"crawl-{i % 3}.warc.gz", warc_offset=100 * i)
            for i, p in enumerate(pages)]
    cfg = ParagraphConfig(**EXACT, mode=mode, min_occurrences=min_occurrences, min_chars=min_chars)
    out, stats = _run(schema.from_rows(docs), cfg, blocks=min(blocks, len(docs)), seed=len(docs))
    texts, reasons = _reference(docs, cfg)
    assert out.column("text").to_pylist() == texts
    assert out.column("drop_reason").to_pylist() == reasons
    assert stats["documents_dropped"] == sum(r is not None for r in reasons)


def test_normalised_paragraphs_match_and_rejected_rows_are_left_alone(ray_session):
    """Case, punctuation, spacing and digits do not make a footer different (CCNet's
    normalisation); a row a filter already rejected neither counts nor changes."""
    footer = ["© 2021 Example Corp. All rights reserved.", "©2023  EXAMPLE corp -- all rights reserved!"]
    body = "A paragraph of content that is long enough to keep the document after the footer is gone."
    topics = ["rivers", "bridges", "forests", "harbours"]  # bodies differ by words (digits would not tell them apart)
    rows = [dict(id=f"p{i}", text=f"{body} {topics[i]}\n{footer[i % 2]}", warc_path="w.warc.gz", warc_offset=i) for i in range(4)]
    rows.append(dict(id="x", text=f"rejected\n{footer[0]}", warc_path="a.warc.gz", warc_offset=0, drop_reason="lang:fr"))
    out, stats = _run(schema.from_rows(rows), ParagraphConfig(min_chars=20), blocks=2)
    by_id = {r["id"]: r for r in out.to_pylist()}
    assert by_id["p0"]["text"] == rows[0]["text"]  # the first occurrence stays
    assert [by_id[f"p{i}"]["text"] for i in (1, 2, 3)] == [f"{body} {topics[i]}" for i in (1, 2, 3)]
    assert by_id["x"]["text"] == rows[4]["text"] and by_id["x"]["drop_reason"] == "lang:fr"
    assert stats["paragraphs_removed"] == 3 and stats["characters_removed"] == sum(len(footer[i % 2]) + 1 for i in (1, 2, 3))


def test_a_page_that_was_only_boilerplate_is_dropped_and_keeps_its_text(ray_session):
    menu = "Home\nProducts\nContact"
    rows = [dict(id="a", text=menu + "\nAn article long enough to stay once the menu is cut out of it.", warc_path="w", warc_offset=1),
            dict(id="b", text=menu, warc_path="w", warc_offset=2)]
    out, stats = _run(schema.from_rows(rows), ParagraphConfig(mode="threshold", min_occurrences=2, min_chars=10), blocks=2)
    assert out.column("text").to_pylist() == ["An article long enough to stay once the menu is cut out of it.", menu]
    assert out.column("drop_reason").to_pylist() == [None, "dup:paragraph"]
    assert stats["documents_dropped"] == 1 and stats["documents_rewritten"] == 1
