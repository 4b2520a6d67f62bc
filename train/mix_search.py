"""`curate mix search CONFIG`: a RegMix-style search for the topic mixture (Liu et al., 2024).

1. The run's shards (written with `classifiers.topics` on) are tokenized once into a pool whose
   groups are the `--topics` largest topics by tokens plus `other` (the rest).
2. `--proxies` mixtures are drawn from a Dirichlet centred on the natural token shares
   (concentration `--concentration` x number of groups), seeded.
3. One tiny proxy model per mixture is trained for `--tokens` tokens (one Ray task each, one
   CPU) and scored by its loss on the held-out text of `train.eval.paths`. Each result is a file
   under `<output.path>/mix_search/proxies/`: a rerun skips proxies already trained (resume).
4. A ridge regression of held-out loss on the mixture is fitted, evaluated on 100,000 fresh
   mixtures from the same Dirichlet (predicting only where proxies were trained), and the
   mixture with the lowest prediction is printed and written as a `mixture:` section ready to
   paste into the YAML (`recommended.yaml`).
5. With `--validate-seeds N`, proxies on the recommended and on the natural mixture are trained
   with N seeds each and their held-out losses reported side by side (`search.json`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

OTHER = "other"


@dataclass(frozen=True)
class ProxySettings:
    tokens: int = 60_000
    seq_len: int = 64
    batch_size: int = 16
    hidden_size: int = 64
    num_layers: int = 2
    lr: float = 3e-3
    eval_sequences: int = 64


def _pool_groups(topics: list[str | None], tokens: np.ndarray, keep: int) -> list[str]:
    """Each document's group: its topic when among the `keep` topics with the most tokens, else `other`."""
    totals: dict[str, float] = {}
    for t, n in zip(topics, tokens):
        totals[t or OTHER] = totals.get(t or OTHER, 0) + n
    top = [t for t, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])) if t != OTHER][:keep]
    return [t if t in top else OTHER for t in (x or OTHER for x in topics)]


def prepare(shard_glob: str, eval_paths: list[str], out: Path, keep_topics: int, vocab_size: int = 2048):
    """Tokenizer, the grouped main pool and the held-out pool, built once (reused when present)."""
    import pyarrow as pa

    from curate.pipeline.shards import count_tokens
    from curate.train.data import GROUP_COLUMN, TokenPool, expand, files_fingerprint, read_documents
    from curate.train.tokenizer import load_tokenizer, train_bpe

    files = expand([shard_glob])
    docs = read_documents(files, group_column="topic")
    if docs.column(GROUP_COLUMN).null_count == docs.num_rows:
        raise ValueError(f"{shard_glob}: no `topic` labels (run with classifiers.topics enabled)")
    tok_dir = out / "tokenizer"
    if (tok_dir / "tokenizer.json").is_file():
        tok = load_tokenizer(tok_dir)
    else:
        tok = train_bpe(docs["text"].to_pylist()[:5000], vocab_size)
        tok.save_pretrained(tok_dir)
    groups = _pool_groups(docs.column(GROUP_COLUMN).to_pylist(), np.asarray(count_tokens(docs["text"])), keep_topics)
    docs = docs.set_column(docs.schema.get_field_index(GROUP_COLUMN), GROUP_COLUMN, pa.array(groups, pa.string()))
    key = hashlib.sha256(json.dumps([files_fingerprint(files), keep_topics, vocab_size]).encode()).hexdigest()[:16]
    pool = TokenPool.build(out / "pool", key, docs, tok)
    eval_files = expand(eval_paths)
    held = TokenPool.build(out / "eval", hashlib.sha256(files_fingerprint(eval_files).encode()).hexdigest()[:16],
                           read_documents(eval_files), tok)
    return tok, pool, held


def natural_shares(pool) -> dict[str, float]:
    per = np.bincount(pool.group_ids, weights=pool.lengths, minlength=len(pool.groups))
    return {g: float(t / per.sum()) for g, t in zip(pool.groups, per)}


def sample_mixtures(natural: dict[str, float], n: int, seed: int, concentration: float) -> np.ndarray:
    """`n` mixtures (rows, in `natural`'s order) from a Dirichlet centred on the natural shares."""
    alpha = np.maximum(np.array(list(natural.values())), 1e-3) * concentration * len(natural)
    return np.random.default_rng([seed, 7]).dirichlet(alpha, size=n)


