"""Near-duplicate detection curve on controlled edits of real Wikipedia articles.

    .venv/bin/python benchmarks/neardup_curve.py [--per-article 6] [--bands 14 --rows 8]

Prints, per exact-Jaccard bucket, the measured probability that the pair shares an LSH bucket,
the theoretical 1-(1-s^r)^b averaged over the bucket's pairs, recall at J >= 0.85, the false
positive rate at J <= 0.5, and the MAE of estimated vs exact Jaccard.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_edits import load_articles, make_pairs, theoretical  # noqa: E402

from curate.dedup.minhash import SignatureBuilder, band_keys, estimated_jaccard  # noqa: E402


def curve(pairs, ngram: int = 5, bands: int = 14, rows: int = 8, seed: int = 1) -> dict:
    builder = SignatureBuilder(ngram, bands * rows, seed)
    sig_a, _ = builder(pa.array([p.original for p in pairs], pa.large_string()))
    sig_b, _ = builder(pa.array([p.edited for p in pairs], pa.large_string()))
    detected = (band_keys(sig_a, bands, rows) == band_keys(sig_b, bands, rows)).any(axis=1)
    exact = np.array([p.jaccard for p in pairs])
    est = estimated_jaccard(sig_a, sig_b)
    theory = theoretical(exact, rows, bands)
    edges = np.round(np.arange(0.3, 1.0001, 0.05), 2)
    table = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (exact >= lo) & ((exact < hi) if hi < 1.0 else (exact <= hi))
        if m.any():
            table.append((lo, hi, int(m.sum()), float(detected[m].mean()), float(theory[m].mean())))
    return {
        "table": table,
        "max_gap": max(abs(r[3] - r[4]) for r in table),
        "recall_085": float(detected[exact >= 0.85].mean()),
        "fp_le_05": float(detected[exact <= 0.5].mean()) if (exact <= 0.5).any() else 0.0,
        "theory_fp_le_05": float(theory[exact <= 0.5].mean()) if (exact <= 0.5).any() else 0.0,
        "mae": float(np.abs(est - exact).mean()),
        "pairs": len(pairs),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-article", type=int, default=6)
    ap.add_argument("--bands", type=int, default=14)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--ngram", type=int, default=5)
    args = ap.parse_args()
    articles = load_articles()
    pairs = make_pairs(articles, args.per_article, args.ngram)
    r = curve(pairs, args.ngram, args.bands, args.rows)
    print(f"{r['pairs']} edited pairs from {len(articles)} articles; {args.bands} bands x {args.rows} rows, {args.ngram}-grams")
    print(f"{'J bucket':>12} {'pairs':>6} {'measured':>9} {'theory':>7} {'gap':>6}")
    for lo, hi, n, meas, th in r["table"]:
        print(f"{lo:.2f}-{hi:.2f} {n:>10} {meas:>9.3f} {th:>7.3f} {meas - th:>+6.3f}")
    print(f"max |measured - theory| = {r['max_gap']:.3f}")
    print(f"recall at J >= 0.85     = {r['recall_085']:.4f}")
    print(f"false positives J <= 0.5 = {r['fp_le_05']:.4f} (theory {r['theory_fp_le_05']:.4f})")
    print(f"estimated vs exact Jaccard MAE = {r['mae']:.4f}")


if __name__ == "__main__":
    main()
