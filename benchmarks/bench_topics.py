"""Topic/format labeller throughput (documents/s per core) against extraction, both backends.

    .venv/bin/python benchmarks/bench_topics.py [--data ../shared/data] [--wiki 400]

On one core (torch and fastText with one thread): trafilatura extraction of the real pages of
`real-pages.warc.gz` (the pipeline's Extract stage), the supervised labeller (the default: MiniLM,
page-structure features, the shipped heads) and the zero-shot embedding labeller on their texts
plus `--wiki` Wikipedia articles, a fastText student distilled from the embedding labels of
those documents minus the evaluation pages, and the student's agreement with its teacher and its
accuracy on the held-out evaluation pages, which it never saw. "adds to a run" = labeller seconds per document / extraction seconds per
document: the share the labeller adds to the per-document work of a run.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from curate.classifiers.topics import (
    EmbeddingLabeller,
    FastTextLabeller,
    Labels,
    SupervisedLabeller,
    TopicsConfig,
    distill,
    document_inputs,
    load_taxonomy,
)
from curate.config import ExtractConfig
from curate.pipeline.extract import Extract

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def timed(fn, *args):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--wiki", type=int, default=400, help="Wikipedia articles added to the labelled documents")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    extract = Extract(ExtractConfig())
    with open(args.data / "real-pages.index.tsv") as fh:
        index = list(csv.DictReader(fh, delimiter="\t"))
    payloads = [gzip.open(args.data / "extraction" / r["source_path"]).read() for r in index]
    results, ext_wall, ext_cpu = timed(lambda: [extract.extract_one(p, None) for p in payloads])
    from topics_eval import EVAL_TSV, evaluate, load_eval_set

    with EVAL_TSV.open() as fh:
        eval_paths = {r["source_path"] for r in csv.DictReader(fh, delimiter="\t")}
    texts = [t for t, _, _ in results if t]
    urls = [r["target_uri"] for r, (t, _, _) in zip(index, results) if t]
    # The student learns from pages outside the evaluation set, so its held-out figures are unseen pages.
    unseen = [r["source_path"] not in eval_paths for r, (t, _, _) in zip(index, results) if t]
    with gzip.open(args.data / "wikipedia" / "enwiki-sample.jsonl.gz", "rt") as fh:
        wiki = [json.loads(line) for _, line in zip(range(args.wiki), fh)]
    texts += [w["text"] for w in wiki]
    urls += [w["url"] for w in wiki]
    unseen += [True] * len(wiki)

    cfg = TopicsConfig(enabled=True)
    inputs = document_inputs(texts, urls, cfg)
    (teacher_model, load_s, _) = timed(EmbeddingLabeller, cfg, load_taxonomy())
    teacher, emb_wall, emb_cpu = timed(teacher_model.label, inputs)
    supervised_model = SupervisedLabeller(cfg, load_taxonomy())
    _, sup_wall, sup_cpu = timed(supervised_model.label_documents, texts, urls)
    train_idx = [i for i, u in enumerate(unseen) if u]
    pick = lambda xs: [xs[i] for i in train_idx]  # noqa: E731
    train_teacher = Labels(pick(teacher.topic), teacher.topic_score[train_idx], pick(teacher.format), teacher.format_score[train_idx])
    n_pages, n = len(payloads), len(inputs)
    per_doc_extract = ext_wall / n_pages
    with tempfile.TemporaryDirectory() as tmp:
        _, distill_s, _ = timed(distill, pick(inputs), train_teacher, tmp)
        student_model = FastTextLabeller(TopicsConfig(enabled=True, backend="fasttext", fasttext_dir=tmp))
        student, ft_wall, ft_cpu = timed(student_model.label, inputs)
        # The throughput first: the student's held-out evaluation below extracts pages again and can time out on a busy machine.
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (above the core count: figures are skewed)")
        print(f"extraction (trafilatura): {n_pages} pages, {n_pages / ext_wall:.1f} docs/s per core "
              f"({1000 * per_doc_extract:.1f} ms/doc wall, {1000 * ext_cpu / n_pages:.1f} ms CPU)")
        for name, wall, cpu in (("supervised heads (MiniLM + structure features, the default)", sup_wall, sup_cpu),
                                ("embedding zero-shot (MiniLM, 128 word pieces)", emb_wall, emb_cpu),
                                ("fastText student", ft_wall, ft_cpu)):
            print(f"{name}: {n} docs, {n / wall:.1f} docs/s per core wall, {n / cpu:.1f} per CPU-second "
                  f"({1000 * wall / n:.2f} ms/doc wall, {1000 * cpu / n:.2f} ms CPU); adds {100 * (wall / n) / per_doc_extract:.1f}% "
                  f"(wall) / {100 * cpu / n / (ext_cpu / n_pages):.1f}% (CPU) to the per-document work of extraction", flush=True)
        print(f"model load {load_s:.1f} s; distillation of {len(train_idx)} docs {distill_s:.1f} s")
        seen = np.array(unseen)
        for label, mask in (("its training documents", seen), ("the evaluation pages it never saw", ~seen)):
            agree_t = np.mean(np.array(student.topic)[mask] == np.array(teacher.topic)[mask])
            agree_f = np.mean(np.array(student.format)[mask] == np.array(teacher.format)[mask])
            print(f"student agrees with the teacher on {label} ({int(mask.sum())}): topic {agree_t:.3f}, format {agree_f:.3f}", flush=True)
        held = load_eval_set(args.data, "heldout")
        ft_eval = evaluate(held, TopicsConfig(enabled=True, backend="fasttext", fasttext_dir=tmp),
                           load_eval_set(args.data, "dev", with_text=False))
    for axis, r in ft_eval.items():
        print(f"fastText student on the {len(held)} held-out pages, {axis}: accuracy {r['labeller']['accuracy']:.3f} "
              f"(majority {r['majority']['accuracy']:.3f}), macro-F1 {r['labeller']['macro_f1']:.3f} "
              f"(majority {r['majority']['macro_f1']:.3f})")

if __name__ == "__main__":
    main()
