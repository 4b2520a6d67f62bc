"""stats.json (the funnel), manifest.json, report.md, report.html, funnel.png and (when a
classifier scored the run) scores.png for a finished run."""

from __future__ import annotations

import io
import platform
import time
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from curate import __version__, schema
from curate.classifiers.mixture import mixture_manifest, mixture_markdown, plot_mixture
from curate.classifiers.score_report import plot_scores, score_columns, score_histograms, score_markdown
from curate.config import Config
from curate.pipeline.domain_counts import DomainCounts
from curate.pipeline.storage import LOCAL, Storage, join


class AccountingError(RuntimeError):
    """read != kept + rejected + errored: a row was lost or invented somewhere."""


# File-level errors after which nothing (more) of an input could be read: these inputs failed for
# good and count against input.max_failed_fraction. A truncated file keeps its complete records.
FAILED_INPUT_ERRORS = ("warc:transfer_failed", "warc:open_error", "warc:read_error", "warc:not_warc")


def failed_inputs(reports: list[dict]) -> list[dict]:
    return [{"uri": r["uri"], "error": r["error"], "detail": r.get("error_detail")}
            for r in reports if (r.get("error") or "").startswith(FAILED_INPUT_ERRORS)]


def check_accounting(reader_rows: int, stages: list[str], flow: dict[str, dict], global_stats: dict[str, dict],
                     written: dict[str, int]) -> None:
    """Compare the counts that independent parts of the run made: the rows the readers emitted
    (their completion markers), each per-document stage's rows in and out (counted around the
    stage in its worker), each global stage's rows in and out (from its files), and the rows each
    shard write returned. Raises AccountingError naming the first place where a row went missing
    or appeared."""
    expected = reader_rows
    for name in stages if flow else ():  # parts written before stages counted their flow have none
        f = flow.get(name, {})
        if f.get("in", 0) != expected:
            where = "the reader" if name == stages[0] else f"between the stages before {name!r} and it"
            raise AccountingError(f"{where}: {expected} rows handed on, {f.get('in', 0)} arrived")
        if f.get("out", 0) != f.get("in", 0):
            raise AccountingError(f"stage {name!r}: {f.get('in', 0)} rows in, {f.get('out', 0)} out")
        expected = f["out"]
    for name, g in global_stats.items():
        if "rows_in" in g and g["rows_in"] != g.get("rows_out"):
            raise AccountingError(f"global stage {name!r}: {g['rows_in']} rows in, {g.get('rows_out')} out")
    if written and (written["kept"] != written["planned_kept"] or written["rejected"] != written["planned_rejected"]):
        raise AccountingError(f"the shard writer: wrote {written['kept']} kept and {written['rejected']} rejected rows, "
                              f"planned {written['planned_kept']} and {written['planned_rejected']}")


def _stage_namespaces(cfg: Config) -> list[tuple[str, tuple[str, ...]]]:
    """Every stage of the run in order, reading first, with the reason namespaces it owns."""
    from curate.pipeline import registry

    return [("read", ("warc",)), *registry.reason_owners(cfg)]


def _owner(reason: str, stages: list[tuple[str, tuple[str, ...]]]) -> str:
    """The stage that set `reason`: namespaces never overlap (the registry checks), so at most one matches."""
    from curate.pipeline.registry import owns

    for name, namespaces in stages:
        if owns(namespaces, reason):
            return name
    return "errors" if reason.startswith(schema.ERROR_PREFIX) else "unattributed"


