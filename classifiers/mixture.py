"""The data mixture: per-site caps and reweighting to a target mixture, as global stages.

`domain_caps` (YAML section `domain_caps`) keeps at most `max_tokens` tokens (and/or
`max_share` of the run's kept tokens) per registered domain. Inside a domain, documents are kept
in a fixed order: by `order_by` (a score column, highest first) or by a seeded hash of the
document id, ties by id. The order and the cut depend only on the rows, never on how they were
split into blocks or how many workers ran, so the same rows lose the same documents on every
run. Dropped rows get `cap:domain`.

`mixture` (YAML section `mixture`) sets each kept document's `weight`: its expected number of
repeats per epoch, so that weight x tokens, summed per label of `column` (topic or format),
gives the target token shares. Targets are `shares` (token shares per label; unlisted labels
share what is left in their natural proportions) or `weights` (multipliers of the natural
shares, unlisted = 1). Shortfall rule: a label whose target would need more than `max_repeats`
repeats of its data is taken whole (weight `max_repeats`) and the other labels' targets are
renormalised over the remaining budget, repeatedly until every label fits ("water filling").
Fractional weights are realised by deterministic sampling: a document is seen floor(w) times
plus once more when a seeded hash of its id (and the epoch, in the trainer) falls below the
fraction.

Both run as plain Ray tasks over the input's blocks (Ray Data's groupby costs seconds of fixed
overhead per step): caps shuffle only key columns (domain, rank, id, tokens) by a hash of the
domain, one reduce task per CPU; reweighting sums tokens per label in every block. What comes
back to the driver is one row per capped domain or one count per label, never a document.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curate import schema
from curate.config_base import StrictModel
from curate.pipeline.domain_counts import DomainCounts
from curate.pipeline.global_stage import GlobalContext, GlobalStage, input_refs
from curate.pipeline.shards import count_tokens

if TYPE_CHECKING:
    import ray.data

NO_LABEL = "<none>"
_TOKENS, _RANK, _LABEL, _DRAW = "_tokens", "_rank", "_label", "_draw"


def id_hash(ids: list[str | None], seed: int) -> np.ndarray:
    """A seeded 63-bit hash of each id (int64 >= 0): a fixed pseudo-random order of documents."""
    out = np.empty(len(ids), np.int64)
    prefix = f"{seed}\0".encode()
    for i, v in enumerate(ids):
        out[i] = int.from_bytes(hashlib.blake2b(prefix + (v or "").encode(), digest_size=8).digest(), "little") >> 1
    return out


def uniform_draw(ids: list[str | None], seed: int) -> np.ndarray:
    """A deterministic uniform [0, 1) per id (realises fractional weights)."""
    return id_hash(ids, seed).astype(np.float64) / float(1 << 63)


def realised_repeats(weights: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """floor(w), plus one where the draw falls below the fractional part: E[repeats] = w."""
    whole = np.floor(weights)
    return (whole + (draws < weights - whole)).astype(np.int64)


def _active_tokens(batch: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    active = np.asarray(schema.active_mask(batch).to_numpy(zero_copy_only=False), dtype=bool)
    tokens = np.asarray(count_tokens(batch.column(schema.TEXT)), np.int64)
    tokens[~active] = 0
    return active, tokens


def _set(batch: pa.Table, name: str, values: pa.Array) -> pa.Table:
    i = batch.schema.get_field_index(name)
    field = batch.schema.field(i)
    return batch.set_column(i, field, values.cast(field.type))


# ---------------------------------------------------------------------------------- domain caps


class DomainCapsConfig(StrictModel):
    """Per-registered-domain caps on kept tokens (drop reason `cap:domain`)."""

    enabled: bool = False
    max_tokens: int | None = Field(None, ge=1, description="most kept tokens per registered domain")
    max_share: float | None = Field(None, gt=0, le=1, description="most share of the run's kept tokens (before capping) per domain")
    order_by: str | None = Field(None, description="keep a domain's highest-scoring documents first (a score column); default: seeded hash order")
    seed: int = 0

    @model_validator(mode="after")
    def _a_cap(self) -> DomainCapsConfig:
        if self.enabled and self.max_tokens is None and self.max_share is None:
            raise ValueError("domain_caps.enabled needs max_tokens and/or max_share")
        return self


def _cap_keys(batch: pa.Table, seed: int, order_by: str | None) -> pa.Table:
    active, tokens = _active_tokens(batch)
    ids = batch.column(schema.ID).to_pylist()
    if order_by is None:
        rank = id_hash(ids, seed)
    else:  # highest score first: rank = -score (nulls last)
        score = pc.fill_null(batch.column(order_by).cast(pa.float64()), -math.inf).to_numpy(zero_copy_only=False)
        rank = -score
    keys = pa.table({
        schema.DOMAIN: pc.fill_null(batch.column(schema.DOMAIN), NO_LABEL),
        schema.ID: batch.column(schema.ID),
        _RANK: pa.array(rank),
        _TOKENS: pa.array(tokens),
    })
    return keys.filter(pa.array(active))


def _cap_keys_split(block: pa.Table, seed: int, order_by: str | None, parts: int) -> tuple:
    """The block's active keys in `parts` pieces by domain hash, then its active token total."""
    keys = _cap_keys(block, seed, order_by)
    part = id_hash(keys.column(schema.DOMAIN).to_pylist(), 0) % parts
    return (*[keys.filter(pa.array(part == i)) for i in range(parts)], int(pc.sum(keys.column(_TOKENS)).as_py() or 0))


