"""The labelled set behind the shipped model, built offline from `../shared/data`.

The published recipe (GPT-3, LLaMA, RedPajama) labels pages cited by Wikipedia as positives and
random Common Crawl pages as negatives. Offline there is no crawl to look citations up in, so
this set stands in with what the shared folder holds (English only, by the pipeline's own LID):

positives (`wiki`): reference-quality prose
  - Wikipedia articles (`wikipedia/enwiki-sample.jsonl.gz`), only the half the ablation never
    evaluates on (`wikipedia_is_eval`);
  - human-written article bodies of the AEB news/blog pages (`extraction/aeb/ground-truth.json`),
    only from the domains the ablation never evaluates on (`aeb_is_eval`);
  - Readability.js's expected article text of the Mozilla test pages;
  - CCNet's "head" bucket (high-quality) Common Crawl documents (dolma's sample).
negatives (`cc`): what a web crawl holds besides such prose
  - the boilerplate of every page (`extraction/`): its full visible text minus the lines of its
    main text (menus, footers, link lists, cookie banners);
  - the extracted main text of pages that the pipeline's heuristic filters (Gopher, C4, FineWeb)
    reject;
  - dolma's raw Common Crawl page texts (boilerplate left in);
  - the same two kinds (boilerplate, filter rejects) from the crawl samples under `warc/`: real
    Common Crawl records of 2016 and 2020 and a 2024 wget crawl of personal and lab sites.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pyarrow as pa

from curate import schema

POSITIVE, NEGATIVE = "wiki", "cc"
WIKIPEDIA_DOMAIN = "wikipedia.org"
MIN_BOILERPLATE_WORDS = 40


def wikipedia_is_eval(article_id: str) -> bool:
    """The Wikipedia sample's held-out half (the ablation's evaluation set): never trained on."""
    return hashlib.sha1(str(article_id).encode()).digest()[0] % 2 == 1


def aeb_is_eval(domain: str | None) -> bool:
    """AEB pages whose domain is in the ablation's held-out half: no text of theirs is trained on,
    by the classifier or by the ablation's language models."""
    return hashlib.sha1(f"aeb-eval:{domain}".encode()).digest()[0] % 2 == 1


def _domain(url: str | None) -> str | None:
    from curate.pipeline.warc import _domain_extractor, registered_domain

    return registered_domain(url, _domain_extractor()) if url else None


def _read_html(path: Path) -> str:
    from curate.pipeline.extract import decode_html

    return decode_html(gzip.decompress(path.read_bytes()), None)[0]


def _html_text(html: str, main_content: bool) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    return extract_plain_text(HTMLTree.parse(html), main_content=main_content) or ""


WARC_SAMPLES = ("warc/dolma-wget/sample-0000.warc.gz", "warc/resiliparse/CC-MAIN-2020-34-sample.warc.gz",
                "warc/resiliparse/CC-truncated-record.warc.gz")


def _warc_sample_pages(data: Path):
    """(html, url) of every HTML response in the shared crawl samples."""
    from warcio.archiveiterator import ArchiveIterator

    from curate.pipeline.extract import decode_html
    from curate.pipeline.warc import clean_target_uri, header_charset

    for name in WARC_SAMPLES:
        with open(data / name, "rb") as fh:
            for rec in ArchiveIterator(fh):
                content_type = rec.http_headers.get_header("Content-Type") if rec.http_headers else None
                if rec.rec_type != "response" or "html" not in (content_type or ""):
                    continue
                try:
                    payload = rec.content_stream().read()
                except Exception:  # the truncated record: keep what the reader got so far
                    payload = rec.raw_stream.read()
                yield decode_html(payload, header_charset(content_type))[0], clean_target_uri(rec.rec_headers.get_header("WARC-Target-URI"))


def _jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _boilerplate(full: str, main: str) -> str:
    main_lines = {line.strip() for line in main.splitlines() if line.strip()}
    return "\n".join(line.strip() for line in full.splitlines() if line.strip() and line.strip() not in main_lines)


