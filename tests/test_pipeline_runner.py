"""The whole per-document and global pipeline on every WARC under ../shared/data plus broken
inputs: it completes, faults are counted per file, the funnel adds up, one record read through
two files is kept once, and a rerun reuses the finished work and rewrites identical shards.
The example as users run it, with its topic labeller and mixture, on one real WARC: every kept
row is labelled, the shards are split by topic, and the funnel adds up through both stages."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from curate import schema
from curate.config import Config, load_config
from curate.pipeline.report import AccountingError, build_stats
from curate.pipeline.runner import Runner

REPO = Path(__file__).resolve().parents[1]


def _broken_inputs(folder: Path, shared_data: Path) -> dict[str, Path]:
    """An empty file, text that is not gzip, and real-pages.warc.gz cut in the middle of a member."""
    folder.mkdir()
    real = (shared_data / "real-pages.warc.gz").read_bytes()
    files = {"empty": folder / "empty.warc.gz", "not_gzip": folder / "not-gzip.warc.gz", "cut": folder / "cut.warc.gz"}
    files["empty"].write_bytes(b"")
    files["not_gzip"].write_bytes(b"this is not a WARC file\n" * 10)
    files["cut"].write_bytes(real[: len(real) // 5 + 777])  # +777: inside a member, not on a boundary
    return files


def _sample_config(tmp_path: Path, inputs: list[str], labels: bool = True) -> Config:
    """examples/sample.yaml (filters and dedup as users run them), on these inputs, no training;
    without `labels`, no topic labeller nor the mixture that needs it."""
    raw = yaml.safe_load((REPO / "examples" / "sample.yaml").read_text())
    raw.pop("train", None)
    if not labels:
        raw["classifiers"]["topics"]["enabled"] = raw["mixture"]["enabled"] = False
    raw["input"]["paths"] = inputs
    raw["output"]["path"] = str(tmp_path / "out")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw))
    return load_config(tmp_path / "run.yaml")


def _table(folder: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("*.parquet"))])


def _funnel_adds_up(stats: dict) -> None:
    assert stats["read"] == stats["kept"] + stats["rejected"] + stats["errored"] == stats["rows_written"]
    funnel = stats["funnel"]
    for before, after in zip(funnel, funnel[1:]):  # each stage sees what the one before kept
        assert after["in"] == before["kept"]
    assert funnel[0]["in"] == stats["read"] and funnel[-1]["kept"] == stats["kept"]


@pytest.fixture(scope="module")
def sample_run(ray_session, shared_data, tmp_path_factory):
    """Every shared WARC plus the broken ones. The labeller is off here: labels are not what
    these tests check, and its one-CPU pool would leave extraction one core of the two (the
    labelled run is test_the_example_with_its_labeller_and_mixture_labels_every_kept_row)."""
    tmp = tmp_path_factory.mktemp("sample")
    broken = _broken_inputs(tmp / "broken", shared_data)
    cfg = _sample_config(tmp, [str(shared_data / "**" / "*.warc.gz"), str(tmp / "broken" / "*.warc.gz")], labels=False)
    result = Runner(cfg).run(num_cpus=2)
    return cfg, result, broken


def test_every_shared_warc_and_every_broken_file_runs_to_a_funnel_that_adds_up(sample_run, shared_data):
    _, result, broken = sample_run
    stats = result.stats
    shared = sorted(shared_data.rglob("*.warc.gz"))
    assert stats["inputs"] == len(shared) + len(broken)
    _funnel_adds_up(stats)
    assert stats["kept"] > 0 and stats["rejected"] > 0
    # Each broken file is one counted file error, next to Common Crawl's own truncated record.
    assert stats["file_errors"] == {"warc:empty_file": 1, "warc:not_warc": 1, "warc:truncated": 2}
    kept, rejected = _table(result.output / "shards"), _table(result.output / "rejected")
    assert kept.num_rows == stats["kept"] and rejected.num_rows == stats["rejected"] + stats["errored"]
    # Every drop sits under the stage that set it.
    by_stage = {f["stage"]: f["dropped"] for f in stats["funnel"]}
    assert set(by_stage["dedup_exact"]) <= {"dup:exact", "dup:url"} and set(by_stage["dedup_minhash"]) <= {"dup:minhash"}
    assert "unattributed" not in by_stage and "errors" not in by_stage


@pytest.mark.slow
def test_the_example_with_its_labeller_and_mixture_labels_every_kept_row(ray_session, shared_data, tmp_path):
    from curate.classifiers.topics import load_taxonomy

    cfg = _sample_config(tmp_path, [str(shared_data / "warc" / "dolma-wget" / "sample-0000.warc.gz")])
    assert cfg.classifiers.topics.enabled and cfg.mixture.enabled
    result = Runner(cfg).run(num_cpus=2)
    stats = result.stats
    _funnel_adds_up(stats)
    stages = [f["stage"] for f in stats["funnel"]]
    assert "topics" in stages and stages[-1] == "mixture"
    kept = _table(result.output / "shards")
    assert kept.num_rows == stats["kept"] > 0
    assert kept.column(schema.TOPIC).null_count == 0 and set(kept.column(schema.TOPIC).to_pylist()) <= set(load_taxonomy().topics)
    assert kept.column(schema.WEIGHT).null_count == 0
    # Shards by topic: each shard's rows share the topic its manifest entry names.
    for entry in result.manifest["shards"]:
        assert set(pq.read_table(result.output / entry["path"]).column(schema.TOPIC).to_pylist()) == {entry["partition"]}
    assert result.manifest["mixture"]["column"] == "topic" and (result.output / "mixture.png").exists()


def _complete_responses(warc: Path, cut_at: int) -> int:
    """Response records of `warc` that end before byte `cut_at`."""
    from warcio.archiveiterator import ArchiveIterator

    n = 0
    with open(warc, "rb") as fh:
        it = ArchiveIterator(fh)
        for record in it:
            record.content_stream().read()
            if record.rec_type == "response" and it.get_record_offset() + it.get_record_length() <= cut_at:
                n += 1
    return n


def test_records_before_the_cut_are_processed_and_a_record_read_twice_is_kept_once(sample_run, shared_data):
    _, result, broken = sample_run
    rows = pa.concat_tables([_table(result.output / "shards"), _table(result.output / "rejected")])
    by_file: dict[str, dict[str, str | None]] = {}
    for path, doc_id, reason in zip(rows.column("warc_path").to_pylist(), rows.column("id").to_pylist(),
                                    rows.column("drop_reason").to_pylist()):
        by_file.setdefault(Path(path).name, {})[doc_id] = reason
    cut, real = by_file["cut.warc.gz"], by_file["real-pages.warc.gz"]
    complete = [i for i, r in cut.items() if not (r or "").startswith("error:warc:")]
    assert len(complete) == _complete_responses(shared_data / "real-pages.warc.gz", broken["cut"].stat().st_size) > 50
    assert set(cut) <= set(real)  # the same records, so the same ids
    # A record read through both files is one document: it is never kept twice.
    assert [i for i in complete if cut[i] is None and real[i] is None] == []
    assert sum(1 for i in complete if cut[i] == "dup:exact" or real[i] == "dup:exact") > 0


def test_a_rerun_reuses_every_input_and_rewrites_the_same_shards(sample_run):
    cfg, first, _ = sample_run
    before = {p.name: p.read_bytes() for p in sorted((first.output / "shards").glob("*.parquet"))}
    again = Runner(cfg).run(num_cpus=2)
    assert again.processed_inputs == 0 and again.skipped_inputs == first.stats["inputs"]
    after = {p.name: p.read_bytes() for p in sorted((again.output / "shards").glob("*.parquet"))}
    assert after == before
    assert {k: again.stats[k] for k in ("read", "kept", "rejected", "errored")} == \
        {k: first.stats[k] for k in ("read", "kept", "rejected", "errored")}


def test_numbers_that_do_not_add_up_fail_the_run_loudly(sample_run):
    cfg = sample_run[0]
    report = {"uri": "x.warc.gz", "rows": 10, "records_by_type": {"response": 10}, "error": None}
    reasons = Counter({None: 7, "lang:fr": 2})  # one row lost somewhere
    with pytest.raises(AccountingError, match="read 10 != kept 7"):
        build_stats(cfg, [report], reasons, {"seconds": {}}, {}, 9, seconds={}, processed_inputs=1)
