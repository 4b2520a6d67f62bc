"""The bundled trainer, on shards built from real text (Wikipedia + Common Crawl documents)."""

from __future__ import annotations

import gzip
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curate.config import ConfigError, parse_config
from curate.schema import from_rows
from curate.train.config import OptimConfig, TrainConfig
from curate.train.data import WEIGHT_COLUMN, PackedStream, RowFilter, StepPlan, TokenPool, expand, read_documents
from curate.train.loop import Mixture, TrainInputs, read_mixture, resolve_inputs, train
from curate.train.schedule import LRSchedule
from curate.train.tokenizer import EOS, load_tokenizer, train_bpe

WIKI_DOMAIN = "en.wikipedia.org"
sys.path.insert(0, str(Path(__file__).parent))  # wiki_server, the S3 server fixture

from test_pipeline_storage import BUCKET, s3_endpoint  # noqa: E402,F401  (a fixture: moto on 127.0.0.1)


def _real_rows(shared_data: Path) -> list[dict]:
    """~300 Wikipedia articles and the CC documents, as shard rows with domain and a score."""
    rows = []
    with gzip.open(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", "rt") as fh:
        for i, line in enumerate(fh):
            if i >= 600:
                break
            if i % 2:  # odd articles are the held-out split
                continue
            art = json.loads(line)
            rows.append({"text": art["text"][:4000], "id": f"wiki-{art['id']}", "url": art["url"], "domain": WIKI_DOMAIN,
                         "wiki_score": 0.9})
    for path in sorted((shared_data / "cc-text" / "dolma").glob("*.jsonl.gz")):
        if "expected" in path.name:
            continue
        with gzip.open(path, "rt") as fh:
            for j, line in enumerate(fh):
                doc = json.loads(line)
                rows.append({"text": doc["text"][:4000], "id": f"{path.stem}-{j}", "url": doc.get("url") or None,
                             "domain": "commoncrawl.example", "wiki_score": 0.1})
    return rows


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, shared_data: Path) -> Path:
    """A curation run's output as the runner writes it: shards/*.parquet + manifest.json."""
    root = tmp_path_factory.mktemp("run")
    (root / "shards").mkdir()
    rows = _real_rows(shared_data)
    for k in range(3):
        pq.write_table(from_rows(rows[k::3]), root / "shards" / f"shard-{k:05d}.parquet")
    manifest = {"shards": [], "mixture": {"column": "domain", "weights": {WIKI_DOMAIN: 0.6, "commoncrawl.example": 0.4}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    held_out = root / "heldout.jsonl"
    with gzip.open(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", "rt") as fh, open(held_out, "w") as out:
        for i, line in enumerate(fh):
            if i % 2 and i < 200:
                out.write(line)
    return root


def tiny(run_dir: Path, out: Path, **overrides) -> tuple[TrainConfig, TrainInputs]:
    spec = {
        "max_steps": 12, "seq_len": 64, "micro_batch_size": 4, "grad_accum": 2,
        "tokenizer": {"vocab_size": 512, "sample_docs": 200},
        "model": {"preset": "tiny", "hidden_size": 64, "num_layers": 2},
        "optim": {"lr": 3e-3, "warmup_steps": 3},
        "eval": {"paths": [str(run_dir / "heldout.jsonl")], "interval": 6, "max_sequences": 16},
        "checkpoint_interval": 4, "log_interval": 2, "progress": False, "output_dir": str(out),
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    cfg = TrainConfig.model_validate(spec)
    return cfg, resolve_inputs(cfg, run_dir)


def losses(model_dir: Path) -> dict[int, float]:
    recs = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if "loss" in r}


# ----------------------------------------------------------------------------- config


def test_train_section_is_strict_and_optional():
    base = {"input": {"paths": ["x.warc.gz"]}, "output": {"path": "out"}}
    assert parse_config(base).train is None
    cfg = parse_config({**base, "train": {"tokens": 1000, "model": {"preset": "125m"}}})
    assert cfg.train.model.preset == "125m" and cfg.train.optim.schedule == "cosine"
    with pytest.raises(ConfigError, match="train.optim.learning_rate"):
        parse_config({**base, "train": {"tokens": 1000, "optim": {"learning_rate": 1.0}}})
    with pytest.raises(ConfigError, match="budget"):
        parse_config({**base, "train": {}})
    with pytest.raises(ValidationError, match="needs a pool"):
        TrainConfig.model_validate({"tokens": 10, "anneal": {"fraction": 0.2}})


def test_defaults_point_into_the_run_output(tmp_path):
    cfg = TrainConfig.model_validate({"tokens": 100})
    inputs = resolve_inputs(cfg, tmp_path)
    assert inputs.data_paths == [str(tmp_path / "shards" / "*.parquet")]
    assert inputs.manifest == tmp_path / "manifest.json" and inputs.output_dir == tmp_path / "model"


# ----------------------------------------------------------------------------- schedule


@settings(max_examples=60, deadline=None)
@given(total=st.integers(5, 400), warmup=st.integers(0, 50), frac=st.floats(0, 0.5), kind=st.sampled_from(["cosine", "wsd"]))
def test_lr_schedule_warms_up_stays_bounded_and_anneals_linearly_to_zero(total, warmup, frac, kind):
    anneal = min(round(total * frac), total - 1)
    sched = LRSchedule.from_config(OptimConfig(lr=1e-3, warmup_steps=warmup, schedule=kind), total, anneal)
    lrs = [sched(s) for s in range(total)]
    assert all(0 < lr <= 1e-3 + 1e-15 for lr in lrs)
    for s in range(1, min(sched.warmup_steps, total)):
        assert lrs[s] > lrs[s - 1]
    if anneal >= 2:
        tail = np.array(lrs[total - anneal :])
        steps = np.diff(tail)
        assert np.all(steps < 0) and np.allclose(steps, steps[0])  # linear decay...
        assert math.isclose(tail[-1] + steps[0], 0.0, abs_tol=1e-12)  # ...that reaches zero next step


def test_wsd_without_anneal_is_stable_then_decays():
    sched = LRSchedule.from_config(OptimConfig(lr=1.0, warmup_steps=2, schedule="wsd", wsd_decay_fraction=0.5), 10, 0)
    assert [sched(s) for s in range(2, 5)] == [1.0, 1.0, 1.0]
    assert sched(9) < sched(7) < sched(5) <= 1.0


# ----------------------------------------------------------------------------- tokenizer + data


def test_bpe_is_lossless_on_real_text_and_saves_for_autotokenizer(run_dir, tmp_path):
    from transformers import AutoTokenizer

    docs = read_documents(expand([str(run_dir / "shards" / "*.parquet")]))
    texts = docs["text"].to_pylist()
    tok = train_bpe(texts[:100], vocab_size=600)
    assert len(tok) <= 600 and tok.eos_token == EOS
    sample = texts[150][:2000] + " naïve café — 東京"
    assert tok.decode(tok(sample)["input_ids"]) == sample  # byte-level: nothing lost
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(sample)["input_ids"] == tok(sample)["input_ids"]
    assert load_tokenizer(tmp_path)(sample)["input_ids"] == tok(sample)["input_ids"]


@pytest.fixture(scope="module")
def pool(run_dir, tmp_path_factory) -> TokenPool:
    docs = read_documents(expand([str(run_dir / "shards" / "*.parquet")]), group_column="domain")
    tok = train_bpe(docs["text"].to_pylist()[:80], vocab_size=400)
    folder = tmp_path_factory.mktemp("pool")
    built = TokenPool.build(folder, "k1", docs, tok)
    built.eos = tok.convert_tokens_to_ids(EOS)
    built.tok = tok
    return built


def test_pool_holds_every_document_followed_by_eos(pool):
    assert pool.num_docs > 150 and set(pool.groups) == {WIKI_DOMAIN, "commoncrawl.example"}
    assert all(pool.document(d)[-1] == pool.eos and pool.eos not in pool.document(d)[:-1] for d in range(pool.num_docs))
    first = pool.document(0)[:-1]
    assert pool.tok.decode(first.tolist()).startswith(pool.tok.decode(first[:5].tolist()))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), i=st.integers(0, 3000))
def test_packed_stream_is_deterministic_and_prefix_stable(pool, seed, i):
    a = PackedStream(pool, 64, seed)
    b = PackedStream(pool, 64, seed)
    b.sequence(i + 50)  # generating further first must not change earlier sequences
    assert np.array_equal(a.sequence(i), b.sequence(i))
    assert a.sequence(i).shape == (64,)


def test_packed_stream_without_shuffle_is_the_pool_in_order(pool):
    s = PackedStream(pool, 32, seed=0, shuffle=False)
    flat = np.concatenate([s.sequence(k) for k in range(10)])
    in_order = np.concatenate([pool.document(d) for d in range(40)])
    assert np.array_equal(flat, in_order[:320])


def test_mixture_weights_set_the_token_shares(pool):
    weights = {WIKI_DOMAIN: 0.25, "commoncrawl.example": 0.75}
    s = PackedStream(pool, 64, seed=3, weights=weights)
    s.sequence(4000)
    order = s._order[0]
    tokens = pool.lengths[order]
    cc = pool.groups.index("commoncrawl.example")
    share = tokens[pool.group_ids[order] == cc].sum() / tokens.sum()
    assert abs(share - 0.75) < 0.05
    with pytest.raises(ValueError, match="no domain in common"):
        PackedStream(pool, 64, 0, weights={"nowhere.org": 1.0})


@given(world=st.sampled_from([1, 2, 4]), accum=st.integers(1, 3), step=st.integers(0, 30))
def test_ranks_split_each_global_batch_without_overlap(world, accum, step):
    """World size only changes who reads which sequences, not what a step trains on."""
    mb = 8 // world
    plan = StepPlan(total_steps=40, anneal_steps=5, micro_batch_size=mb, grad_accum=accum, world_size=world)
    single = StepPlan(total_steps=40, anneal_steps=5, micro_batch_size=8, grad_accum=accum, world_size=1)
    got = sorted(plan.locate(step, m, r)[1] + k for m in range(accum) for r in range(world) for k in range(mb))
    want = sorted(single.locate(step, m, 0)[1] + k for m in range(accum) for k in range(8))
    assert got == want
    assert plan.locate(step, 0, 0)[0] == (step >= 35)


def test_anneal_row_filter_selects_by_score_and_domain(run_dir):
    files = expand([str(run_dir / "shards" / "*.parquet")])
    all_docs = read_documents(files)
    hq = read_documents(files, row_filter=RowFilter("wiki_score", 0.5))
    cc = read_documents(files, row_filter=RowFilter(None, None, ("commoncrawl.example",)))
    assert 0 < cc.num_rows < hq.num_rows < all_docs.num_rows
    assert hq.num_rows + cc.num_rows == all_docs.num_rows


def test_manifest_mixture_is_optional(run_dir, tmp_path):
    assert read_mixture(run_dir / "manifest.json") == Mixture("domain", {WIKI_DOMAIN: 0.6, "commoncrawl.example": 0.4})
    (tmp_path / "m.json").write_text(json.dumps({"shards": [], "mixture": {}}))
    assert read_mixture(tmp_path / "m.json") is None and read_mixture(tmp_path / "absent.json") is None


def _weighted_run(run_dir: Path, root: Path, targets: dict[str, float]) -> Path:
    """The run's shards with the `weight` column the reweighting stage writes for `targets`
    (token shares per domain here, counted as the stage counts them), and its manifest."""
    from curate.classifiers.mixture import solve_weights
    from curate.pipeline.shards import count_tokens

    (root / "shards").mkdir(parents=True)
    tables = [pq.read_table(p) for p in sorted((run_dir / "shards").glob("*.parquet"))]
    natural: dict[str, int] = {}
    for t in tables:
        for dom, n in zip(t.column("domain").to_pylist(), count_tokens(t.column("text"))):
            natural[dom] = natural.get(dom, 0) + n
    weights, short = solve_weights(natural, targets, sum(natural.values()), max_repeats=8)
    assert not short
    for k, t in enumerate(tables):
        w = [weights[d] for d in t.column("domain").to_pylist()]
        pq.write_table(t.set_column(t.schema.get_field_index("weight"), "weight", pa.array(w, pa.float32())),
                       root / "shards" / f"shard-{k:05d}.parquet")
    manifest = {"shards": [], "mixture": {"column": "domain", "weight_column": "weight", "targets": targets}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "heldout.jsonl").write_bytes((run_dir / "heldout.jsonl").read_bytes())
    return root


def test_per_row_weights_set_the_token_shares_of_every_epoch(run_dir, pool, tmp_path):
    targets = {WIKI_DOMAIN: 0.55, "commoncrawl.example": 0.45}  # CC is ~10% of the natural tokens
    weighted = _weighted_run(run_dir, tmp_path / "run", targets)
    docs = read_documents(expand([str(weighted / "shards" / "*.parquet")]), group_column="domain", weight_column="weight")
    assert docs[WEIGHT_COLUMN].null_count == 0
    wpool = TokenPool.build(tmp_path / "pool", "w1", docs, pool.tok)
    stream = PackedStream(wpool, 64, seed=5, doc_weights=True)
    epoch = float((wpool.weights * wpool.lengths).sum())
    for budget in (epoch, 3 * epoch):
        tokens = stream.doc_tokens(int(budget))
        per_group = np.bincount(wpool.group_ids, weights=tokens)
        shares = dict(zip(wpool.groups, per_group / per_group.sum()))
        for dom, target in targets.items():  # BPE tokens here, regex tokens in the weights: still within 2 points
            assert abs(shares[dom] - target) <= 0.02, (budget, shares)
    again = PackedStream(wpool, 64, seed=5, doc_weights=True)
    assert np.array_equal(again.sequence(123), stream.sequence(123))
    with pytest.raises(ValueError, match="no column 'weight'"):
        read_documents([run_dir / "heldout.jsonl"], weight_column="weight")


def test_each_shard_is_tokenized_once_into_a_cached_token_file_the_anneal_pool_reuses(run_dir, tmp_path):
    """Token files on disk, one per input file, keyed by its fingerprint: a second setup (a
    resume) tokenizes nothing, a changed shard re-tokenizes only itself, and the anneal pool's
    rows are documents of the main pool's own files."""
    from curate.train.loop import Trainer

    cfg, inputs = tiny(run_dir, tmp_path / "model", anneal={"fraction": 0.25, "min_score": 0.5})
    first = Trainer(cfg, inputs)
    first.setup()
    files = sorted((tmp_path / "model" / "tokens" / "files").iterdir())
    assert len(files) == 3 + 1  # the three shards and the held-out file; annealing added none
    assert {s.folder for s in first.anneal_pool.segments} == {s.folder for s in first.main_pool.segments}
    shard = sorted((run_dir / "shards").glob("*.parquet"))[0]
    seg = first.main_pool.segments[0]
    assert seg.source == str(shard)
    want = [t for t in pq.read_table(shard, columns=["text"]).column("text").to_pylist() if t.strip()]
    got = [first.tokenizer.decode(seg.tokens[a : a + n - 1].tolist()) for a, n in zip(seg.starts, seg.lengths)]
    assert got == want  # every document of the shard, in order, nothing lost
    hq = pq.read_table(run_dir / "shards", columns=["wiki_score"]).column("wiki_score").to_numpy()
    assert first.anneal_pool.num_docs == int((hq >= 0.5).sum()) < first.main_pool.num_docs

    written = {p.name: (p / "tokens.bin").stat().st_mtime_ns for p in files}
    again = Trainer(cfg, inputs)
    again.setup()
    assert again.main_pool.key == first.main_pool.key
    assert {p.name: (p / "tokens.bin").stat().st_mtime_ns for p in files} == written  # nothing re-tokenized

    moved = tmp_path / "run"
    shutil.copytree(run_dir / "shards", moved / "shards")
    shutil.copy(run_dir / "heldout.jsonl", moved / "heldout.jsonl")
    cfg2, inputs2 = tiny(moved, tmp_path / "model", anneal={"fraction": 0.25, "min_score": 0.5},
                         data={"paths": [str(moved / "shards" / "*.parquet")]})
    table = pq.read_table(moved / "shards" / shard.name)
    pq.write_table(table.slice(0, table.num_rows - 5), moved / "shards" / shard.name)
    changed = Trainer(cfg2, inputs2)
    changed.setup()
    fresh = [s.folder.name for s in changed.main_pool.segments if s.folder.name not in written]
    assert len(fresh) == 3  # the moved files are new inputs to the cache...
    assert changed.main_pool.num_docs == first.main_pool.num_docs - 5  # ...and the cut shard is read as it is now


def test_the_wikipedia_eval_set_is_fetched_once_from_the_api_into_the_cache(wiki_api, tmp_path):
    from curate.pipeline.sources import RetryPolicy
    from curate.train.wikipedia import fetch_wikipedia

    wiki_api.faults[:] = ["503", "429"]  # the first answers fail: retried
    path = fetch_wikipedia(tmp_path / "cache", articles=20, seed=3, min_chars=1500, api_url=wiki_api.api_url,
                                policy=RetryPolicy(retries=3, backoff_s=0.01))
    with gzip.open(path, "rt") as fh:
        got = [json.loads(line) for line in fh]
    by_title = dict(zip(wiki_api.titles, wiki_api.pages))
    assert len(got) == 20 == len({g["id"] for g in got})
    assert all(g["text"] == by_title[g["title"]]["text"].strip() and len(g["text"]) >= 1500 for g in got)  # real, no stubs
    assert len(wiki_api.log) > 22  # stubs and repeats were skipped on the way
    requests = len(wiki_api.log)
    assert fetch_wikipedia(tmp_path / "cache", articles=20, seed=3, min_chars=1500, api_url=wiki_api.api_url) == path
    assert len(wiki_api.log) == requests  # cached: nothing fetched again
    from curate.pipeline.sources import TransferError

    with pytest.raises(TransferError, match="found"):  # a wiki without enough long articles fails, naming why
        fetch_wikipedia(tmp_path / "other", articles=5, min_chars=10**7, api_url=wiki_api.api_url)
    assert not (tmp_path / "other").exists()


def test_fetched_wikipedia_sets_are_the_eval_set_and_a_disjoint_anneal_pool(run_dir, wiki_api, tmp_path):
    """`eval.wikipedia` / `anneal.wikipedia`: a config that needs no local eval or anneal file."""
    from curate.train.wikipedia import article_ids
    from curate.train.loop import Trainer

    wiki = {"articles": 12, "min_chars": 1000, "cache": str(tmp_path / "cache"), "api_url": wiki_api.api_url}
    cfg, inputs = tiny(run_dir, tmp_path / "model", eval={"paths": [], "wikipedia": wiki},
                       anneal={"fraction": 0.25, "wikipedia": {**wiki, "articles": 30}})
    trainer = Trainer(cfg, inputs)
    trainer.setup()
    [eval_file] = [s.source for s in trainer.eval_pool.segments]
    [anneal_file] = [s.source for s in trainer.anneal_pool.segments]
    assert eval_file == str(tmp_path / "cache" / "enwiki-12-articles-seed0.jsonl.gz")
    assert trainer.eval_pool.num_docs == 12 and trainer.anneal_pool.num_docs == 30
    assert not article_ids(Path(eval_file)) & article_ids(Path(anneal_file))  # the held-out part stays held out
    assert trainer.evaluate()["eval_loss"] > 0


def test_shards_on_an_object_store_are_streamed_into_the_same_token_files(run_dir, s3_endpoint, tmp_path):
    """A run whose output.path is s3:// (moto on 127.0.0.1): shards and manifest read through the
    storage layer, token files local, tokens equal to those of the local files."""
    import uuid

    from curate.pipeline.storage import Storage
    from curate.train.data import tokenize_file
    from curate.train.loop import Trainer

    storage = Storage({"endpoint_url": s3_endpoint})
    base = f"s3://{BUCKET}/train-{uuid.uuid4().hex[:8]}"
    local = sorted((run_dir / "shards").glob("*.parquet"))
    for shard in local:
        storage.write_bytes(f"{base}/shards/{shard.name}", shard.read_bytes())
    storage.write_bytes(f"{base}/manifest.json", (run_dir / "manifest.json").read_bytes())
    cfg, _ = tiny(run_dir, tmp_path / "model", anneal={"fraction": 0.25, "min_score": 0.5})
    inputs = resolve_inputs(cfg, base, storage)
    inputs.eval_paths = [str(run_dir / "heldout.jsonl")]
    trainer = Trainer(cfg, inputs)
    trainer.setup()
    assert [s.source for s in trainer.main_pool.segments] == [f"{base}/shards/{p.name}" for p in local]
    assert trainer.mixture == Mixture("domain", {WIKI_DOMAIN: 0.6, "commoncrawl.example": 0.4})  # the manifest, from the store
    for seg, shard in zip(trainer.main_pool.segments, local):
        here = tokenize_file(tmp_path / "local", str(shard), trainer.tokenizer, group_column="domain")
        assert np.array_equal(seg.tokens, here.tokens) and np.array_equal(seg.rows, here.rows)
    hq = pq.read_table(run_dir / "shards", columns=["wiki_score"]).column("wiki_score").to_numpy()
    assert trainer.anneal_pool.num_docs == int((hq >= 0.5).sum())
    with pytest.raises(ValueError, match="output_dir is not set"):
        resolve_inputs(TrainConfig.model_validate({"max_steps": 1}), base, storage)


# ----------------------------------------------------------------------------- end to end


def test_trains_anneals_and_saves_a_loadable_model(run_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curate.train.cli import generate

    cfg, inputs = tiny(run_dir, tmp_path / "model", max_steps=24,
                       anneal={"fraction": 0.25, "min_score": 0.5})
    final = train(cfg, inputs)
    recs = [json.loads(line) for line in (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in recs if "loss" in r]
    evals = [r for r in recs if "eval_loss" in r]
    assert [r["step"] for r in train_recs] == list(range(1, 25))
    assert [r["phase"] for r in train_recs].count("anneal") == 6
    assert train_recs[-1]["loss"] < train_recs[0]["loss"] - 0.5  # it learns
    assert [e["step"] for e in evals] == [6, 12, 18, 24] and evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert train_recs[-1]["lr"] < train_recs[-6]["lr"]
    assert (tmp_path / "model" / "loss.png").stat().st_size > 1000

    model = AutoModelForCausalLM.from_pretrained(final)
    tok = AutoTokenizer.from_pretrained(final)
    assert model.config.vocab_size == len(tok) and model.config.hidden_size == 64
    samples = generate(str(final), "The history of", max_new_tokens=8, num_samples=2)
    assert len(samples) == 2 and all(s.startswith("The history of") for s in samples)


def test_trainer_samples_the_weighted_mixture_and_anneals_on_the_high_quality_pool(run_dir, tmp_path):
    from curate.train.loop import Trainer

    targets = {WIKI_DOMAIN: 0.55, "commoncrawl.example": 0.45}
    weighted = _weighted_run(run_dir, tmp_path / "run", targets)
    cfg, inputs = tiny(weighted, tmp_path / "model", max_steps=8, anneal={"fraction": 0.25, "min_score": 0.5},
                       tokenizer={"vocab_size": 400, "sample_docs": 80})
    trainer = Trainer(cfg, inputs)
    trainer.setup()
    assert trainer.main_stream.doc_weights and trainer.mixture.weight_column == "weight"
    assert not trainer.anneal_stream.doc_weights and trainer.anneal_pool.weights is None
    assert trainer.anneal_pool.num_docs < trainer.main_pool.num_docs  # the wiki_score >= 0.5 rows only
    # Over an epoch's worth of pretraining tokens the realised shares are the targets.
    pool = trainer.main_pool
    tokens = trainer.main_stream.doc_tokens(int((pool.weights * pool.lengths).sum()))
    per_group = np.bincount(pool.group_ids, weights=tokens)
    for dom, target in targets.items():
        assert abs(per_group[pool.groups.index(dom)] / per_group.sum() - target) <= 0.02
    assert set(trainer._realised_mixture()) <= set(targets)


def test_resume_continues_exactly_like_an_uninterrupted_run(run_dir, tmp_path):
    cfg, inputs = tiny(run_dir, tmp_path / "straight")
    train(cfg, inputs)
    cfg2, inputs2 = tiny(run_dir, tmp_path / "interrupted")
    stopped = train(cfg2, inputs2, stop_after_step=5)  # checkpoint at 4 and at the stop (5)
    assert sorted(p.name for p in stopped.iterdir()) == ["step-000004.pt", "step-000005.pt"]
    (stopped / "step-000005.pt").unlink()  # lose the last one: resume from step 4, redo step 5
    import torch

    saved = torch.load(stopped / "step-000004.pt", weights_only=True)  # plain data: loading runs no code
    assert saved["step"] == 4 and isinstance(saved["rng"]["numpy"]["keys"], torch.Tensor)
    train(cfg2, inputs2)
    a, b = losses(tmp_path / "straight"), losses(tmp_path / "interrupted")
    assert list(a) == list(b) == list(range(1, 13))
    for step in a:
        assert abs(a[step] - b[step]) <= 1e-5, (step, a[step], b[step])
    from safetensors.torch import load_file

    wa = load_file(tmp_path / "straight" / "final" / "model.safetensors")
    wb = load_file(tmp_path / "interrupted" / "final" / "model.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_resume_refuses_a_checkpoint_from_a_different_budget(run_dir, tmp_path):
    cfg, inputs = tiny(run_dir, tmp_path / "m", max_steps=4)
    train(cfg, inputs)
    cfg2, _ = tiny(run_dir, tmp_path / "m", max_steps=8)
    with pytest.raises(RuntimeError, match="different data or budget"):
        train(cfg2, inputs)
    train(cfg2, inputs, resume=False)  # --fresh starts over
    assert max(losses(tmp_path / "m")) == 8


DDP_WORKER = """
import json, sys
from pathlib import Path
from curate.train.config import TrainConfig
from curate.train.loop import resolve_inputs, train
cfg = TrainConfig.model_validate(json.loads(Path(sys.argv[1]).read_text()))
train(cfg, resolve_inputs(cfg, sys.argv[2]))
"""


@pytest.mark.slow  # ~25 s of CPU, three Python processes start on 2 cores
def test_ddp_under_torchrun_matches_single_process_gradient_accumulation(run_dir, tmp_path):
    """2 ranks (gloo, CPU) x 4 sequences == 1 process x 2 micro-batches of 4: same losses, same weights."""
    import os
    import subprocess
    import sys

    import torch
    from safetensors.torch import load_file

    single_cfg, single_inputs = tiny(run_dir, tmp_path / "single", max_steps=6, grad_accum=2, eval={"interval": 3})
    train(single_cfg, single_inputs)

    ddp_cfg, _ = tiny(run_dir, tmp_path / "ddp", max_steps=6, grad_accum=1, eval={"interval": 3})
    (tmp_path / "cfg.json").write_text(ddp_cfg.model_dump_json())
    (tmp_path / "worker.py").write_text(DDP_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(tmp_path / "worker.py"), str(tmp_path / "cfg.json"), str(run_dir)],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = losses(tmp_path / "single"), losses(tmp_path / "ddp")
    assert list(a) == list(b) == list(range(1, 7))
    assert all(abs(a[s] - b[s]) < 1e-4 for s in a), (a, b)
    wa = load_file(tmp_path / "single" / "final" / "model.safetensors")
    wb = load_file(tmp_path / "ddp" / "final" / "model.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-4) for k in wa)


def test_curate_train_command_reads_the_runs_shards_by_default(run_dir, tmp_path):
    """`curate train CONFIG`: the run YAML's `train:` section, shards found under output.path."""
    import argparse

    import yaml

    from curate.train.cli import add_subcommands

    cfg = {
        "input": {"paths": ["unused.warc.gz"]},
        "output": {"path": str(run_dir)},
        "train": {"max_steps": 3, "seq_len": 32, "micro_batch_size": 2, "progress": False,
                  "tokenizer": {"vocab_size": 300, "sample_docs": 50},
                  "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2}},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers())
    args = parser.parse_args(["train", str(tmp_path / "run.yaml"), "--fresh"])
    assert args.func(args) == 0
    assert (run_dir / "model" / "final" / "model.safetensors").is_file()
    final = json.loads((run_dir / "model" / "final" / "curate_train.json").read_text())
    assert final["mixture"] == {WIKI_DOMAIN: 0.6, "commoncrawl.example": 0.4}  # manifest.json was used

    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**cfg, "train": {"max_steps": 3, "sequence_length": 8}}))
    bad = parser.parse_args(["train", str(tmp_path / "bad.yaml")])
    assert bad.func(bad) == 2


def test_ablation_heldout_wikipedia_shares_no_article_with_training(tmp_path, shared_data):
    import importlib.util

    spec = importlib.util.spec_from_file_location("ablation", Path(__file__).parents[1] / "benchmarks" / "ablation.py")
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    train_path, eval_path, n_train, n_eval = ablation.wiki_split(tmp_path)
    ids = [{json.loads(line)["id"] for line in p.read_text().splitlines()} for p in (train_path, eval_path)]
    assert len(ids[0]) == n_train and len(ids[1]) == n_eval and not ids[0] & ids[1]
    assert 0.4 < n_eval / (n_train + n_eval) < 0.6
