"""PII redaction quality on the committed eval set (real Wikipedia sentences + inserted PII and
look-alikes; built by tests/data/filters/make_pii_eval.py).

    .venv/bin/python benchmarks/pii_eval.py

A predicted span is a true positive when it overlaps a gold span of the same type; any other
predicted span (on a look-alike or on the real base text) is a false positive.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from curate.filters.config import PiiConfig
from curate.filters.pii import PiiFinder

EVAL_SET = Path(__file__).resolve().parents[1] / "tests" / "data" / "filters" / "pii_eval.jsonl"
TYPES = ("email", "ip", "phone", "card")


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def evaluate(path: Path = EVAL_SET, cfg: PiiConfig | None = None) -> dict:
    finder = PiiFinder(cfg or PiiConfig())
    tp, fn, fp = Counter(), Counter(), Counter()
    lookalike_hits: Counter[str] = Counter()
    lookalike_total: Counter[str] = Counter()
    misses: list[str] = []
    false_hits: list[str] = []
    for line in path.read_text().splitlines():
        doc = json.loads(line)
        text = doc["text"]
        pred = finder.find(text)
        for start, end, kind in doc["gold"]:
            if any(k == kind and _overlaps((s, e), (start, end)) for s, e, k in pred):
                tp[kind] += 1
            else:
                fn[kind] += 1
                misses.append(f"{kind}: {text[start:end]}")
        for s, e, k in pred:
            if not any(k == kind and _overlaps((s, e), (start, end)) for start, end, kind in doc["gold"]):
                fp[k] += 1
                false_hits.append(f"{k}: {text[max(0, s - 15):e + 5]!r}")
        for start, end, kind in doc["lookalikes"]:
            lookalike_total[kind] += 1
            lookalike_hits[kind] += any(_overlaps((s, e), (start, end)) for s, e, _ in pred)
    per_type = {}
    for t in TYPES:
        n_pred = tp[t] + fp[t]
        per_type[t] = {
            "gold": tp[t] + fn[t],
            "recall": tp[t] / (tp[t] + fn[t]) if tp[t] + fn[t] else 1.0,
            "precision": tp[t] / n_pred if n_pred else 1.0,
        }
    total_tp, total_fp = sum(tp.values()), sum(fp.values())
    return {
        "per_type": per_type,
        "precision": total_tp / (total_tp + total_fp) if total_tp + total_fp else 1.0,
        "lookalikes": {k: (lookalike_hits[k], lookalike_total[k]) for k in sorted(lookalike_total)},
        "misses": misses,
        "false_hits": false_hits,
    }


def main() -> None:
    r = evaluate()
    print(f"{'type':6} {'gold':>5} {'recall':>7} {'precision':>9}")
    for t, m in r["per_type"].items():
        print(f"{t:6} {m['gold']:5d} {m['recall']:7.3f} {m['precision']:9.3f}")
    print(f"overall precision {r['precision']:.4f}")
    print("look-alikes touched (hit/total):", ", ".join(f"{k} {h}/{n}" for k, (h, n) in r["lookalikes"].items()))
    for m in r["misses"][:20]:
        print("missed", m)
    for m in r["false_hits"][:20]:
        print("false hit", m)


if __name__ == "__main__":
    main()
