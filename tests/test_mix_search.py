"""`curate mix search`: proxies on Dirichlet mixtures as Ray tasks, resumable, a pasteable result."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from curate.classifiers.mixture import MixtureConfig
from curate.config import parse_config
from curate.schema import from_rows
from curate.train.mix_search import ProxySettings, fit_ridge, recommend, sample_mixtures, search


@pytest.fixture(scope="module")
def run_cfg(tmp_path_factory, shared_data: Path):
    """A run's output with topic-labelled shards: Wikipedia's two sources and CC text as topics."""
    root = tmp_path_factory.mktemp("run")
    (root / "shards").mkdir()
    rows = []
    with gzip.open(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", "rt") as fh:
        for i, line in zip(range(160), fh):
            art = json.loads(line)
            rows.append({"text": art["text"][:1500], "id": art["id"], "topic": "History" if art["source"].startswith("gray") else "Science & Tech."})
    for path in sorted((shared_data / "cc-text" / "dolma").glob("cc_en_head-*.jsonl.gz")):
        with gzip.open(path, "rt") as fh:
            rows += [{"text": json.loads(l)["text"][:1500], "id": f"{path.stem}-{j}", "topic": "Finance & Business"} for j, l in enumerate(fh)]
    pq.write_table(from_rows(rows), root / "shards" / "shard-00000.parquet")
    held = root / "heldout.jsonl"
    with gzip.open(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", "rt") as fh, open(held, "w") as out:
        out.writelines(line for i, line in zip(range(400), fh) if i >= 300)
    return parse_config({"input": {"paths": ["x.warc.gz"]}, "output": {"path": str(root)},
                         "train": {"tokens": 1000, "eval": {"paths": [str(held)]}}})


def test_ridge_recovers_a_linear_loss_and_the_recommendation_minimises_it():
    natural = {"a": 0.5, "b": 0.3, "c": 0.2}
    x = sample_mixtures(natural, 40, seed=1, concentration=2.0)
    assert np.allclose(x.sum(axis=1), 1) and np.allclose(x.mean(axis=0), list(natural.values()), atol=0.08)
    y = 3.0 - 1.0 * x[:, 0] + 0.5 * x[:, 2]
    w, b = fit_ridge(x, y, alpha=1e-9)
    assert np.allclose(x @ w + b, y, atol=1e-6)
    best, predicted, corr = recommend(list(natural), x, y, natural, seed=1, concentration=2.0)
    assert best["a"] > natural["a"] and best["c"] < natural["c"] and corr > 0.99


def test_search_trains_proxies_on_ray_resumes_and_writes_a_mixture_section(ray_session, run_cfg, tmp_path):
    settings = ProxySettings(tokens=2048, seq_len=32, batch_size=8, hidden_size=32, eval_sequences=8)
    result = search(run_cfg, proxies=3, keep_topics=2, settings=settings, concentration=2.0, seed=0,
                    validate_seeds=1, out=tmp_path)
    assert set(result["groups"]) == {"History", "Science & Tech.", "other"}  # the third topic folds into `other`
    assert len(result["proxies"]) == 3 and all(np.isfinite(p["loss"]) for p in result["proxies"])
    assert len(result["validation"]["recommended"]) == len(result["validation"]["natural"]) == 1
    files = sorted((tmp_path / "proxies").glob("*.json"))
    assert len(files) == 5
    stamps = [f.stat().st_mtime_ns for f in files]
    again = search(run_cfg, proxies=3, keep_topics=2, settings=settings, concentration=2.0, seed=0, validate_seeds=1, out=tmp_path)
    assert again["proxies"] == result["proxies"] and [f.stat().st_mtime_ns for f in files] == stamps  # resumed, none retrained
    section = yaml.safe_load((tmp_path / "recommended.yaml").read_text())["mixture"]
    cfg = MixtureConfig.model_validate(section)
    assert cfg.enabled and set(cfg.shares) == {"History", "Science & Tech."}
    assert sum(cfg.shares.values()) == pytest.approx(1 - result["recommended"]["other"], abs=1e-3)
