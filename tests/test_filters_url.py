"""URL block-lists: domains (with subdomains), full URLs, banned words and sub-words."""

from __future__ import annotations

import sys
from pathlib import Path

from curate import schema
from curate.filters.config import UrlConfig
from curate.filters.url import UrlFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import filters_corpus  # noqa: E402


def _run(stage: UrlFilter, rows: list[dict]) -> list[str | None]:
    return stage(schema.from_rows(rows)).column(schema.DROP_REASON).to_pylist()


def test_blocklist_files_and_reasons(tmp_path):
    (tmp_path / "domains.txt").write_text("# spam\nbad-site.com\n\nnews.example.org\n")
    (tmp_path / "urls.txt").write_text("https://ok.com/this/page\n")
    stage = UrlFilter(
        UrlConfig(
            domain_blocklist_files=[str(tmp_path / "domains.txt")],
            url_blocklist_files=[str(tmp_path / "urls.txt")],
            banned_words=["casino"],
            banned_subwords=["xxx"],
            soft_banned_words=["free", "pills"],
        )
    )
    rows = [
        {"url": "https://www.bad-site.com/a", "domain": "bad-site.com"},
        {"url": "https://sub.news.example.org/a", "domain": "example.org"},
        {"url": "https://www.example.org/a", "domain": "example.org"},
        {"url": "https://ok.com/this/page", "domain": "ok.com"},
        {"url": "https://ok.com/best-Casino-2024", "domain": "ok.com"},
        {"url": "https://ok.com/free/pills", "domain": "ok.com"},
        {"url": "https://ok.com/free/books", "domain": "ok.com"},
        {"url": "https://ok.com/hotxxxvideos", "domain": "ok.com"},
        {"url": None},
    ]
    assert _run(stage, rows) == [
        "url:blocklist_domain:bad-site.com",
        "url:blocklist_domain:news.example.org",
        None,
        "url:blocklist_url",
        "url:banned_word:casino",
        "url:soft_banned_words:free+pills",
        None,
        "url:banned_subword:xxx",
        None,
    ]
    assert stage.stats() == {"blocklist_domain": 2, "blocklist_url": 1, "banned_word": 1, "soft_banned_words": 1, "banned_subword": 1}


def test_blocks_a_real_domain_of_the_example_pages(shared_data):
    docs = filters_corpus.extracted_pages(shared_data, limit=120)
    target = next(d["domain"] for d in docs if d["domain"] and d["domain"] != "unknown.invalid")
    stage = UrlFilter(UrlConfig(domains=[target]))
    reasons = _run(stage, [{"url": d["url"], "domain": d["domain"]} for d in docs])
    hits = [d for d, r in zip(docs, reasons) if r]
    assert hits and all(d["domain"] == target for d in hits)
    assert len(hits) == sum(d["domain"] == target for d in docs)
