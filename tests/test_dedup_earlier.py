"""Dedup against earlier runs: the index every run writes, and a second run deduplicated against the first."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate import schema
from curate.dedup.config import EarlierConfig, MinHashKeys
from curate.dedup.earlier import EarlierRunsDedup
from curate.pipeline.global_stage import GlobalContext


def _articles(shared_data: Path, n: int) -> list[dict]:
    with gzip.open(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    return [r for r in rows if len(r["text"].split()) >= 200][:n]


def _edit(text: str, every: int) -> str:
    return " ".join("EDITED" if i % every == 0 else w for i, w in enumerate(text.split()))


def _run_stage(table: pa.Table, run_dir: Path, earlier: list[str]) -> tuple[pa.Table, dict]:
    import ray

    files = [str(run_dir / "in.parquet")]
    run_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, files[0], row_group_size=7)
    stage = EarlierRunsDedup(EarlierConfig(runs=earlier))
    ctx = GlobalContext(work_dir=Path(tempfile.mkdtemp()), num_cpus=2, input_files=files, run_dir=run_dir)
    out = pa.concat_tables(ray.get(stage.run(None, ctx).to_arrow_refs()))
    return out.sort_by("id"), ctx.stats


def test_second_run_drops_what_the_first_kept_and_indexes_only_what_it_keeps(ray_session, shared_data, tmp_path):
    arts = _articles(shared_data, 50)
    first = schema.from_rows([dict(id=f"a{i:03d}", text=a["text"]) for i, a in enumerate(arts[:30])]
                             + [dict(id="r000", text=arts[40]["text"], drop_reason="lang:fr")])
    _, stats1 = _run_stage(first, tmp_path / "crawl-01", [])
    meta = json.loads((tmp_path / "crawl-01" / "dedup-index" / "index.json").read_text())
    assert meta["run"] == "crawl-01" and meta["documents"] == stats1["indexed"] == 30  # the rejected row is not indexed

    second = schema.from_rows(
        [dict(id=f"s{i:03d}", text=arts[i]["text"]) for i in range(20, 30)]  # seen: exact copies
        + [dict(id=f"n{i:03d}", text=_edit(arts[i]["text"], 100)) for i in range(10, 20)]  # seen: near copies
        + [dict(id=f"b{i:03d}", text=a["text"]) for i, a in enumerate(arts[30:50], 30)])  # new (a40 was rejected in run 1)
    out, stats2 = _run_stage(second, tmp_path / "crawl-02", [str(tmp_path / "crawl-01")])
    rows = {r["id"]: r for r in out.select(["id", "drop_reason", "dup_of"]).to_pylist()}
    for i in range(20, 30):
        assert rows[f"s{i:03d}"] == {"id": f"s{i:03d}", "drop_reason": "dup:earlier:crawl-01", "dup_of": f"a{i:03d}"}
    for i in range(10, 20):
        assert rows[f"n{i:03d}"]["drop_reason"] == "dup:earlier:crawl-01" and rows[f"n{i:03d}"]["dup_of"] == f"a{i:03d}"
    assert all(rows[f"b{i:03d}"]["drop_reason"] is None for i in range(30, 50))
    assert stats2["duplicates_crawl-01"] == stats2["duplicates_earlier"] == 20
    folder = tmp_path / "crawl-02" / "dedup-index"
    index = pa.concat_tables([pq.read_table(folder / f) for f in json.loads((folder / "index.json").read_text())["files"]])
    assert sorted(index.column("id").to_pylist()) == [f"b{i:03d}" for i in range(30, 50)]


def test_an_index_of_other_settings_or_a_folder_without_one_is_refused(ray_session, shared_data, tmp_path):
    arts = _articles(shared_data, 3)
    _run_stage(schema.from_rows([dict(id=f"a{i}", text=a["text"]) for i, a in enumerate(arts)]), tmp_path / "old", [])
    with pytest.raises(ValueError, match=r"dedup\.earlier\.minhash\.ngram=5, this run has 3"):
        EarlierRunsDedup(EarlierConfig(runs=[str(tmp_path / "old")], minhash=MinHashKeys(ngram=3)))
    with pytest.raises(ValueError, match="holds no finished dedup index"):
        EarlierRunsDedup(EarlierConfig(runs=[str(tmp_path / "nowhere")]))
    stage = EarlierRunsDedup(EarlierConfig(runs=[str(tmp_path / "old" / "dedup-index")]))
    assert stage.earlier[0][1]["documents"] == 3


def _warc_slices(shared_data: Path, folder: Path, sizes: list[int]) -> list[Path]:
    """Consecutive runs of `sizes` response records of real-pages.warc.gz, each as its own WARC file
    (records are gzip members: a byte range of whole members is a valid WARC)."""
    from warcio.archiveiterator import ArchiveIterator

    src = shared_data / "real-pages.warc.gz"
    with src.open("rb") as fh:
        it = ArchiveIterator(fh)
        offsets = [it.get_record_offset() for record in it if record.rec_type == "response"][: sum(sizes) + 1]
    data = src.read_bytes()
    folder.mkdir(parents=True)
    paths, k = [], 0
    for n, size in enumerate(sizes):
        paths.append(folder / f"slice-{n}.warc.gz")
        paths[-1].write_bytes(data[offsets[k] : offsets[k + size]])
        k += size
    return paths


def _runner_config(tmp_path: Path, name: str, inputs: list[Path], earlier: list[Path]):
    import yaml

    from curate.config import load_config

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "examples" / "sample.yaml").read_text())
    raw.pop("train", None)
    raw["input"]["paths"] = [str(p) for p in inputs]
    raw["output"]["path"] = str(tmp_path / name)
    raw["dedup"]["earlier"] = {"runs": [str(p) for p in earlier]}
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    return load_config(tmp_path / f"{name}.yaml")


def _rows(out: Path) -> dict[str, dict]:
    tables = [pq.read_table(p, columns=["id", "warc_path", "drop_reason", "dup_of"])
              for sub in ("shards", "rejected") for p in sorted((out / sub).glob("*.parquet"))]
    return {r["id"]: r for r in pa.concat_tables(tables).to_pylist()}


def test_a_second_run_over_new_and_already_seen_warcs_drops_every_seen_document_and_keeps_every_new_one(
        ray_session, shared_data, tmp_path):
    from curate.pipeline.runner import Runner

    a, b = _warc_slices(shared_data, tmp_path / "warcs", [25, 25])
    wget = shared_data / "warc" / "dolma-wget" / "sample-0000.warc.gz"
    Runner(_runner_config(tmp_path, "crawl-01", [a, wget], [])).run(num_cpus=2)
    Runner(_runner_config(tmp_path, "crawl-02", [b, a, wget], [tmp_path / "crawl-01"])).run(num_cpus=2)
    first, second = _rows(tmp_path / "crawl-01"), _rows(tmp_path / "crawl-02")
    kept_first = {i for i, r in first.items() if r["drop_reason"] is None}
    seen = [r for r in second.values() if r["warc_path"] != str(b)]
    new = [r for r in second.values() if r["warc_path"] == str(b)]
    assert len(kept_first) >= 20 and len(new) == 25
    for r in seen:  # kept last time: dropped as a copy of itself; rejected last time: rejected again, for the same reason
        expected = ("dup:earlier:crawl-01", r["id"]) if r["id"] in kept_first else (first[r["id"]]["drop_reason"], first[r["id"]]["dup_of"])
        assert (r["drop_reason"], r["dup_of"]) == expected, r["id"]
    assert not any((r["drop_reason"] or "").startswith("dup:earlier") for r in new)
    kept_new = {r["id"] for r in new if r["drop_reason"] is None}
    assert len(kept_new) >= 15
    folder = tmp_path / "crawl-02" / "dedup-index"
    index = pa.concat_tables([pq.read_table(folder / f) for f in json.loads((folder / "index.json").read_text())["files"]])
    assert set(index.column("id").to_pylist()) == kept_new
