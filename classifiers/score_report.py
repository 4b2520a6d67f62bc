"""The run report's score histograms: each enabled classifier's score column over the kept rows
(`shards/`) and over the dropped rows it scored (`rejected/`), in fixed bins over [0, 1] so the
two sides and two runs compare bin for bin. Only the score column of each output file is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow.parquet as pq

from curate.pipeline.storage import LOCAL, Storage, join

BINS = 20


def score_columns(cfg: Any) -> list[str]:
    """The score columns of the run's enabled classifier sections, in registry (section) order."""
    settings = cfg.classifiers
    return [section.score_column for name in type(settings).model_fields
            if getattr(section := getattr(settings, name), "enabled", False) and hasattr(section, "score_column")]


def _counts(storage: Storage, out: str, entries: list[dict], column: str, edges: np.ndarray) -> tuple[list[int], int]:
    """(counts per bin of the column's non-null values, rows with no score) over these output files."""
    counts, unscored = np.zeros(len(edges) - 1, dtype=np.int64), 0
    for entry in entries:
        path = join(out, entry["path"])
        if not storage.exists(path):
            continue
        pf = pq.ParquetFile(storage.open(path))
        if column not in pf.schema_arrow.names:
            unscored += pf.metadata.num_rows
            continue
        values = pf.read(columns=[column]).column(column)
        unscored += values.null_count
        counts += np.histogram(values.drop_null().to_numpy().astype(np.float64), edges)[0]
    return counts.tolist(), unscored


def score_histograms(out: Path | str, manifest: dict, columns: list[str], storage: Storage = LOCAL) -> dict[str, dict]:
    """{score column: {edges, kept, dropped, kept_unscored, dropped_unscored}}; a dropped row
    without a score was dropped before the classifier saw it."""
    edges = np.linspace(0.0, 1.0, BINS + 1)
    result = {}
    for column in columns:
        kept, kept_unscored = _counts(storage, str(out), manifest.get("shards", []), column, edges)
        dropped, dropped_unscored = _counts(storage, str(out), manifest.get("rejected", []), column, edges)
        result[column] = {"edges": edges.round(4).tolist(), "kept": kept, "dropped": dropped,
                          "kept_unscored": kept_unscored, "dropped_unscored": dropped_unscored}
    return result


def _median_bin(edges: list[float], counts: list[int]) -> str:
    total = sum(counts)
    if not total:
        return "-"
    i = int(np.searchsorted(np.cumsum(counts), total / 2))
    return f"{edges[i]:.2f}-{edges[i + 1]:.2f}"


def score_markdown(histograms: dict[str, dict]) -> list[str]:
    """The report's score section: the plot, and per column the kept and dropped counts."""
    if not histograms:
        return []
    lines = ["## Classifier scores", "", "![score histograms](scores.png)", "",
             "| score column | kept scored | kept median bin | dropped scored | dropped median bin | dropped before scoring |",
             "|---|---:|---:|---:|---:|---:|"]
    for column, h in histograms.items():
        lines.append(f"| {column} | {sum(h['kept'])} | {_median_bin(h['edges'], h['kept'])} | {sum(h['dropped'])} "
                     f"| {_median_bin(h['edges'], h['dropped'])} | {h['dropped_unscored']} |")
    return lines + [""]


def plot_scores(histograms: dict[str, dict], path: Path | IO[bytes]) -> None:
    """One panel per score column: kept and dropped rows per score bin, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(histograms), figsize=(6 * len(histograms), 3.6), squeeze=False)
    for ax, (column, h) in zip(axes[0], histograms.items()):
        edges = np.array(h["edges"])
        width = (edges[1] - edges[0]) / 2
        ax.bar(edges[:-1], h["kept"], width=width, align="edge", color="#3b7dd8", label=f"kept ({sum(h['kept'])})")
        ax.bar(edges[:-1] + width, h["dropped"], width=width, align="edge", color="#e07b39",
               label=f"dropped after scoring ({sum(h['dropped'])})")
        ax.set_xlim(0, 1)
        ax.set_xlabel(column)
        ax.set_ylabel("documents")
        ax.legend(fontsize=8)
    fig.suptitle("classifier scores of the kept and the dropped documents", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