def _domain_cutoffs(cap: float, *pieces: pa.Table) -> pa.Table:
    """(domain, last kept rank, last kept id, kept tokens) of every domain over the cap in
    `pieces`. A domain's rows sort by (rank, id), a total order, and keep the longest prefix
    whose tokens fit; a domain whose first document alone is over the cap loses every row."""
    keys = pa.concat_tables(pieces)
    rank_type = keys.schema.field(_RANK).type
    out: dict[str, list] = {schema.DOMAIN: [], "cut_rank": [], "cut_id": [], "kept_tokens": []}
    if keys.num_rows:
        keys = keys.take(pc.sort_indices(keys, sort_keys=[(schema.DOMAIN, "ascending"), (_RANK, "ascending"), (schema.ID, "ascending")]))
        domains = keys.column(schema.DOMAIN).to_numpy(zero_copy_only=False)
        tokens = keys.column(_TOKENS).to_numpy()
        starts = np.flatnonzero(np.r_[True, domains[1:] != domains[:-1]])
        for lo, hi in zip(starts, np.r_[starts[1:], len(domains)]):
            if tokens[lo:hi].sum() <= cap:
                continue
            cum = np.cumsum(tokens[lo:hi])
            n_keep = int(np.searchsorted(cum, cap, side="right"))
            out[schema.DOMAIN].append(domains[lo])
            out["cut_rank"].append(keys.column(_RANK)[lo + n_keep - 1].as_py() if n_keep else None)
            out["cut_id"].append(keys.column(schema.ID)[lo + n_keep - 1].as_py() if n_keep else None)
            out["kept_tokens"].append(int(cum[n_keep - 1]) if n_keep else 0)
    return pa.table({schema.DOMAIN: pa.array(out[schema.DOMAIN], pa.string()), "cut_rank": pa.array(out["cut_rank"], rank_type),
                     "cut_id": pa.array(out["cut_id"], pa.string()), "kept_tokens": pa.array(out["kept_tokens"], pa.int64())})


def _dataset(refs: list, ctx: GlobalContext) -> ray.data.Dataset:
    import ray.data

    if not refs:
        return ray.data.from_arrow(schema.empty(ctx.schema))
    return ray.data.from_arrow_refs(refs)


def _apply_caps(batch: pa.Table, seed: int, order_by: str | None, *cutoff_parts: pa.Table) -> pa.Table:
    cutoffs = pa.concat_tables(cutoff_parts) if cutoff_parts else _domain_cutoffs(0)
    if cutoffs.num_rows == 0 or batch.num_rows == 0:
        return batch
    keys = _cap_keys(batch, seed, order_by)
    active = np.asarray(schema.active_mask(batch).to_numpy(zero_copy_only=False), dtype=bool)
    rows = np.flatnonzero(active)
    cut = {r[schema.DOMAIN]: (r["cut_rank"], r["cut_id"]) for r in cutoffs.to_pylist()}
    reasons: list[str | None] = [None] * batch.num_rows
    for row, dom, rank, doc_id in zip(rows, keys.column(schema.DOMAIN).to_pylist(), keys.column(_RANK).to_pylist(),
                                      keys.column(schema.ID).to_pylist()):
        if dom in cut:
            cut_rank, cut_id = cut[dom]
            if cut_rank is None or (rank, doc_id or "") > (cut_rank, cut_id or ""):
                reasons[row] = "cap:domain"
    return schema.mark_dropped(batch, reasons)


