"""Topic/format labels, per-site caps and reweighting to a target mixture, on real documents."""

from __future__ import annotations

import csv
import gzip
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curate import schema
from curate.classifiers.mixture import (
    DomainCaps,
    DomainCapsConfig,
    MixtureConfig,
    Reweight,
    id_hash,
    realised_repeats,
    solve_weights,
    target_shares,
    uniform_draw,
)
from curate.classifiers.topics import FORMAT, FORMAT_SCORE, TOPIC_SCORE, TopicLabels, TopicsConfig, load_taxonomy
from curate.pipeline.global_stage import GlobalContext
from curate.pipeline.shards import count_tokens

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def corpus(shared_data) -> pa.Table:
    """120 Wikipedia articles (one site) and 30 Common Crawl documents from distinct sites."""
    wiki = _jsonl(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz")[:120]
    cc = [d for f in sorted((shared_data / "cc-text" / "dolma").glob("*.jsonl.gz")) if "expected" not in f.name for d in _jsonl(f)]
    rows = [dict(id=w["id"], url=w["url"], domain="wikipedia.org", text=w["text"][:3000], wiki_score=(i % 17) / 17)
            for i, w in enumerate(wiki)]
    for i, d in enumerate(cc):
        url = d.get("metadata", {}).get("url") or d["id"]
        host = url.split("/")[2] if "://" in url else f"site{i}.example"
        rows.append(dict(id=f"cc{i:03d}", url=url, domain=".".join(host.split(".")[-2:]), text=d["text"][:3000]))
    rows.append(dict(id="dropped", url="https://x.example/", domain="x.example", text="gone", drop_reason="lang:fr"))
    return schema.from_rows(rows)


@pytest.fixture(scope="module")
def labelled(corpus) -> pa.Table:
    return TopicLabels(TopicsConfig(enabled=True, max_chars=400)).__call__(corpus)


def _run(stage, table: pa.Table, blocks: int) -> tuple[pa.Table, dict]:
    import ray
    import ray.data

    ds = ray.data.from_arrow(table).repartition(blocks).materialize()
    ctx = GlobalContext(work_dir=Path(tempfile.mkdtemp()), num_cpus=2)
    out = pa.concat_tables(ray.get(stage.run(ds, ctx).to_arrow_refs()))
    return out.sort_by("id"), ctx.stats


# ------------------------------------------------------------------------------------- labels


def test_every_active_document_gets_a_topic_and_a_format_of_the_taxonomy(labelled, corpus):
    tax = load_taxonomy()
    active = labelled.filter(schema.active_mask(labelled))
    assert labelled.num_rows == corpus.num_rows and labelled.column("id").equals(corpus.column("id"))
    assert set(active.column(schema.TOPIC).to_pylist()) <= set(tax.topics)
    assert set(active.column(FORMAT).to_pylist()) <= set(tax.formats)
    for col in (TOPIC_SCORE, FORMAT_SCORE):
        scores = active.column(col).to_numpy()
        assert ((scores > 0) & (scores <= 1)).all()
    dropped = labelled.filter(pc.invert(schema.active_mask(labelled)))
    assert dropped.column(schema.TOPIC).null_count == dropped.num_rows == 1
    # Wikipedia's anarchism/autism/... articles are not product pages or spam.
    formats = pc.value_counts(active.column(FORMAT)).to_pylist()
    assert max(formats, key=lambda r: r["counts"])["values"] not in ("Product Page", "Spam / Ads")


def test_labeller_beats_the_majority_class_by_a_clear_margin_on_the_fresh_held_out_pages(shared_data):
    """The bar of `topics_eval.py`, fixed before heldout2 was first run: on each axis accuracy and
    macro-F1 at least CLEAR_MARGIN (0.10) above the stricter majority class."""
    from topics_eval import CLEAR_MARGIN, evaluate, load_eval_set, meets_bar

    held = load_eval_set(shared_data, "heldout2")
    assert len(held) >= 80
    result = evaluate(held, TopicsConfig(enabled=True), load_eval_set(shared_data, "dev", with_text=False))
    assert CLEAR_MARGIN == 0.10
    assert meets_bar(result) == {"topic": True, "format": True}, result


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_training_pages_share_no_page_and_no_site_with_the_held_out_pages():
    from topics_eval import EVAL_TSV, HELDOUT2_TSV

    from curate.classifiers.topics_head import TRAIN_TSV, site_of

    train, evaluation, heldout2 = _rows(TRAIN_TSV), _rows(EVAL_TSV), _rows(HELDOUT2_TSV)
    assert len(train) >= 600 and len(heldout2) >= 80
    train_sites = {site_of(r["url"], r["source"]) for r in train}
    eval_sites = {split: {site_of(r["url"], "extraction/" + r["source_path"]) for r in evaluation if r["split"] == split}
                  for split in ("dev", "heldout")}
    heldout2_sites = {site_of(r["url"], r["source"]) for r in heldout2}
    assert not {"extraction/" + r["source_path"] for r in evaluation} & {r["source"] for r in train}
    assert not {r["source"] for r in heldout2} & {r["source"] for r in train}
    urls = lambda rows: {r["url"] for r in rows if r["url"]}  # noqa: E731 (pages without a URL have "")
    assert not urls(heldout2) & (urls(train) | urls(evaluation))
    assert not (eval_sites["heldout"] | heldout2_sites) & train_sites
    assert not heldout2_sites & (eval_sites["dev"] | eval_sites["heldout"])
    # the one exception: the Wikipedia articles of the topic head share wikipedia.org with one dev page
    assert eval_sites["dev"] & train_sites == {"wikipedia.org"}
    tax = load_taxonomy()
    for rows in (train, heldout2):
        assert {r["topic"] for r in rows} <= set(tax.topics) and {r["format"] for r in rows} <= set(tax.formats)


@pytest.fixture(scope="module")
def small_head(shared_data, tmp_path_factory):
    """Heads trained twice on the same 40 labelled pages (every 12th of the training file)."""
    from curate.classifiers.topics_head import TRAIN_TSV, train_heads

    tmp = tmp_path_factory.mktemp("head")
    lines = TRAIN_TSV.read_text(encoding="utf-8").splitlines()
    subset = tmp / "labels.tsv"
    subset.write_text("\n".join([lines[0], *lines[1::12]]) + "\n", encoding="utf-8")
    paths = [tmp / "head0.npz", tmp / "head1.npz"]
    for path in paths:
        train_heads(shared_data, path, tsv=subset)
    return paths


def test_training_the_heads_is_deterministic(small_head):
    first, second = (np.load(p, allow_pickle=False) for p in small_head)
    assert sorted(first.files) == sorted(second.files)
    for name in first.files:
        assert np.array_equal(first[name], second[name]), name


def test_the_stage_labels_with_a_trained_head_and_refuses_it_for_another_taxonomy(small_head, corpus, tmp_path):
    from curate.classifiers.topics_head import load_heads

    heads, _ = load_heads(small_head[0], ("topic", "format"))
    out = TopicLabels(TopicsConfig(enabled=True, head=str(small_head[0]))).__call__(corpus.slice(0, 8))
    assert set(out.column(schema.TOPIC).to_pylist()) <= set(heads["topic"].labels)
    assert set(out.column(FORMAT).to_pylist()) <= set(heads["format"].labels)
    other = tmp_path / "tax.yaml"
    other.write_text("topics: {Code: programming, Cooking: recipes}\nformats: {Article: an article, List: a list}\n")
    with pytest.raises(ValueError, match="another taxonomy"):
        TopicLabels(TopicsConfig(enabled=True, head=str(small_head[0]), taxonomy=str(other)))
    with pytest.raises(ValidationError, match="head"):
        TopicsConfig(head=str(tmp_path / "missing.npz"))


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=3000), st.one_of(st.none(), st.text(max_size=200).map(lambda s: "https://x.example/" + s)))
def test_structure_features_have_one_width_and_are_finite(text, url):
    from curate.classifiers.topics_head import STRUCTURE_WIDTH, structure_features

    f = structure_features(text, url)
    assert f.shape == (STRUCTURE_WIDTH,) and np.isfinite(f).all()


