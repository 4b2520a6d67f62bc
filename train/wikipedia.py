"""Real Wikipedia articles (a held-out eval set, an annealing pool), fetched once over HTTPS into
a cache.

For a clone without `../shared/data` (`examples/crawl-2024.yaml`, `sample-cc.yaml`): articles
are picked through the MediaWiki Action API (`action=query`, `generator=allpages` from a seeded random title prefix,
one non-redirect article each, with its plain text from TextExtracts), so every clone with the
same seed asks for the same articles; stubs and disambiguation pages are skipped. The set is
written once as JSONL.gz (`id`, `url`, `title`, `text`, `source`, the fields of the shared
Wikipedia sample) under a temp name and renamed; later calls find the file and fetch nothing.
The project ships no copied articles. A second set can exclude the articles of a first (the
annealing pool never holds an eval article).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import string
import time
import uuid
from pathlib import Path

import requests

from curate import __version__
from curate.pipeline.sources import RetryPolicy, TransferError

WIKIPEDIA_API = "https://en.wikipedia.org/w/api.php"
# Wikimedia asks API clients to say who they are.
USER_AGENT = f"curate/{__version__} (pretraining-data curation; held-out eval set, one request at a time)"
RETRY_STATUS = {429, 500, 502, 503, 504}


def _query(session: requests.Session, api_url: str, params: dict, policy: RetryPolicy) -> dict:
    """One API answer, retried with backoff on connection errors and 429/5xx."""
    failures = 0
    while True:
        try:
            resp = session.get(api_url, params=params, timeout=policy.timeout_s, headers={"User-Agent": USER_AGENT})
            if resp.status_code not in RETRY_STATUS:
                resp.raise_for_status()
                return resp.json()
            err: Exception = TransferError(f"{api_url}: HTTP {resp.status_code}")
        except (requests.ConnectionError, requests.Timeout) as exc:
            err = exc
        failures += 1
        if failures > policy.retries:
            raise TransferError(f"{api_url}: gave up after {failures} attempts: {err}") from err
        time.sleep(policy.delay(failures))


def _article_after(session: requests.Session, api_url: str, prefix: str, policy: RetryPolicy) -> dict | None:
    params = {
        "action": "query", "format": "json", "formatversion": "2", "generator": "allpages", "gapnamespace": "0",
        "gapfilterredir": "nonredirects", "gaplimit": "1", "gapfrom": prefix, "prop": "extracts|info",
        "explaintext": "1", "exsectionformat": "plain", "inprop": "url",
    }
    pages = _query(session, api_url, params, policy).get("query", {}).get("pages", [])
    return pages[0] if pages else None


def article_ids(path: Path) -> set[str]:
    """The `id`s of a fetched set."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return {json.loads(line)["id"] for line in fh}


def fetch_wikipedia(cache: Path, *, articles: int = 200, seed: int = 0, min_chars: int = 1000, api_url: str = WIKIPEDIA_API,
                    exclude: set[str] | None = None, policy: RetryPolicy | None = None) -> Path:
    """The cached set of `articles` Wikipedia articles (none of whose `id` is in `exclude`),
    fetched first if absent."""
    exclude = exclude or set()
    tag = f"-excl{hashlib.sha256(json.dumps(sorted(exclude)).encode()).hexdigest()[:8]}" if exclude else ""
    target = cache / f"enwiki-{articles}-articles-seed{seed}{tag}.jsonl.gz"
    if target.is_file():
        return target
    policy = policy or RetryPolicy()
    rng = random.Random(seed)
    session = requests.Session()
    taken: dict[int, dict] = {}
    for _ in range(8 * articles):  # bounded: a wiki with few long articles ends the search
        if len(taken) == articles:
            break
        prefix = rng.choice(string.ascii_uppercase) + "".join(rng.choices(string.ascii_lowercase, k=2))
        page = _article_after(session, api_url, prefix, policy)
        text = (page or {}).get("extract") or ""
        if (page is None or page["pageid"] in taken or f"enwiki-{page['pageid']}" in exclude or len(text) < min_chars
                or "may refer to:" in text[:500]):
            continue
        taken[page["pageid"]] = {"id": f"enwiki-{page['pageid']}", "url": page.get("fullurl") or f"https://en.wikipedia.org/wiki?curid={page['pageid']}",
                                 "title": page["title"], "text": text.strip(), "source": api_url}
    if len(taken) < articles:
        raise TransferError(f"{api_url}: found {len(taken)} of {articles} articles of at least {min_chars} characters")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as out:
        for page in taken.values():
            out.write(json.dumps(page, ensure_ascii=False) + "\n")
    os.replace(tmp, target)  # a half-fetched set is never taken for a finished one
    return target