def train_proxy(out_dir: str, mixture: dict[str, float], seed: int, settings: ProxySettings) -> float:
    """Train one tiny Llama on `mixture` of the pool for `settings.tokens` tokens; its mean loss
    on the held-out pool."""
    import torch

    from curate.train.config import ModelConfig, OptimConfig
    from curate.train.data import PackedStream, TokenPool
    from curate.train.model import build_model, llama_config
    from curate.train.schedule import LRSchedule
    from curate.train.tokenizer import EOS, PAD, load_tokenizer

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    out = Path(out_dir)
    tok = load_tokenizer(out / "tokenizer")
    pool, held = TokenPool.open(out / "pool"), TokenPool.open(out / "eval")
    s = settings
    eos, pad = tok.convert_tokens_to_ids(EOS), tok.convert_tokens_to_ids(PAD)
    mcfg = ModelConfig(preset="tiny", hidden_size=s.hidden_size, num_layers=s.num_layers, num_heads=4, num_kv_heads=4,
                       intermediate_size=2 * s.hidden_size)
    model = build_model(llama_config(mcfg, len(tok), s.seq_len, eos, pad))
    steps = max(1, math.ceil(s.tokens / (s.seq_len * s.batch_size)))
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, betas=(0.9, 0.95), weight_decay=0.1)
    sched = LRSchedule.from_config(OptimConfig(lr=s.lr, warmup_steps=max(1, steps // 10)), steps, 0)
    stream = PackedStream(pool, s.seq_len, seed, weights=mixture)
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = sched(step)
        ids = torch.from_numpy(stream.batch(step * s.batch_size, s.batch_size))
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()
    evals = PackedStream(held, s.seq_len, 0, shuffle=False)
    n = max(1, min(s.eval_sequences, held.num_tokens // s.seq_len))
    with torch.no_grad():
        ids = torch.from_numpy(evals.batch(0, n))
        return float(model(input_ids=ids, labels=ids).loss)


def _proxy_key(mixture: dict[str, float], seed: int, settings: ProxySettings) -> str:
    blob = json.dumps([sorted((k, round(v, 8)) for k, v in mixture.items()), seed, asdict(settings)])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_proxies(out: Path, jobs: list[tuple[dict[str, float], int]], settings: ProxySettings) -> list[float]:
    """Held-out loss of each (mixture, seed), one Ray task per proxy not already on disk."""
    import ray

    folder = out / "proxies"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{_proxy_key(m, s, settings)}.json" for m, s in jobs]
    task = ray.remote(num_cpus=1, max_retries=2)(train_proxy)
    pending = {task.remote(str(out), m, s, settings): i for i, ((m, s), p) in enumerate(zip(jobs, paths)) if not p.is_file()}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            i = pending.pop(ref)
            mixture, seed = jobs[i]
            tmp = paths[i].with_suffix(".tmp")
            tmp.write_text(json.dumps({"mixture": mixture, "seed": seed, "loss": ray.get(ref), "settings": asdict(settings)}))
            tmp.replace(paths[i])  # a finished proxy is on disk whole or not at all
    return [json.loads(p.read_text())["loss"] for p in paths]


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float = 1e-3) -> tuple[np.ndarray, float]:
    """Ridge regression y ~ x @ w + b (features centred; intercept unpenalised)."""
    mx, my = x.mean(axis=0), y.mean()
    xc = x - mx
    w = np.linalg.solve(xc.T @ xc + alpha * len(y) * np.eye(x.shape[1]), xc.T @ (y - my))
    return w, float(my - mx @ w)


def recommend(labels: list[str], x: np.ndarray, y: np.ndarray, natural: dict[str, float], seed: int,
              concentration: float, candidates: int = 100_000) -> tuple[dict[str, float], float, float]:
    """The candidate mixture with the lowest predicted loss, its prediction, and the fit's
    leave-one-out correlation between predicted and measured loss."""
    w, b = fit_ridge(x, y)
    pool = np.random.default_rng([seed, 8]).dirichlet(
        np.maximum(np.array(list(natural.values())), 1e-3) * concentration * len(natural), size=candidates)
    pred = pool @ w + b
    best = int(np.argmin(pred))
    loo = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        wi, bi = fit_ridge(x[keep], y[keep])
        loo.append(x[i] @ wi + bi)
    corr = float(np.corrcoef(loo, y)[0, 1]) if len(y) > 2 else float("nan")
    return {l: float(v) for l, v in zip(labels, pool[best])}, float(pred[best]), corr


def mixture_yaml(best: dict[str, float]) -> str:
    shares = {k: round(v, 4) for k, v in best.items() if k != OTHER}
    section = {"mixture": {"enabled": True, "column": "topic", "shares": shares}}
    note = f"# `{OTHER}` ({best.get(OTHER, 0):.4f}) is every other topic: left to the unlisted labels in natural proportion\n"
    return note + yaml.safe_dump(section, sort_keys=False, allow_unicode=True)


def search(cfg, proxies: int, keep_topics: int, settings: ProxySettings, concentration: float, seed: int,
           validate_seeds: int, out: Path) -> dict:
    from curate.train.loop import resolve_inputs

    inputs = resolve_inputs(cfg.train, cfg.output.path)
    if not inputs.eval_paths:
        raise ValueError("mix search scores proxies on held-out text: set train.eval.paths")
    out.mkdir(parents=True, exist_ok=True)
    _, pool, _ = prepare(inputs.data_paths[0], inputs.eval_paths, out, keep_topics)
    natural = natural_shares(pool)
    labels = list(natural)
    x = sample_mixtures(natural, proxies, seed, concentration)
    mixtures = [dict(zip(labels, map(float, row))) for row in x]
    y = np.array(run_proxies(out, [(m, seed) for m in mixtures], settings))
    best, predicted, corr = recommend(labels, x, y, natural, seed, concentration)
    result = {"groups": labels, "natural": natural, "proxies": [{"mixture": m, "loss": float(l)} for m, l in zip(mixtures, y)],
              "recommended": best, "predicted_loss": predicted, "loo_correlation": corr, "settings": asdict(settings)}
    if validate_seeds:
        seeds = [seed + 1000 + i for i in range(validate_seeds)]
        losses = run_proxies(out, [(m, s) for m in (best, natural) for s in seeds], settings)
        result["validation"] = {
            "seeds": seeds,
            "recommended": losses[:validate_seeds], "natural": losses[validate_seeds:],
        }
    (out / "recommended.yaml").write_text(mixture_yaml(best))
    (out / "search.json").write_text(json.dumps(result, indent=2))
    return result


def add_subcommands(subparsers) -> None:
    mix = subparsers.add_parser("mix", help="the data mixture")
    sub = mix.add_subparsers(dest="mix_command", required=True)
    s = sub.add_parser("search", help="RegMix-style search of the topic mixture with tiny proxy models (Ray tasks, resumable)")
    s.add_argument("config", help="the run YAML (its shards need topic labels; train.eval.paths is the held-out text)")
    s.add_argument("--proxies", type=int, default=16, help="proxy models on random mixtures")
    s.add_argument("--topics", type=int, default=6, help="largest topics searched over; the rest form `other`")
    s.add_argument("--tokens", type=int, default=ProxySettings.tokens, help="training tokens per proxy")
    s.add_argument("--concentration", type=float, default=2.0, help="Dirichlet concentration per group around the natural shares")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--validate-seeds", type=int, default=3, help="seeds of the recommended-vs-natural check (0: skip)")
    s.add_argument("--out", help="folder for proxies and results; default <output.path>/mix_search")
    s.set_defaults(func=search_command)


def search_command(args: argparse.Namespace) -> int:
    from curate import session
    from curate.train.cli import load_train_config

    cfg = load_train_config(args.config, " (mix search reads train.eval.paths)")
    if cfg is None:
        return 2
    sess = session.start(cfg.ray)
    print(sess.banner())
    out = Path(args.out) if args.out else Path(cfg.output.path) / "mix_search"
    result = search(cfg, args.proxies, args.topics, ProxySettings(tokens=args.tokens), args.concentration, args.seed,
                    args.validate_seeds, out)
    print(f"{len(result['proxies'])} proxies, {result['settings']['tokens']:,} tokens each; "
          f"leave-one-out correlation of predicted and measured loss: {result['loo_correlation']:.2f}")
    print(f"{'group':24s} {'natural':>8s} {'recommended':>12s}")
    for g in result["groups"]:
        print(f"{g:24s} {result['natural'][g]:8.3f} {result['recommended'][g]:12.3f}")
    if "validation" in result:
        v = result["validation"]
        for name in ("recommended", "natural"):
            print(f"held-out loss, {name} mixture: {np.mean(v[name]):.4f} ± {np.std(v[name]):.4f} (seeds {v['seeds']})")
    print(f"\nrecommended mixture ({out / 'recommended.yaml'}):\n")
    print((out / "recommended.yaml").read_text())
    return 0