def test_a_user_taxonomy_is_validated_naming_the_bad_field(tmp_path):
    bad = tmp_path / "tax.yaml"
    bad.write_text("topics: {Code: [programming], Cooking: []}\nformats: {A: x, B: y}\n")
    with pytest.raises(ValueError, match="topics.Cooking.descriptions"):
        load_taxonomy(bad)
    with pytest.raises(ValidationError, match="fasttext_dir"):
        TopicsConfig(backend="fasttext", fasttext_dir=str(tmp_path))


def test_fasttext_distilled_from_the_zero_shot_labels_agrees_with_them(labelled, tmp_path):
    from curate.classifiers.topics import FastTextLabeller, Labels, distill, document_inputs

    active = labelled.filter(schema.active_mask(labelled))
    cfg = TopicsConfig(enabled=True, max_chars=400)
    inputs = document_inputs(active.column("text").to_pylist(), active.column("url").to_pylist(), cfg)
    teacher = Labels(active.column(schema.TOPIC).to_pylist(), np.zeros(active.num_rows),
                     active.column(FORMAT).to_pylist(), np.zeros(active.num_rows))
    out = distill(inputs, teacher, tmp_path)
    student = FastTextLabeller(TopicsConfig(enabled=True, backend="fasttext", fasttext_dir=str(out))).label(inputs)
    # On its own training documents the student reproduces most of the teacher's topics.
    assert np.mean(np.array(student.topic) == np.array(teacher.topic)) >= 0.8