def build_default_set(shared_data: str | Path, log=print) -> tuple[pa.Table, dict]:
    """(labelled rows `text, label, url, domain, source`, counts per step)."""
    from curate.pipeline.config import ExtractConfig
    from curate.filters.config import FiltersConfig
    from curate.pipeline.extract import Extract

    data = Path(shared_data)
    rows: list[dict] = []
    counts: dict[str, int] = {}

    def add(text: str | None, label: str, url: str | None, source: str, domain: str | None = None) -> None:
        if text and text.strip():
            rows.append({"text": text.strip(), "label": label, "url": url, "domain": domain or _domain(url), "source": source})

    for art in _jsonl(data / "wikipedia" / "enwiki-sample.jsonl.gz"):
        if not wikipedia_is_eval(art["id"]):
            add(art["text"], POSITIVE, art["url"], "wikipedia", WIKIPEDIA_DOMAIN)
    for rec in _jsonl(data / "cc-text" / "dolma" / "cc_en_head-0091.jsonl.gz") + _jsonl(data / "cc-text" / "dolma" / "cc_en_head-0174.jsonl.gz"):
        add(rec["text"], POSITIVE, rec["id"], "ccnet-head")
    for rec in _jsonl(data / "cc-text" / "dolma" / "documents-000.jsonl.gz"):
        add(rec["text"], NEGATIVE, rec["id"], "dolma-raw-cc")

    # Every page under extraction/: its own main text or ground truth, and its boilerplate.
    extract = Extract(ExtractConfig())
    pages = [json.loads(line) for line in (data / "extraction" / "index.jsonl").read_text().splitlines() if line.strip()]
    extracted: list[dict] = []

    def add_page(html: str, url: str | None, domain: str | None, source: str) -> None:
        """A page's boilerplate as a negative; its main text goes on to the heuristic filters."""
        main, _, reason = extract.extract_one(html.encode("utf-8"), "utf-8")
        main = main or ""
        boilerplate = _boilerplate(_html_text(html, main_content=False), main + "\n" + _html_text(html, main_content=True))
        if len(boilerplate.split()) >= MIN_BOILERPLATE_WORDS:  # a page nearly all main text has none to learn from
            add(boilerplate, NEGATIVE, url, source, domain)
        if main and reason is None:
            extracted.append({"text": main, "url": url, "domain": domain})

    for k, page in enumerate(pages):
        url = page["url"]
        domain = _domain(url)
        if page["dataset"] == "article-extraction-benchmark" and aeb_is_eval(domain):
            counts["aeb_pages_held_for_ablation"] = counts.get("aeb_pages_held_for_ablation", 0) + 1
            continue
        html = _read_html(data / "extraction" / page["html_path"])
        add_page(html, url, domain, "boilerplate")
        if page["dataset"] == "article-extraction-benchmark":
            add(page["article_body"], POSITIVE, url, "aeb-article-body", domain)
        elif page["dataset"] == "mozilla-readability-test-pages":
            expected = data / "extraction" / Path(page["html_path"]).parent / "expected.html.gz"
            add(_html_text(_read_html(expected), main_content=False), POSITIVE, url, "readability-article", domain)
        if (k + 1) % 100 == 0:
            log(f"  {k + 1}/{len(pages)} pages")
    # The crawl samples under warc/ (Common Crawl 2016/2020 records, a 2024 wget crawl): random
    # web pages, i.e. more negatives the way the recipe draws them, through the same two paths.
    for html, url in _warc_sample_pages(data):
        add_page(html, url, _domain(url), "warc-sample-boilerplate")

    # Main texts the heuristic filters reject are negatives; language ID runs first, as in the pipeline.
    filter_stages = _heuristic_stages(FiltersConfig())
    docs = schema.from_rows([{schema.TEXT: e["text"], schema.URL: e["url"], schema.DOMAIN: e["domain"]} for e in extracted])
    for stage in filter_stages:
        docs = stage(docs)
    for text, url, domain, reason in zip(*(docs.column(c).to_pylist() for c in (schema.TEXT, schema.URL, schema.DOMAIN, schema.DROP_REASON))):
        if reason and not reason.startswith("lang:"):
            add(text, NEGATIVE, url, f"filter-rejected:{reason.split(':')[0]}", domain)

    # English only, by the pipeline's LID: the recipe's classifier is an English one.
    table = pa.Table.from_pylist(rows, schema=pa.schema([("text", pa.large_string()), ("label", pa.string()), ("url", pa.string()),
                                                         ("domain", pa.string()), ("source", pa.string())]))
    lid = _language_stage()
    judged = lid(schema.from_rows([{schema.TEXT: t} for t in table.column("text").to_pylist()]))
    english = pa.array([r is None for r in judged.column(schema.DROP_REASON).to_pylist()])
    counts["not_english_dropped"] = table.num_rows - sum(english.to_pylist())
    table = table.filter(english)
    for src in sorted(set(table.column("source").to_pylist())):
        counts[f"rows:{src}"] = table.column("source").to_pylist().count(src)
    return table, counts


def _language_stage():
    from curate.filters.config import LanguageConfig
    from curate.filters.lang import LanguageID

    # lid.176 pinned: the shipped model's set was built with it, so the pipeline's default LID
    # changing (to cld2) does not change what `build-default` rebuilds.
    return LanguageID(LanguageConfig(keep=["en"], backend="fasttext"))


def _heuristic_stages(cfg) -> list:
    from curate.filters.quality import C4Quality, FineWebQuality, GopherQuality, GopherRepetition

    return [_language_stage(), GopherRepetition(cfg.gopher_repetition), GopherQuality(cfg.gopher_quality),
            C4Quality(cfg.c4), FineWebQuality(cfg.fineweb)]
