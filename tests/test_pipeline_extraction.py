"""Extraction through the WARC path is trafilatura, unchanged: `curate run` over
real-pages.warc.gz gives the same text as `trafilatura.extract` called directly on the same page
bytes, scored against the article-extraction-benchmark (AEB) ground truth with AEB's metric."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path
from statistics import mean

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from curate.pipeline.config import ExtractConfig
from curate.pipeline.extract import trafilatura_kwargs
from curate.pipeline.runner import PART_STATS_KEY
from warc_rows import read_raw

# What `extract: {engine: trafilatura}` means, as a direct call: precision settings, plain text,
# no metadata, and no cross-document dedup cache (the text of a page depends on that page alone).
TRAFILATURA_SETTINGS = {"favor_precision": True, "include_comments": False, "include_tables": True,
                        "deduplicate": False, "with_metadata": False, "output_format": "txt"}

_WORD = re.compile(r"\w+")


def shingles(text: str | None, n: int = 4) -> Counter:
    """AEB's units: word n-grams (n=4) of \\w+ tokens; a text shorter than n is one shingle."""
    words = _WORD.findall(text or "")
    return Counter(tuple(words[i:i + n]) for i in range(max(1, len(words) - n + 1)) if words[i:i + n])


def aeb_f1(pairs: list[tuple[str, str | None]]) -> dict[str, float]:
    """AEB's evaluate.py: per page, shingle tp/fp/fn normalised to sum 1 (long pages weigh no
    more than short ones); precision and recall are means over pages, F1 is their harmonic mean."""
    precisions, recalls = [], []
    for truth, pred in pairs:
        t, p = shingles(truth), shingles(pred)
        tp = sum((t & p).values())
        fp, fn = sum((p - t).values()), sum((t - p).values())
        if tp + fp:  # a page with no prediction has no precision, only recall 0
            precisions.append(tp / (tp + fp))
        if tp + fn:
            recalls.append(tp / (tp + fn))
    precision, recall = mean(precisions), mean(recalls)
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)}


def test_aeb_metric_matches_the_benchmark_definition():
    truth = "one two three four five six"
    assert aeb_f1([(truth, truth)])["f1"] == 1.0
    # nothing extracted: recall 0 and no precision term for that page
    assert aeb_f1([(truth, truth), (truth, None)]) == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3)}
    half = aeb_f1([(truth, "one two three four five")])  # 2 of 3 shingles, nothing extra
    assert half["precision"] == 1.0 and half["recall"] == pytest.approx(2 / 3)
    # per-page means, not pooled counts: a long perfect page does not hide a bad short one
    long_page = " ".join(f"w{i}" for i in range(1000))
    assert aeb_f1([(long_page, long_page), (truth, "x y z w v u")])["precision"] == pytest.approx(0.5)


def test_direct_call_uses_the_configured_settings():
    assert trafilatura_kwargs(ExtractConfig()) == TRAFILATURA_SETTINGS


@pytest.mark.ray
@pytest.mark.slow
def test_curate_run_extracts_like_trafilatura_on_real_pages(ray_session, shared_data, tmp_path, capsys):
    import trafilatura

    from curate.cli import main

    off = {"enabled": False}
    config = {
        "input": {"paths": [str(shared_data / "real-pages.warc.gz")]},
        "output": {"path": str(tmp_path / "out"), "rows_per_shard": 1000},
        "extract": {"engine": "trafilatura"},
        "filters": {k: off for k in ("url", "language", "gopher_repetition", "gopher_quality", "c4", "fineweb", "pii")},
        "dedup": {k: off for k in ("exact", "minhash", "paragraph", "earlier")},  # texts exactly as extracted
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "run.yaml"), "--no-progress"]) == 0
    capsys.readouterr()

    # One file is still spread over both extraction actors (reader batches are blocks of their own).
    parts = sorted((tmp_path / "out" / "work" / "docs").glob("*/part-*.parquet"))
    workers = Counter(json.loads(pq.read_schema(p).metadata[PART_STATS_KEY])["worker"] for p in parts)
    assert len(workers) == 2, workers

    out = pa.concat_tables([pq.read_table(p) for p in sorted((tmp_path / "out").glob("*/*.parquet"))
                            if p.parent.name in ("shards", "rejected")])
    text_by_id = dict(zip(out.column("id").to_pylist(), out.column("text").to_pylist()))
    reason_by_id = dict(zip(out.column("id").to_pylist(), out.column("drop_reason").to_pylist()))

    # Every record of the file became a document; >= 95% of them have main text.
    index = [line.split("\t") for line in (shared_data / "real-pages.index.tsv").read_text().splitlines()[1:]]
    ids = {row[2]: row[0].strip("<>").removeprefix("urn:uuid:") for row in index}  # source path -> doc id
    assert len(text_by_id) == len(index) == 388
    nonempty = sum(1 for t in text_by_id.values() if t)
    print(f"\nreal-pages.warc.gz: {nonempty}/{len(index)} records with text; reasons of the rest: "
          f"{Counter(r for r in reason_by_id.values() if r)}")
    assert nonempty >= 0.95 * len(index)

    # AEB: the same pages, extracted by curate and by trafilatura directly, against the ground truth.
    pages = [json.loads(line) for line in (shared_data / "extraction/index.jsonl").read_text().splitlines()]
    aeb = [p for p in pages if p["id"].startswith("aeb/")]
    assert len(aeb) == 91
    via_curate, direct, identical = [], [], 0
    for page in aeb:
        html = gzip.decompress((shared_data / "extraction" / page["html_path"]).read_bytes())
        ours = text_by_id[ids[page["html_path"]]]
        theirs = (trafilatura.extract(html, **TRAFILATURA_SETTINGS) or "").strip() or None
        via_curate.append((page["article_body"], ours))
        direct.append((page["article_body"], theirs))
        identical += ours == theirs
    f1_curate, f1_direct = aeb_f1(via_curate), aeb_f1(direct)
    print(f"AEB ({len(aeb)} pages) F1: curate run {f1_curate['f1']:.4f} (P {f1_curate['precision']:.4f} "
          f"R {f1_curate['recall']:.4f}), trafilatura.extract directly {f1_direct['f1']:.4f}; "
          f"{identical}/{len(aeb)} texts identical")
    assert abs(f1_curate["f1"] - f1_direct["f1"]) <= 0.01
    assert f1_curate["f1"] >= 0.9  # trafilatura's precision mode is ~0.97 on this split
    assert identical >= 0.95 * len(aeb)


def test_warc_payloads_are_the_page_files(shared_data):
    """The comparison above feeds trafilatura the page files: they are the WARC payloads, byte for byte."""
    rows = read_raw(shared_data / "real-pages.warc.gz").to_pylist()
    index = [line.split("\t") for line in (shared_data / "real-pages.index.tsv").read_text().splitlines()[1:]]
    aeb = [(row, i) for row, i in zip(rows, index) if i[2].startswith("aeb/")]
    assert len(aeb) == 91
    for row, i in aeb:
        assert row["raw_html"] == gzip.decompress(Path(shared_data / "extraction" / i[2]).read_bytes())