def build_stats(cfg: Config, reports: list[dict], reasons: Counter, snap: dict, global_stats: dict,
                total_rows: int, seconds: dict[str, float], processed_inputs: int) -> dict[str, Any]:
    stages = _stage_namespaces(cfg)
    read_rows = sum(r["rows"] for r in reports)
    kept = reasons.get(None, 0)
    errored = sum(n for r, n in reasons.items() if r and r.startswith(schema.ERROR_PREFIX))
    rejected = sum(n for r, n in reasons.items() if r and not r.startswith(schema.ERROR_PREFIX))
    by_stage: dict[str, Counter] = {name: Counter() for name, _ in stages}
    for r, n in reasons.items():
        if r is not None:
            by_stage.setdefault(_owner(r, stages), Counter())[r] += n
    funnel = []
    remaining = read_rows
    for name in by_stage:
        dropped = sum(by_stage[name].values())
        entry = {"stage": name, "in": remaining, "kept": remaining - dropped, "dropped": dict(by_stage[name].most_common())}
        if name in snap.get("seconds", {}):
            entry["seconds"] = round(snap["seconds"][name], 3)
            if name in snap.get("cpu_seconds", {}):
                entry["cpu_seconds"] = round(snap["cpu_seconds"][name], 3)
        if name in global_stats:
            entry["seconds"] = global_stats[name].get("total_seconds")
        if snap.get("counters", {}).get(name):
            entry["counters"] = snap["counters"][name]
        if snap.get("reused", {}).get(name):  # taken from the extraction cache: an earlier run's work
            entry["reused_from_cache"] = {k: round(v, 3) for k, v in snap["reused"][name].items()}
        funnel.append(entry)
        remaining -= dropped
    records_by_type: Counter = Counter()
    for r in reports:
        records_by_type.update(r["records_by_type"])
    file_errors = Counter(r["error"] for r in reports if r.get("error"))
    stats = {
        "read": read_rows,
        "kept": kept,
        "rejected": rejected,
        "errored": errored,
        "rows_written": total_rows,
        "inputs": len(reports),
        "inputs_processed_this_run": processed_inputs,
        "file_errors": dict(file_errors),
        "failed_inputs": failed_inputs(reports),
        "records_by_type": dict(sorted(records_by_type.items())),
        "funnel": funnel,
        "global": global_stats,
        "extraction_saved": extraction_saved(snap),
        # Wall time of this invocation only (a resumed run skips finished work); the funnel's
        # per-stage seconds add up the work behind every row, across invocations.
        "seconds_this_invocation": {k: round(v, 3) for k, v in seconds.items()},
    }
    if read_rows != kept + rejected + errored or total_rows != read_rows:
        raise AccountingError(
            f"read {read_rows} != kept {kept} + rejected {rejected} + errored {errored} "
            f"(rows written {total_rows}): rows were lost or invented"
        )
    return stats


def extraction_saved(snap: dict) -> dict[str, float]:
    """Pages the cheap decisions before extraction kept from trafilatura (the language
    pre-filter's drops, digest reuse), and the seconds that saved at this run's own mean
    seconds per extracted page."""
    counters = snap.get("counters", {})
    extracted = counters.get("extract", {}).get("extracted", 0)
    per_page = snap.get("seconds", {}).get("extract", 0.0) / extracted if extracted else 0.0
    prefilter = counters.get("language_prefilter", {})
    prefiltered, prefilter_s = prefilter.get("decided", 0), prefilter.get("seconds", 0.0)
    reused = counters.get("extract", {}).get("reused", 0)
    return {
        "prefiltered_pages": prefiltered,
        "prefilter_seconds": round(prefilter_s, 3),  # its fast extraction and LID, on every page
        "reused_pages": reused,
        "extract_seconds_per_page": round(per_page, 4),
        "estimated_seconds_saved": round((prefiltered + reused) * per_page - prefilter_s, 3),
    }


