"""fastText quality classifiers: train, evaluate, score.

A labelled set is a Parquet of `text, label, url, domain, source` rows (what
`curate classifier build-data` and `build-default` write). Training holds out whole registered
domains, so no site is on both sides of the evaluation; the split is a hash of (seed, domain).
Scoring and training prepare text with the same `normalize`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.classifiers.config import FastTextTrainConfig
from curate.classifiers.normalize import normalize

LABELLED_COLUMNS = ("text", "label", "url", "domain", "source")
LABEL_PREFIX = "__label__"
SHIPPED_MODEL = Path(__file__).resolve().parent / "models" / "wiki_quality.ftz"


class Scorer:
    """P(positive label) of documents under a fastText model, text normalised once per call."""

    def __init__(self, model_path: str | Path, positive_label: str, max_words: int) -> None:
        from curate.filters.lang import load_fasttext

        self.model = load_fasttext(model_path)
        labels = [label.removeprefix(LABEL_PREFIX) for label in self.model.get_labels()]
        if positive_label not in labels:
            raise ValueError(f"{model_path}: no label {positive_label!r} (the model has {labels})")
        self.positive = LABEL_PREFIX + positive_label
        self.k = len(labels)  # every label's probability, so the positive one is always there
        self.max_words = max_words

    def score(self, texts: list[str | None]) -> np.ndarray:
        """float32 scores in [0, 1]; an empty text gets what the model says about no words."""
        prepared = [normalize(t, self.max_words) for t in texts]
        labels, probs = self.model.predict(prepared, k=self.k)
        out = np.zeros(len(prepared), dtype=np.float32)
        for i, (ls, ps) in enumerate(zip(labels, probs)):
            for label, p in zip(ls, ps):
                if label == self.positive:
                    out[i] = min(float(p), 1.0)  # fastText's softmax can round to 1.00001
                    break
        return out


# ---------------------------------------------------------------------------------------------
# Labelled sets and the split


def read_labelled(path: str | Path) -> pa.Table:
    table = pq.read_table(path)
    missing = [c for c in LABELLED_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: a labelled set needs columns {list(LABELLED_COLUMNS)}; missing {missing}")
    return table.select(list(LABELLED_COLUMNS))


def held_out_mask(domains: list[str | None], urls: list[str | None], fraction: float, seed: int,
                  train_only: frozenset[str] = frozenset()) -> np.ndarray:
    """True for rows on the evaluation side: a domain's rows are all on one side, chosen by a
    hash of (seed, domain). A row without a domain is grouped by its URL."""
    cache: dict[str, bool] = {}
    out = np.zeros(len(domains), dtype=bool)
    for i, (d, u) in enumerate(zip(domains, urls)):
        key = d or u or ""
        if key not in cache:
            h = int.from_bytes(hashlib.sha1(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64
            cache[key] = key not in train_only and h < fraction
        out[i] = cache[key]
    return out


# ---------------------------------------------------------------------------------------------
# Metrics


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve = P(a random positive scores above a random negative), ties
    counting half (Mann-Whitney U from average ranks)."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average rank of each run of equal scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def binary_metrics(scores: np.ndarray, positive: np.ndarray, threshold: float, bins: int = 20) -> dict:
    predicted = scores >= threshold
    tp = int((predicted & positive).sum())
    fp = int((predicted & ~positive).sum())
    fn = int((~predicted & positive).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    return {
        "n": int(len(scores)), "positives": int(positive.sum()), "negatives": int((~positive).sum()),
        "threshold": threshold, "precision": precision, "recall": recall, "f1": f1,
        "accuracy": float((predicted == positive).mean()) if len(scores) else 0.0,
        "roc_auc": roc_auc(scores, positive),
        "histogram": {
            "edges": edges.round(6).tolist(),
            "positive": np.histogram(scores[positive], edges)[0].tolist(),
            "negative": np.histogram(scores[~positive], edges)[0].tolist(),
        },
    }


def plot_histograms(metrics: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = metrics["histogram"]
    edges = np.array(h["edges"])
    width = edges[1] - edges[0]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, color in (("negative", "tab:red"), ("positive", "tab:blue")):
        ax.bar(edges[:-1], h[key], width=width, align="edge", alpha=0.55, color=color,
               label=f"{key} ({sum(h[key])})")
    ax.axvline(metrics["threshold"], color="black", lw=1, ls="--")
    ax.set_xlabel("score (P(positive label))")
    ax.set_ylabel("documents")
    ax.set_title(f"{title}: ROC AUC {metrics['roc_auc']:.3f}, P {metrics['precision']:.2f} "
                 f"R {metrics['recall']:.2f} F1 {metrics['f1']:.2f}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Train / evaluate


@dataclass
class TrainResult:
    bin_path: Path
    ftz_path: Path
    eval_path: Path
    evaluation: dict


def _labels_of(table: pa.Table, cfg: FastTextTrainConfig) -> np.ndarray:
    labels = table.column("label").to_pylist()
    unknown = sorted({lab for lab in labels if lab not in (cfg.positive_label, cfg.negative_label)})
    if unknown:
        raise ValueError(f"labels {unknown} are neither positive_label {cfg.positive_label!r} nor "
                         f"negative_label {cfg.negative_label!r}")
    return np.array([lab == cfg.positive_label for lab in labels], dtype=bool)


def _write_fasttext_file(texts: list[str], labels: list[str], path: Path, max_words: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for text, label in zip(texts, labels):
            prepared = normalize(text, max_words)
            if prepared:
                fh.write(f"{LABEL_PREFIX}{label} {prepared}\n")


def _training_order(positive: np.ndarray, balance: bool, seed: int) -> np.ndarray:
    """Row order of the training file: shuffled (fastText's SGD reads the file in order, and the
    sources come in blocks); with `balance`, the rarer label's rows repeated (whole copies, then
    a random part) until both labels have as many rows, since fastText has no class weights."""
    rng = np.random.default_rng(seed)
    rows = np.arange(len(positive))
    if balance:
        pos, neg = rows[positive], rows[~positive]
        small, large = (pos, neg) if len(pos) < len(neg) else (neg, pos)
        reps, extra = divmod(len(large), len(small))
        rows = np.concatenate([large, np.tile(small, reps), rng.choice(small, extra, replace=False)])
    return rng.permutation(rows)


def evaluate_model(model_path: str | Path, table: pa.Table, cfg: FastTextTrainConfig) -> dict:
    """Metrics of a model on labelled rows, overall and per `source`."""
    positive = _labels_of(table, cfg)
    scores = Scorer(model_path, cfg.positive_label, cfg.max_words).score(table.column("text").to_pylist())
    result = binary_metrics(scores, positive, cfg.threshold)
    sources = np.array(table.column("source").to_pylist(), dtype=object)
    result["by_source"] = {
        str(s): {"n": int((sources == s).sum()), "label": cfg.positive_label if positive[sources == s].all() else
                 cfg.negative_label if not positive[sources == s].any() else "mixed",
                 "mean_score": float(scores[sources == s].mean())}
        for s in sorted(set(sources.tolist()), key=str)
    }
    return result


def _fit_and_save(train_file: str, params: dict, quantize: dict, bin_path: str, ftz_path: str) -> None:
    import fasttext

    model = fasttext.train_supervised(input=train_file, **params)
    model.save_model(bin_path)
    model.quantize(input=train_file, **quantize)
    model.save_model(ftz_path)


def _fit_in_fresh_process(*args: Any) -> None:
    """fastText training in a new interpreter. The fastText build keeps state between trainings
    in one process: a second training there can end in "Encountered NaN" at any learning rate,
    while the same data and settings always train in a fresh process."""
    import subprocess
    import sys

    code = "import json, sys; from curate.classifiers.model import _fit_and_save; _fit_and_save(*json.loads(sys.argv[1]))"
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"fastText training failed: {proc.stderr.strip()[-2000:]}")


def _capped_per_domain(domains: list[str | None], max_rows: int, seed: int) -> np.ndarray:
    """Indices of the rows kept when each domain keeps at most `max_rows` (a seeded sample; 0 = all)."""
    rows = np.arange(len(domains))
    if max_rows <= 0:
        return rows
    rng = np.random.default_rng(seed)
    by_domain: dict[str | None, list[int]] = {}
    for i, d in enumerate(domains):
        by_domain.setdefault(d, []).append(i)
    kept = [r for d in sorted(by_domain, key=str) for r in
            (by_domain[d] if len(by_domain[d]) <= max_rows else rng.choice(by_domain[d], max_rows, replace=False).tolist())]
    return np.sort(np.array(kept, dtype=np.int64))


def _fit(train_rows: pa.Table, cfg: FastTextTrainConfig, out: Path, name: str) -> tuple[Path, Path]:
    """Train on `train_rows` (capped per domain, shuffled, balanced) and quantize: (.bin, .ftz)."""
    train_rows = train_rows.take(pa.array(_capped_per_domain(train_rows.column("domain").to_pylist(), cfg.max_rows_per_domain, cfg.seed)))
    positive = _labels_of(train_rows, cfg)
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        shuffled = train_rows.take(pa.array(_training_order(positive, cfg.balance, cfg.seed)))
        _write_fasttext_file(shuffled.column("text").to_pylist(), shuffled.column("label").to_pylist(), train_file, cfg.max_words)
        params = dict(epoch=cfg.epoch, lr=cfg.lr, dim=cfg.dim, wordNgrams=cfg.word_ngrams, minCount=cfg.min_count,
                      minn=cfg.minn, maxn=cfg.maxn, bucket=cfg.bucket, loss="softmax", seed=cfg.seed, thread=1, verbose=0)
        quantize = dict(qnorm=True, retrain=cfg.quantize_retrain, cutoff=cfg.quantize_cutoff, epoch=cfg.epoch,
                        lr=cfg.lr / 4, thread=1, verbose=0)
        bin_path, ftz_path = out / f"{name}.bin", out / f"{name}.ftz"
        _fit_in_fresh_process(str(train_file), params, quantize, str(bin_path), str(ftz_path))
    return bin_path, ftz_path


def _split(table: pa.Table, cfg: FastTextTrainConfig) -> tuple[pa.Table, pa.Table]:
    """(training side, held-out side) by domain; both must hold both labels."""
    positive = _labels_of(table, cfg)
    test = held_out_mask(table.column("domain").to_pylist(), table.column("url").to_pylist(),
                         cfg.held_out_fraction, cfg.seed, frozenset(cfg.train_only_domains))
    for side, is_pos in (("training", positive[~test]), ("held-out", positive[test])):
        if is_pos.all() or not is_pos.any():
            raise ValueError(f"the {side} side has only one label ({len(is_pos)} rows): more domains or another "
                             f"held_out_fraction/seed are needed")
    return table.filter(pa.array(~test)), table.filter(pa.array(test))


def train_classifier(table: pa.Table, out_dir: str | Path, cfg: FastTextTrainConfig, name: str = "model") -> TrainResult:
    """Split by domain, train fastText on the training side, quantize, evaluate both models on
    the held-out side; writes `<name>.bin`, `<name>.ftz`, `eval.json` and `eval.png`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_rows, test_rows = _split(table, cfg)
    bin_path, ftz_path = _fit(train_rows, cfg, out, name)
    train_positive = _labels_of(train_rows, cfg)
    evaluation = {
        "settings": cfg.model_dump(mode="json"),
        "split": {
            "train_rows": train_rows.num_rows, "held_out_rows": test_rows.num_rows,
            "train_domains": len(set(train_rows.column("domain").to_pylist())),
            "held_out_domains": len(set(test_rows.column("domain").to_pylist())),
            "train_positives": int(train_positive.sum()), "train_negatives": int((~train_positive).sum()),
        },
        "held_out": {"bin": evaluate_model(bin_path, test_rows, cfg), "ftz": evaluate_model(ftz_path, test_rows, cfg)},
        "train": {"ftz": evaluate_model(ftz_path, train_rows, cfg)},
        "model_bytes": {"bin": bin_path.stat().st_size, "ftz": ftz_path.stat().st_size},
    }
    eval_path = out / "eval.json"
    eval_path.write_text(json.dumps(evaluation, indent=2))
    plot_histograms(evaluation["held_out"]["ftz"], out / "eval.png", f"{name}.ftz, held-out domains")
    return TrainResult(bin_path, ftz_path, eval_path, evaluation)


