"""Language-ID accuracy per backend on the lingua sentences, as sentences and as paragraphs.

    .venv/bin/python benchmarks/langid_accuracy.py [--data ../shared/data] [--backend cld2 lid176 heliport]
        [--model PATH [--label-map JSON]] [--per-language] [--rss] [--cascade]

Backends: `cld2` (pycld2, the default), `lid176` (fastText, bundled lid.176.ftz), `heliport`
(HPLT, in the wheel), and `fasttext:PATH` for any other fastText model given with --model
(GlotLID, OpenLID; their `eng_Latn` labels map to ISO 639-1 by themselves, --label-map adds to that).

Texts: the 15,000 sentences of `langid/lingua-sentences.tsv` (75 languages x 200) and
paragraph-length documents made of them: per language, each run of PARAGRAPH_SENTENCES
consecutive sentences in file order joined by spaces (40 per language, ~500 characters), since
pages are what the pipeline sees. Each is scored twice: with the gold labels as they are, and
with confusable macro-language members folded (bs/hr/sr -> sh, id/ms -> ms, nb/nn -> no) in
gold and prediction alike (`fold_macrolanguages: true`).

Accuracy is given overall (a language the backend has no label for counts as wrong) and over
the languages the backend supports; speed is documents/s on one core (process CPU time), on
these texts and on 400 English Wikipedia articles (~3.7k characters, page length). `--rss`
adds each backend's memory per worker: what a fresh process's resident memory grows by when it
loads the backend and reads the paragraphs with it.

`--cascade` measures "lid.176, and cld2 only where lid.176 is unsure (top score below T) or says
a confusable macro-language member": T is chosen on the even-numbered sentences of each
language and reported on the odd-numbered ones, so the reported figure was not tuned on.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import multiprocessing
import resource
import time
from collections import defaultdict
from pathlib import Path

from curate.filters.config import LanguageConfig
from curate.filters.lang import MACROLANGUAGE_FOLDS, LanguageID

PARAGRAPH_SENTENCES = 5
# gold code -> predicted codes counted as correct (label conventions, not mistakes)
EQUIVALENT = {"nb": {"nb", "no"}, "he": {"he", "iw"}, "id": {"id", "in"}}


def load(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(r["lang"], r["text"]) for r in reader]


def paragraphs(rows: list[tuple[str, str]], size: int = PARAGRAPH_SENTENCES) -> list[tuple[str, str]]:
    """Per language, consecutive runs of `size` sentences joined into one text (file order)."""
    by_lang: dict[str, list[str]] = defaultdict(list)
    for lang, text in rows:
        by_lang[lang].append(text)
    return [(lang, " ".join(texts[i : i + size])) for lang, texts in by_lang.items() for i in range(0, len(texts) - size + 1, size)]


def wikipedia_articles(shared_data: Path, n: int = 400) -> list[str]:
    """Page-length English texts, for speed where pages are long."""
    with gzip.open(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for _, line in zip(range(n), f)]


def stage_for(backend: str, fold: bool, label_map: dict[str, str] | None = None) -> LanguageID:
    kind = backend if backend in ("cld2", "heliport") else "fasttext"
    model_path = backend.split(":", 1)[1] if backend.startswith("fasttext:") else None
    return LanguageID(
        LanguageConfig(keep=None, min_score=0.0, backend=kind, model_path=model_path, label_map=label_map or {}, fold_macrolanguages=fold)
    )


def score(stage: LanguageID, rows: list[tuple[str, str]], fold: bool) -> dict:
    t0 = time.process_time()
    tops, _, _ = stage.predict([text for _, text in rows])
    seconds = time.process_time() - t0
    known = stage.codes()
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (gold, _), pred in zip(rows, tops):
        gold = MACROLANGUAGE_FOLDS.get(gold, gold) if fold else gold
        per[gold][1] += 1
        per[gold][0] += pred in EQUIVALENT.get(gold, {gold})
    supported = {g: v for g, v in per.items() if EQUIVALENT.get(g, {g}) & known}
    return {
        "accuracy": sum(c for c, _ in per.values()) / len(rows),
        "supported_accuracy": sum(c for c, _ in supported.values()) / max(1, sum(n for _, n in supported.values())),
        "supported": len(supported),
        "languages": len(per),
        "unsupported": sorted(set(per) - set(supported)),
        "per_language": {g: c / n for g, (c, n) in per.items()},
        "docs_per_s": len(rows) / seconds if seconds else float("inf"),
    }


def evaluate(backend: str, rows: list[tuple[str, str]], fold: bool = False, label_map: dict[str, str] | None = None) -> dict:
    return score(stage_for(backend, fold, label_map), rows, fold)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _rss_gain_mb(backend: str, data: str) -> float:
    texts = [text for _, text in paragraphs(load(Path(data) / "langid" / "lingua-sentences.tsv"))]
    before = _rss_mb()
    stage_for(backend, False).predict(texts)
    return _rss_mb() - before


def rss_per_worker_mb(backend: str, data: str) -> float:
    """Resident memory a fresh worker gains by loading `backend` and reading the paragraphs with it."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_rss_gain_mb, (backend, data))


