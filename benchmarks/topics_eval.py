"""Accuracy and macro-F1 of the topic/format labeller on the hand-labelled evaluation set.

    .venv/bin/python benchmarks/topics_eval.py [--data ../shared/data] [--split dev|heldout|all]
        [--backend supervised|embedding|fasttext] [--head NPZ] [--fasttext-dir DIR]

`benchmarks/data/topics_eval.tsv`: 175 English/German pages of `shared/data/real-pages.warc.gz`
(the first 175 with >= 300 extracted characters in sha1(source path) order), labelled by a
person reading each page's URL, title and text, before any category description was tuned.
Rows 0-104 are `dev` (descriptions may be tuned on them), rows 105-174 `heldout` (never looked
at while tuning). The text is extracted here with the pipeline's own Extract stage; the file
holds ids, URLs and labels only.
"""

from __future__ import annotations

import argparse
import csv
import gzip
from collections import Counter
from pathlib import Path

from curate.classifiers.topics import TopicsConfig, build_labeller
from curate.classifiers.topics_head import macro_f1
from curate.config import ExtractConfig
from curate.pipeline.extract import Extract

EVAL_TSV = Path(__file__).resolve().parent / "data" / "topics_eval.tsv"
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_eval_set(data: Path, split: str = "all", with_text: bool = True) -> list[dict]:
    """Rows of the evaluation set, with their extracted `text` unless `with_text` is false."""
    extract = Extract(ExtractConfig())
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


def scores(gold: list[str], pred: list[str]) -> dict[str, float]:
    return {"accuracy": sum(g == p for g, p in zip(gold, pred)) / len(gold), "macro_f1": macro_f1(gold, pred)}


def majority_baseline(gold: list[str], train_gold: list[str]) -> dict[str, float]:
    """Always predict the most common label of `train_gold` (the dev split's)."""
    top = Counter(train_gold).most_common(1)[0][0]
    return scores(gold, [top] * len(gold))


def evaluate(rows: list[dict], cfg: TopicsConfig, baseline_rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    labels = build_labeller(cfg).label_documents([r["text"] for r in rows], [r["url"] for r in rows])
    pred = {"topic": labels.topic, "format": labels.format}
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
    ap.add_argument("--split", choices=["dev", "heldout", "all"], default="dev")
    ap.add_argument("--backend", choices=["supervised", "embedding", "fasttext"], default="supervised")
    ap.add_argument("--head", help="backend supervised: the .npz (default the shipped one)")
    ap.add_argument("--fasttext-dir")
    args = ap.parse_args()
    cfg = TopicsConfig(enabled=True, backend=args.backend, head=args.head, fasttext_dir=args.fasttext_dir)
    rows = load_eval_set(args.data, args.split)
    result = evaluate(rows, cfg, load_eval_set(args.data, "dev", with_text=False))
    print(f"{len(rows)} pages ({args.split}), backend {args.backend}")
    for axis, r in result.items():
        lab, maj = r["labeller"], r["majority"]
        print(f"  {axis:6s}: accuracy {lab['accuracy']:.3f} (majority {maj['accuracy']:.3f}), "
              f"macro-F1 {lab['macro_f1']:.3f} (majority {maj['macro_f1']:.3f})")


if __name__ == "__main__":
    main()
