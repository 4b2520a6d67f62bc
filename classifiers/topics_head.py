"""Supervised topic and format heads on top of the bundled MiniLM (the `supervised` backend).

A head is a multinomial logistic regression per axis over one feature vector per document:

- the MiniLM embedding of the labeller's input (URL words, then the start of the text),
- the zero-shot cosine similarities to every category of the taxonomy (a prior the head can
  lean on where its own training pages are few),
- cheap page-structure features that say "format" more than "topic": length, list, table and
  short-line shares, question marks, first- and second-person words, quotes, prices, code
  characters, a date near the start, the URL path's depth and date shape, and its words hashed
  into a few buckets (`/news/`, `/blog/`, `/rezepte/`, `/about/` ...).

It is trained by `curate topics train` on `topics_train.tsv` (pages of `shared/data` labelled by
reading them, none from a page or site of the evaluation set; see the file's note in
`topics_train.md`) and shipped as `models/topics_head.npz`: plain arrays, no pickled code.
Training is deterministic: full-batch L-BFGS from zeros on float64 features.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRAIN_TSV = Path(__file__).with_name("topics_train.tsv")
DEFAULT_HEAD = Path(__file__).with_name("models") / "topics_head.npz"
URL_BUCKETS = 64
STRUCTURE_CHARS = 5000  # structure features read this much of the text: enough for its shape, bounded cost

_FIRST_SINGULAR = {"i", "i'm", "i've", "my", "me", "mine", "myself", "ich", "mein", "meine", "meinen", "meinem",
                   "meiner", "mir", "mich"}
_FIRST_PLURAL = {"we", "our", "us", "ours", "we're", "wir", "unser", "unsere", "unseren", "unserem", "uns"}
_SECOND = {"you", "your", "yours", "you're", "du", "dein", "deine", "dich", "dir", "euch", "euer", "eure"}
_LIST_LINE = re.compile(r"^\s*(?:[-*•·▪►✓]|\d{1,3}[.)])\s+")
_DATE = re.compile(r"\b(?:\d{1,2}\.\s?\d{1,2}\.\s?\d{2,4}|\d{4}-\d{2}-\d{2}|\d{1,2}\.?\s+(?:jan|feb|mär|mar|apr|mai|may|jun|"
                   r"jul|aug|sep|okt|oct|nov|dez|dec)[a-zä]*\.?\s+\d{4}|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|"
                   r"nov|dec)[a-z]*\.?\s+\d{1,2},\s+\d{4})", re.IGNORECASE)
_URL_DATE = re.compile(r"/(?:19|20)\d{2}[/-]\d{1,2}(?:[/-]|$)")
_WORD = re.compile(r"[^\W\d_]+(?:'[a-z]+)?", re.UNICODE)
# Words that say "format" in German and English (the languages of most labelled pages), counted in
# the URL path and the start of the text: the embedding of 128 word pieces misses most of them.
FORMAT_CUES = {
    "cue_press": r"pressemitteilung|pressemeldung|medienmitteilung|press release|communiqu|/presse?/",
    "cue_opinion": r"\bkommentar|\bmeinung\b|\bkolumne|\bcolumn|\bopinion|\beditorial|\bessay|/comment/|/debatte/",
    "cue_howto": r"\banleitung|schritt für schritt|step by step|\bhow to\b|\bso geht|\btipps?\b|\btips?\b|tutorial|ratgeber",
    "cue_ads": r"\banzeige\b|\bwerbung\b|affiliate|gutschein|\brabatt|\bdeals?\b|sponsored|\bcoupon|\bgratis\b",
    "cue_listicle": r"\btop[ -]?\d+\b|\b\d+ (?:besten|best|ideen|ideas|tipps|tips|things|gründe|reasons|must)",
    "cue_review": r"\bim test\b|\btest(?:bericht|ed by)?\b|\breview|\brezension|\bfazit\b|\bverdict|\bbewertung|\brated\b",
    "cue_definition": r"\bversteht man\b|\bbezeichnet\b|\brefers to\b|\bis defined\b|\bwas ist\b|\bwhat is\b",
    "cue_shop": r"warenkorb|add to cart|jetzt kaufen|buy now|\bversand|shipping|mwst|lieferzeit|\bbestellen\b|in stock",
    "cue_forum": r"\bantworten\b|\breply\b|\bzitat\b|\bthread\b|\bregistriert|\bjoined\b|\bbeiträge\b|\bposts?:",
    "cue_about": r"über uns|about us|\bunser team|\bour team|\bwir sind\b|\bwe are\b|\bmission\b|\bgegründet|\bfounded",
    "cue_legal": r"impressum|datenschutz|privacy|terms of|\bagb\b|haftung|disclaimer|cookies?\b",
    "cue_faq": r"\bfaq\b|häufig gestellte|frequently asked|\bfragen und antworten",
}
_FORMAT_CUES = [re.compile(p, re.IGNORECASE) for p in FORMAT_CUES.values()]
_SPEAKER_LINE = re.compile(r"^\s*[A-ZÄÖÜ][\w.\- ]{1,25}:\s")  # "Host: ..." "Frage: ..." in transcripts and interviews
CUE_CHARS = 2000
STRUCTURE_NAMES = (
    "log_chars", "log_lines", "list_lines", "table_lines", "short_lines", "digits", "questions", "exclamations",
    "first_singular", "first_plural", "second_person", "quotes", "prices", "code_chars", "date_at_start",
    "url_depth", "url_date", "url_digits", "url_is_root", "url_unknown", "question_lines", "speaker_lines",
    *FORMAT_CUES,
)
STRUCTURE_WIDTH = len(STRUCTURE_NAMES) + URL_BUCKETS


def _url_path(url: str | None) -> str:
    if not url or "unknown.invalid" in url:
        return ""
    return re.sub(r"^[a-z]+://[^/]*", "", url.lower()).split("?")[0].split("#")[0]


def structure_features(text: str | None, url: str | None) -> np.ndarray:
    """The page-structure part of a document's features (STRUCTURE_NAMES, then URL_BUCKETS)."""
    full = text or ""
    t = full[:STRUCTURE_CHARS]
    lines = [l for l in t.split("\n") if l.strip()] or [""]
    n_chars = max(len(t), 1)
    words = [w.lower() for w in _WORD.findall(t)]
    n_words = max(len(words), 1)
    path = _url_path(url)
    segments = [s for s in path.split("/") if s]
    values = [
        np.log1p(len(full)), np.log1p(len(lines)),
        sum(bool(_LIST_LINE.match(l)) for l in lines) / len(lines),
        sum(l.count("|") >= 2 for l in lines) / len(lines),
        sum(len(l) < 40 for l in lines) / len(lines),
        sum(c.isdigit() for c in t) / n_chars,
        1000 * t.count("?") / n_chars, 1000 * t.count("!") / n_chars,
        sum(w in _FIRST_SINGULAR for w in words) / n_words,
        sum(w in _FIRST_PLURAL for w in words) / n_words,
        sum(w in _SECOND for w in words) / n_words,
        1000 * sum(t.count(q) for q in "\"“”„«»") / n_chars,
        1000 * sum(t.count(c) for c in "€$£") / n_chars,
        1000 * sum(t.count(c) for c in "{};=<>[]") / n_chars,
        float(bool(_DATE.search(t[:300]))),
        float(len(segments)), float(bool(_URL_DATE.search(path))),
        sum(c.isdigit() for c in path) / max(len(path), 1),
        float(bool(url) and not segments and "unknown.invalid" not in url), float(not url or "unknown.invalid" in url),
        sum(l.rstrip().endswith("?") for l in lines) / len(lines),
        sum(bool(_SPEAKER_LINE.match(l)) for l in lines) / len(lines),
    ]
    cue_text = path + " " + t[:CUE_CHARS]
    values += [np.log1p(len(cue.findall(cue_text))) for cue in _FORMAT_CUES]
    buckets = np.zeros(URL_BUCKETS)
    for word in re.split(r"[^a-zäöüß]+", path):
        if len(word) > 1:
            buckets[zlib.crc32(word.encode()) % URL_BUCKETS] = 1.0
    return np.concatenate([np.asarray(values, dtype=np.float64), buckets])


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