# --------------------------------------------------------------------------------------- caps


def test_domain_cap_keeps_a_fixed_prefix_of_each_site_whatever_the_blocks(ray_session, corpus):
    cap = 10_000
    one, stats = _run(DomainCaps(DomainCapsConfig(enabled=True, max_tokens=cap)), corpus, blocks=1)
    shuffled = corpus.take(np.random.default_rng(1).permutation(corpus.num_rows))
    many, _ = _run(DomainCaps(DomainCapsConfig(enabled=True, max_tokens=cap)), shuffled, blocks=7)
    assert one.column("drop_reason").equals(many.column("drop_reason"))
    assert stats["domains_capped"] == 1 and set(stats["capped"]) == {"wikipedia.org"}
    wiki = one.filter(pc.equal(one.column("domain"), "wikipedia.org"))
    order = np.argsort(id_hash(wiki.column("id").to_pylist(), 0), kind="stable")
    kept = pc.is_null(wiki.column("drop_reason")).to_numpy(zero_copy_only=False)[order]
    tokens = np.asarray(count_tokens(wiki.column("text")))[order]
    n = int(kept.sum())
    assert kept[:n].all() and not kept[n:].any()  # a prefix of the hash order...
    assert tokens[:n].sum() <= cap < tokens[: n + 1].sum()  # ...as long as it fits
    assert set(one.column("drop_reason").to_pylist()) == {None, "cap:domain", "lang:fr"}
    others = one.filter(pc.not_equal(one.column("domain"), "wikipedia.org"))
    assert others.column("drop_reason").null_count == others.num_rows - 1  # only the lang:fr row


def test_domain_cap_by_share_and_score_keeps_the_best_documents(ray_session, corpus):
    out, stats = _run(DomainCaps(DomainCapsConfig(enabled=True, max_share=0.2, order_by="wiki_score")), corpus, blocks=3)
    wiki = out.filter(pc.equal(out.column("domain"), "wikipedia.org"))
    kept = pc.is_null(wiki.column("drop_reason"))
    kept_scores = wiki.filter(kept).column("wiki_score").to_numpy()
    dropped_scores = wiki.filter(pc.invert(kept)).column("wiki_score").to_numpy()
    assert kept_scores.min() >= dropped_scores.max()
    assert stats["capped"]["wikipedia.org"] <= 0.2 * stats["tokens_before"]


def test_caps_need_a_limit():
    with pytest.raises(ValidationError, match="max_tokens and/or max_share"):
        DomainCapsConfig(enabled=True)


# ---------------------------------------------------------------------------------- reweighting


@settings(max_examples=200, deadline=None)
@given(natural=st.dictionaries(st.sampled_from("abcdef"), st.integers(1, 10**6), min_size=2),
       raw=st.lists(st.floats(0.01, 1), min_size=6, max_size=6), repeats=st.floats(1, 8))
