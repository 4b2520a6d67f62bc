"""MinHash: shingles as Python makes them, signatures identical to datasketch on the same shingle
hashes and permutations, accurate Jaccard, the LSH curve on real text."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.dedup.minhash import (
    SignatureBuilder, estimated_jaccard, hash_strings, normalize_text, permutations, shingle_hashes, signatures, sketch,
    sketch_jaccard,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from dedup_edits import load_articles, make_pairs  # noqa: E402
from neardup_curve import curve  # noqa: E402

words = st.text(alphabet="abcdeé日 ", min_size=0, max_size=60)


@given(st.lists(words, min_size=1, max_size=20))
@settings(max_examples=60, deadline=None)
def test_string_hash_is_a_function_of_the_string_alone(strings):
    """Batch position and neighbours never change a string's hash."""
    together = hash_strings(pa.array(strings, pa.large_string()))
    alone = np.concatenate([hash_strings(pa.array([s], pa.large_string())) for s in strings])
    assert np.array_equal(together, alone)
    for i, j in zip(*np.nonzero(together[:, None] == together[None, :])):
        assert strings[i] == strings[j]


@given(st.lists(st.lists(st.sampled_from(["a", "b", "c", "d", "ee", "ü"]), max_size=30), min_size=1, max_size=8))
@settings(max_examples=60, deadline=None)
def test_signature_of_a_document_ignores_the_other_documents_of_the_batch(docs):
    texts = [" ".join(d) for d in docs]
    builder = SignatureBuilder(ngram=3, num_perm=16, seed=3)
    together, has = builder(pa.array(texts, pa.large_string()))
    for i, t in enumerate(texts):
        alone, has_alone = builder(pa.array([t], pa.large_string()))
        assert np.array_equal(together[i], alone[0]) and has[i] == has_alone[0]
        assert has[i] == bool(t.split())


def test_signatures_are_bit_identical_to_datasketch_on_real_text(shared_data):
    articles = load_articles(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", min_words=1)[:60]
    texts = normalize_text(pa.array(articles, pa.large_string()))
    hashes, doc = shingle_hashes(texts, 5)
    a, b = permutations(112, seed=7)
    ours = signatures(hashes, doc, len(texts), a, b)
    for i in range(len(articles)):
        ref = MinHash(num_perm=112, seed=7, hashfunc=lambda v: v)  # same shingle hashes, datasketch's own permutations
        for h in hashes[doc == i]:
            ref.update(int(h))
        assert np.array_equal(ref.hashvalues, ours[i]), i


def test_shingles_are_the_word_5_grams_python_would_make(shared_data):
    """Same shingles as the reference a peer benchmark builds with str.split(): one hash per
    5-gram position, equal 5-grams hash equally, different ones (almost) never collide."""
    articles = load_articles(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", min_words=1)[:300]
    texts = normalize_text(pa.array(articles + ["one two", "", "  a   b\tc  "], pa.large_string()))
    hashes, doc = shingle_hashes(texts, 5)
    seen: dict[str, int] = {}
    k = 0
    for i, t in enumerate(texts.to_pylist()):
        w = t.split()
        grams = [" ".join(w[j : j + 5]) for j in range(max(len(w) - 4, 1))] if w else []
        assert np.count_nonzero(doc == i) == len(grams)
        for g in grams:
            assert doc[k] == i and seen.setdefault(g, int(hashes[k])) == int(hashes[k])
            k += 1
    collisions = len(seen) - len(set(seen.values()))
    assert collisions <= 3 * len(seen) ** 2 / 2**33 + 3  # 32-bit hashes: ~n^2/2^33 pairs collide by chance
    assert texts.to_pylist()[-1] == "a b c"


def test_lsh_curve_recall_and_jaccard_error_on_edited_wikipedia(shared_data):
    """Controlled edits of real articles: raw LSH detection follows 1-(1-s^8)^14 within 0.05 per
    bucket (plus 2 sd of binomial noise), and with the default verification recall >= 0.95 at
    J >= 0.85 and false positives <= 1% at J <= 0.5; estimated-vs-exact Jaccard MAE <= 0.05."""
    articles = load_articles(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz")
    pairs = make_pairs(articles, per_article=4, seed=11)
    r = curve(pairs)
    assert len(r["table"]) == 14
    for lo, hi, n, measured, theory, _ in r["table"]:
        assert abs(measured - theory) <= 0.05 + 2 * np.sqrt(theory * (1 - theory) / n), (lo, measured, theory)
    assert r["recall_085"] >= 0.95 and r["recall_085_verified"] >= 0.95
    assert r["fp_le_05_verified"] <= 0.01
    assert r["fp_le_05"] <= r["theory_fp_le_05"] + 0.01
    assert r["mae"] <= 0.05


@given(st.floats(0.0, 1.0), st.integers(0, 2**31))
@settings(max_examples=30, deadline=None)
def test_8_bit_sketches_estimate_jaccard(j, seed):
    """b-bit sketches: same slot -> same byte; the 1/256 chance matches are corrected for."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**32, (64, 112), dtype=np.uint32)
    b = np.where(rng.random((64, 112)) < j, a, rng.integers(0, 2**32, (64, 112), dtype=np.uint32))
    est = sketch_jaccard(sketch(a), sketch(b))
    assert abs(est.mean() - estimated_jaccard(a, b).mean()) < 0.02