@dataclass
class SoftmaxHead:
    """x -> softmax((x - mean) / scale @ weights + bias) over `labels`."""

    labels: list[str]
    weights: np.ndarray  # (features, labels)
    bias: np.ndarray  # (labels,)
    mean: np.ndarray  # (features,)
    scale: np.ndarray  # (features,)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return softmax(((x - self.mean) / self.scale) @ self.weights + self.bias)


def fit_softmax(x: np.ndarray, y: Sequence[str], l2: float, balance: float = 0.0) -> SoftmaxHead:
    """Multinomial logistic regression, L2-penalised (not the bias), by L-BFGS from zeros:
    the same inputs give the same weights. `balance` in [0, 1] weighs each example by
    (n / count of its label) ** balance, so rare formats count for more (1 = fully balanced)."""
    from scipy.optimize import minimize

    labels = sorted(set(y))
    index = {l: i for i, l in enumerate(labels)}
    target = np.array([index[l] for l in y])
    n, d = x.shape
    k = len(labels)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    xs = (x - mean) / scale
    counts = np.bincount(target, minlength=k).astype(np.float64)
    sample_w = (n / counts[target]) ** balance
    sample_w *= n / sample_w.sum()
    onehot = np.zeros((n, k))
    onehot[np.arange(n), target] = 1.0

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: d * k].reshape(d, k), theta[d * k:]
        z = xs @ w + b
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        value = -(sample_w * (onehot * logp).sum(axis=1)).sum() / n + 0.5 * l2 * (w * w).sum()
        g = (np.exp(logp) - onehot) * sample_w[:, None] / n
        return value, np.concatenate([(xs.T @ g + l2 * w).ravel(), g.sum(axis=0)])

    res = minimize(loss, np.zeros(d * k + k), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return SoftmaxHead(labels, res.x[: d * k].reshape(d, k), res.x[d * k:], mean, scale)


def taxonomy_fingerprint(categories: dict[str, list[list[str]]]) -> str:
    """Which zero-shot similarities a head reads (the taxonomy's labels and descriptions, in
    order): a head only fits the taxonomy it was trained with."""
    return hashlib.sha256(json.dumps(categories, sort_keys=True).encode()).hexdigest()[:16]


def save_heads(path: Path, heads: dict[str, SoftmaxHead], fingerprint: str, meta: dict) -> Path:
    arrays = {"fingerprint": np.array(fingerprint), "meta": np.array(json.dumps(meta, sort_keys=True))}
    for axis, h in heads.items():
        arrays |= {f"{axis}_labels": np.array(h.labels), f"{axis}_weights": h.weights.astype(np.float32),
                   f"{axis}_bias": h.bias.astype(np.float32), f"{axis}_mean": h.mean.astype(np.float32),
                   f"{axis}_scale": h.scale.astype(np.float32)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:  # np.savez_compressed(path) would append .npz to a path without it
        np.savez_compressed(fh, **arrays)
    return path


def load_heads(path: Path, axes: Sequence[str]) -> tuple[dict[str, SoftmaxHead], str]:
    with np.load(path, allow_pickle=False) as z:
        heads = {axis: SoftmaxHead([str(l) for l in z[f"{axis}_labels"]], z[f"{axis}_weights"].astype(np.float64),
                                   z[f"{axis}_bias"].astype(np.float64), z[f"{axis}_mean"].astype(np.float64),
                                   z[f"{axis}_scale"].astype(np.float64)) for axis in axes}
        return heads, str(z["fingerprint"])


# ------------------------------------------------------------------------------ training pages


@dataclass
class TrainingPage:
    source: str
    url: str
    topic: str
    format: str
    text: str


def _warc_texts(path: Path, extract) -> dict[str, str]:
    from warcio.archiveiterator import ArchiveIterator

    out = {}
    with path.open("rb") as fh:
        for rec in ArchiveIterator(fh):
            if rec.rec_type == "response":
                text, _, reason = extract.extract_one(rec.content_stream().read(), None)
                if reason is None and text:
                    out[rec.rec_headers.get_header("WARC-Target-URI").strip("<>")] = text
    return out


def labelled_page_extractor():
    """The pipeline's Extract stage for labelled pages, without its per-page time limit in
    practice: a page dropped because a busy machine was slow would change what a head learns
    from or is scored on, and `curate topics train` must rebuild the same head anywhere."""
    from curate.config import ExtractConfig
    from curate.pipeline.extract import Extract

    return Extract(ExtractConfig(timeout_s=3600))


def load_training_pages(data: Path, tsv: Path = TRAIN_TSV) -> list[TrainingPage]:
    """The labelled training pages with their text, extracted here by the pipeline's Extract stage.
    `source` is `extraction/<page>.html.gz` (a page file), `warc/<file>#<target URI>` (a WARC
    response), `cc-text/<file>#<id>` (a JSONL document of Common Crawl text) or
    `wikipedia/<file>#<id>` (a Wikipedia article's plain text)."""
    extract = labelled_page_extractor()
    with tsv.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    containers: dict[str, dict[str, str]] = {}
    pages = []
    for r in rows:
        file, _, key = r["source"].partition("#")
        if not key:
            text, _, reason = extract.extract_one(gzip.open(data / file).read(), None)
            if reason is not None:
                raise RuntimeError(f"{file}: extraction failed ({reason})")
        else:
            if file not in containers:
                if file.startswith("warc/"):
                    containers[file] = _warc_texts(data / file, extract)
                else:
                    with gzip.open(data / file, "rt") as fh:
                        containers[file] = {d["id"]: d["text"] for d in map(json.loads, fh) if d.get("text")}
            text = containers[file][key]
        pages.append(TrainingPage(r["source"], r["url"], r["topic"], r["format"], text))
    return pages


def site_of(url: str, source: str) -> str:
    """The site a page belongs to (registered domain, roughly; a readability test page's folder
    name without its -N suffix where the URL is unknown): pages of one site never straddle a
    cross-validation fold, and no training site may be an evaluation site."""
    if url and "unknown.invalid" not in url:
        host = re.sub(r"^[a-z]+://", "", url.lower()).split("/")[0].split(":")[0].removeprefix("www.")
        parts = host.split(".")
        return ".".join(parts[-3:] if len(parts) >= 3 and len(parts[-2]) <= 3 else parts[-2:])
    return "readability:" + re.sub(r"-\d+$", "", source.split("/")[-2])


def cross_validate(x: np.ndarray, y: Sequence[str], sites: Sequence[str], l2: float, balance: float,
                   folds: int = 5) -> list[str]:
    """Out-of-fold predictions, folds by site (crc32 of the site), so no site is in train and test."""
    fold = np.array([zlib.crc32(s.encode()) % folds for s in sites])
    pred = [""] * len(y)
    for f in range(folds):
        train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        head = fit_softmax(x[train], [y[i] for i in train], l2, balance)
        for i, j in zip(test, head.probabilities(x[test]).argmax(axis=1)):
            pred[i] = head.labels[j]
    return pred


@dataclass(frozen=True)
class HeadSettings:
    """Regularisation per axis, chosen by site-grouped cross-validation of the training pages and
    the evaluation set's dev split (never a held-out split) on accuracy + macro-F1; see topics_train.md."""

    topic_l2: float = 0.3
    topic_balance: float = 1.0
    format_l2: float = 0.3
    format_balance: float = 0.5


# Wikipedia articles teach the topic head; as formats they are one kind of page (encyclopedic plain
# text, nearly all Knowledge Article), and with them the format head's cross-validated accuracy and
# macro-F1 on web pages fell, so the format head leaves them out.
FORMAT_SKIPS_SOURCES = ("wikipedia/",)


def axis_rows(axis: str, pages: Sequence[TrainingPage]) -> np.ndarray:
    """Indices of the training pages an axis's head learns from."""
    skip = FORMAT_SKIPS_SOURCES if axis == "format" else ()
    return np.array([i for i, p in enumerate(pages) if not p.source.startswith(skip)])


def train_heads(data: Path, out: Path, settings: HeadSettings = HeadSettings(), taxonomy: str | None = None,
                tsv: Path = TRAIN_TSV, cv_folds: int = 0) -> dict:
    """Fit both heads on the labelled pages and write them to `out` (.npz); returns a summary
    (with out-of-fold accuracy and macro-F1 per axis when `cv_folds` > 1)."""
    from curate.classifiers.topics import AXES, EmbeddingLabeller, TopicsConfig, document_features, load_taxonomy

    pages = load_training_pages(data, tsv)
    cfg = TopicsConfig(enabled=True, backend="embedding", taxonomy=taxonomy)
    zero_shot = EmbeddingLabeller(cfg, load_taxonomy(taxonomy))
    x = document_features(zero_shot, [p.text for p in pages], [p.url for p in pages])
    sites = [site_of(p.url, p.source) for p in pages]
    summary: dict = {"pages": len(pages), "sites": len(set(sites)), "settings": settings.__dict__}
    heads = {}
    for axis in AXES:
        rows = axis_rows(axis, pages)
        y = [getattr(pages[i], axis) for i in rows]
        l2, balance = getattr(settings, f"{axis}_l2"), getattr(settings, f"{axis}_balance")
        heads[axis] = fit_softmax(x[rows], y, l2, balance)
        summary[axis] = {"pages": len(rows), "labels": len(heads[axis].labels)}
        if cv_folds > 1:
            pred = cross_validate(x[rows], y, [sites[i] for i in rows], l2, balance, cv_folds)
            # scored on the web pages only: Wikipedia is one site and one fold, and the pipeline labels web pages
            web = [j for j, i in enumerate(rows) if not pages[i].source.startswith("wikipedia/")]
            gold, guess = [y[j] for j in web], [pred[j] for j in web]
            summary[axis] |= {"cv_accuracy": float(np.mean([a == b for a, b in zip(gold, guess)])),
                              "cv_macro_f1": macro_f1(gold, guess)}
    save_heads(out, heads, zero_shot.fingerprint, {k: v for k, v in summary.items() if k != "settings"} | settings.__dict__)
    return summary


def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Mean F1 over the labels that occur in the gold set (a label never gold is not averaged)."""
    f1s = []
    for label in sorted(set(gold)):
        tp = sum(g == label and p == label for g, p in zip(gold, pred))
        fp = sum(g != label and p == label for g, p in zip(gold, pred))
        fn = sum(g == label and p != label for g, p in zip(gold, pred))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s)


def train_command(args) -> int:
    settings = HeadSettings(**{k: getattr(args, k) for k in HeadSettings.__dataclass_fields__ if getattr(args, k) is not None})
    summary = train_heads(Path(args.data), Path(args.out), settings, args.taxonomy, Path(args.labels), args.cv)
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")
    return 0


def add_subcommands(subparsers) -> None:
    """`curate topics train`: rebuild the supervised heads from the labelled pages."""
    t = subparsers.add_parser("topics", help="the topic/format labeller's supervised heads")
    sub = t.add_subparsers(dest="topics_command", required=True)
    tr = sub.add_parser("train", help="fit the topic and format heads on labelled pages of shared/data")
    tr.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"),
                    help="the shared/data folder the labelled pages come from")
    tr.add_argument("--labels", default=str(TRAIN_TSV), help="TSV: source, url, topic, format")
    tr.add_argument("--out", default=str(DEFAULT_HEAD), help="the .npz to write (default: the shipped head)")
    tr.add_argument("--taxonomy", help="YAML taxonomy for the zero-shot features (default WebOrganizer's)")
    tr.add_argument("--cv", type=int, default=0, help="also report site-grouped cross-validation with this many folds")
    for name, field in HeadSettings.__dataclass_fields__.items():
        tr.add_argument("--" + name.replace("_", "-"), dest=name, type=float, help=f"default {field.default}")
    tr.set_defaults(func=train_command)
