"""Semantic dedup with the bundled MiniLM: reworded copies go, distinct articles stay, the best-scored copy survives."""

from __future__ import annotations

import gzip
import json
import re
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate import schema
from curate.dedup.config import SemanticConfig
from curate.dedup.semantic import SemanticDedup
from curate.pipeline.global_stage import GlobalContext


def _articles(shared_data: Path, n: int) -> list[dict]:
    with gzip.open(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    return [r for r in rows if len(r["text"].split()) >= 200][:n]


def _reworded(text: str) -> str:
    """The same content in a different surface form: the first two sentences swapped, a few
    function words changed. Exact and MinHash dedup both miss it at the start of the text."""
    sentences = re.split(r"(?<=\.) ", text, maxsplit=2)
    if len(sentences) == 3:
        sentences = [sentences[1], sentences[0], sentences[2]]
    swapped = " ".join(sentences)
    return re.sub(r"\bthe\b", "this", re.sub(r"\bis\b", "was", swapped), count=6)


def test_reworded_copies_are_dropped_and_the_best_scored_copy_kept(ray_session, shared_data, tmp_path):
    import ray

    arts = _articles(shared_data, 24)
    rows = [dict(id=f"a{i:03d}", text=a["text"], wiki_score=0.2) for i, a in enumerate(arts)]
    rows += [dict(id=f"w{i:03d}", text=_reworded(a["text"]), wiki_score=0.8) for i, a in enumerate(arts[:8])]
    rows.append(dict(id="x000", text=arts[9]["text"], drop_reason="lang:fr"))  # rejected: never embedded
    path = tmp_path / "in.parquet"
    pq.write_table(schema.from_rows(rows), path, row_group_size=9)
    ctx = GlobalContext(work_dir=Path(tempfile.mkdtemp()), num_cpus=2, input_files=[str(path)])
    out = pa.concat_tables(ray.get(SemanticDedup(SemanticConfig(enabled=True, num_clusters=4)).run(None, ctx).to_arrow_refs()))
    got = {r["id"]: (r["drop_reason"], r["dup_of"]) for r in out.select(["id", "drop_reason", "dup_of"]).to_pylist()}
    for i in range(8):  # the reworded copy has the higher score: it survives, the original goes
        assert got[f"a{i:03d}"] == ("dup:semantic", f"w{i:03d}") and got[f"w{i:03d}"] == (None, None)
    assert all(got[f"a{i:03d}"] == (None, None) for i in range(8, 24))
    assert got["x000"] == ("lang:fr", None)
    assert ctx.stats["embedded"] == 32 and ctx.stats["duplicates_semantic"] == 8 and ctx.stats["clusters"] == 4