def _versions() -> dict[str, str]:
    out = {"curate": __version__, "python": platform.python_version()}
    for pkg in ("ray", "pyarrow", "trafilatura", "warcio", "datatrove", "fasttext-numpy2-wheel", "torch", "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_report(cfg: Config, out: Path | str, stats: dict, reports: list[dict], shards: list[dict],
                 rejected: list[dict], domain_tokens: DomainCounts, storage: Storage = LOCAL) -> dict:
    total_tokens = domain_tokens.total or 1
    manifest = {
        "config_hash": cfg.fingerprint(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": _versions(),
        "inputs": [{"uri": r["uri"], "rows": r["rows"], "error": r.get("error")} for r in reports],
        "shards": shards,
        "rejected": rejected,
        "rows": sum(s["rows"] for s in shards),
        "tokens": sum(s["tokens"] for s in shards),
        "token_count_method": "regex \\w+|[^\\w\\s] (tokenizer-free)",
        # The reweighting stage's mixture (targets, tokens per label before/after, per-row `weight`);
        # without it, the natural mixture: each domain's share of kept tokens (the largest
        # domains; the share of the rest, if a run has more than DomainCounts keeps, apart).
        "mixture": mixture_manifest(stats["global"]) or _natural_mixture(domain_tokens, total_tokens),
    }
    stats["score_histograms"] = score_histograms(out, manifest, score_columns(cfg), storage)
    storage.write_json(join(out, "stats.json"), stats)
    storage.write_json(join(out, "manifest.json"), manifest)
    storage.write_text(join(out, "report.md"), render_markdown(stats, manifest))
    from curate.pipeline.report_html import write_html

    write_html(out, stats, manifest, storage)
    try:
        _write_png(storage, join(out, "funnel.png"), plot_funnel, stats)
        if stats["score_histograms"]:
            _write_png(storage, join(out, "scores.png"), plot_scores, stats["score_histograms"])
        if manifest["mixture"].get("shares_before"):  # the reweighting stage ran
            _write_png(storage, join(out, "mixture.png"), plot_mixture, manifest["mixture"])
    except Exception:  # noqa: BLE001 -- a plot is a nicety; never fail a finished run for it
        pass
    return manifest


def _natural_mixture(domain_tokens: DomainCounts, total_tokens: int) -> dict:
    mixture = {"column": "domain", "weights": {d: round(t / total_tokens, 8) for d, t in sorted(domain_tokens.top().items())}}
    if domain_tokens.tail_tokens:
        mixture["other_domains_share"] = round(domain_tokens.tail_tokens / total_tokens, 8)
    return mixture


def _write_png(storage: Storage, path: str, plot: Any, data: Any) -> None:
    png = io.BytesIO()
    plot(data, png)
    storage.write_bytes(path, png.getvalue())


def render_markdown(stats: dict, manifest: dict) -> str:
    lines = [
        "# curate run report", "",
        f"read {stats['read']} documents from {stats['inputs']} inputs: kept {stats['kept']}, "
        f"rejected {stats['rejected']}, errored {stats['errored']}.", "",
        # seconds: wall time in the workers, summed; CPU seconds below it mean the cores were shared.
        "| stage | in | kept | dropped | top reasons | seconds | CPU seconds |", "|---|---:|---:|---:|---|---:|---:|",
    ]
    for f in stats["funnel"]:
        top = ", ".join(f"{r} {n}" for r, n in list(f["dropped"].items())[:4])
        lines.append(f"| {f['stage']} | {f['in']} | {f['kept']} | {f['in'] - f['kept']} | {top} | {f.get('seconds', '')} "
                     f"| {f.get('cpu_seconds', '')} |")
    saved = stats.get("extraction_saved") or {}
    if saved.get("prefiltered_pages") or saved.get("reused_pages"):
        lines += ["", f"extraction saved: {saved['prefiltered_pages']} pages decided by the language pre-filter "
                      f"({saved['prefilter_seconds']} s for its fast extraction) and {saved['reused_pages']} reused by payload digest, "
                      f"at {saved['extract_seconds_per_page']} s per extracted page: ~{saved['estimated_seconds_saved']} s net"]
    reused = (stats.get("resume") or {}).get("reused_from_cache") or {}
    if reused:
        lines += ["", "from the extraction cache (an earlier run's work, not redone): "
                      + ", ".join(f"{stage} {r['rows']:.0f} rows ({r['seconds']:.1f} s then)" for stage, r in reused.items())]
    lines += ["", f"file errors: {stats['file_errors'] or 'none'}",
              f"shards: {len(manifest['shards'])} ({manifest['rows']} rows, {manifest['tokens']} tokens)", ""]
    lines += score_markdown(stats.get("score_histograms", {}))
    if manifest["mixture"].get("shares_before"):
        lines += mixture_markdown(manifest["mixture"])
    return "\n".join(lines)


def plot_funnel(stats: dict, path: Path | IO[bytes]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f["stage"] for f in stats["funnel"]]
    kept = [f["kept"] for f in stats["funnel"]]
    dropped = [f["in"] - f["kept"] for f in stats["funnel"]]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.5))
    y = range(len(names))[::-1]
    ax.barh(list(y), kept, color="#3b7dd8", label="kept")
    ax.barh(list(y), dropped, left=kept, color="#e07b39", label="dropped here")
    ax.set_yticks(list(y), names)
    ax.set_xlabel("documents")
    ax.set_title(f"curate funnel: {stats['read']} read -> {stats['kept']} kept")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
