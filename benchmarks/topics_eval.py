"""Accuracy and macro-F1 of the topic/format labeller on the hand-labelled evaluation set.

    .venv/bin/python benchmarks/topics_eval.py [--data ../shared/data] [--split dev|heldout|heldout2|all]
        [--backend supervised|embedding|fasttext] [--head NPZ] [--fasttext-dir DIR] [--per-label]

`benchmarks/data/topics_eval.tsv`: 175 English/German pages of `shared/data/real-pages.warc.gz`
(the first 175 with >= 300 extracted characters in sha1(source path) order), labelled by a
person reading each page's URL, title and text, before any category description was tuned.
Rows 0-104 are `dev` (descriptions may be tuned on them), rows 105-174 `heldout` (never looked
at while tuning). The text is extracted here with the pipeline's own Extract stage; the file
holds ids, URLs and labels only. The `heldout` split was run once with the first supervised head
(2026-12-01), so it no longer measures a model chosen after that.

`benchmarks/data/topics_eval_heldout2.tsv` (`--split heldout2`): 86 fresh held-out pages drawn at
random by `benchmarks/topics_heldout2.py` (seeded, by site, from the training pool, which the
drawn pages and their sites then left), labelled by reading them before any model output on them
was seen. No head is selected on it; it is run once per shipped head.

The bar ("a clear margin", fixed before heldout2 was first run): on each axis, accuracy >= the
majority class's accuracy + CLEAR_MARGIN and macro-F1 >= the majority class's macro-F1 +
CLEAR_MARGIN, where the majority class is the stricter of the dev split's most common label and
the evaluated split's own most common label (the best constant answer in hindsight).
"""

from __future__ import annotations

import argparse
import csv
import gzip
from collections import Counter
from pathlib import Path

from curate.classifiers.topics import TopicsConfig, build_labeller
from curate.classifiers.topics_head import labelled_page_extractor, load_training_pages, macro_f1

EVAL_TSV = Path(__file__).resolve().parent / "data" / "topics_eval.tsv"
HELDOUT2_TSV = EVAL_TSV.with_name("topics_eval_heldout2.tsv")
CLEAR_MARGIN = 0.10
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_eval_set(data: Path, split: str = "all", with_text: bool = True) -> list[dict]:
    """Rows of the evaluation set, with their extracted `text` unless `with_text` is false."""
    if split == "heldout2":
        return load_heldout2(data, with_text)
    extract = labelled_page_extractor()
    rows = []
    with EVAL_TSV.open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            if split != "all" and r["split"] != split:
                continue
            if not with_text:
                rows.append(r)
                continue
            payload = gzip.open(data / "extraction" / r["source_path"]).read()
            text, _, reason = extract.extract_one(payload, None)
            if reason is not None:
                raise RuntimeError(f"{r['source_path']}: extraction failed ({reason})")
            rows.append({**r, "text": text})
    return rows


def load_heldout2(data: Path, with_text: bool = True) -> list[dict]:
    """The fresh held-out split (columns as the training file: source, url, topic, format)."""
    if not with_text:
        with HELDOUT2_TSV.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh, delimiter="\t"))
    return [p.__dict__ for p in load_training_pages(data, HELDOUT2_TSV)]


def scores(gold: list[str], pred: list[str]) -> dict[str, float]:
    return {"accuracy": sum(g == p for g, p in zip(gold, pred)) / len(gold), "macro_f1": macro_f1(gold, pred)}


def majority_baseline(gold: list[str], train_gold: list[str]) -> dict[str, float]:
    """Always predict the most common label: the stricter (higher accuracy) of `train_gold`'s (the
    dev split's) and `gold`'s own."""
    candidates = [Counter(train_gold).most_common(1)[0][0], Counter(gold).most_common(1)[0][0]]
    return max((scores(gold, [top] * len(gold)) for top in candidates), key=lambda r: r["accuracy"])


def meets_bar(result: dict[str, dict[str, dict[str, float]]]) -> dict[str, bool]:
    """Per axis: does the labeller beat the majority class by CLEAR_MARGIN in accuracy and macro-F1?"""
    return {axis: all(r["labeller"][m] >= r["majority"][m] + CLEAR_MARGIN for m in ("accuracy", "macro_f1"))
            for axis, r in result.items()}


def per_label(gold: list[str], pred: list[str]) -> list[tuple[str, int, float, float, float]]:
    """(label, gold count, precision, recall, F1) for every label that is gold or predicted."""
    out = []
    for label in sorted(set(gold) | set(pred)):
        tp = sum(g == p == label for g, p in zip(gold, pred))
        n_gold, n_pred = gold.count(label), pred.count(label)
        precision, recall = tp / n_pred if n_pred else 0.0, tp / n_gold if n_gold else 0.0
        out.append((label, n_gold, precision, recall, 2 * tp / (n_gold + n_pred) if tp else 0.0))
    return out


def predict(rows: list[dict], cfg: TopicsConfig) -> dict[str, list[str]]:
    labels = build_labeller(cfg).label_documents([r["text"] for r in rows], [r["url"] for r in rows])
    return {"topic": labels.topic, "format": labels.format}


def evaluate(rows: list[dict], cfg: TopicsConfig, baseline_rows: list[dict],
             pred: dict[str, list[str]] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    pred = pred if pred is not None else predict(rows, cfg)
    return {
        axis: {
            "labeller": scores([r[axis] for r in rows], pred[axis]),
            "majority": majority_baseline([r[axis] for r in rows], [r[axis] for r in baseline_rows]),
        }
        for axis in ("topic", "format")
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--split", choices=["dev", "heldout", "heldout2", "all"], default="dev")
    ap.add_argument("--backend", choices=["supervised", "embedding", "fasttext"], default="supervised")
    ap.add_argument("--head", help="backend supervised: the .npz (default the shipped one)")
    ap.add_argument("--fasttext-dir")
    ap.add_argument("--per-label", action="store_true", help="also print precision, recall and F1 per label")
    args = ap.parse_args()
    cfg = TopicsConfig(enabled=True, backend=args.backend, head=args.head, fasttext_dir=args.fasttext_dir)
    rows = load_eval_set(args.data, args.split)
    pred = predict(rows, cfg)
    result = evaluate(rows, cfg, load_eval_set(args.data, "dev", with_text=False), pred)
    bar = meets_bar(result)
    print(f"{len(rows)} pages ({args.split}), backend {args.backend}")
    for axis, r in result.items():
        lab, maj = r["labeller"], r["majority"]
        print(f"  {axis:6s}: accuracy {lab['accuracy']:.3f} (majority {maj['accuracy']:.3f}), "
              f"macro-F1 {lab['macro_f1']:.3f} (majority {maj['macro_f1']:.3f}); "
              f"clear margin (+{CLEAR_MARGIN:.2f} on both): {'met' if bar[axis] else 'NOT met'}")
        if args.per_label:
            for label, n, precision, recall, f1 in per_label([row[axis] for row in rows], pred[axis]):
                print(f"      {label:22s} gold {n:3d}  precision {precision:.2f}  recall {recall:.2f}  F1 {f1:.2f}")


if __name__ == "__main__":
    main()
