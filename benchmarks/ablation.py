"""The curation ablation (FineWeb-style): does each curation step make a better small model?

Same tiny Llama, same token budget, same tokenizer, several seeds:
  (a) raw             : every row the run extracted -- shards/ + rejected/ with non-empty text,
                        i.e. the unfiltered, undeduplicated text of the same WARCs
  (b) filtered        : the run's shards/ (heuristic filters + dedup), by manifest.json's mixture
  (c) filtered+top50  : (b) restricted to its top half by `wiki_score` (the run must have scored
                        its rows: `classifiers.wiki_quality.enabled: true`, without top_fraction)
  (d) filtered+anneal : (b) whose last `--anneal-fraction` of the budget is drawn from the run's
                        own top-scored rows (top `--anneal-top` by wiki_score), LR decaying to zero
Scored by perplexity and bits per byte on two held-out sets: the Wikipedia sample's evaluation
half (`wikipedia_is_eval`) and the human-written AEB article bodies of the held-out AEB domains
(`aeb_is_eval`). Neither is trained on: the shipped classifier's labelled set leaves both out,
and every variant's training rows drop the held-out AEB domains (their pages are in
real-pages.warc.gz). One BPE, trained on the raw text, serves every run.

    curate run benchmarks/data/ablation-run.yaml
    .venv/bin/python benchmarks/ablation.py [--run-dir output/ablation-run] [--seeds 3] [--tokens 300000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.classifiers.default_data import aeb_is_eval, wikipedia_is_eval

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
WIKI = DATA / "wikipedia" / "enwiki-sample.jsonl.gz"


def nonempty_text(paths: list[Path]) -> pa.Table:
    tables = []
    for p in paths:
        schema = pq.read_schema(p)
        cols = [c for c in ("text", "domain", "wiki_score") if c in schema.names]
        t = pq.read_table(p, columns=cols)
        keep = pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(t["text"])), 0), False)
        tables.append(t.filter(keep))
    return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({"text": pa.array([], pa.large_string())})


def wiki_split(out: Path) -> tuple[Path, Path, int, int]:
    """Write the Wikipedia sample's train and eval halves (by hash of article id) as jsonl."""
    train, held = out / "wiki-train.jsonl", out / "wiki-eval.jsonl"
    n_train = n_eval = 0
    with gzip.open(WIKI, "rt") as fh, open(train, "w") as tr, open(held, "w") as ev:
        for line in fh:
            art = json.loads(line)
            is_eval = wikipedia_is_eval(art["id"])
            (ev if is_eval else tr).write(json.dumps({"text": art["text"], "id": art["id"]}) + "\n")
            n_eval += is_eval
            n_train += not is_eval
    return train, held, n_train, n_eval


def aeb_eval_set(out: Path) -> tuple[Path, set[str]]:
    """The AEB article bodies of the held-out domains as jsonl, and those domains."""
    from curate.pipeline.warc import _domain_extractor, registered_domain

    truth = json.loads((DATA / "extraction" / "aeb" / "ground-truth.json").read_text())
    ext, domains, path = _domain_extractor(), set(), out / "aeb-eval.jsonl"
    with open(path, "w") as fh:
        for key, page in sorted(truth.items()):
            domain = registered_domain(page["url"], ext)
            if aeb_is_eval(domain):
                domains.add(domain)
                fh.write(json.dumps({"text": page["articleBody"], "id": key}) + "\n")
    return path, domains


def without_domains(table: pa.Table, domains: set[str]) -> pa.Table:
    if "domain" not in table.column_names:
        return table
    held = pc.fill_null(pc.is_in(table["domain"], pa.array(sorted(domains), pa.string())), False)
    return table.filter(pc.invert(held))


