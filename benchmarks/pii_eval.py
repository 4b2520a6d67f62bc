"""PII redaction quality on the independent evaluation set, and its speed on real text.

    .venv/bin/python benchmarks/pii_eval.py [--data ../shared/data] [--split tune|heldout|both] [--show 20]

The set comes from tests/data/filters/make_pii_eval.py (real sentences of the shared data with
PII inserted in the formats of 15 countries, plus look-alikes; it never imports the redactor).
`tune` is the split to look at while improving the rules; `heldout` is reported, not inspected.

A predicted span is a true positive when it overlaps a gold span of the same type; any other
predicted span (on a look-alike or on the real base text) is a false positive. Recall is given
per type and per format family, precision overall and per type, and for every look-alike family
the share of its items left untouched. Speed: documents/s on one core over real Wikipedia
articles (what the stage sees: whole documents, mostly without PII).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections import Counter
from pathlib import Path

from curate.filters.config import PiiConfig
from curate.filters.pii import PiiFinder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data" / "filters"))
import make_pii_eval  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TYPES = ("email", "ip", "phone", "card")


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def evaluate(docs: list[dict], cfg: PiiConfig | None = None) -> dict:
    finder = PiiFinder(cfg or PiiConfig())
    tp, fn, fp = Counter(), Counter(), Counter()
    family_hit, family_total = Counter(), Counter()
    look_hit, look_total = Counter(), Counter()
    fp_where: Counter[str] = Counter()
    misses: list[str] = []
    false_hits: list[str] = []
    for doc in docs:
        text = doc["text"]
        pred = finder.find(text)
        for start, end, kind, family in doc["gold"]:
            family_total[family] += 1
            if any(k == kind and _overlaps((s, e), (start, end)) for s, e, k in pred):
                tp[kind] += 1
                family_hit[family] += 1
            else:
                fn[kind] += 1
                misses.append(f"{family}: {text[max(0, start - 20):end + 20]!r}")
        for s, e, k in pred:
            if any(k == kind and _overlaps((s, e), (start, end)) for start, end, kind, _ in doc["gold"]):
                continue
            fp[k] += 1
            where = next((fam for start, end, fam in doc["lookalikes"] if _overlaps((s, e), (start, end))), "base_text")
            fp_where[where] += 1
            false_hits.append(f"{k} on {where}: {text[max(0, s - 25):e + 5]!r}")
        for start, end, family in doc["lookalikes"]:
            look_total[family] += 1
            look_hit[family] += any(_overlaps((s, e), (start, end)) for s, e, _ in pred)
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
        "gold_total": total_tp + sum(fn.values()),
        "families": {f: (family_hit[f], family_total[f]) for f in sorted(family_total)},
        "lookalikes": {f: (look_hit[f], look_total[f]) for f in sorted(look_total)},
        "false_positives_on": dict(fp_where),
        "misses": misses,
        "false_hits": false_hits,
    }


def wikipedia_docs(shared_data: Path, n: int = 400) -> list[str]:
    with gzip.open(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for _, line in zip(range(n), f)]


def docs_per_second(texts: list[str], cfg: PiiConfig | None = None) -> tuple[float, float]:
    """(documents/s, MB/s) of PiiFinder.redact on one core."""
    finder = PiiFinder(cfg or PiiConfig())
    finder.redact(texts[0])  # phonenumbers loads region metadata lazily: not part of the rate
    t0 = time.process_time()
    for text in texts:
        finder.redact(text)
    seconds = time.process_time() - t0
    return len(texts) / seconds, sum(len(t) for t in texts) / seconds / 1e6


def report(name: str, r: dict, show: int) -> None:
    print(f"\n== {name}: {r['gold_total']} PII instances, {sum(n for _, n in r['lookalikes'].values())} look-alikes ==")
    print(f"{'type':6} {'gold':>5} {'recall':>7} {'precision':>9}")
    for t, m in r["per_type"].items():
        print(f"{t:6} {m['gold']:5d} {m['recall']:7.3f} {m['precision']:9.3f}")
    print(f"overall precision {r['precision']:.4f}; false positives on: {r['false_positives_on'] or 'none'}")
    print("recall per format family:", ", ".join(f"{f} {h}/{n}" for f, (h, n) in r["families"].items()))
    print("look-alike families untouched:", ", ".join(f"{f} {n - h}/{n}" for f, (h, n) in r["lookalikes"].items()))
    for m in r["misses"][:show]:
        print("  missed", m)
    for m in r["false_hits"][:show]:
        print("  false hit", m)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--split", choices=("tune", "heldout", "both"), default="both")
    ap.add_argument("--show", type=int, default=20, help="misses and false hits to print per split")
    args = ap.parse_args()
    for split in ("tune", "heldout") if args.split == "both" else (args.split,):
        report(split, evaluate(make_pii_eval.build(args.data, split)), args.show if split == "tune" else 0)
    rate, mbs = docs_per_second(wikipedia_docs(args.data))
    print(f"\nspeed on 400 real Wikipedia articles: {rate:.0f} documents/s per core ({mbs:.2f} MB/s)")


if __name__ == "__main__":
    main()
