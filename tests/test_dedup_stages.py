"""Global dedup stages on Ray: bookkeeping, survivor rule, determinism, distributed components."""

# Ray-heavy: every test here shares the suite's one local Ray session.

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curate import schema
from curate.config import DedupConfig
from curate.pipeline.registry import build_stages
from curate.dedup.shuffle import PART, Out, connected_components, edge_table, labels_of, local_components, run_layer, split_by_part
from curate.dedup import shuffle, stages
from curate.dedup.earlier import EarlierRunsDedup
from curate.dedup.paragraph import ParagraphDedup
from curate.dedup.semantic import SemanticDedup
from curate.dedup.stages import ExactDedup, MinHashDedup
from curate.pipeline.global_stage import GlobalContext


def _articles(shared_data: Path, n: int) -> list[dict]:
    with gzip.open(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    return [r for r in rows if len(r["text"].split()) >= 200][:n]


def _edit(text: str, every: int) -> str:
    words = text.split()
    return " ".join("EDITED" if i % every == 0 else w for i, w in enumerate(words))


@pytest.fixture(scope="module")
def corpus(shared_data) -> pa.Table:
    """Real articles plus: case/space-changed exact copies, near copies (1 word in 100 edited,
    J ~ 0.9-0.93: missed by 14x8 LSH with odds ~1e-4 each; recall near the threshold is the curve test's job), a copy already rejected by a filter, and an empty text."""
    arts = _articles(shared_data, 40)
    rows = [dict(id=f"a{i:03d}", url=a["url"], text=a["text"]) for i, a in enumerate(arts)]
    rows += [dict(id=f"e{i:03d}", url=a["url"] + "#top", text="  " + a["text"].lower().replace(" ", "   "), wiki_score=0.9) for i, a in enumerate(arts[:8])]
    rows += [dict(id=f"n{i:03d}", url=f"https://mirror.example/{i}", text=_edit(a["text"], 100)) for i, a in enumerate(arts[10:20])]
    rows += [dict(id="r000", text=arts[0]["text"], drop_reason="lang:fr"), dict(id="z000", text="")]
    return schema.from_rows(rows)


def _run(ray_session, table: pa.Table, cfg: DedupConfig, blocks: int, num_cpus: int,
         files: list[str] | None = None) -> tuple[pa.Table, list[dict]]:
    """Run the stages on `table` (as `blocks` blocks), or, as the runner does, on a read of the
    Parquet `files` holding it, with the stages told the files."""
    import ray.data

    ds = ray.data.read_parquet(files, schema=schema.DOC_SCHEMA) if files else ray.data.from_arrow(table).repartition(blocks).materialize()
    stats = []
    for stage in build_stages(cfg, "global", group="dedup"):
        ctx = GlobalContext(work_dir=Path(tempfile.mkdtemp()), num_cpus=num_cpus, input_files=files or [])
        ds = stage.run(ds, ctx)
        stats.append(ctx.stats)
        files = None  # later stages read the previous stage's output
    out = pa.concat_tables(ray.get(ds.to_arrow_refs()))
    return out.sort_by("id"), stats


@pytest.fixture(scope="module")
def result(ray_session, corpus):
    return _run(ray_session, corpus, DedupConfig(), blocks=5, num_cpus=2)


def _by_id(t: pa.Table) -> dict[str, dict]:
    return {r["id"]: r for r in t.select(["id", "drop_reason", "dup_of", "minhash_cluster"]).to_pylist()}


def test_every_row_comes_out_once_with_the_document_schema(result, corpus):
    out, _ = result
    assert out.schema == schema.DOC_SCHEMA
    assert sorted(out.column("id").to_pylist()) == sorted(corpus.column("id").to_pylist())


def test_exact_copies_keep_the_highest_scored_document(result):
    rows = _by_id(result[0])
    for i in range(8):
        # the copy has wiki_score 0.9, the original none: the copy survives
        assert rows[f"a{i:03d}"]["drop_reason"] == "dup:exact" and rows[f"a{i:03d}"]["dup_of"] == f"e{i:03d}"
        assert rows[f"e{i:03d}"]["drop_reason"] is None


def test_near_copies_are_dropped_as_minhash_duplicates_of_the_smaller_id(result):
    rows = _by_id(result[0])
    for i in range(10):
        orig, near = rows[f"a{i + 10:03d}"], rows[f"n{i:03d}"]
        assert orig["drop_reason"] is None and near["drop_reason"] == "dup:minhash" and near["dup_of"] == f"a{i + 10:03d}"
        assert orig["minhash_cluster"] is not None and orig["minhash_cluster"] == near["minhash_cluster"]


def test_rejected_and_unrelated_rows_are_untouched(result):
    rows = _by_id(result[0])
    assert rows["r000"] == {"id": "r000", "drop_reason": "lang:fr", "dup_of": None, "minhash_cluster": None}
    assert rows["z000"]["drop_reason"] is None
    kept = [r for r in rows.values() if r["drop_reason"] is None]
    assert len(kept) == 40 - 8 + 8 + 1  # originals minus exact-dropped, their surviving copies, the empty text


def test_stats_count_duplicates_clusters_and_seconds(result):
    exact, fuzzy = result[1][:2]
    assert exact["duplicates_exact"] == 8
    assert fuzzy["duplicates_minhash"] == 10
    assert fuzzy["cluster_size_histogram"] == {"2": 10}
    assert fuzzy["candidate_pairs"] >= fuzzy["verified_pairs"] >= 10 and fuzzy["component_rounds"] >= 1
    assert set(fuzzy["step_seconds"]) == {"read", "signatures", "buckets", "components", "survivors", "apply"}


_ONE_WORKER = """
import sys, tempfile
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq, ray
from curate.config import DedupConfig
from curate.pipeline.registry import build_stages
from curate.pipeline.global_stage import GlobalContext
ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
ray.data.DataContext.get_current().enable_progress_bars = False
ds = ray.data.from_arrow(pq.read_table(sys.argv[1])).materialize()
for stage in build_stages(DedupConfig(), "global", group="dedup"):
    ds = stage.run(ds, GlobalContext(work_dir=Path(tempfile.mkdtemp()), num_cpus=1))
pq.write_table(pa.concat_tables(ray.get(ds.to_arrow_refs())).sort_by("id"), sys.argv[2])
"""


def test_same_result_with_one_or_many_workers_and_on_rerun(ray_session, corpus, result, tmp_path):
    """A Ray of 1 CPU (1 worker: a separate cluster), this suite's 2-CPU Ray with other block,
    partition counts and row order, a rerun, and a read of Parquet files with small row groups
    (the stage reads them itself): the same rows, decisions and clusters."""
    pq.write_table(corpus, tmp_path / "in.parquet")
    proc = subprocess.Popen([sys.executable, "-c", _ONE_WORKER, str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # runs while this suite's Ray works
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stages, "_UNIT_ROWS", 5)  # 14 units of <= 5 rows routed back through 4 unit groups
        mp.setattr(stages, "_GROUPS_PER_PARTITION", 0)
        mp.setattr(stages, "_MIN_GROUPS", 4)
        many, _ = _run(ray_session, corpus.take(np.random.default_rng(0).permutation(corpus.num_rows)), DedupConfig(), blocks=7,
                       num_cpus=4)
    again, _ = _run(ray_session, corpus, DedupConfig(), blocks=5, num_cpus=2)
    paths = []
    for k, rows in enumerate(np.array_split(np.arange(corpus.num_rows), 2)):  # the runner's way in: Parquet files
        pq.write_table(corpus.take(rows), tmp_path / f"part-{k}.parquet", row_group_size=17)
        paths.append(str(tmp_path / f"part-{k}.parquet"))
    from_files, _ = _run(ray_session, corpus, DedupConfig(), blocks=0, num_cpus=2, files=paths)
    assert many.equals(result[0]) and again.equals(result[0]) and from_files.equals(result[0])
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert pq.read_table(tmp_path / "out.parquet").equals(result[0])


def test_a_split_wider_than_the_fanout_makes_linear_objects_and_the_same_partitions(ray_session):
    """5 tasks splitting into 10 partitions with a fan-out of 4 make 5 x 4 objects (not 5 x 10),
    and each next task still sees exactly its partition's rows, in producer order."""
    import ray

    tables = [pa.table({"x": np.arange(40) + 100 * t, PART: np.arange(40) % 10}) for t in range(5)]
    (split,) = run_layer(lambda t: t, [[[ray.put(t)]] for t in tables], (10,), fanout=4)
    assert len(split.refs()) == 5 * 4
    (gathered,) = run_layer(lambda t: t, [[split.column(p)] for p in range(10)], (None,), fanout=4)
    for p, got in enumerate(gathered.get()):
        assert got.column_names == ["x"]
        assert got.column("x").to_pylist() == [x for t in tables for x in t.column("x").to_pylist() if x % 10 == p]


def test_dedup_through_pieces_of_several_partitions_decides_the_same(ray_session, corpus, result):
    """8 partitions (4 CPUs) through a fan-out of 3: every shuffle of exact and MinHash dedup
    goes through ranged pieces, and every decision equals the one-piece-per-partition run's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shuffle, "SHUFFLE_FANOUT", 3)
        ranged, _ = _run(ray_session, corpus, DedupConfig(), blocks=5, num_cpus=4)
    assert ranged.equals(result[0])


def test_url_dedup_is_optional_and_uses_its_own_reason(ray_session):
    t = schema.from_rows([
        dict(id="b", url="https://www.site.org/page/", text="first text"),
        dict(id="a", url="http://site.org/page#x", text="second text"),
        dict(id="c", url="https://site.org/other", text="third text"),
    ])
    cfg = DedupConfig.model_validate({"exact": {"url": True}, "minhash": {"enabled": False}})
    out, stats = _run(ray_session, t, cfg, blocks=2, num_cpus=2)
    assert out.column("drop_reason").to_pylist() == [None, "dup:url", None]
    assert out.column("dup_of").to_pylist() == [None, "a", None]
    assert stats[0]["duplicates_url"] == 1


@pytest.mark.parametrize("method", ["exact", "minhash"])
def test_one_record_read_from_two_files_keeps_the_same_copy_however_rows_are_split(ray_session, shared_data, method):
    """The same WARC record (same id) arriving through two input files: one copy survives, and
    always the same one (survivor ties on id fall to the place in the crawl, not to row order)."""
    arts = _articles(shared_data, 6)
    rows = [dict(id=f"r{i}", url=a["url"], text=a["text"], warc_path=f"s3://crawl/{name}.warc.gz", warc_offset=1000 * i)
            for name in ("copy-b", "copy-a") for i, a in enumerate(arts)]
    table = schema.from_rows(rows)
    off = {"exact": {"enabled": False}, "minhash": {"enabled": False}}
    cfg = DedupConfig.model_validate({**off, method: {"enabled": True}})
    runs = []
    for seed, blocks in ((0, 1), (1, 3), (2, 5)):
        shuffled = table.take(np.random.default_rng(seed).permutation(table.num_rows))
        out, _ = _run(ray_session, shuffled, cfg, blocks=blocks, num_cpus=2)
        kept = out.filter(pc.is_null(out.column("drop_reason")))
        assert sorted(kept.column("id").to_pylist()) == [f"r{i}" for i in range(6)]  # one copy of each
        dropped = out.filter(pc.is_valid(out.column("drop_reason")))
        assert set(dropped.column("drop_reason").to_pylist()) == {f"dup:{method}"}
        runs.append(sorted(zip(kept.column("id").to_pylist(), kept.column("warc_path").to_pylist())))
    assert runs[0] == runs[1] == runs[2]


def _components(ray_session, u: np.ndarray, v: np.ndarray, num_partitions: int) -> tuple[dict[int, int], int]:
    """Run the distributed components on edges (u, v) given as 3 producer blocks; node -> label."""
    import ray

    pieces = []
    for chunk in np.array_split(np.arange(u.size), 3):
        parts = split_by_part(edge_table(u[chunk], v[chunk], num_partitions, both=True), num_partitions)
        pieces.append([ray.put(t) for t in parts])
    out, rounds = connected_components(Out(pieces), num_partitions, max_iterations=40)
    got: dict[int, int] = {}
    for p in range(num_partitions):
        node, label = labels_of(pa.concat_tables(ray.get(out.column(p))))
        for n, lab in zip(node.tolist(), label.tolist()):
            assert got.setdefault(n, lab) == lab
    return got, rounds


def _union_find(u: np.ndarray, v: np.ndarray) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in zip(u.tolist(), v.tolist()):
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    return {n: find(n) for n in set(u.tolist()) | set(v.tolist())}


def test_components_match_union_find_on_a_long_path_and_random_edges(ray_session):
    rng = np.random.default_rng(5)
    u, v = rng.integers(0, 300, 400), rng.integers(0, 300, 400)
    chain = np.arange(1000, 1060)  # a long path: the worst case for label propagation
    u, v = np.concatenate([u, chain[:-1]]), np.concatenate([v, chain[1:]])
    got, rounds = _components(ray_session, u, v, num_partitions=3)
    assert got == _union_find(u, v)
    assert rounds < 40


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=60), st.integers(1, 4))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_components_match_union_find_on_random_graphs(ray_session, edges, num_partitions):
    """Any graph, any partition count (self-loops are no edges: no document pairs with itself)."""
    u, v = (np.array(x, np.int64) for x in zip(*edges))
    got, _ = _components(ray_session, u, v, num_partitions)
    proper = u != v
    assert got == (_union_find(u[proper], v[proper]) if proper.any() else {})


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=50))
@settings(max_examples=40, deadline=None)
def test_local_components_are_stars_on_the_smallest_node(edges):
    u, v = (np.array(x, np.int64) for x in zip(*edges)) if edges else (np.zeros(0, np.int64),) * 2
    node, root = local_components(u, v)
    truth = _union_find(u, v)
    assert dict(zip(node.tolist(), root.tolist())) == {n: r for n, r in truth.items() if n != r}


def test_config_is_strict_and_stages_come_in_order():
    with pytest.raises(ValidationError, match="bandz"):
        DedupConfig.model_validate({"minhash": {"bandz": 3}})
    stages = build_stages(DedupConfig(), "global", group="dedup")
    assert [type(s) for s in stages] == [ExactDedup, MinHashDedup, ParagraphDedup, EarlierRunsDedup]
    off = {k: {"enabled": False} for k in ("exact", "minhash", "paragraph", "earlier")}
    assert build_stages(DedupConfig.model_validate(off), "global", group="dedup") == []
    assert [type(s) for s in build_stages(DedupConfig.model_validate({**off, "semantic": {"enabled": True}}), "global",
                                          group="dedup")] == [SemanticDedup]
    assert DedupConfig().minhash.num_perm == 112


def _bucket_rows(sig: np.ndarray, nodes: np.ndarray, cfg) -> pa.Table:
    """The band rows `_sign` emits for these signatures: one per (document, band)."""
    from curate.dedup.minhash import band_keys, sketch

    keys = band_keys(sig, cfg.num_bands, cfg.rows_per_band).reshape(-1)
    sk = np.repeat(sketch(sig), cfg.num_bands, axis=0)
    return pa.table({"key": keys, "node": np.repeat(nodes, cfg.num_bands),
                     "sketch": pa.FixedSizeBinaryArray.from_buffers(pa.binary(cfg.num_perm), keys.size, [None, pa.py_buffer(sk.tobytes())])})


def test_verification_finds_a_similar_pair_whose_bucket_anchor_is_unlike_both():
    """The B-C shape: B and C (J = 99/112) meet only in band 0's bucket, whose smallest node A shares
    band 0 with them and nothing else. Verifying against the anchor alone (verify_leaders=1, the
    old rule) finds none of these pairs; verifying within the bucket finds all, and never joins A."""
    from curate.dedup.config import MinHashConfig

    rng = np.random.default_rng(3)
    triples = 200
    b = rng.integers(0, 2**32, (triples, 112), dtype=np.uint32)
    c = b.copy()
    c[:, 8::8] ^= np.uint32(0x5A5A5A5A)  # one slot changed in every band but band 0
    a = rng.integers(0, 2**32, (triples, 112), dtype=np.uint32)
    a[:, :8] = b[:, :8]
    sig = np.concatenate([a, b, c])
    nodes = np.concatenate([np.arange(triples) * 3, np.arange(triples) * 3 + 1, np.arange(triples) * 3 + 2]).astype(np.int64)
    recall = {}
    for leaders in (1, 1000):
        cfg = MinHashConfig(verify_leaders=leaders)
        edges, counts = stages._buckets(_bucket_rows(sig, nodes, cfg), cfg, 1)
        root = dict(zip(edges.column("u").to_pylist(), edges.column("v").to_pylist()))
        root = {n: min(n, r) for n, r in root.items()}
        recall[leaders] = np.mean([root.get(3 * i + 1, 3 * i + 1) == root.get(3 * i + 2, 3 * i + 2) for i in range(triples)])
        assert not any(3 * i in root for i in range(triples))  # A is joined to nothing
    assert recall == {1: 0.0, 1000: 1.0}


def test_exact_digests_and_node_ids_are_vectorized_and_a_function_of_the_string():
    from curate.dedup.shuffle import node_ids
    from curate.dedup.text import digest_strings

    values = pa.array(["a", "b", "a", "", None, "ab"], pa.large_string())
    d = digest_strings(values)
    assert d.shape == (6, 2) and (d[0] == d[2]).all() and (d[3] == d[4]).all()  # null hashes as empty
    assert len({tuple(x) for x in d[[0, 1, 3, 5]].tolist()}) == 4
    assert np.array_equal(node_ids(values), np.array(d[:, 0]).view(np.int64))