class DomainCaps(GlobalStage):
    name: ClassVar[str] = "domain_caps"
    reason_namespaces: ClassVar[tuple[str, ...]] = ("cap",)

    def __init__(self, cfg: DomainCapsConfig) -> None:
        self.cfg = cfg

    def run(self, ds: ray.data.Dataset, ctx: GlobalContext) -> ray.data.Dataset:
        import ray

        cfg = self.cfg
        blocks = input_refs(ds, ctx)
        parts = max(1, ctx.num_cpus)
        # Map: each block's keys, split by a hash of the domain (one piece per reduce task).
        split = ray.remote(num_returns=parts + 1)(_cap_keys_split)
        pieces = [split.remote(b, cfg.seed, cfg.order_by, parts) for b in blocks]
        total = int(sum(ray.get([p[-1] for p in pieces])))
        caps = [c for c in (cfg.max_tokens, cfg.max_share * total if cfg.max_share is not None else None) if c is not None]
        cap = min(caps)
        # Reduce: every domain's keys meet in one task, which finds its cut (if it is over the cap).
        # The cuts (one row per capped domain: many, on a crawl) stay in the object store and go
        # straight to the tasks that apply them; the driver gets a bounded summary of each.
        reduce = ray.remote(num_returns=2)(_domain_cutoffs_and_summary)
        reduced = [reduce.remote(cap, *[p[i] for p in pieces]) for i in range(parts)] if blocks else []
        capped, domains_capped = DomainCounts(), 0
        for summary in ray.get([r[1] for r in reduced]):
            capped.merge(summary["kept_tokens"])
            domains_capped += summary["domains_capped"]
        ctx.stats.update({
            "cap_tokens": cap, "tokens_before": total, "domains_capped": domains_capped,
            "capped": capped.top(),  # kept tokens of the capped domains (the largest, if very many)
        })
        apply = ray.remote(_apply_caps)
        return _dataset([apply.remote(b, cfg.seed, cfg.order_by, *[r[0] for r in reduced]) for b in blocks], ctx)


def _domain_cutoffs_and_summary(cap: float, *pieces: pa.Table) -> tuple[pa.Table, dict]:
    """The cuts of `_domain_cutoffs`, their number, and the capped domains' kept tokens (bounded)."""
    cutoffs = _domain_cutoffs(cap, *pieces)
    summary = DomainCounts()
    summary.add_pairs(cutoffs.column(schema.DOMAIN).to_pylist(), cutoffs.column("kept_tokens").to_pylist())
    return cutoffs, {"domains_capped": cutoffs.num_rows, "kept_tokens": summary.to_json()}


# ---------------------------------------------------------------------------------- reweighting


class MixtureConfig(StrictModel):
    """A target mixture over topic or format labels: writes each kept document's `weight`."""

    enabled: bool = False
    column: Literal["topic", "format"] = Field("topic", description="the label column the targets are about")
    shares: dict[str, float] | None = Field(None, description="target token share per label (sum <= 1; unlisted labels share the rest naturally)")
    weights: dict[str, float] | None = Field(None, description="multiplier of each label's natural token share (unlisted: 1)")
    max_repeats: float = Field(4.0, ge=1, description="most expected repeats of a document; a label needing more is taken whole (shortfall)")
    tokens: int | None = Field(None, ge=1, description="tokens per epoch after reweighting; default: the kept tokens before it")
    seed: int = 0

    @model_validator(mode="after")
    def _one_target(self) -> MixtureConfig:
        if self.enabled and (self.shares is None) == (self.weights is None):
            raise ValueError("mixture: set exactly one of `shares` and `weights`")
        for name, spec in (("shares", self.shares), ("weights", self.weights)):
            if spec and any(v < 0 for v in spec.values()):
                raise ValueError(f"mixture.{name}: values must be >= 0")
        if self.shares and sum(self.shares.values()) > 1 + 1e-9:
            raise ValueError(f"mixture.shares: add up to {sum(self.shares.values()):.4f} > 1")
        return self


