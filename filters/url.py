"""URL block-lists, as datatrove's URLFilter: blocked domains (and their subdomains), blocked
full URLs, banned words, soft-banned words (a threshold of them) and banned sub-words."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa

from curate import schema
from curate.filters.config import UrlConfig
from curate.pipeline.stage import Stage

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _normalize_word(word: str) -> str:
    return _NON_ALNUM.sub("", word.lower())


def read_list(path: str | Path) -> list[str]:
    """One entry per line; blank lines and `#` comments skipped."""
    out = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def _bundled_lists() -> tuple[list[str], list[str], list[str], list[str], list[str]]:
    """datatrove's shipped lists (UT1 domains/urls, banned words): read locally, no download."""
    from datatrove.utils._import_utils import ASSETS_PATH

    assets = Path(ASSETS_PATH)
    domains: list[str] = []
    urls: list[str] = []
    with tarfile.open(assets / "url_filterblacklistsv0_3_0.tar.gz", "r:gz") as tar:
        for member in tar.getmembers():
            f = tar.extractfile(member)
            if f is None:
                continue
            lines = [x.strip() for x in f.read().decode("utf-8", "replace").splitlines() if x.strip() and not x.startswith("#")]
            (domains if member.name.endswith("domains") else urls).extend(lines)
    words = read_list(assets / "banned_words.txt")
    subwords = read_list(assets / "banned_subwords.txt")
    soft = read_list(assets / "soft_banned_words.txt")
    return domains, urls, words, subwords, soft


class UrlFilter(Stage):
    name = "url"
    reason_namespaces = ("url",)

    def __init__(self, cfg: UrlConfig):
        self.cfg = cfg
        domains = [d.lower().strip(".") for d in cfg.domains]
        urls = list(cfg.urls)
        words, subwords, soft = list(cfg.banned_words), list(cfg.banned_subwords), list(cfg.soft_banned_words)
        for path in cfg.domain_blocklist_files:
            domains += [d.lower().strip(".") for d in read_list(path)]
        for path in cfg.url_blocklist_files:
            urls += read_list(path)
        if cfg.use_bundled_lists:
            b_domains, b_urls, b_words, b_sub, b_soft = _bundled_lists()
            domains += b_domains
            urls += b_urls
            words += b_words
            subwords += b_sub
            soft += b_soft
        self.domains = frozenset(domains)
        self.urls = frozenset(urls)
        self.banned_words = frozenset(filter(None, map(_normalize_word, words)))
        self.soft_words = frozenset(filter(None, map(_normalize_word, soft)))
        sub = sorted(filter(None, map(_normalize_word, subwords)), key=len, reverse=True)
        self.subword_re = re.compile("|".join(map(re.escape, sub))) if sub else None
        self.hits: dict[str, int] = {}

    def reason(self, url: str | None, domain: str | None) -> str | None:
        if not url:
            return None  # nothing to judge; the row goes on
        host = (urlsplit(url).hostname or "").lower().strip(".")
        if domain and domain.lower() in self.domains:
            return f"blocklist_domain:{domain.lower()}"
        # Any blocked parent of the host (a blocked domain blocks all its subdomains).
        labels = host.split(".")
        for i in range(len(labels) - 1):
            candidate = ".".join(labels[i:])
            if candidate in self.domains:
                return f"blocklist_domain:{candidate}"
        if url in self.urls:
            return "blocklist_url"
        url_words = set(_NON_ALNUM.split(url.lower()))
        for w in url_words:
            if w in self.banned_words:
                return f"banned_word:{w}"
        if self.soft_words:
            soft = sorted(url_words & self.soft_words)
            if len(soft) >= self.cfg.soft_word_threshold:
                return "soft_banned_words:" + "+".join(soft)
        if self.subword_re is not None:
            m = self.subword_re.search(_NON_ALNUM.sub("", url.lower()))
            if m:
                return f"banned_subword:{m.group(0)}"
        return None

    def __call__(self, batch: pa.Table) -> pa.Table:
        mask = schema.active_mask(batch).to_numpy(zero_copy_only=False)
        if not mask.any():
            return batch
        urls = batch.column(schema.URL).to_pylist()
        domains = batch.column(schema.DOMAIN).to_pylist()
        reasons: list[str | None] = [None] * batch.num_rows
        for row in np.flatnonzero(mask).tolist():
            try:
                detail = self.reason(urls[row], domains[row])
            except Exception as err:
                reasons[row] = f"{schema.ERROR_PREFIX}url:{type(err).__name__}"
                continue
            if detail:
                reasons[row] = f"url:{detail}"
                kind = detail.split(":", 1)[0]
                self.hits[kind] = self.hits.get(kind, 0) + 1
        return schema.mark_dropped(batch, reasons)

    def stats(self) -> dict[str, Any]:
        return dict(self.hits)
