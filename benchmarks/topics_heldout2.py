"""Draw the `heldout2` split of the topic/format evaluation (a fresh held-out set), reproducibly.

    .venv/bin/python benchmarks/topics_heldout2.py [--data ../shared/data] > sources.txt

The old held-out split of `topics_eval.tsv` was run once, so it no longer measures a model chosen
after it. `shared/data` has no unused pages left outside the evaluation set's sites (the
extraction corpora are split between `topics_train.tsv` and `topics_eval.tsv`), so the fresh split
is carved out of the training pool: every page of `topics_train.tsv` as it stood before heldout2
(commit 0b1790e) plus every page of `shared/data` in neither file that extracts to >= 300
characters and whose site is not an evaluation site. The pool's sites (`site_of`) are shuffled
with `random.Random(SEED)`; whole sites are taken in that order until at least `PAGES` pages are
drawn. The drawn pages leave the training set (with their sites), are labelled again by reading
them, blind to their old training labels and before any model output on them is seen, and are
stored in `benchmarks/data/topics_eval_heldout2.tsv` (columns as `topics_train.tsv`). Random by
site, not picked by label, so the majority-class baseline means what it says.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import random
from pathlib import Path

from curate.classifiers.topics_head import labelled_page_extractor, site_of

SEED = 20261202
PAGES = 85
HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data"
POOL_TRAIN_COMMIT = "0b1790e"  # topics_train.tsv as it stood when the pool was drawn
MIN_CHARS = 300


def unused_pages(data: Path, used: set[str], used_urls: set[str], eval_sites: set[str]) -> list[tuple[str, str]]:
    """(source, url) of pages of shared/data in neither label file (by source and by URL: a second
    capture of a page counts as that page), off the evaluation sites, with >= MIN_CHARS extracted
    characters."""
    from warcio.archiveiterator import ArchiveIterator

    extract = labelled_page_extractor()
    found = []

    def consider(source: str, url: str, text: str | None) -> None:
        if source not in used and url not in used_urls and text and len(text) >= MIN_CHARS and site_of(url, source) not in eval_sites:
            found.append((source, url))

    for line in (data / "extraction" / "index.jsonl").open():
        d = json.loads(line)
        source = "extraction/" + d["html_path"]
        if source in used:
            continue
        url = d["url"] or f"http://unknown.invalid/{d['html_path']}"
        text, _, reason = extract.extract_one(gzip.open(data / source).read(), None)
        consider(source, url, text if reason is None else None)
    for warc in ("warc/dolma-wget/sample-0000.warc.gz", "warc/resiliparse/CC-MAIN-2020-34-sample.warc.gz"):
        with (data / warc).open("rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type == "response":
                    url = rec.rec_headers.get_header("WARC-Target-URI").strip("<>")
                    text, _, reason = extract.extract_one(rec.content_stream().read(), None)
                    consider(f"{warc}#{url}", url, text if reason is None else None)
    for jsonl in sorted((data / "cc-text" / "dolma").glob("*.jsonl.gz")):
        if jsonl.name.startswith("expected"):
            continue
        for d in map(json.loads, gzip.open(jsonl, "rt")):
            consider(f"cc-text/dolma/{jsonl.name}#{d['id']}", d.get("url") or d["id"], d.get("text"))
    return found


def draw(data: Path, train_rows: list[dict], eval_rows: list[dict]) -> list[tuple[str, str]]:
    used = {r["source"] for r in train_rows} | {"extraction/" + r["source_path"] for r in eval_rows}
    eval_sites = {site_of(r["url"], "extraction/" + r["source_path"]) for r in eval_rows}
    used_urls = {r["url"] for r in train_rows} | {r["url"] for r in eval_rows}
    pool = [(r["source"], r["url"]) for r in train_rows] + unused_pages(data, used, used_urls, eval_sites)
    by_site: dict[str, list[tuple[str, str]]] = {}
    for source, url in pool:
        by_site.setdefault(site_of(url, source), []).append((source, url))
    sites = sorted(by_site)
    random.Random(SEED).shuffle(sites)
    drawn: list[tuple[str, str]] = []
    for site in sites:
        if len(drawn) >= PAGES:
            break
        drawn += sorted(by_site[site])
    return drawn


def main() -> None:
    import subprocess

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args()
    old_train = subprocess.run(["git", "-C", str(HERE), "show", f"{POOL_TRAIN_COMMIT}:classifiers/topics_train.tsv"],
                               capture_output=True, text=True, check=True).stdout
    train_rows = list(csv.DictReader(old_train.splitlines(), delimiter="\t"))
    with (HERE / "data" / "topics_eval.tsv").open(newline="", encoding="utf-8") as fh:
        eval_rows = list(csv.DictReader(fh, delimiter="\t"))
    for source, url in draw(args.data, train_rows, eval_rows):
        print(f"{source}\t{url}")


if __name__ == "__main__":
    main()
