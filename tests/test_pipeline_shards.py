"""Shards: fixed-size, in (warc_path, warc_offset) order, byte-identical however the rows were
split into files, kept and rejected rows apart, and nothing lost or invented."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import schema
from curate.pipeline.shards import plan_shards, write_shard, write_shards

REASONS = [None, None, None, "lang:fr", "dup:exact", "error:warc:truncated_record"]


def make_rows(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return schema.from_rows(
        {
            schema.ID: f"doc-{i:05d}",
            schema.WARC_PATH: f"/data/file-{i % 3}.warc.gz",
            schema.WARC_OFFSET: int(i * 1000),
            schema.TEXT: f"text number {i}, with some words" * int(rng.integers(1, 4)),
            schema.DOMAIN: f"site{i % 5}.org",
            schema.DROP_REASON: REASONS[int(rng.integers(len(REASONS)))],
        }
        for i in range(n)
    )


def split_into_files(table: pa.Table, folder: Path, cuts: list[int], seed: int) -> list[str]:
    """Shuffle the rows, then cut them into files at `cuts`: no file order, no row order."""
    perm = np.random.default_rng(seed).permutation(table.num_rows)
    shuffled = table.take(pa.array(perm))
    bounds = sorted({0, table.num_rows, *(c % (table.num_rows + 1) for c in cuts)})
    files = []
    for k, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        path = folder / f"part-{k}.parquet"
        pq.write_table(shuffled.slice(lo, hi - lo), path)
        files.append(str(path))
    return files


def write_all(files: list[str], out: Path, rows_per_shard: int, rejected_text: bool = True) -> dict[str, str]:
    for sub in ("shards", "rejected"):
        (out / sub).mkdir(parents=True)
    plan = plan_shards(files, out, rows_per_shard, "zstd", rejected_text)
    for spec in plan.kept + plan.rejected:
        write_shard(spec)
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*.parquet"))}


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 120), cuts=st.lists(st.integers(0, 500), max_size=6), seed=st.integers(0, 1000),
       rows_per_shard=st.integers(1, 50))
def test_shards_are_byte_identical_however_the_rows_were_split(tmp_path_factory, n, cuts, seed, rows_per_shard):
    rows = make_rows(n, seed)
    base = tmp_path_factory.mktemp("one")
    reference = write_all(split_into_files(rows, base, [], 0), base / "out", rows_per_shard)
    other = tmp_path_factory.mktemp("many")
    assert write_all(split_into_files(rows, other, cuts, seed + 1), other / "out", rows_per_shard) == reference


def test_shards_hold_every_row_once_in_crawl_order_and_fixed_size(tmp_path):
    rows = make_rows(101, 7)
    files = split_into_files(rows, tmp_path, [13, 40, 77], 3)
    out = tmp_path / "out"
    write_all(files, out, rows_per_shard=20, rejected_text=False)
    kept = [pq.read_table(p) for p in sorted((out / "shards").glob("*.parquet"))]
    rejected = [pq.read_table(p) for p in sorted((out / "rejected").glob("*.parquet"))]
    assert [t.num_rows for t in kept[:-1]] == [20] * (len(kept) - 1) and 0 < kept[-1].num_rows <= 20
    kept_t, rej_t = pa.concat_tables(kept), pa.concat_tables(rejected)
    assert kept_t.num_rows + rej_t.num_rows == rows.num_rows
    assert kept_t.column(schema.DROP_REASON).null_count == kept_t.num_rows
    assert rej_t.column(schema.DROP_REASON).null_count == 0
    assert rej_t.column(schema.TEXT).null_count == rej_t.num_rows  # rejected_text: false
    expected = sorted(zip(rows.column(schema.WARC_PATH).to_pylist(), rows.column(schema.WARC_OFFSET).to_pylist()))
    kept_ids = set(kept_t.column(schema.ID).to_pylist())
    keys = list(zip(kept_t.column(schema.WARC_PATH).to_pylist(), kept_t.column(schema.WARC_OFFSET).to_pylist()))
    assert keys == sorted(keys) and set(keys) <= set(expected)
    assert kept_ids.isdisjoint(rej_t.column(schema.ID).to_pylist())
    assert kept_t.schema == schema.DOC_SCHEMA


def test_plan_counts_reasons_and_ray_tasks_report_tokens_per_domain(tmp_path, ray_session):
    rows = make_rows(60, 11)
    files = split_into_files(rows, tmp_path, [30], 1)
    out = tmp_path / "out"
    for sub in ("shards", "rejected"):
        (out / sub).mkdir(parents=True)
    plan = plan_shards(files, out, 25, "zstd", True)
    reasons = rows.column(schema.DROP_REASON).to_pylist()
    assert plan.rows == 60 and dict(plan.reasons) == {r: reasons.count(r) for r in set(reasons)}
    entries = write_shards(plan.kept)
    assert [e["path"] for e in entries] == [f"shards/shard-{k:05d}.parquet" for k in range(len(plan.kept))]
    assert sum(e["rows"] for e in entries) == reasons.count(None)
    per_domain: dict[str, int] = {}
    for e in entries:
        for d, t in e["domain_tokens"]["tokens"].items():
            per_domain[d] = per_domain.get(d, 0) + t
    assert sum(per_domain.values()) == sum(e["tokens"] for e in entries) > 0


def test_shards_partitioned_by_topic_hold_one_topic_each_in_crawl_order(tmp_path):
    rows = make_rows(90, 5)
    topics = ["Science & Tech.", "Sports & Fitness", None]
    rows = schema.set_column(rows, schema.TOPIC, [topics[i % 3] for i in range(rows.num_rows)])
    files = split_into_files(rows, tmp_path, [20, 61], 2)
    out = tmp_path / "out"
    for sub in ("shards", "rejected"):
        (out / sub).mkdir(parents=True)
    plan = plan_shards(files, out, 10, "zstd", True, partition_by=schema.TOPIC)
    entries = [write_shard(spec) for spec in plan.kept]
    kept = rows.filter(pc.is_null(rows.column(schema.DROP_REASON)))
    assert sum(e["rows"] for e in entries) == kept.num_rows
    names = sorted(p.name for p in (out / "shards").glob("*.parquet"))
    assert {n.rsplit("-", 1)[0] for n in names} == {"shard-science-tech", "shard-sports-fitness", "shard-none"}
    for entry in entries:
        t = pq.read_table(out / entry["path"])
        assert set(t.column(schema.TOPIC).to_pylist()) == {entry.get("partition")}
        keys = list(zip(t.column(schema.WARC_PATH).to_pylist(), t.column(schema.WARC_OFFSET).to_pylist()))
        assert keys == sorted(keys) and t.num_rows <= 10
    assert kept.num_rows == sum(pq.read_metadata(out / "shards" / n).num_rows for n in names)


def test_an_id_shared_by_different_pages_is_made_distinct_and_a_record_read_twice_keeps_it(tmp_path):
    """Two inputs hold different pages under one WARC-Record-ID: every id in the output is unique,
    the first in crawl order keeps it, the other's new id depends only on where it was read. The
    same record read through two inputs (same content) keeps its id in both places."""
    from curate.pipeline.shards import distinct_id

    def row(doc_id: str, path: str, offset: int, text: str, reason: str | None = None) -> dict:
        return {schema.ID: doc_id, schema.WARC_PATH: path, schema.WARC_OFFSET: offset, schema.TEXT: text,
                schema.URL: f"https://example.org/{text[:4]}", schema.DROP_REASON: reason}

    rows = schema.from_rows([
        row("rec-1", "/a.warc.gz", 10, "first page"), row("rec-1", "/b.warc.gz", 99, "other page"),
        row("rec-2", "/a.warc.gz", 20, "same record"), row("rec-2", "/c.warc.gz", 5, "same record", "dup:exact"),
        row("rec-3", "/a.warc.gz", 30, "unique"),
    ])
    results = []
    for cuts, seed in (([], 0), ([2, 3], 4)):
        folder = tmp_path / f"run{seed}"
        folder.mkdir()
        write_all(split_into_files(rows, folder, cuts, seed), folder / "out", rows_per_shard=2)
        out = pa.concat_tables([pq.read_table(p) for p in sorted((folder / "out").rglob("*.parquet"))])
        results.append(sorted(zip(out.column("warc_path").to_pylist(), out.column("id").to_pylist())))
    assert results[0] == results[1]  # deterministic however the rows were split
    assert sorted(results[0]) == sorted([
        ("/a.warc.gz", "rec-1"), ("/a.warc.gz", "rec-2"), ("/a.warc.gz", "rec-3"),
        ("/b.warc.gz", distinct_id("rec-1", "/b.warc.gz", 99)), ("/c.warc.gz", "rec-2"),
    ])
    plan = plan_shards(split_into_files(rows, tmp_path, [], 0), tmp_path / "p", 2, "zstd", True)
    assert plan.ids_made_distinct == 1


def test_a_cut_copy_of_a_record_keeps_its_id(tmp_path):
    """The same record in a file cut short (no text: an error row) is that record, not another page."""
    rows = schema.from_rows([
        {schema.ID: "rec-9", schema.WARC_PATH: "/a.warc.gz", schema.WARC_OFFSET: 1, schema.URL: "https://example.org/p",
         schema.TEXT: "the page", schema.DROP_REASON: None},
        {schema.ID: "rec-9", schema.WARC_PATH: "/b-cut.warc.gz", schema.WARC_OFFSET: 1, schema.URL: "https://example.org/p",
         schema.TEXT: None, schema.DROP_REASON: "error:warc:truncated_record"},
    ])
    plan = plan_shards(split_into_files(rows, tmp_path, [], 0), tmp_path / "p", 2, "zstd", True)
    assert plan.ids_made_distinct == 0