def halves(rows: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Per language, the even-numbered sentences (to choose on) and the odd-numbered ones (to report)."""
    seen: dict[str, int] = defaultdict(int)
    parts: tuple[list[tuple[str, str]], list[tuple[str, str]]] = ([], [])
    for lang, text in rows:
        parts[seen[lang] % 2].append((lang, text))
        seen[lang] += 1
    return parts


CONFUSABLE = frozenset(MACROLANGUAGE_FOLDS)


def cascade_accuracy(rows: list[tuple[str, str]], threshold: float, first: LanguageID, second: LanguageID) -> tuple[float, float]:
    """Accuracy of lid.176-then-cld2 at `threshold`, and the share of texts cld2 is asked about."""
    texts = [text for _, text in rows]
    tops, scores, _ = first.predict(texts)
    unsure = [i for i, (top, s) in enumerate(zip(tops, scores)) if s < threshold or top in CONFUSABLE]
    for i, top in zip(unsure, second.predict([texts[i] for i in unsure])[0]):
        tops[i] = top
    correct = sum(pred in EQUIVALENT.get(gold, {gold}) for (gold, _), pred in zip(rows, tops))
    return correct / len(rows), len(unsure) / len(rows)


def report_cascade(sentences: list[tuple[str, str]]) -> None:
    first, second = stage_for("lid176", False), stage_for("cld2", False)
    choose, held_out = halves(sentences)
    for name, make in (("sentences", lambda r: r), ("paragraphs", paragraphs)):
        grid = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
        threshold = max(grid, key=lambda t: cascade_accuracy(make(choose), t, first, second)[0])
        acc, share = cascade_accuracy(make(held_out), threshold, first, second)
        alone = score(second, make(held_out), False)["accuracy"]
        print(f"cascade lid176->cld2 {name}: T={threshold} chosen on even sentences; on odd ones {acc:.4f} "
              f"(cld2 asked on {share:.2f}) vs cld2 alone {alone:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--backend", nargs="+", default=["cld2", "lid176", "heliport"])
    ap.add_argument("--model", default=None, help="another fastText LID model (adds backend fasttext:PATH)")
    ap.add_argument("--label-map", default="{}", help="JSON label -> code map for --model")
    ap.add_argument("--per-language", action="store_true")
    ap.add_argument("--rss", action="store_true", help="memory per worker, each backend in a fresh process")
    ap.add_argument("--cascade", action="store_true", help="lid.176 with cld2 where it is unsure, on held-out sentences")
    args = ap.parse_args()
    sentences = load(Path(args.data) / "langid" / "lingua-sentences.tsv")
    sets = {"sentences": sentences, "paragraphs": paragraphs(sentences)}
    backends = list(args.backend) + ([f"fasttext:{args.model}"] if args.model else [])
    print(f"{'backend':24} {'texts':10} {'fold':5} {'overall':>8} {'supported':>10} {'langs':>6} {'docs/s/core':>12}")
    for backend in backends:
        for fold in (False, True):
            stage = stage_for(backend, fold, json.loads(args.label_map))
            for name, rows in sets.items():
                r = score(stage, rows, fold)
                print(f"{backend[:24]:24} {name:10} {'yes' if fold else 'no':5} {r['accuracy']:8.4f} {r['supported_accuracy']:10.4f} "
                      f"{r['supported']:3d}/{r['languages']:<3d} {r['docs_per_s']:12.0f}")
                if args.per_language:
                    worst = sorted(r["per_language"].items(), key=lambda kv: kv[1])[:12]
                    print("    worst:", ", ".join(f"{g} {a:.2f}" for g, a in worst), "| unsupported:", r["unsupported"])
    articles = wikipedia_articles(Path(args.data))
    for backend in backends:
        stage = stage_for(backend, False, json.loads(args.label_map))
        t0 = time.process_time()
        tops, _, _ = stage.predict(articles)
        seconds = time.process_time() - t0
        print(f"{backend[:24]:24} {len(articles)} Wikipedia articles (~{sum(map(len, articles)) // len(articles)} chars): "
              f"{len(articles) / seconds:.0f} docs/s per core ({1000 * seconds / len(articles):.2f} ms each), "
              f"{tops.count('en') / len(tops):.3f} read as en")
        if args.rss:
            print(f"{backend[:24]:24} RSS per worker: {rss_per_worker_mb(backend, args.data):.1f} MB")
    if args.cascade:
        report_cascade(sentences)


if __name__ == "__main__":
    main()