# ---------------------------------------------------------------------------------------------
# Model selection by cross-validation on the training side only


def cv_folds(domains: list[str | None], urls: list[str | None], folds: int, seed: int,
             train_only: frozenset[str] = frozenset()) -> np.ndarray:
    """Fold index (0..folds-1) of each row, whole domains per fold, chosen by a hash of (seed,
    domain); -1 for a train-only domain, which is in every fold's training part and never validated
    (as it is never held out)."""
    out = np.empty(len(domains), dtype=np.int64)
    for i, (d, u) in enumerate(zip(domains, urls)):
        key = d or u or ""
        out[i] = -1 if key in train_only else int.from_bytes(hashlib.sha1(f"cv:{seed}:{key}".encode()).digest()[:8], "big") % folds
    return out


def cross_validate(table: pa.Table, cfg: FastTextTrainConfig, folds: int = 5, workers: int = 2) -> dict:
    """ROC AUC of `cfg` by k-fold cross-validation grouped by domain, on the training side of
    `cfg`'s held-out split only: the held-out rows are set aside first and never read, so choosing
    data and settings by this figure leaves the held-out evaluation unbiased. Each fold trains
    and quantizes as `train_classifier` does and scores the `.ftz`, the model that ships;
    `workers` folds train at once (each a one-thread fastText process)."""
    from concurrent.futures import ThreadPoolExecutor

    if folds < 2:
        raise ValueError("folds must be at least 2")
    train_rows, _ = _split(table, cfg)
    fold_of = cv_folds(train_rows.column("domain").to_pylist(), train_rows.column("url").to_pylist(), folds, cfg.seed,
                       frozenset(cfg.train_only_domains))
    positive = _labels_of(train_rows, cfg)
    # A fold with one label has no AUC (it still trains the others).
    scored_folds = [f for f in range(folds) if positive[fold_of == f].any() and not positive[fold_of == f].all()]
    pooled_scores = np.full(train_rows.num_rows, np.nan, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:

        def fold_scores(f: int) -> np.ndarray:
            val = fold_of == f
            _, ftz = _fit(train_rows.filter(pa.array(~val)), cfg, Path(tmp), f"fold{f}")
            return Scorer(ftz, cfg.positive_label, cfg.max_words).score(train_rows.filter(pa.array(val)).column("text").to_pylist())

        with ThreadPoolExecutor(max(1, workers)) as pool:
            per_fold = list(pool.map(fold_scores, scored_folds))
    fold_auc = []
    for f, scores in zip(scored_folds, per_fold):
        pooled_scores[fold_of == f] = scores
        fold_auc.append(roc_auc(scores, positive[fold_of == f]))
    if not fold_auc:
        raise ValueError("no fold holds both labels: more domains or fewer folds are needed")
    validated = ~np.isnan(pooled_scores)
    return {"folds": folds, "folds_scored": len(fold_auc), "fold_roc_auc": fold_auc,
            "mean_roc_auc": float(np.mean(fold_auc)), "sd_roc_auc": float(np.std(fold_auc, ddof=1)) if len(fold_auc) > 1 else 0.0,
            "pooled_roc_auc": roc_auc(pooled_scores[validated], positive[validated]), "validated_rows": int(validated.sum())}


def select_by_cv(table: pa.Table, base: FastTextTrainConfig, grid: dict[str, list], folds: int = 5,
                 log=print) -> tuple[FastTextTrainConfig, list[dict]]:
    """Cross-validate every valid combination of `grid` (field -> values) over `base`; the settings
    with the highest mean fold ROC AUC, and every combination's result (best first)."""
    import itertools

    from pydantic import ValidationError

    names = sorted(grid)
    results = []
    for values in itertools.product(*(grid[n] for n in names)):
        try:
            cfg = FastTextTrainConfig.model_validate({**base.model_dump(), **dict(zip(names, values))})
        except ValidationError:
            continue  # a combination the settings refuse (e.g. minn without maxn) is no candidate
        result = {"settings": dict(zip(names, values)), **cross_validate(table, cfg, folds)}
        log(f"  cv {result['settings']}: mean ROC AUC {result['mean_roc_auc']:.4f} ± {result['sd_roc_auc']:.4f} "
            f"(pooled {result['pooled_roc_auc']:.4f})")
        results.append((cfg, result))
    results.sort(key=lambda cr: -cr[1]["mean_roc_auc"])
    return results[0][0], [r for _, r in results]
