"""Real documents for the filter tests and benchmarks, extracted once and cached.

Pages come from /work/shared/data/extraction (AEB, Readability and Trafilatura eval pages,
many languages), extracted with trafilatura (favor_precision, as the pipeline does), plus
English Wikipedia articles and CCNet/Dolma Common Crawl texts. Extraction is the slow part, so
the result is cached as gzipped JSONL under the system temp folder (keyed by the page limit);
the shared data itself is never copied into the repository.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

CACHE_DIR = Path(os.environ.get("CURATE_FILTERS_CACHE", Path(tempfile.gettempdir()) / "curate-filters-corpus"))


def _pages(shared_data: Path, limit: int | None) -> Iterator[dict]:
    index = shared_data / "extraction" / "index.jsonl"
    rows = [json.loads(line) for line in index.read_text().splitlines() if line.strip()]
    if limit is not None:
        # Interleave the three page sets so a small sample still spans languages and sources.
        by_set: dict[str, list[dict]] = {}
        for r in rows:
            by_set.setdefault(r["dataset"], []).append(r)
        mixed: list[dict] = []
        for i in range(max(len(v) for v in by_set.values())):
            mixed.extend(v[i] for v in by_set.values() if i < len(v))
        rows = mixed[:limit]
    yield from rows


def _extract(html_gz: Path) -> str | None:
    import trafilatura

    raw = gzip.decompress(html_gz.read_bytes())
    try:
        return trafilatura.extract(raw, favor_precision=True)
    except Exception:  # a page trafilatura cannot parse is simply not part of the corpus
        return None


def extracted_pages(shared_data: Path, limit: int | None = None) -> list[dict]:
    """[{id, url, domain, text}] for the extraction pages (cached)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cache = CACHE_DIR / f"pages-{limit or 'all'}.jsonl.gz"
    if cache.exists():
        with gzip.open(cache, "rt") as f:
            return [json.loads(line) for line in f]
    docs = []
    for row in _pages(shared_data, limit):
        text = _extract(shared_data / "extraction" / row["html_path"])
        if not text:
            continue
        url = row.get("url") or f"http://unknown.invalid/{row['html_path']}"
        docs.append({"id": row["id"], "url": url, "domain": registered_domain(url), "text": text})
    tmp = cache.with_suffix(".tmp")
    with gzip.open(tmp, "wt") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    tmp.replace(cache)
    return docs


def jsonl_docs(shared_data: Path, max_wiki: int | None = None) -> list[dict]:
    """Wikipedia and Common Crawl (Dolma/CCNet) texts: no extraction needed."""
    docs = []
    paths = [shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", *sorted((shared_data / "cc-text" / "dolma").glob("*.jsonl.gz"))]
    for path in paths:
        if "expected" in path.name:
            continue
        with gzip.open(path, "rt") as f:
            for i, line in enumerate(f):
                if "wikipedia" in str(path) and max_wiki is not None and i >= max_wiki:
                    break
                r = json.loads(line)
                if not r.get("text"):
                    continue
                url = r.get("url") or (r["id"] if str(r.get("id", "")).startswith("http") else f"http://unknown.invalid/{r['id']}")
                docs.append({"id": str(r["id"]), "url": url, "domain": registered_domain(url), "text": r["text"]})
    return docs


def registered_domain(url: str) -> str | None:
    """Registered domain via tldextract's bundled suffix list (no network)."""
    host = urlsplit(url).hostname or ""
    return _offline_extractor()(host).top_domain_under_public_suffix or None


_EXTRACTOR = None


def _offline_extractor():
    global _EXTRACTOR
    if _EXTRACTOR is None:
        import tldextract

        _EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    return _EXTRACTOR


def corpus(shared_data: Path, pages: int | None = None, max_wiki: int | None = None) -> list[dict]:
    return extracted_pages(shared_data, pages) + jsonl_docs(shared_data, max_wiki)


if __name__ == "__main__":
    import sys

    data = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data")
    docs = corpus(data)
    print(len(docs), "documents")
