"""The language pre-filter: language ID on a fast extraction, before the expensive one.

resiliparse's plain text of the whole page costs ~10x less than trafilatura. A page whose fast text
is in a language outside `filters.language.keep` with a score of at least
`prefilter_min_confidence` is dropped as `lang_prefilter:<code>` and never reaches trafilatura;
every other page (kept languages, and borderline scores) goes the full path and is decided by
`filters.language` on the trafilatura text as before. The keep-list and thresholds are
`filters.language`'s own: the pre-filter is configured by that section. Its model is the
section's own when that is cheap (cld2, fastText: the pre-decision then anticipates the very
model that decides later), and lid.176 (FineWeb's) for heliport, which costs ~0.9 GB per worker:
the pre-filter reads every page, so it must stay cheap, and it only ever drops what a second,
full decision would drop too.

The fast text is the whole page's, not its main content: resiliparse's main-content pass costs a
third to half of the pre-filter's time. On 1,024 real pages (the 388 of `real-pages.warc.gz`, the
636 of `extraction/`) neither version drops a page the full path keeps; with fastText both
pre-decide as many pages (218 vs 219, 418 vs 418), with cld2 the whole-page text pre-decides fewer
(199 vs 217, 380 vs 413: menus in other languages make it less sure), which the halved cost still
more than pays for. Language ID reads the first `LID_PREFIX_CHARS` characters of it: fastText's
cost is linear in the text, and a page's first 3,000 characters decide its language as well as
the whole of it (`benchmarks/bench_pipeline.py` and tests/test_pipeline_throughput.py check the
decisions against the full path).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import schema
from curate.filters.config import LanguageConfig
from curate.filters.lang import LanguageID, keep_codes
from curate.pipeline.extract import decode_html
from curate.pipeline.stage import Stage

#: Characters of the fast text language ID reads (about 450 words).
LID_PREFIX_CHARS = 3000


def fast_text(payload: bytes, header_charset: str | None) -> str:
    """resiliparse's plain text of a whole page ("" when it cannot parse it)."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    html, _ = decode_html(payload, header_charset)
    try:
        return extract_plain_text(HTMLTree.parse(html), main_content=False) or ""
    except Exception:  # noqa: BLE001 -- an unparsable page is simply left to the full path
        return ""


#: Backends cheap enough to read every page (on the first 4000 characters of 427 real pages:
#: cld2 0.12 s, lid.176 0.65 s of CPU; heliport also holds ~0.9 GB per worker).
CHEAP_BACKENDS = ("cld2", "fasttext")


def prefilter_model(cfg: LanguageConfig) -> LanguageConfig:
    """The language section with the pre-filter's model: its own when cheap, else lid.176."""
    if cfg.backend in CHEAP_BACKENDS:
        return cfg
    # The label map is for the other backend's labels; lid.176's are ISO 639-1 codes already.
    return cfg.model_copy(update={"backend": "fasttext", "model_path": None, "label_map": {}})


class LanguagePrefilter(Stage):
    name: ClassVar[str] = "language_prefilter"
    reason_namespaces: ClassVar[tuple[str, ...]] = ("lang_prefilter",)

    def __init__(self, cfg: LanguageConfig) -> None:
        self.min_confidence, self.min_score = cfg.prefilter_min_confidence, cfg.min_score
        # Keeping every language leaves nothing to pre-decide.
        self.lid = LanguageID(prefilter_model(cfg)) if cfg.keep else None
        self.keep = keep_codes(cfg) or frozenset()  # as the language filter maps (and folds) them
        self.counts = {"pages": 0, "decided": 0, "seconds": 0.0}

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.lid is None or schema.RAW_HTML not in batch.column_names:
            return batch  # keeping every language, or no page to look at (text-only input)
        raw = batch.column(schema.RAW_HTML)
        with_page = pc.and_(schema.active_mask(batch), pc.is_valid(raw))
        rows = np.flatnonzero(with_page.to_numpy(zero_copy_only=False)).tolist()
        if not rows:
            return batch
        t0 = time.perf_counter()
        payloads, charsets = raw.to_pylist(), batch.column(schema.CHARSET).to_pylist()
        tops, scores, alls = self.lid.predict([fast_text(payloads[r], charsets[r])[:LID_PREFIX_CHARS] for r in rows])
        langs = batch.column(schema.LANG).to_pylist()
        lang_scores = batch.column(schema.LANG_SCORE).to_pylist()
        reasons: list[str | None] = [None] * batch.num_rows
        for row, top, score, pairs in zip(rows, tops, scores, alls):
            # Confident, and the fast text alone would fail the language filter too.
            outside = top not in self.keep and not any(pairs.get(code, 0.0) > self.min_score for code in self.keep)
            if outside and score >= self.min_confidence:
                reasons[row] = f"lang_prefilter:{top}"
                langs[row], lang_scores[row] = top, score
                self.counts["decided"] += 1
        self.counts["pages"] += len(rows)
        self.counts["seconds"] += time.perf_counter() - t0
        batch = schema.set_column(batch, schema.LANG, langs)
        batch = schema.set_column(batch, schema.LANG_SCORE, pa.array(lang_scores, pa.float32()))
        return schema.mark_dropped(batch, reasons)

    def stats(self) -> dict[str, Any]:
        return dict(self.counts)

