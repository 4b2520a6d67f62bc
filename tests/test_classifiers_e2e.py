"""examples/crawl-2024.yaml end to end on local WARCs: only its `input:` swapped (the small
shared WARCs and the first 150 pages of real-pages.warc.gz) and its `train:` shrunk to the tiny
preset on CPU. The classifier scores every page, the run keeps the
top half by wiki_score, and the trainer anneals on the run's own top-scored rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from curate.config import parse_config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_resume import first_responses  # noqa: E402  (a WARC's first responses, cut at a member boundary)


@pytest.mark.slow
@pytest.mark.ray
def test_crawl_2024_runs_end_to_end_and_anneals_on_its_top_scored_rows(ray_session, shared_data, wiki_api, tmp_path):
    from curate.pipeline.runner import Runner
    from curate.train import run_training

    spec = yaml.safe_load((REPO / "examples/crawl-2024.yaml").read_text())
    spec["input"] = {"source": "local", "crawl": "CC-MAIN-2024-10",
                     "paths": [str(first_responses(shared_data / "real-pages.warc.gz", 150, tmp_path / "real-pages-head.warc.gz")),
                               str(shared_data / "warc/**/*.warc.gz")]}
    spec["output"]["path"] = str(tmp_path / "out")
    anneal = spec["train"]["anneal"]
    spec["train"] = {"tokens": 20_000, "seq_len": 64, "micro_batch_size": 8, "tokenizer": {"vocab_size": 512, "sample_docs": 500},
                     "model": {"preset": "tiny"}, "optim": {"lr": 3e-3, "warmup_steps": 2}, "anneal": anneal,
                     # its Wikipedia eval set, fetched from the MediaWiki-shaped server on 127.0.0.1
                     "eval": {**spec["train"]["eval"], "interval": 1000, "max_sequences": 16,
                              "wikipedia": {**spec["train"]["eval"]["wikipedia"], "articles": 8, "min_chars": 1000,
                                            "api_url": wiki_api.api_url, "cache": str(tmp_path / "eval")}},
                     "checkpoint_interval": 1000, "device": "cpu", "progress": False}
    cfg = parse_config(spec)
    assert cfg.classifiers.wiki_quality.enabled and cfg.classifiers.wiki_quality.top_fraction == 0.5

    result = Runner(cfg).run(num_cpus=2)
    stats = result.stats
    funnel = {f["stage"]: f for f in stats["funnel"]}
    assert "wiki_quality" in funnel and "wiki_quality_top" in funnel
    top = funnel["wiki_quality_top"]
    assert top["kept"] == top["in"] - top["in"] // 2  # ceil(half) of what survived dedup (no ties expected)
    assert set(top["dropped"]) == {"wiki_quality_top:below_top_fraction"}

    shards = pq.read_table(result.output / "shards")
    scores = shards.column("wiki_score")
    assert scores.null_count == 0 and shards.num_rows == top["kept"]
    rejected = pq.read_table(result.output / "rejected")
    below = rejected.filter(pc.equal(rejected.column("drop_reason"), "wiki_quality_top:below_top_fraction"))
    assert pc.max(below.column("wiki_score")).as_py() <= pc.min(scores).as_py()

    final = run_training(cfg)
    summary = json.loads((final / "curate_train.json").read_text())
    metrics = [json.loads(line) for line in (final.parent / "metrics.jsonl").read_text().splitlines()]
    assert any(m.get("phase") == "anneal" for m in metrics)
    # the annealing pool is exactly the run's own rows scoring >= anneal.min_score (no outside text)
    assert cfg.train.anneal.paths == []
    pool_docs = int(pc.sum(pc.greater_equal(scores, anneal["min_score"])).as_py())
    assert summary["anneal_pool"]["docs"] == pool_docs > 0