def target_shares(cfg: MixtureConfig, natural: dict[str, int]) -> dict[str, float]:
    """Full target token shares over every label with data (sum 1), from `shares` or `weights`."""
    total = sum(natural.values())
    if cfg.weights is not None:
        raw = {k: n / total * cfg.weights.get(k, 1.0) for k, n in natural.items()}
    else:
        listed = {k: v for k, v in cfg.shares.items() if k in natural}
        rest = {k: n for k, n in natural.items() if k not in cfg.shares}
        left = max(0.0, 1.0 - sum(listed.values()))
        rest_total = sum(rest.values())
        raw = dict(listed)
        raw.update({k: left * n / rest_total for k, n in rest.items()} if rest_total else {})
    norm = sum(raw.values())
    if norm <= 0:
        raise ValueError(f"mixture: the targets give no weight to any label present ({sorted(natural)})")
    return {k: v / norm for k, v in raw.items()}


def solve_weights(natural: dict[str, int], targets: dict[str, float], budget: float, max_repeats: float) -> tuple[dict[str, float], list[str]]:
    """Per-label weights (expected repeats) so that weight x natural tokens follows `targets` over
    `budget` tokens; labels that would need more than `max_repeats` are taken whole at
    `max_repeats` and the others renormalised (returned second, the shortfall labels)."""
    fixed: dict[str, float] = {}
    while True:
        free = [k for k, s in targets.items() if s > 0 and k not in fixed and natural.get(k, 0) > 0]
        remaining = budget - sum(w * natural[k] for k, w in fixed.items())
        norm = sum(targets[k] for k in free)
        short = [k for k in free if remaining * targets[k] / norm > max_repeats * natural[k]] if norm > 0 else []
        if not short:
            break
        fixed.update({k: max_repeats for k in short})
    weights = {k: 0.0 for k in natural}
    weights.update(fixed)
    if norm > 0 and remaining > 0:
        weights.update({k: remaining * targets[k] / norm / natural[k] for k in free})
    return weights, sorted(fixed)


def _label_keys(batch: pa.Table, column: str, seed: int) -> pa.Table:
    active, tokens = _active_tokens(batch)
    keys = pa.table({
        _LABEL: pc.fill_null(batch.column(column), NO_LABEL),
        _TOKENS: pa.array(tokens),
        _DRAW: pa.array(uniform_draw(batch.column(schema.ID).to_pylist(), seed)),
    })
    return keys.filter(pa.array(active))


def _sums_by_label(labels: pa.Array | pa.ChunkedArray, tokens: np.ndarray) -> dict[str, int]:
    grouped = pa.table({_LABEL: labels, _TOKENS: pa.array(tokens)}).group_by(_LABEL).aggregate([(_TOKENS, "sum")])
    return dict(zip(grouped.column(_LABEL).to_pylist(), grouped.column(f"{_TOKENS}_sum").to_pylist()))


def _label_keys_and_sums(block: pa.Table, column: str, seed: int) -> tuple[pa.Table, dict[str, int]]:
    keys = _label_keys(block, column, seed)
    return keys, _sums_by_label(keys.column(_LABEL), keys.column(_TOKENS).to_numpy())


def _realised_tokens(keys: pa.Table, weights: dict[str, float]) -> dict[str, int]:
    """Tokens per label once every document is repeated as the deterministic draw says."""
    w = np.array([weights.get(l, 0.0) for l in keys.column(_LABEL).to_pylist()])
    reps = realised_repeats(w, keys.column(_DRAW).to_numpy())
    return _sums_by_label(keys.column(_LABEL), reps * keys.column(_TOKENS).to_numpy())


