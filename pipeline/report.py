"""stats.json (the funnel), manifest.json, report.md and funnel.png for a finished run."""

from __future__ import annotations

import io
import platform
import time
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from curate import __version__, schema
from curate.config import Config
from curate.pipeline.storage import LOCAL, Storage, join


class AccountingError(RuntimeError):
    """read != kept + rejected + errored: a row was lost or invented somewhere."""


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
        "records_by_type": dict(sorted(records_by_type.items())),
        "funnel": funnel,
        "global": global_stats,
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


def _versions() -> dict[str, str]:
    out = {"curate": __version__, "python": platform.python_version()}
    for pkg in ("ray", "pyarrow", "trafilatura", "warcio", "datatrove", "fasttext-numpy2-wheel", "torch", "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_report(cfg: Config, out: Path | str, stats: dict, reports: list[dict], shards: list[dict],
                 rejected: list[dict], domain_tokens: Counter, storage: Storage = LOCAL) -> dict:
    total_tokens = sum(domain_tokens.values()) or 1
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
        # Natural mixture: each domain's share of kept tokens. Reweighting stages replace it.
        "mixture": {"column": "domain", "weights": {d: round(t / total_tokens, 8) for d, t in sorted(domain_tokens.items())}},
    }
    storage.write_json(join(out, "stats.json"), stats)
    storage.write_json(join(out, "manifest.json"), manifest)
    storage.write_text(join(out, "report.md"), render_markdown(stats, manifest))
    try:
        png = io.BytesIO()
        plot_funnel(stats, png)
        storage.write_bytes(join(out, "funnel.png"), png.getvalue())
    except Exception:  # noqa: BLE001 -- a plot is a nicety; never fail a finished run for it
        pass
    return manifest


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
    lines += ["", f"file errors: {stats['file_errors'] or 'none'}",
              f"shards: {len(manifest['shards'])} ({manifest['rows']} rows, {manifest['tokens']} tokens)", ""]
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
