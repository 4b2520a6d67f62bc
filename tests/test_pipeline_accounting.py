"""The end-of-run accounting compares counts made by independent parts of the run (the readers'
markers, each stage's rows in and out counted around it in its worker, each global stage's files,
the rows each shard write returned): a row lost or invented in any one place fails the run and
names that place."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate import schema
from curate.config import parse_config
from curate.pipeline import registry
from curate.pipeline.report import AccountingError, check_accounting
from curate.pipeline.runner import PART_STATS_KEY, StageGroup, merge_reports

STAGES = ["extract", "url", "language"]


def flow(*rows: tuple[int, int]) -> dict[str, dict]:
    return {name: {"in": i, "out": o, "active_in": i, "active_out": o} for name, (i, o) in zip(STAGES, rows)}


GLOBAL = {"dedup_exact": {"rows_in": 10, "rows_out": 10}}
WRITTEN = {"kept": 6, "rejected": 4, "planned_kept": 6, "planned_rejected": 4}


def test_counts_that_agree_pass():
    check_accounting(10, STAGES, flow((10, 10), (10, 10), (10, 10)), GLOBAL, WRITTEN)


@pytest.mark.parametrize(("place", "args"), [
    ("the reader", (11, STAGES, flow((10, 10), (10, 10), (10, 10)), GLOBAL, WRITTEN)),
    ("stage 'url'", (10, STAGES, flow((10, 10), (10, 9), (9, 9)), GLOBAL, WRITTEN)),
    ("before 'language'", (10, STAGES, flow((10, 10), (10, 10), (9, 9)), GLOBAL, WRITTEN)),
    ("global stage 'dedup_exact'", (10, STAGES, flow((10, 10), (10, 10), (10, 10)),
                                    {"dedup_exact": {"rows_in": 10, "rows_out": 9}}, WRITTEN)),
    ("the shard writer", (10, STAGES, flow((10, 10), (10, 10), (10, 10)), GLOBAL, {**WRITTEN, "kept": 5})),
])
def test_a_row_lost_in_one_place_fails_naming_it(place, args):
    with pytest.raises(AccountingError, match=place):
        check_accounting(*args)


def test_a_stage_that_removes_a_row_fails_in_its_worker_naming_it(shared_data, tmp_path):
    """A real per-document group run in-process, with one stage breaking the contract (it removes
    a row instead of marking it): the worker stops at once and names that stage."""
    cfg = parse_config({"input": {"paths": [str(shared_data / "warc/dolma-wget/sample-0000.warc.gz")]},
                        "output": {"path": str(tmp_path / "out")}})
    group = StageGroup(cfg, ["filters.url", "filters.language"], str(tmp_path / "docs"), registry.run_schema(cfg))
    lang = group.stages[1]
    honest = type(lang).__call__

    class Lossy(type(lang)):
        def __call__(self, batch: pa.Table) -> pa.Table:
            return honest(self, batch).slice(1)

    lang.__class__ = Lossy
    rows = [{schema.ID: str(i), schema.URL: f"https://example.org/{i}", schema.WARC_PATH: "a.warc.gz", schema.WARC_OFFSET: i,
             schema.TEXT: "The library committee met on Tuesday to talk about the budget for next year."} for i in range(5)]
    with pytest.raises(AccountingError, match=f"stage '{lang.name}': 5 rows in, 4 out"):
        group(schema.conform(schema.from_rows(rows), registry.run_schema(cfg)))
    assert not list((tmp_path / "docs").rglob("part-*.parquet"))  # nothing of the batch was written


def test_the_honest_group_reports_the_flow_the_check_reads(shared_data, tmp_path):
    cfg = parse_config({"input": {"paths": [str(shared_data / "warc/dolma-wget/sample-0000.warc.gz")]},
                        "output": {"path": str(tmp_path / "out")}})
    group = StageGroup(cfg, ["filters.url", "filters.language"], str(tmp_path / "docs"), registry.run_schema(cfg))
    rows = [{schema.ID: str(i), schema.URL: f"https://example.org/{i}", schema.WARC_PATH: "a.warc.gz", schema.WARC_OFFSET: i,
             schema.TEXT: "The library committee met on Tuesday to talk about the budget for next year."} for i in range(5)]
    group(schema.conform(schema.from_rows(rows), registry.run_schema(cfg)))
    footers = [json.loads(pq.read_schema(p).metadata[PART_STATS_KEY]) for p in (tmp_path / "docs").rglob("part-*.parquet")]
    merged = merge_reports(footers)
    names = [s.name for s in group.stages]
    assert [merged["flow"][n]["in"] for n in names] == [5, 5]
    check_accounting(5, names, merged["flow"], {}, {})
