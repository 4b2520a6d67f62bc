"""Language-ID accuracy of curate's LanguageID stage (lid.176.ftz) on the lingua sentences.

    .venv/bin/python benchmarks/langid_accuracy.py [--data ../shared/data] [--model PATH]

Labels are ISO 639-1; lid.176 labels are mapped to them (`no` is reported by lid.176 for
Bokmål text, so `nb` gold accepts `no`; lid.176 has no separate label otherwise needed here).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from curate.filters.config import LanguageConfig
from curate.filters.lang import LanguageID

# gold code -> predicted codes counted as correct (lid.176 label conventions)
EQUIVALENT = {"nb": {"nb", "no"}, "no": {"no", "nb"}, "he": {"he", "iw"}, "id": {"id", "in"}}


def load(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(r["lang"], r["text"]) for r in reader]


def evaluate(rows: list[tuple[str, str]], model_path: str | None = None) -> tuple[dict[str, tuple[int, int]], float]:
    stage = LanguageID(LanguageConfig(keep=None, min_score=0.0, model_path=model_path))
    tops, _, _ = stage.predict([text for _, text in rows])
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (gold, _), pred in zip(rows, tops):
        per[gold][1] += 1
        per[gold][0] += pred in EQUIVALENT.get(gold, {gold})
    correct = sum(c for c, _ in per.values())
    return {k: (c, n) for k, (c, n) in per.items()}, correct / len(rows)


def model_codes(model_path: str | None = None) -> set[str]:
    stage = LanguageID(LanguageConfig(keep=None, min_score=0.0, model_path=model_path))
    return {stage.to_code(label) for label in stage.model.get_labels()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    rows = load(Path(args.data) / "langid" / "lingua-sentences.tsv")
    per, overall = evaluate(rows, args.model)
    print(f"{'lang':6} {'acc':>6}  n")
    for lang, (c, n) in sorted(per.items(), key=lambda kv: kv[1][0] / kv[1][1]):
        print(f"{lang:6} {c / n:6.3f}  {n}")
    macro = sum(c / n for c, n in per.values()) / len(per)
    known = model_codes(args.model)
    supported = {k: v for k, v in per.items() if EQUIVALENT.get(k, {k}) & known}
    sup_acc = sum(c for c, _ in supported.values()) / sum(n for _, n in supported.values())
    print(f"languages without a model label (always wrong): {sorted(set(per) - set(supported))}")
    print(f"accuracy on the {len(supported)} languages the model has a label for: {sup_acc:.4f}")
    print(f"overall accuracy {overall:.4f} on {len(rows)} sentences, {len(per)} languages (macro {macro:.4f})")


if __name__ == "__main__":
    main()