def _add_counts(parts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for k, v in part.items():
            total[k] = total.get(k, 0) + int(v)
    return {k: v for k, v in total.items() if v > 0}


def _apply_weights(batch: pa.Table, column: str, weights: dict[str, float]) -> pa.Table:
    active = np.asarray(schema.active_mask(batch).to_numpy(zero_copy_only=False), dtype=bool)
    labels = pc.fill_null(batch.column(column), NO_LABEL).to_pylist()
    w = np.array([weights.get(l, 0.0) for l in labels], np.float32)
    return _set(batch, schema.WEIGHT, pa.array(w, mask=~active))


def _shares(tokens: dict[str, float]) -> dict[str, float]:
    total = sum(tokens.values()) or 1
    return {k: round(v / total, 6) for k, v in sorted(tokens.items())}


class Reweight(GlobalStage):
    name: ClassVar[str] = "mixture"
    reason_namespaces: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: MixtureConfig) -> None:
        self.cfg = cfg

    def run(self, ds: ray.data.Dataset, ctx: GlobalContext) -> ray.data.Dataset:
        import ray

        cfg = self.cfg
        blocks = input_refs(ds, ctx)
        label_keys = ray.remote(num_returns=2)(_label_keys_and_sums)
        keys, sums = zip(*[label_keys.remote(b, cfg.column, cfg.seed) for b in blocks]) if blocks else ((), ())
        natural = _add_counts(ray.get(list(sums)))
        if not natural:
            ctx.stats["manifest"] = None
            return _dataset(blocks, ctx)
        targets = target_shares(cfg, natural)
        budget = float(cfg.tokens or sum(natural.values()))
        weights, shortfall = solve_weights(natural, targets, budget, cfg.max_repeats)
        realised = _add_counts(ray.get([ray.remote(_realised_tokens).remote(k, weights) for k in keys]))
        expected = {k: weights[k] * n for k, n in natural.items()}
        ctx.stats["manifest"] = {
            "column": cfg.column,
            "weight_column": schema.WEIGHT,
            "targets": {k: round(v, 6) for k, v in sorted(targets.items())},
            "sampling_weights": {k: round(v, 6) for k, v in sorted(weights.items())},
            "shortfall": shortfall,
            "max_repeats": cfg.max_repeats,
            "tokens_before": dict(sorted(natural.items())),
            "tokens_after": {k: round(v) for k, v in sorted(expected.items())},
            "tokens_after_realised": {k: realised.get(k, 0) for k in sorted(natural)},
            "shares_before": _shares(natural),
            "shares_after": _shares(expected),
            "shares_after_realised": _shares({k: realised.get(k, 0) for k in natural}),
        }
        apply = ray.remote(_apply_weights)
        return _dataset([apply.remote(b, cfg.column, weights) for b in blocks], ctx)


def mixture_manifest(global_stats: dict[str, Any]) -> dict[str, Any] | None:
    """What the reweighting stage recorded for manifest.json, if it ran."""
    return (global_stats.get(Reweight.name) or {}).get("manifest")


def plot_mixture(mixture: dict[str, Any], path: Path) -> None:
    """Token shares per label before and after reweighting (and the targets), as a bar chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted(mixture["shares_before"], key=lambda k: -mixture["shares_before"][k])
    y = np.arange(len(labels))[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(labels) + 1.6))
    h = 0.38
    ax.barh(y + h / 2, [mixture["shares_before"][k] for k in labels], h, color="#9aa5b1", label="before (natural)")
    ax.barh(y - h / 2, [mixture["shares_after_realised"].get(k, 0) for k in labels], h, color="#3b7dd8", label="after (realised)")
    ax.scatter([mixture["targets"].get(k, 0) for k in labels], y - h / 2, marker="|", s=120, color="black", label="target", zorder=3)
    short = set(mixture["shortfall"])
    ax.set_yticks(y, [f"{k} *" if k in short else k for k in labels])
    ax.set_xlabel("share of tokens")
    ax.set_title(f"mixture by {mixture['column']}" + (" (* too little data: taken whole)" if short else ""))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def mixture_markdown(mixture: dict[str, Any]) -> list[str]:
    """The report's mixture table: token shares per label before, targeted and after."""
    short = mixture["shortfall"]
    lines = [f"## Mixture by {mixture['column']}", "", "![mixture](mixture.png)", "",
             f"| {mixture['column']} | tokens before | share before | target | share after (expected) | share after (realised) | weight |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for k in sorted(mixture["shares_before"], key=lambda k: -mixture["shares_before"][k]):
        lines.append(f"| {k}{' *' if k in short else ''} | {mixture['tokens_before'][k]} | {mixture['shares_before'][k]:.3f} "
                     f"| {mixture['targets'].get(k, 0):.3f} | {mixture['shares_after'].get(k, 0):.3f} "
                     f"| {mixture['shares_after_realised'].get(k, 0):.3f} | {mixture['sampling_weights'][k]:.3f} |")
    if short:
        lines += ["", f"\\* too little data for the target: taken whole ({mixture['max_repeats']:g} repeats), "
                      "the other targets renormalised over the rest."]
    return lines + [""]
