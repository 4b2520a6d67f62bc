"""Controlled near-duplicates of real Wikipedia text, with their exact shingle Jaccard.

An edited copy replaces a random fraction q of the words with fresh tokens. With n-gram shingles a
shingle survives with probability (1-q)^n, so aiming at Jaccard s means keeping f = 2s/(1+s) of the
shingles, i.e. q = 1 - f^(1/n). The exact Jaccard of every pair is then measured (on the same
normalised word n-grams the dedup uses) and pairs are bucketed by it.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from curate.dedup.minhash import normalize_text

WIKI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wikipedia" / "enwiki-sample.jsonl.gz"


@dataclass
class EditedPair:
    original: str
    edited: str
    target: float
    jaccard: float


def load_articles(path: Path = WIKI, min_words: int = 300) -> list[str]:
    """Normalised article texts with at least `min_words` words (short stubs give coarse Jaccards)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh]
    norm = normalize_text(pa.array(texts, pa.large_string())).to_pylist()
    return [t for t in norm if len(t.split()) >= min_words]


def shingles(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(max(len(words) - n + 1, 1))}


def exact_jaccard(a: str, b: str, n: int) -> float:
    sa, sb = shingles(a.split(), n), shingles(b.split(), n)
    return len(sa & sb) / len(sa | sb)


def make_pairs(articles: list[str], per_article: int, ngram: int = 5, seed: int = 0,
               low: float = 0.3, high: float = 1.0) -> list[EditedPair]:
    rng = np.random.default_rng(seed)
    pairs = []
    for i, text in enumerate(articles):
        words = text.split()
        for j in range(per_article):
            target = float(rng.uniform(low, high))
            keep_shingles = 2 * target / (1 + target)
            q = 1 - keep_shingles ** (1 / ngram)
            edited = list(words)
            hit = np.flatnonzero(rng.random(len(words)) < q)
            for k, pos in enumerate(hit):  # fresh tokens, so an edit never recreates a shingle
                edited[pos] = f"zq{i}x{j}x{k}"
            new = " ".join(edited)
            pairs.append(EditedPair(text, new, target, exact_jaccard(text, new, ngram)))
    return pairs


def theoretical(s: np.ndarray | float, rows: int, bands: int) -> np.ndarray:
    return 1 - (1 - np.asarray(s) ** rows) ** bands
