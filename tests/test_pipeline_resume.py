"""Finer resume on real pages: a rerun with one changed Gopher threshold takes every input from
the extraction cache (nothing is read or extracted again), reruns only the stages after it, and
writes shards byte-equal to a clean run of the new config; a changed global setting reuses the
per-document results and the global stages before it; what changed is named."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.config import Config, parse_config
from curate.pipeline.resume import DocumentPlan, changed_settings, document_fingerprints, global_fingerprints
from curate.pipeline.runner import Runner

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_resume import first_responses  # noqa: E402  (the benchmark's input, smaller)

PAGES = 60  # first responses of real-pages.warc.gz (one gzip member each)


def _raw(tmp: Path, warc: Path) -> dict:
    """examples/sample.yaml's filters and dedup on one WARC, without the topic model and training."""
    raw = yaml.safe_load((REPO / "examples" / "sample.yaml").read_text())
    for key in ("train", "mixture", "domain_caps"):
        raw.pop(key, None)
    raw["classifiers"] = {"topics": {"enabled": False}}
    raw["input"]["paths"] = [str(warc)]
    raw["output"]["path"] = str(tmp / "out")
    raw["output"]["rows_per_shard"] = 40
    return raw


def _with(raw: dict, path: str, value: object) -> dict:
    out = copy.deepcopy(raw)
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


def _run(raw: dict) -> dict:
    return Runner(parse_config(raw)).run(num_cpus=2).stats


@pytest.fixture(scope="module")
def runs(ray_session, shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    warc = first_responses(shared_data / "real-pages.warc.gz", PAGES, tmp / "pages.warc.gz")
    first_raw = _raw(tmp, warc)
    changed_raw = _with(first_raw, "filters.gopher_quality.min_doc_words", 200)
    first = _run(first_raw)
    rerun = _run(changed_raw)  # same folder, one threshold changed
    clean_raw = _with(_with(changed_raw, "output.path", str(tmp / "clean")), "output.cache_extraction", False)
    clean = _run(clean_raw)
    return {"tmp": tmp, "first": first, "rerun": rerun, "clean": clean, "clean_raw": clean_raw}


def test_a_changed_gopher_threshold_reruns_only_the_filters_and_equals_a_clean_run(runs):
    tmp, first, rerun, clean = runs["tmp"], runs["first"], runs["rerun"], runs["clean"]
    assert rerun["kept"] < first["kept"]  # the threshold decides something on these pages
    # Byte-equal to a clean run of the new config, kept and rejected rows alike.
    for sub in ("shards", "rejected"):
        assert _files(tmp / "out" / sub) == _files(tmp / "clean" / sub) != {}
    # Nothing was read from the WARC or extracted again: every row came from the cache.
    funnel = {f["stage"]: f for f in rerun["funnel"]}
    assert funnel["extract"].get("counters", {}).get("extracted", 0) == 0
    assert clean["funnel"][[f["stage"] for f in clean["funnel"]].index("extract")]["counters"]["extracted"] > 0
    assert rerun["resume"]["reused_from_cache"]["extract"]["rows"] == rerun["read"] == first["read"]
    assert "gopher_quality" not in rerun["resume"]["reused_from_cache"]
    # The same funnel as the clean run (reasons and counts per stage).
    assert [(f["stage"], f["in"], f["kept"], f["dropped"]) for f in rerun["funnel"]] == \
        [(f["stage"], f["in"], f["kept"], f["dropped"]) for f in clean["funnel"]]
    # The check names what changed, and from which stage the work was redone.
    assert rerun["resume"]["changed"] == ["filters.gopher_quality.min_doc_words: 50 -> 200"]
    assert rerun["resume"]["redo_from"] == "filters.gopher_quality"
    assert rerun["resume"]["global_reused"] == []  # their input changed


def test_the_cache_costs_disk_only_when_switched_on(runs):
    tmp, rerun = runs["tmp"], runs["rerun"]
    cache = rerun["resume"]["extraction_cache"]
    assert cache["rows"] == rerun["read"] and 0 < cache["bytes"] == sum(p.stat().st_size for p in (tmp / "out" / "work" / "cache").rglob("*.parquet"))
    assert not (tmp / "clean" / "work" / "cache").exists()  # output.cache_extraction: false


def test_a_changed_global_setting_reuses_the_documents_and_the_global_stages_before_it(runs):
    raw = _with(runs["clean_raw"], "dedup.minhash.verify_jaccard", 0.9)
    again = Runner(parse_config(raw)).run(num_cpus=2)
    assert again.processed_inputs == 0  # per-document results of the same settings
    assert again.stats["resume"]["global_reused"] == ["dedup_exact"]
    assert again.stats["resume"]["changed"] == ["dedup.minhash.verify_jaccard: 0.7 -> 0.9"]
    assert again.stats["resume"]["redo_from"] is None


# --- fingerprints, without Ray --------------------------------------------------------------

def _config(tmp: Path, **changes: object) -> Config:
    raw = {"input": {"paths": [str(tmp / "x.warc.gz")]}, "output": {"path": str(tmp / "out")}}
    for path, value in changes.items():
        raw = _with(raw, path.replace("__", "."), value)
    return parse_config(raw)


def test_a_stage_setting_changes_the_fingerprints_from_that_stage_on_only(tmp_path):
    base = document_fingerprints(_config(tmp_path))
    other = document_fingerprints(_config(tmp_path, filters__gopher_quality__min_doc_words=10))
    paths = [p for p, _ in base]
    cut = paths.index("filters.gopher_quality")
    assert base[:cut] == other[:cut] and all(a != b for a, b in zip(base[cut:], other[cut:]))
    # Where it runs and what an actor reserves decide nothing.
    same = _config(tmp_path, ray__batch_size=7, filters__gopher_quality__resources={"num_cpus": 2}, output__cache_extraction=False)
    assert document_fingerprints(same) == base
    assert DocumentPlan.of(_config(tmp_path, extract__favor_precision=False)).cached != DocumentPlan.of(_config(tmp_path)).cached


def test_a_global_stage_fingerprint_follows_its_input_and_its_own_settings(tmp_path):
    cfg = _config(tmp_path, dedup__exact__enabled=True, dedup__minhash__enabled=True)
    plan = DocumentPlan.of(cfg)
    base = global_fingerprints(cfg, plan.docs, {"a": "1"})
    assert global_fingerprints(cfg, plan.docs, {"a": "2"})[0] != base[0]  # the docs were redone
    changed = _config(tmp_path, dedup__exact__enabled=True, dedup__minhash__enabled=True, dedup__minhash__verify_jaccard=0.5)
    other = global_fingerprints(changed, DocumentPlan.of(changed).docs, {"a": "1"})
    assert other[0] == base[0] and other[1] != base[1]


config_trees = st.recursive(st.one_of(st.integers(), st.text(max_size=3), st.booleans(), st.none()),
                        lambda inner: st.dictionaries(st.text("abc", min_size=1, max_size=2), inner, max_size=3), max_leaves=8)


@settings(max_examples=60, deadline=None)
@given(config_trees, config_trees)
def test_changed_settings_is_empty_exactly_for_equal_settings(old, new):
    assert (changed_settings(old, new) == []) == (old == new)
