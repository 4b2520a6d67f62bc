"""Memory flat in input size: past a few files the shard planner's driver never reads a row
(the counting runs in Ray tasks, and what it keeps is a few segments per input), and per-domain
counts are bounded whatever the number of domains."""

from __future__ import annotations

import hashlib
from collections import Counter

import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.pipeline import shards
from curate.pipeline.domain_counts import DomainCounts
from test_pipeline_shards import make_rows, split_into_files


def _plan_and_write(files: list[str], out, rows_per_shard: int) -> tuple[shards.ShardPlan, dict[str, str]]:
    """Plan and write the shards of `files` in this process; (plan, file -> sha256)."""
    for sub in ("shards", "rejected"):
        (out / sub).mkdir(parents=True)
    plan = shards.plan_shards(files, out, rows_per_shard, "zstd", True)
    for spec in plan.kept + plan.rejected:
        shards.write_shard(spec)
    return plan, {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*.parquet"))}


def test_the_plan_reads_no_row_on_the_driver_and_keeps_segments_not_rows(ray_session, tmp_path, monkeypatch):
    rows = make_rows(300, 3)
    files = split_into_files(rows, tmp_path, [50, 120, 200, 260], 1)

    def no_reading(*args, **kwargs):
        raise AssertionError("the driver read a Parquet file's rows")

    monkeypatch.setattr(shards, "INLINE_MAX_FILES", 3)  # these 5 files are a run past the in-driver size
    monkeypatch.setattr(shards.pq, "read_table", no_reading)  # the driver's module only: tasks import their own
    plan = shards.plan_shards(files, tmp_path / "out", 40, "zstd", True)
    monkeypatch.undo()
    assert plan.rows == 300 and plan.reasons == Counter(rows.column("drop_reason").to_pylist())
    inputs = len(set(rows.column("warc_path").to_pylist()))
    specs = plan.kept + plan.rejected
    # What the driver holds: at most one segment per input and shard boundary, whatever the rows.
    assert sum(len(s.segments) for s in specs) <= 2 * inputs + len(specs)
    for sub in ("shards", "rejected"):
        (tmp_path / "out" / sub).mkdir(parents=True)
    entries = shards.write_shards(specs)
    assert sum(e["rows"] for e in entries) == 300
    written = pq.read_table(tmp_path / "out" / "shards")
    assert written.num_rows == plan.reasons[None]


def test_a_plan_in_ray_tasks_writes_the_bytes_of_a_plan_in_process(ray_session, tmp_path, monkeypatch):
    rows = make_rows(150, 8)
    files = split_into_files(rows, tmp_path, [30, 90], 2)
    digests = []
    # Ray tasks however small the run, then the driver however large: the same bytes.
    for where, inline_up_to in (("ray", -1), ("process", 10**9)):
        monkeypatch.setattr(shards, "INLINE_MAX_FILES", inline_up_to)
        monkeypatch.setattr(shards, "INLINE_MAX_ROWS", inline_up_to)
        digests.append(_plan_and_write(files, tmp_path / where, 25)[1])
    assert digests[0] and digests[0] == digests[1]


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.tuples(st.integers(0, 400), st.integers(1, 1000)), max_size=300),
       capacity=st.integers(1, 40), chunk=st.integers(1, 50))
def test_domain_counts_stay_bounded_keep_the_total_and_never_overcount(counts, capacity, chunk):
    """Added in chunks (as shards come back): at most 2 x capacity domains held; the total is exact;
    each listed count is a lower bound within tail_tokens of the truth; exact without a tail."""
    truth: Counter = Counter()
    merged = DomainCounts(capacity=capacity)
    for lo in range(0, len(counts), chunk):
        part = DomainCounts(capacity=capacity)
        part.add_pairs([f"d{d}.org" for d, _ in counts[lo:lo + chunk]], [t for _, t in counts[lo:lo + chunk]])
        merged.merge(part.to_json())
        assert len(merged.tokens) <= 2 * capacity
        for d, t in counts[lo:lo + chunk]:
            truth[f"d{d}.org"] += t
    assert merged.total == sum(truth.values())
    top = merged.top()
    assert len(top) <= capacity
    for d, t in top.items():
        assert truth[d] - merged.tail_tokens <= t <= truth[d]
    if merged.tail_tokens == 0:
        assert top == dict(sorted(truth.items(), key=lambda kv: (-kv[1], kv[0]))[:capacity])


def test_the_largest_domains_survive_a_long_tail():
    counts = DomainCounts(capacity=10)
    for k in range(50):  # 50 shards, each with the same 5 big sites and 200 one-off small ones
        counts.add_pairs([f"big{i}.org" for i in range(5)] + [f"small{k}-{i}.org" for i in range(200)], [1000] * 5 + [1] * 200)
    assert set(counts.top()) >= {f"big{i}.org" for i in range(5)}
    assert all(counts.top()[f"big{i}.org"] == 50_000 for i in range(5))
    assert counts.total == 50 * (5000 + 200)


def test_a_shard_reads_only_the_part_files_its_rows_are_in(tmp_path):
    """Part files of an input hold disjoint offset ranges (as the runner writes them): a shard's
    segment names just the parts holding its rows, and the shards are byte-identical to those
    of the same rows in one file."""
    import pyarrow.compute as pc

    rows = make_rows(120, 4)
    parts = []
    for path in sorted(set(rows.column("warc_path").to_pylist())):
        one_input = rows.filter(pc.equal(rows.column("warc_path"), path)).sort_by("warc_offset")
        for k, lo in enumerate(range(0, one_input.num_rows, 4)):
            parts.append(str(tmp_path / f"{path.rsplit('/', 1)[1]}-part-{k:03d}.parquet"))
            pq.write_table(one_input.slice(lo, 4), parts[-1])
    pq.write_table(rows, tmp_path / "all.parquet")
    written = []
    for name, files in (("parts", parts), ("one", [str(tmp_path / "all.parquet")])):
        plan, digests = _plan_and_write(files, tmp_path / name, 10)
        written.append(digests)
        if name == "parts":  # a segment names each part holding its rows, not each of its input's 10 parts
            segments = [seg for spec in plan.kept + plan.rejected for seg in spec.segments]
            for seg in segments:
                held = [pq.read_table(f, columns=["warc_path"]).column(0).to_pylist() for _, f in seg.files]
                assert all(paths == [seg.warc_path] * len(paths) for paths in held)
            assert sum(len(seg.files) for seg in segments) <= 0.7 * 10 * len(segments)
    assert written[0] == written[1]
