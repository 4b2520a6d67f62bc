"""Real Common Crawl records for the example when `../shared/data` is not beside the clone.

`make run` in a clone anywhere calls `curate fetch-example`: it picks one WARC file of a crawl
from its `warc.paths.gz` (seeded, so every clone picks the same), takes a few hundred random
response records of it by HTTP Range (`cc_index.sample_records`), and writes them once, as one
WARC of gzip members, into a local cache folder; later calls find the file and fetch nothing.
The project ships no copied pages.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path

from curate.config import COMMONCRAWL_HTTPS, CommonCrawlInput
from curate.pipeline.cc_index import sample_records
from curate.pipeline.sources import RetryPolicy, resolve_inputs

DEFAULT_CRAWL = "CC-MAIN-2024-22"


def fetch_example(cache: Path, *, crawl: str = DEFAULT_CRAWL, records: int = 300, seed: int = 0,
                  base_url: str = COMMONCRAWL_HTTPS, policy: RetryPolicy | None = None) -> Path:
    """The cached sample WARC, fetched first if absent."""
    target = cache / f"{crawl}-{records}-records-seed{seed}.warc.gz"
    if target.is_file():
        return target
    policy = policy or RetryPolicy()
    [warc] = resolve_inputs(CommonCrawlInput(source="commoncrawl", crawl=crawl, files=1, seed=seed, base_url=base_url))
    sampled = sample_records(warc.uri, records, random.Random(seed), policy)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(b"".join(r.data for r in sampled))
    os.replace(tmp, target)  # a half-fetched sample is never taken for a finished one
    return target
