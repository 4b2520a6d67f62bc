"""Shared machinery of the per-document text rules: row loop with error isolation, lazy
per-language word splitting, optional text rewrite."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from curate import schema
from curate.filters.words import WordSplitter, resolve_language, splitter_for
from curate.pipeline.stage import Stage

#: What a rule returns: a drop detail (None = keep) and, optionally, the rewritten text.
Verdict = tuple[str | None, str | None]


class TextRule(Stage):
    """A stage deciding per active row from its text; drops become `<namespace>:<detail>`.

    A row whose rule raises is dropped as `error:<namespace>:<ExceptionType>` instead of
    failing the batch.
    """

    namespace: ClassVar[str]

    def __init__(self, language: str = "auto", default_language: str = "en"):
        self.language = language
        self.default_language = default_language
        self.counters: Counter[str] = Counter()

    @abstractmethod
    def check(self, text: str, words: Callable[[], list[str]], lang: str) -> Verdict: ...

    def stats(self) -> dict[str, Any]:
        return dict(self.counters)

    def __call__(self, batch: pa.Table) -> pa.Table:
        mask = schema.active_mask(batch).to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(mask)
        if len(rows) == 0:
            return batch
        take = pa.array(rows)
        texts = batch.column(schema.TEXT).take(take).to_pylist()
        langs = batch.column(schema.LANG).take(take).to_pylist()
        reasons: list[str | None] = [None] * batch.num_rows
        rewrites: dict[int, str] = {}
        with contextlib.ExitStack() as zones:
            opened: dict[str, WordSplitter] = {}

            def splitter(lang: str) -> WordSplitter:
                if lang not in opened:
                    opened[lang] = splitter_for(lang)
                    zones.enter_context(opened[lang].zone())
                return opened[lang]

            for row, text, row_lang in zip(rows.tolist(), texts, langs):
                text = text or ""
                lang = resolve_language(self.language, row_lang, self.default_language)
                try:
                    detail, new_text = self.check(text, _lazy_words(splitter, lang, text), lang)
                except Exception as err:  # one bad row must not sink the batch
                    reasons[row] = f"{schema.ERROR_PREFIX}{self.namespace}:{type(err).__name__}"
                    continue
                if detail is not None:
                    reasons[row] = f"{self.namespace}:{detail}"
                elif new_text is not None and new_text != text:
                    rewrites[row] = new_text
        if rewrites:
            all_texts = batch.column(schema.TEXT).to_pylist()
            for row, new_text in rewrites.items():
                all_texts[row] = new_text
            batch = schema.set_column(batch, schema.TEXT, all_texts)
        if any(r is not None for r in reasons):
            batch = schema.mark_dropped(batch, reasons)
        return batch


def _lazy_words(splitter: Callable[[str], WordSplitter], lang: str, text: str) -> Callable[[], list[str]]:
    # Rules often decide before needing words (tokenizing is the expensive part).
    return lambda: splitter(lang).words(text)
