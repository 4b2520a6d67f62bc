"""Cheap decisions before extraction, on real pages: the URL filter before extraction, the
language pre-filter, and reuse of an extraction by payload digest decide exactly what the full
path decides."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from curate import schema
from curate.config import parse_config
from curate.filters.lang import FastTextBackend, LanguageID
from curate.filters.lang_prefilter import LanguagePrefilter
from curate.pipeline import registry
from curate.pipeline.extract import Extract
from curate.pipeline.runner import StageGroup
from warc_rows import read_raw


def _cfg(**sections):
    return parse_config({"input": {"paths": ["x.warc.gz"]}, "output": {"path": "out"}, **sections})


@pytest.fixture(scope="module")
def real_pages(shared_data: Path) -> pa.Table:
    return read_raw(shared_data / "real-pages.warc.gz", _cfg().read)


@pytest.mark.parametrize("backend", ["cld2", "fasttext"])
def test_the_prefilter_never_decides_a_page_the_full_path_keeps_for_its_language(real_pages, backend):
    cfg = _cfg(filters={"language": {"backend": backend}})
    pre = LanguagePrefilter(cfg.filters.language)(real_pages)
    decided = pre.filter(pa.array([bool(r and r.startswith("lang_prefilter:")) for r in pre.column(schema.DROP_REASON).to_pylist()]))
    # it takes a real share of the work away from trafilatura, over several languages
    assert decided.num_rows >= real_pages.num_rows // 3
    assert len(Counter(decided.column(schema.LANG).to_pylist())) >= 3
    assert "en" not in decided.column(schema.LANG).to_pylist()
    # the full path on those pages (trafilatura, then the language filter) drops every one of them
    full = LanguageID(cfg.filters.language)(Extract(cfg.extract)(decided.drop_columns([schema.DROP_REASON]).append_column(
        schema.DROP_REASON, pa.nulls(decided.num_rows, pa.string()))))
    kept = full.filter(schema.active_mask(full))
    assert kept.num_rows == 0, list(zip(kept.column(schema.URL).to_pylist(), kept.column(schema.LANG).to_pylist()))


def test_the_prefilter_leaves_pages_alone_without_a_keep_list_or_a_page(real_pages):
    every_language = LanguagePrefilter(_cfg(filters={"language": {"keep": None}}).filters.language)
    assert every_language(real_pages.slice(0, 40)).equals(real_pages.slice(0, 40))
    text_only = schema.from_rows([{"id": "a", "text": "Ceci est une phrase en français, sans aucun doute possible."}])
    assert LanguagePrefilter(_cfg().filters.language)(text_only).equals(text_only)


def test_the_prefilter_reads_pages_with_lid176_when_the_language_filter_uses_heliport(real_pages):
    # It reads every page, so it stays on a cheap model; its keep-list is the section's own.
    heliport = LanguagePrefilter(_cfg(filters={"language": {"backend": "heliport"}}).filters.language)
    assert isinstance(heliport.lid.backend, FastTextBackend) and heliport.keep == {"en"}
    pages = real_pages.slice(0, 60)
    decided = heliport(pages).column(schema.DROP_REASON)
    lid176 = LanguagePrefilter(_cfg(filters={"language": {"backend": "fasttext"}}).filters.language)
    assert decided.equals(lid176(pages).column(schema.DROP_REASON))
    assert decided.null_count < len(decided)


def test_url_filter_before_extraction_keeps_and_drops_the_same_rows_as_after(shared_data):
    path = shared_data / "warc/dolma-wget/sample-0000.warc.gz"
    # block two of the real sites in that crawl, one by domain, one by a banned word in its URLs
    cfg = _cfg(filters={"url": {"domains": ["semanticscholar.org"], "banned_words": ["lineage", "mastodon"]}, "language": {"prefilter": False}})
    raw = read_raw(path, cfg.read)
    run_schema = registry.run_schema(cfg)
    before = StageGroup(cfg, ["filters.url", "extract"], None, run_schema)(raw)
    after = StageGroup(cfg, ["extract", "filters.url"], None, run_schema)(raw)
    reasons = before.column(schema.DROP_REASON).to_pylist()
    assert sum(1 for r in reasons if r and r.startswith("url:")) >= 2
    assert reasons == after.column(schema.DROP_REASON).to_pylist()
    # kept rows (what the shards hold) are identical, column for column
    kept_before, kept_after = (t.filter(schema.active_mask(t)).drop_columns(["_stage_report"]) for t in (before, after))
    assert kept_before.num_rows > 0 and kept_before.equals(kept_after)
    # and the URL-blocked pages were never extracted
    url_rows = [i for i, r in enumerate(reasons) if r and r.startswith("url:")]
    assert all(before.column(schema.TEXT)[i].as_py() is None for i in url_rows)
    assert all(after.column(schema.TEXT)[i].as_py() is not None for i in url_rows)


def test_the_reader_keeps_each_pages_payload_digest(shared_data):
    raw = read_raw(shared_data / "warc/dolma-wget/sample-0000.warc.gz", _cfg().read)
    with_page = raw.filter(pa.compute.is_valid(raw.column(schema.RAW_HTML)))
    digests = with_page.column(schema.PAYLOAD_DIGEST).to_pylist()
    assert with_page.num_rows > 0 and all(d and d.startswith("sha1:") for d in digests)


def test_a_payload_extracted_before_is_reused_with_identical_rows(shared_data):
    raw = read_raw(shared_data / "warc/dolma-wget/sample-0000.warc.gz", _cfg().read)
    twice = pa.concat_tables([raw, raw])  # every page seen a second time, as a re-crawl would
    fresh = Extract(_cfg(extract={"reuse_by_digest": False}).extract)(twice)
    reusing = Extract(_cfg().extract)
    assert reusing(twice).equals(fresh)
    pages = sum(1 for p in raw.column(schema.RAW_HTML).to_pylist() if p is not None)
    assert reusing.stats()["extracted"] == pages and reusing.stats()["reused"] == pages
    # a record that claims a digest but whose payload differs in size is extracted, not reused
    i = next(i for i, p in enumerate(raw.column(schema.RAW_HTML).to_pylist()) if p)
    other = raw.slice(i, 1).set_column(raw.schema.get_field_index(schema.RAW_HTML), schema.RAW_HTML,
                                       pa.array([b"<html><body><p>Another page.</p></body></html>"], pa.large_binary()))
    out = reusing(other)
    assert out.column(schema.TEXT)[0].as_py() == "Another page."
    assert reusing.stats()["extracted"] == pages + 1


def test_the_report_says_how_much_extraction_the_cheap_decisions_saved():
    from curate.pipeline.report import extraction_saved

    snap = {"seconds": {"extract": 30.0},
            "counters": {"extract": {"extracted": 100, "reused": 20}, "language_prefilter": {"decided": 200, "seconds": 4.0}}}
    saved = extraction_saved(snap)
    assert saved["prefiltered_pages"] == 200 and saved["reused_pages"] == 20
    # 220 pages not extracted at 0.3 s each, less the pre-filter's own 4 s
    assert saved["extract_seconds_per_page"] == 0.3 and saved["estimated_seconds_saved"] == 62.0
    assert extraction_saved({"seconds": {}, "counters": {}})["estimated_seconds_saved"] == 0
