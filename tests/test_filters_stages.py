"""build_stages: enabled stages in pipeline order, distinct reason namespaces, strict config,
and the whole chain on real pages, in a plain loop and inside Ray Data."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from curate import schema
from curate.config import ConfigError, parse_config
from curate.config import FiltersConfig
from curate.pipeline import registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import filters_corpus  # noqa: E402


def test_default_order_and_distinct_namespaces():
    stages = registry.build_stages(FiltersConfig(), group="filters")
    assert [s.name for s in stages] == ["url", "language_prefilter", "language", "gopher_repetition", "gopher_quality", "c4", "fineweb", "pii"]
    namespaces = [ns for s in stages for ns in s.reason_namespaces]
    assert len(namespaces) == len(set(namespaces))


def test_sections_switch_off_and_yaml_is_strict():
    cfg = parse_config(
        {
            "input": {"paths": ["x.warc.gz"]},
            "output": {"path": "out"},
            "filters": {"language": {"keep": ["en", "de"], "min_score": 0.5}, "c4": {"enabled": False}, "pii": {"phone": False}},
        }
    )
    names = [s.name for s in registry.build_stages(cfg.filters, group="filters")]
    assert "c4" not in names and "language" in names
    with pytest.raises(ConfigError, match="filters.gopher_quality.min_doc_wrds"):
        parse_config({"input": {"paths": ["x"]}, "output": {"path": "o"}, "filters": {"gopher_quality": {"min_doc_wrds": 3}}})


@pytest.fixture(scope="module")
def pages(shared_data: Path) -> pa.Table:
    docs = filters_corpus.extracted_pages(shared_data, limit=120)
    return schema.from_rows([{"id": d["id"], "text": d["text"], "url": d["url"], "domain": d["domain"]} for d in docs])


def test_chain_on_real_pages_accounts_for_every_row(pages):
    batch = pages
    for stage in registry.build_stages(FiltersConfig(), group="filters"):
        batch = stage(batch)
    assert batch.num_rows == pages.num_rows
    reasons = Counter(r.split(":", 1)[0] for r in batch.column(schema.DROP_REASON).to_pylist() if r)
    assert reasons["lang"] > 0 and sum(reasons.values()) < pages.num_rows
    kept = batch.filter(schema.active_mask(batch))
    assert set(kept.column(schema.LANG).to_pylist()) == {"en"}
    assert all(s is not None and s > 0.65 for s in kept.column(schema.LANG_SCORE).to_pylist())


@pytest.mark.ray
def test_stages_run_inside_ray_data(ray_session, pages):
    import ray.data

    cfg = FiltersConfig()
    ds = ray.data.from_arrow(pages)
    for entry in registry.enabled_entries(cfg, "document", group="filters"):
        # As the runner builds them: an actor per stage, constructed from its section (models load in the actor).
        # A fraction of a CPU each, so every stage's actor fits on the test's 2 CPUs at once.
        ds = ds.map_batches(entry.load(), fn_constructor_args=(registry.section_of(cfg, entry),), batch_format="pyarrow",
                            batch_size=64, concurrency=1, num_cpus=0.2)
    out = pa.concat_tables([schema.conform(b) for b in ds.iter_batches(batch_format="pyarrow")])
    local = pages
    for stage in registry.build_stages(cfg, group="filters"):
        local = stage(local)
    by_id = dict(zip(out.column(schema.ID).to_pylist(), out.column(schema.DROP_REASON).to_pylist()))
    assert by_id == dict(zip(local.column(schema.ID).to_pylist(), local.column(schema.DROP_REASON).to_pylist()))