def perplexity(model_dir: Path, tok_path: Path, texts_path: Path, seq_len: int, max_sequences: int) -> tuple[float, float]:
    """(perplexity, bits per byte) of a trained model on the documents of a jsonl file, packed
    into seq_len sequences as the trainer packs its own held-out set."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_path)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    texts = [json.loads(line)["text"] for line in texts_path.read_text().splitlines()]
    ids: list[int] = []
    for t in texts:
        ids += tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    n = min(max_sequences, len(ids) // seq_len)
    seqs = torch.tensor(ids[: n * seq_len]).view(n, seq_len)
    total = 0.0
    with torch.no_grad():
        for lo in range(0, n, 32):
            total += model(input_ids=seqs[lo:lo + 32], labels=seqs[lo:lo + 32]).loss.item() * len(seqs[lo:lo + 32])
    mean = total / n
    text_bytes = sum(len(t.encode()) for t in texts)
    return math.exp(mean), mean / math.log(2) / (text_bytes / len(ids))


def run_one(name: str, seed: int, data: Path, manifest: Path | None, tok: Path, eval_path: Path, out: Path, args,
            anneal_min_score: float | None, aeb_eval: Path) -> dict:
    from curate.train.config import TrainConfig
    from curate.train.loop import TrainInputs, train

    spec = {
        "tokens": args.tokens, "seq_len": args.seq_len, "micro_batch_size": args.batch, "seed": seed,
        "tokenizer": {"path": str(tok)}, "model": {"preset": "tiny"},
        "optim": {"lr": args.lr, "warmup_steps": 10},
        "eval": {"paths": [str(eval_path)], "interval": 10**9, "max_sequences": args.eval_sequences, "batch_size": 32},
        "checkpoint_interval": 10**9, "log_interval": 10, "progress": False,
    }
    if anneal_min_score is not None:  # the run's own top-scored rows, nothing from outside
        spec["anneal"] = {"fraction": args.anneal_fraction, "score_column": "wiki_score", "min_score": anneal_min_score}
    cfg = TrainConfig.model_validate(spec)
    folder = out / f"{name}-seed{seed}"
    t0 = time.perf_counter()
    final_dir = train(cfg, TrainInputs([str(data)], folder, manifest, [], [str(eval_path)]), resume=False)
    recs = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in recs if "eval_loss" in r][-1]
    steps = max(r["step"] for r in recs if "loss" in r)
    aeb_ppl, aeb_bpb = perplexity(final_dir, tok, aeb_eval, args.seq_len, args.eval_sequences)
    return {"variant": name, "seed": seed, "eval_loss": final["eval_loss"], "eval_ppl": final["eval_ppl"],
            "eval_bpb": final["eval_bpb"], "aeb_ppl": aeb_ppl, "aeb_bpb": aeb_bpb, "steps": steps,
            "seconds": time.perf_counter() - t0}


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


def summarize(rows: list[dict], variant: str, key: str) -> tuple[float, float]:
    vals = [r[key] for r in rows if r["variant"] == variant]
    return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default="output/ablation-run", help="a finished `curate run` output whose rows have wiki_score")
    ap.add_argument("--out", default=None, help="working folder (default <run-dir>/ablation)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=300_000, help="token budget per run")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--anneal-fraction", type=float, default=0.2)
    ap.add_argument("--anneal-top", type=float, default=0.2, help="the annealing pool: this top fraction of (b) by wiki_score")
    ap.add_argument("--eval-sequences", type=int, default=512)
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (processes, one torch thread each)")
    args = ap.parse_args()

    run_dir = Path(args.run_dir)
    shards = sorted((run_dir / "shards").glob("*.parquet"))
    rejected = sorted((run_dir / "rejected").glob("*.parquet"))
    if not shards:
        print(f"no shards in {run_dir / 'shards'}: run `curate run` with classifiers.wiki_quality.enabled first", file=sys.stderr)
        return 2

    from curate.train.tokenizer import train_bpe

    out = Path(args.out) if args.out else run_dir / "ablation"
    (out / "data").mkdir(parents=True, exist_ok=True)
    _, wiki_eval, _, n_eval = wiki_split(out / "data")
    aeb_eval, aeb_domains = aeb_eval_set(out / "data")
    filtered = without_domains(nonempty_text(shards), aeb_domains)
    raw = without_domains(nonempty_text(shards + rejected), aeb_domains)
    if "wiki_score" not in filtered.column_names or filtered["wiki_score"].null_count == filtered.num_rows:
        print("the run's rows have no wiki_score: enable classifiers.wiki_quality (scoring only) and rerun", file=sys.stderr)
        return 2
    scores = filtered["wiki_score"].to_numpy(zero_copy_only=False)
    median = float(np.quantile(scores, 0.5))
    top = filtered.filter(pc.greater_equal(filtered["wiki_score"], median))
    anneal_min = float(np.quantile(scores, 1 - args.anneal_top))
    pq.write_table(filtered, out / "data" / "filtered.parquet")
    pq.write_table(top, out / "data" / "top50.parquet")
    pq.write_table(raw.select(["text"]), out / "data" / "raw.parquet")
    tok = train_bpe(raw["text"].to_pylist(), args.vocab)
    tok.save_pretrained(out / "data" / "tokenizer")
    tok_path = out / "data" / "tokenizer"

    def tokens_of(table: pa.Table) -> int:
        from curate.train.tokenizer import encode_batch

        return sum(len(ids) + 1 for ids in encode_batch(tok, table["text"].to_pylist()))

    manifest = run_dir / "manifest.json"
    manifest = manifest if manifest.is_file() else None
    print(f"raw {raw.num_rows} docs / {tokens_of(raw):,} tokens | filtered {filtered.num_rows} / {tokens_of(filtered):,} | "
          f"top50 (wiki_score >= {median:.3f}) {top.num_rows} / {tokens_of(top):,} | anneal pool wiki_score >= {anneal_min:.3f} | "
          f"held out: {n_eval} Wikipedia articles, AEB bodies of {len(aeb_domains)} domains (left out of every variant) | "
          f"budget {args.tokens:,} tokens/run, seeds {args.seeds}")

    variants = (("raw", out / "data" / "raw.parquet", None, None),
                ("filtered", out / "data" / "filtered.parquet", manifest, None),
                ("filtered+top50", out / "data" / "top50.parquet", None, None),
                ("filtered+anneal", out / "data" / "filtered.parquet", manifest, anneal_min))
    rows: list[dict] = []

    def write_results(runs: list[dict]) -> None:
        (out / "results.json").write_text(json.dumps({"args": vars(args), "median_wiki_score": median,
                                                      "anneal_min_score": anneal_min, "runs": runs}, indent=2))

    from concurrent.futures import ProcessPoolExecutor, as_completed

    # Every (seed, variant) run is independent: `--jobs` of them at once, one torch thread each.
    with ProcessPoolExecutor(args.jobs, initializer=_one_torch_thread) as pool:
        futures = [pool.submit(run_one, name, seed, data, man, tok_path, wiki_eval, out / "runs", args, anneal, aeb_eval)
                   for seed in range(args.seeds) for name, data, man, anneal in variants]
        for future in as_completed(futures):
            r = future.result()
            rows.append(r)
            print(f"  seed {r['seed']} {r['variant']:16s} wiki ppl {r['eval_ppl']:8.2f} bpb {r['eval_bpb']:.4f} | AEB ppl "
                  f"{r['aeb_ppl']:8.2f} bpb {r['aeb_bpb']:.4f}  ({r['steps']} steps, {r['seconds']:.0f}s)", flush=True)
            write_results(rows)  # after every run: an interrupted ablation keeps what finished

    print(f"\n{args.tokens:,} training tokens, {args.seeds} seeds (mean ± sd):")
    for v, *_ in variants:
        (wm, wsd), (am, asd) = summarize(rows, v, "eval_ppl"), summarize(rows, v, "aeb_ppl")
        print(f"  {v:16s} held-out Wikipedia ppl {wm:8.2f} ± {wsd:6.2f}   AEB ppl {am:8.2f} ± {asd:6.2f}")
    for key, label in (("eval_ppl", "Wikipedia"), ("aeb_ppl", "AEB")):
        by = {(r["variant"], r["seed"]): r[key] for r in rows}
        for a, b in (("raw", "filtered"), ("filtered", "filtered+top50"), ("filtered", "filtered+anneal")):
            d = [by[(a, s)] - by[(b, s)] for s in range(args.seeds)]
            sd = statistics.stdev(d) if len(d) > 1 else float("nan")
            verdict = "inside the noise" if abs(statistics.mean(d)) <= 2 * sd / math.sqrt(len(d)) or not math.isfinite(sd) else "outside the noise"
            print(f"  {label}: {a} - {b} per seed {', '.join(f'{x:+.2f}' for x in d)} (mean {statistics.mean(d):+.2f}, "
                  f"{b} better on {sum(x > 0 for x in d)}/{len(d)}; {verdict}: |mean| vs 2 standard errors)")
    print(f"results: {out / 'results.json'}")
    return 0 if all(math.isfinite(r["eval_ppl"]) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
