"""The fastText quality classifiers: one normalisation, training held out by domain, the shipped
model, the scoring stage and the run-wide top-fraction cut."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import schema
from curate.classifiers.config import FastTextTrainConfig, WikiQualityConfig
from curate.classifiers.default_data import _boilerplate, _html_text, _read_html
from curate.classifiers.model import (SHIPPED_MODEL, Scorer, cross_validate, cv_folds, held_out_mask, read_labelled, roc_auc,
                                      train_classifier)
from curate.classifiers.normalize import normalize
from curate.config import ConfigError, parse_config
from curate.pipeline import registry


# ---------------------------------------------------------------------------------------------
# normalisation


def test_normalize_is_the_fasttext_recipe():
    assert normalize("Hello, World!\n\nIt's  (2024)\te.g. FINE.") == "hello , world ! it ' s ( 2024 ) e . g . fine ."
    assert normalize("one two three four", max_words=2) == "one two"
    assert normalize(None) == normalize("") == ""


@settings(max_examples=200, deadline=None)
@given(st.text(), st.integers(min_value=0, max_value=50))
def test_normalize_gives_single_spaced_lowercase_tokens_at_most_max_words(text, max_words):
    out = normalize(text, max_words)
    assert "\n" not in out and "\t" not in out and "  " not in out and out == out.strip()
    assert max_words == 0 or len(out.split()) <= max_words
    assert normalize(out, 0) == out or not out.isascii()  # stable on ASCII (Unicode case mapping may re-split)


# ---------------------------------------------------------------------------------------------
# metrics and the split


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.booleans()), min_size=2, max_size=40))
def test_roc_auc_is_the_probability_a_positive_outranks_a_negative(pairs):
    scores = np.array([s for s, _ in pairs])
    positive = np.array([p for _, p in pairs])
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        assert math.isnan(roc_auc(scores, positive))
        return
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(scores, positive) == pytest.approx(brute)


def test_the_held_out_split_keeps_every_domain_on_one_side():
    domains = [f"site{i % 37}.com" for i in range(500)] + ["wikipedia.org"] * 100
    urls = [f"https://{d}/{i}" for i, d in enumerate(domains)]
    mask = held_out_mask(domains, urls, 0.3, seed=7, train_only=frozenset({"wikipedia.org"}))
    test_domains = {d for d, m in zip(domains, mask) if m}
    train_domains = {d for d, m in zip(domains, mask) if not m}
    assert not test_domains & train_domains and "wikipedia.org" in train_domains
    assert 0.1 < len(test_domains) / 37 < 0.5
    assert (mask == held_out_mask(domains, urls, 0.3, seed=7, train_only=frozenset({"wikipedia.org"}))).all()
    assert (mask != held_out_mask(domains, urls, 0.3, seed=8)).any()


# ---------------------------------------------------------------------------------------------
# training on real pages: AEB article bodies (positive) vs the same pages' boilerplate (negative)


@pytest.fixture(scope="module")
def aeb_labelled(shared_data, tmp_path_factory) -> Path:
    from curate.pipeline.warc import _domain_extractor, registered_domain

    truth = json.loads((shared_data / "extraction/aeb/ground-truth.json").read_text())
    rows, ext = [], _domain_extractor()
    for key, page in sorted(truth.items()):
        html = _read_html(shared_data / f"extraction/aeb/html/{key}.html.gz")
        domain = registered_domain(page["url"], ext)
        rows.append({"text": page["articleBody"], "label": "wiki", "url": page["url"], "domain": domain, "source": "aeb"})
        boiler = _boilerplate(_html_text(html, False), page["articleBody"] + "\n" + _html_text(html, True))
        if len(boiler.split()) >= 40:
            rows.append({"text": boiler, "label": "cc", "url": page["url"], "domain": domain, "source": "boilerplate"})
    path = tmp_path_factory.mktemp("aeb") / "labelled.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_train_holds_out_whole_domains_and_writes_bin_ftz_and_evaluation(aeb_labelled, tmp_path):
    from curate.classifiers.cli import main

    assert main(["classifier", "train", str(aeb_labelled), "--out", str(tmp_path), "--name", "aeb",
                 "--held-out-fraction", "0.4", "--epoch", "15"]) == 0
    for f in ("aeb.bin", "aeb.ftz", "eval.json", "eval.png"):
        assert (tmp_path / f).stat().st_size > 0
    ev = json.loads((tmp_path / "eval.json").read_text())
    held = ev["held_out"]["ftz"]
    assert held["positives"] > 10 and held["negatives"] > 10
    assert held["roc_auc"] > 0.8 and 0 < held["f1"] <= 1  # article prose vs menus/footers of unseen sites
    assert ev["model_bytes"]["ftz"] < ev["model_bytes"]["bin"]
    # no site on both sides
    table = read_labelled(aeb_labelled)
    mask = held_out_mask(table["domain"].to_pylist(), table["url"].to_pylist(), 0.4, 0)
    assert not {d for d, m in zip(table["domain"].to_pylist(), mask) if m} & {d for d, m in zip(table["domain"].to_pylist(), mask) if not m}
    # eval on the same rows through the CLI reproduces the held-out figure's inputs
    assert main(["classifier", "eval", str(tmp_path / "aeb.ftz"), str(aeb_labelled), "--out", str(tmp_path / "all.json")]) == 0
    assert json.loads((tmp_path / "all.json").read_text())["n"] == table.num_rows


# ---------------------------------------------------------------------------------------------
# model selection: cross-validation by domain on the training side only


def test_cv_folds_keep_each_domain_in_one_fold_and_train_only_domains_in_none():
    domains = [f"site{i % 23}.com" for i in range(300)] + ["wikipedia.org"] * 50
    urls = [f"https://{d}/{i}" for i, d in enumerate(domains)]
    folds = cv_folds(domains, urls, 4, seed=3, train_only=frozenset({"wikipedia.org"}))
    by_domain: dict[str, set[int]] = {}
    for d, f in zip(domains, folds):
        by_domain.setdefault(d, set()).add(int(f))
    assert all(len(fs) == 1 for fs in by_domain.values()) and by_domain["wikipedia.org"] == {-1}
    assert {f for d, (f,) in by_domain.items() if d != "wikipedia.org"} == {0, 1, 2, 3}
    assert (folds == cv_folds(domains, urls, 4, seed=3, train_only=frozenset({"wikipedia.org"}))).all()


def test_cross_validation_never_reads_the_held_out_side(aeb_labelled):
    cfg = FastTextTrainConfig(held_out_fraction=0.4, epoch=5, quantize_cutoff=2000)
    table = read_labelled(aeb_labelled)
    first = cross_validate(table, cfg, folds=3)
    assert first["folds_scored"] >= 2 and 0.5 < first["mean_roc_auc"] <= 1
    assert first["validated_rows"] == int((~held_out_mask(table["domain"].to_pylist(), table["url"].to_pylist(), 0.4, 0)).sum())
    # the held-out rows' texts and labels scrambled: the figure that chooses settings is unchanged
    test = held_out_mask(table["domain"].to_pylist(), table["url"].to_pylist(), 0.4, 0)
    texts = [("zz qq " * 50) if t else x for x, t in zip(table["text"].to_pylist(), test)]
    labels = [("cc" if lab == "wiki" else "wiki") if t else lab for lab, t in zip(table["label"].to_pylist(), test)]
    scrambled = table.set_column(0, "text", pa.array(texts, pa.large_string())).set_column(1, "label", pa.array(labels))
    assert cross_validate(scrambled, cfg, folds=3)["fold_roc_auc"] == first["fold_roc_auc"]


def test_cv_command_searches_the_grid_and_skips_invalid_combinations(aeb_labelled, tmp_path):
    from curate.classifiers.cli import main

    assert main(["classifier", "cv", str(aeb_labelled), "--folds", "2", "--held-out-fraction", "0.4", "--epoch", "5",
                 "--grid", "minn=0,3", "--grid", "maxn=0,5", "--out", str(tmp_path / "cv.json")]) == 0
    record = json.loads((tmp_path / "cv.json").read_text())
    # of the four (minn, maxn) pairs only "off" and 3..5 are valid settings
    assert sorted((r["settings"]["minn"], r["settings"]["maxn"]) for r in record["results"]) == [(0, 0), (3, 5)]
    assert record["results"][0]["mean_roc_auc"] >= record["results"][1]["mean_roc_auc"]
    assert record["chosen"] == record["results"][0]["settings"]
    with pytest.raises(SystemExit, match="--grid 'bogus=1'"):
        main(["classifier", "cv", str(aeb_labelled), "--grid", "bogus=1"])


def test_a_labelled_set_with_a_missing_column_is_refused(tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["a"], "label": ["wiki"]}), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="missing \\['url', 'domain', 'source'\\]"):
        read_labelled(tmp_path / "bad.parquet")


# ---------------------------------------------------------------------------------------------
# the shipped model


def test_the_shipped_model_is_small_and_separates_held_out_domains():
    assert SHIPPED_MODEL.stat().st_size < 400_000
    ev = json.loads(SHIPPED_MODEL.with_suffix(".eval.json").read_text())
    # the goal is 0.90; the shipped model reaches 0.911 on 96 held-out rows (README): the
    # bound leaves room for that figure's noise, and guards against regressions
    assert ev["held_out"]["ftz"]["roc_auc"] > 0.85 and ev["split"]["held_out_domains"] > 30
    assert ev["settings"]["train_only_domains"] == ["wikipedia.org"]
    # its settings were chosen by cross-validation on the training side, recorded next to it
    selection = ev["model_selection"]
    assert selection["chosen"] == {k: ev["settings"][k] for k in selection["grid"]}
    assert selection["results"][0]["settings"] == selection["chosen"]


def test_the_shipped_model_ranks_unseen_wikipedia_over_raw_web_text(shared_data):
    from curate.classifiers.default_data import wikipedia_is_eval

    with gzip.open(shared_data / "wikipedia/enwiki-sample.jsonl.gz", "rt") as fh:
        held = [a["text"] for a in map(json.loads, fh) if wikipedia_is_eval(a["id"])][:200]
    with gzip.open(shared_data / "cc-text/dolma/documents-000.jsonl.gz", "rt") as fh:
        raw = [d["text"] for d in map(json.loads, fh)]
    scorer = Scorer(SHIPPED_MODEL, "wiki", 500)
    scores = scorer.score(held + raw)
    assert scores.dtype == np.float32 and ((scores >= 0) & (scores <= 1)).all()
    assert roc_auc(scores, np.array([True] * len(held) + [False] * len(raw))) > 0.8


# ---------------------------------------------------------------------------------------------
# the scoring stage


def _docs(shared_data: Path, n: int = 30) -> pa.Table:
    with gzip.open(shared_data / "wikipedia/enwiki-sample.jsonl.gz", "rt") as fh:
        arts = [json.loads(line) for _, line in zip(range(n), fh)]
    rows = [{schema.ID: a["id"], schema.TEXT: a["text"], schema.URL: a["url"]} for a in arts]
    rows[3][schema.DROP_REASON] = "lang:fr"  # dropped earlier: neither scored nor touched
    return schema.from_rows(rows)


def test_the_stage_scores_active_rows_and_drops_below_min_score(shared_data):
    batch = _docs(shared_data)
    cfg = WikiQualityConfig(enabled=True, min_score=0.999, batch_size=7)
    stage = registry.build_stages(parse_config({"input": {"paths": ["x"]}, "output": {"path": "o"},
                                                "classifiers": {"wiki_quality": cfg.model_dump()}}))[-1]
    assert stage.name == "wiki_quality"
    out = stage(batch)
    scores = out.column(schema.WIKI_SCORE).to_pylist()
    reasons = out.column(schema.DROP_REASON).to_pylist()
    assert out.num_rows == batch.num_rows and scores[3] is None and reasons[3] == "lang:fr"
    expected = Scorer(SHIPPED_MODEL, "wiki", 500).score(batch.column(schema.TEXT).to_pylist())
    for i, (s, r) in enumerate(zip(scores, reasons)):
        if i != 3:
            assert s == pytest.approx(float(expected[i]), abs=1e-6)
            assert (r == "wiki_quality:below_min_score") == (s < 0.999)
    st_ = stage.stats()
    assert st_["scored"] == batch.num_rows - 1 == sum(st_["score_histogram"].values())
    assert st_["below_min_score"] == sum(r == "wiki_quality:below_min_score" for r in reasons)


def test_two_classifier_stages_run_in_one_pipeline_with_their_own_columns(shared_data, aeb_labelled, tmp_path):
    # a second classifier with DCLM's labels (hq / cc), trained here on the AEB set
    table = read_labelled(aeb_labelled)
    table = table.set_column(1, "label", pa.array(["hq" if x == "wiki" else "cc" for x in table["label"].to_pylist()]))
    model = train_classifier(table, tmp_path, FastTextTrainConfig(positive_label="hq", held_out_fraction=0.4), "dclm_like").ftz_path
    cfg = parse_config({"input": {"paths": ["x"]}, "output": {"path": "o"},
                        "classifiers": {"wiki_quality": {"enabled": True},
                                        "dclm": {"enabled": True, "model_path": str(model), "top_fraction": 0.5}}})
    assert registry.run_schema(cfg).field("dclm_score").type == pa.float32()
    assert [s.name for s in registry.build_stages(cfg, "global")][-1] == "dclm_top"
    batch = _docs(shared_data)
    for stage in registry.build_stages(cfg)[-2:]:
        batch = stage(batch)
    wiki, dclm = batch.column("wiki_score").to_pylist(), batch.column("dclm_score").to_pylist()
    assert sum(s is not None for s in wiki) == sum(s is not None for s in dclm) == batch.num_rows - 1
    assert wiki != dclm


def test_classifier_config_errors_name_the_field():
    base = {"input": {"paths": ["x"]}, "output": {"path": "o"}}
    with pytest.raises(ConfigError, match="classifiers.wiki_quality: Value error, set min_score or top_fraction"):
        parse_config({**base, "classifiers": {"wiki_quality": {"min_score": 0.5, "top_fraction": 0.5}}})
    with pytest.raises(ConfigError, match="classifiers.dclm: Value error, model_path is required"):
        parse_config({**base, "classifiers": {"dclm": {"enabled": True}}})
    with pytest.raises(ConfigError, match="both write score_column 'wiki_score'"):
        parse_config({**base, "classifiers": {"wiki_quality": {"enabled": True},
                                              "dclm": {"enabled": True, "model_path": "m", "score_column": "wiki_score"}}})
    with pytest.raises(ConfigError, match="classifiers.wiki_quality.top_fraction"):
        parse_config({**base, "classifiers": {"wiki_quality": {"top_fraction": 1.5}}})


# ---------------------------------------------------------------------------------------------
# the run-wide top fraction


def _scored_blocks(scores: list[float | None], dropped: set[int], blocks: int) -> list[pa.Table]:
    rows = [{schema.ID: f"d{i:05d}", schema.TEXT: "x", schema.WIKI_SCORE: s,
             schema.DROP_REASON: "lang:fr" if i in dropped else None} for i, s in enumerate(scores)]
    table = schema.from_rows(rows)
    step = math.ceil(len(rows) / blocks)
    return [table.slice(i, step) for i in range(0, len(rows), step)]


@pytest.mark.ray
@pytest.mark.parametrize("fraction", [0.5, 0.1, 1.0])
def test_top_fraction_is_one_quantile_over_every_block_of_the_run(ray_session, tmp_path, fraction):
    import ray.data

    from curate.classifiers.stage import WikiQualityTop
    from curate.pipeline.global_stage import GlobalContext

    rng = np.random.default_rng(0)
    # blocks with very different score distributions: a per-block quantile would keep other rows
    scores = np.concatenate([rng.beta(8, 2, 400), rng.beta(2, 8, 400), rng.uniform(0, 1, 200)]).astype(np.float32)
    dropped = set(range(0, 1000, 9))
    ds = ray.data.from_arrow(_scored_blocks(scores.tolist(), dropped, blocks=5))
    ctx = GlobalContext(work_dir=tmp_path, num_cpus=2)
    out = WikiQualityTop(WikiQualityConfig(enabled=True, top_fraction=fraction)).run(ds, ctx).to_arrow_refs()
    table = pa.concat_tables(ray.get(out)).sort_by(schema.ID)
    reasons = table.column(schema.DROP_REASON).to_pylist()
    active = np.array([i not in dropped for i in range(len(scores))])
    want = math.ceil(fraction * active.sum())
    kept = np.array([r is None for r in reasons])
    assert kept.sum() == want == ctx.stats["wanted"]
    expected = np.zeros(len(scores), bool)
    expected[np.flatnonzero(active)[np.argsort(-scores[active], kind="stable")[:want]]] = True
    assert (kept == expected).all()  # exactly the run's top documents
    assert all(r == "lang:fr" for i, r in enumerate(reasons) if i in dropped)
    assert all(r == "wiki_quality_top:below_top_fraction" for i, r in enumerate(reasons) if active[i] and not kept[i])


@pytest.mark.ray
def test_top_fraction_keeps_ties_together_and_drops_unscored_rows(ray_session, tmp_path):
    import ray.data

    from curate.classifiers.stage import WikiQualityTop
    from curate.pipeline.global_stage import GlobalContext

    scores = [1.0] * 6 + [0.3] * 4 + [None] * 2
    ds = ray.data.from_arrow(_scored_blocks(scores, set(), blocks=3))
    ctx = GlobalContext(work_dir=tmp_path, num_cpus=2)
    out = pa.concat_tables(ray.get(WikiQualityTop(WikiQualityConfig(enabled=True, top_fraction=0.5)).run(ds, ctx).to_arrow_refs()))
    kept = out.filter(schema.active_mask(out)).column(schema.WIKI_SCORE).to_pylist()
    assert kept == [1.0] * 6 and ctx.stats["unscored"] == 2 and ctx.stats["threshold"] > 0.3
