"""Classifier stages: score every kept document, then keep by threshold or by the run's top fraction.

Each `classifiers.<name>` section is two registered stages sharing that section:
- a per-document stage (`<name>`) that writes the score column for every active row, in batched
  fastText predictions with each text normalised once, and drops rows below `min_score` as
  `<name>:below_min_score`;
- a global stage (`<name>_top`, on only with `top_fraction`) that finds the score above which
  `top_fraction` of the run's kept documents lie, from score histograms that Ray tasks compute
  per block and the driver sums (bins, never rows), and drops the rest as
  `<name>_top:below_top_fraction`.
A new classifier section is one config class and two small subclasses here, plus its two
registry entries.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import schema
from curate.classifiers.config import ClassifierConfig
from curate.pipeline.global_stage import GlobalContext, GlobalStage, input_refs
from curate.pipeline.stage import Stage

if TYPE_CHECKING:
    import ray.data

# Bins of each of the two histogram passes of the top-fraction threshold: the second pass
# refines the bin the quantile falls in, so the threshold is resolved to 1 / BINS**2 (~6e-8,
# float32's spacing just below 1.0).
BINS = 4096


def _score_column(table: pa.Table, name: str) -> pa.ChunkedArray | pa.Array:
    if name in table.column_names:
        return table.column(name)
    return pa.nulls(table.num_rows, pa.float32())


def _set_or_append(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return schema.set_column(table, name, values)
    return table.append_column(pa.field(name, pa.float32()), values)


class ClassifierScore(Stage):
    """Writes `score_column` (P(positive_label)) for every active row; drops below `min_score`."""

    name: ClassVar[str]
    reason_namespaces: ClassVar[tuple[str, ...]]

    def __init__(self, cfg: ClassifierConfig) -> None:
        from curate.classifiers.model import SHIPPED_MODEL, Scorer

        self.cfg = cfg
        self.scorer = Scorer(cfg.model_path or SHIPPED_MODEL, cfg.positive_label, cfg.max_words)
        self.histogram = np.zeros(cfg.histogram_bins, dtype=np.int64)
        self.below = 0

    @classmethod
    def output_fields(cls, cfg: ClassifierConfig) -> tuple[pa.Field, ...]:
        # wiki_score is a core column already; any other score column is this stage's own.
        return () if cfg.score_column in schema.DOC_SCHEMA.names else (pa.field(cfg.score_column, pa.float32()),)

    def __call__(self, batch: pa.Table) -> pa.Table:
        active = np.asarray(schema.active_mask(batch).to_numpy(zero_copy_only=False), dtype=bool)
        rows = np.flatnonzero(active)
        scores = np.full(batch.num_rows, np.nan, dtype=np.float32)
        texts = batch.column(schema.TEXT).take(pa.array(rows)).to_pylist() if len(rows) else []
        step = self.cfg.batch_size
        for lo in range(0, len(texts), step):
            scores[rows[lo:lo + step]] = self.scorer.score(texts[lo:lo + step])
        out = _set_or_append(batch, self.cfg.score_column, pa.array(scores, pa.float32(), mask=~active))
        self.histogram += np.histogram(scores[rows], self.cfg.histogram_bins, (0.0, 1.0))[0]
        if self.cfg.min_score is not None:
            below = active & (scores < self.cfg.min_score)
            self.below += int(below.sum())
            reason = f"{self.reason_namespaces[0]}:below_min_score"
            out = schema.mark_dropped(out, pa.array(np.where(below, reason, None), pa.string()))
        return out

    def stats(self) -> dict[str, Any]:
        edges = np.linspace(0.0, 1.0, self.cfg.histogram_bins + 1)
        hist = {f"{edges[i]:.2f}-{edges[i + 1]:.2f}": int(n) for i, n in enumerate(self.histogram)}
        return {"scored": int(self.histogram.sum()), "below_min_score": self.below, "score_histogram": hist}


def _histogram(block: pa.Table, column: str, lo: float, hi: float) -> pa.Table:
    """Counts of the active rows' scores in BINS bins over [lo, hi], plus those below lo and
    the active rows without a score (one row per block: this is all that leaves the task)."""
    active = schema.active_mask(block)
    scores = _score_column(block, column).filter(active)
    values = scores.drop_null().to_numpy(zero_copy_only=False).astype(np.float64)
    counts = np.histogram(values[(values >= lo) & (values <= hi)], BINS, (lo, hi))[0]
    return pa.table({"counts": [counts.tolist()], "below": [int((values < lo).sum())],
                     "unscored": [scores.null_count], "active": [len(scores)]})


def _drop_below(block: pa.Table, column: str, threshold: float, reason: str, out_schema: pa.Schema) -> pa.Table:
    scores = _score_column(block, column)
    below = pc.and_(schema.active_mask(block), pc.fill_null(pc.less(scores, threshold), True))
    reasons = pc.if_else(below, pa.scalar(reason), pa.scalar(None, pa.string()))
    return schema.conform(schema.mark_dropped(block, reasons), out_schema)


class ClassifierTopFraction(GlobalStage):
    """Keeps the `top_fraction` of the run's kept documents with the highest scores."""

    name: ClassVar[str]
    reason_namespaces: ClassVar[tuple[str, ...]]

    def __init__(self, cfg: ClassifierConfig) -> None:
        if cfg.top_fraction is None:
            raise ValueError(f"{self.name}: top_fraction is not set")
        self.cfg = cfg

    def _pass(self, ds: ray.data.Dataset, lo: float, hi: float) -> tuple[np.ndarray, int, int, int]:
        column = self.cfg.score_column
        parts = ds.select_columns([column, schema.DROP_REASON]).map_batches(
            _histogram, fn_kwargs={"column": column, "lo": lo, "hi": hi}, batch_format="pyarrow", batch_size=None)
        counts, below, unscored, active = np.zeros(BINS, dtype=np.int64), 0, 0, 0
        for part in parts.iter_batches(batch_format="pyarrow", batch_size=None):
            for c, b, u, a in zip(*(part.column(k).to_pylist() for k in ("counts", "below", "unscored", "active"))):
                counts += np.asarray(c, dtype=np.int64)
                below, unscored, active = below + b, unscored + u, active + a
        return counts, below, unscored, active

    def threshold(self, ds: ray.data.Dataset) -> tuple[float, dict[str, Any]]:
        """The lowest score kept, so that at least ceil(top_fraction * kept) documents stay
        (more only where documents tie at the threshold)."""
        counts, _, unscored, active = self._pass(ds, 0.0, 1.0)
        want = math.ceil(self.cfg.top_fraction * (active - unscored))
        info = {"active": active, "unscored": unscored, "wanted": want}
        if want == 0:
            return math.inf, info
        from_top = np.cumsum(counts[::-1])
        b = BINS - 1 - int(np.searchsorted(from_top, want))  # the coarse bin the quantile lies in
        lo, hi = b / BINS, (b + 1) / BINS
        above = int(counts[b + 1:].sum())
        fine, _, _, _ = self._pass(ds, lo, hi)
        # np.histogram puts hi itself in the last fine bin; only the coarse bins above start past it.
        fine_from_top = np.cumsum(fine[::-1])
        f = BINS - 1 - int(np.searchsorted(fine_from_top, want - above))
        return lo + f * (hi - lo) / BINS, info

    def run(self, ds: ray.data.Dataset, ctx: GlobalContext) -> ray.data.Dataset:
        if ctx.input_files:  # its three passes over the row groups read once, not three Parquet reads of Ray Data
            import ray.data

            ds = ray.data.from_arrow_refs(input_refs(ds, ctx))
        threshold, info = self.threshold(ds)
        reason = f"{self.reason_namespaces[0]}:below_top_fraction"
        out = ds.map_batches(_drop_below, batch_format="pyarrow", batch_size=None,
                             fn_kwargs={"column": self.cfg.score_column, "threshold": threshold, "reason": reason,
                                        "out_schema": ctx.schema})
        ctx.stats.update({"score_column": self.cfg.score_column, "top_fraction": self.cfg.top_fraction,
                          "threshold": threshold if math.isfinite(threshold) else None, **info})
        return out


class WikiQuality(ClassifierScore):
    name = "wiki_quality"
    reason_namespaces = ("wiki_quality",)


class WikiQualityTop(ClassifierTopFraction):
    name = "wiki_quality_top"
    reason_namespaces = ("wiki_quality_top",)


class DclmQuality(ClassifierScore):
    name = "dclm"
    reason_namespaces = ("dclm",)


class DclmQualityTop(ClassifierTopFraction):
    name = "dclm_top"
    reason_namespaces = ("dclm_top",)