def test_weights_hit_the_targets_or_take_the_short_label_whole(natural, raw, repeats):
    labels = sorted(natural)
    targets = {k: r / sum(raw[: len(labels)]) for k, r in zip(labels, raw)}
    budget = float(sum(natural.values()))
    weights, short = solve_weights(natural, targets, budget, repeats)
    assert all(0 <= w <= repeats + 1e-9 for w in weights.values())
    assert all(weights[k] == repeats for k in short)
    out = {k: weights[k] * n for k, n in natural.items()}
    assert sum(out.values()) == pytest.approx(min(budget, repeats * budget), rel=1e-6)
    free = [k for k in labels if k not in short]
    if free:  # labels with enough data keep their targets' proportions among themselves
        ratio = {k: out[k] / targets[k] for k in free}
        assert max(ratio.values()) == pytest.approx(min(ratio.values()), rel=1e-6)


def test_shares_leave_the_rest_to_unlisted_labels_in_natural_proportion():
    natural = {"Software": 100, "Politics": 300, "Sports": 600}
    t = target_shares(MixtureConfig(enabled=True, shares={"Software": 0.5}), natural)
    assert t == pytest.approx({"Software": 0.5, "Politics": 0.5 * 300 / 900, "Sports": 0.5 * 600 / 900})
    t = target_shares(MixtureConfig(enabled=True, weights={"Sports": 0.0}), natural)
    assert t == pytest.approx({"Software": 0.25, "Politics": 0.75, "Sports": 0.0})
    with pytest.raises(ValidationError, match="exactly one"):
        MixtureConfig(enabled=True)
    with pytest.raises(ValidationError, match="add up to"):
        MixtureConfig(enabled=True, shares={"a": 0.7, "b": 0.6})


def test_fractional_weights_are_realised_deterministically_with_the_right_mean():
    ids = [f"doc{i}" for i in range(20_000)]
    draws = uniform_draw(ids, 3)
    assert np.array_equal(draws, uniform_draw(ids, 3)) and not np.array_equal(draws, uniform_draw(ids, 4))
    reps = realised_repeats(np.full(len(ids), 1.3), draws)
    assert set(np.unique(reps)) == {1, 2} and reps.mean() == pytest.approx(1.3, abs=0.01)


def test_reweighted_run_realises_the_target_token_shares(ray_session, labelled):
    topics = pc.value_counts(labelled.filter(schema.active_mask(labelled)).column(schema.TOPIC)).to_pylist()
    top = [r["values"] for r in sorted(topics, key=lambda r: -r["counts"])[:2]]
    cfg = MixtureConfig(enabled=True, shares={top[0]: 0.15, top[1]: 0.35}, max_repeats=3)
    out, stats = _run(Reweight(cfg), labelled, blocks=4)
    m = stats["manifest"]
    assert m["tokens_before"] and set(m["sampling_weights"]) == set(m["tokens_before"])
    active = out.filter(schema.active_mask(out))
    assert active.column(schema.WEIGHT).null_count == 0 and out.column(schema.WEIGHT).null_count == 1
    assert all(m["sampling_weights"][k] == cfg.max_repeats for k in m["shortfall"])
    # Labels with too little data are taken whole; the others' targets are renormalised over the rest.
    short_share = sum(m["shares_after"][k] for k in m["shortfall"])
    free_targets = sum(v for k, v in m["targets"].items() if k not in m["shortfall"])
    for label in top:
        if label in m["shortfall"]:
            continue
        target = m["targets"][label] * (1 - short_share) / free_targets
        assert target == pytest.approx(cfg.shares[label], abs=0.1)
        assert abs(m["shares_after"][label] - target) < 1e-5
        assert abs(m["shares_after_realised"][label] - target) <= 0.02
    # The weights written on the rows are the manifest's sampling weights.
    for row in active.select([schema.TOPIC, schema.WEIGHT]).to_pylist()[:50]:
        assert row[schema.WEIGHT] == pytest.approx(m["sampling_weights"][row[schema.TOPIC]], rel=1e-6)
