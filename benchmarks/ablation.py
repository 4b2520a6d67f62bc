"""The curation ablation (FineWeb-style): does training on curate's output beat the raw web text?

Same tiny Llama, same token budget, same tokenizer, several seeds:
  (a) curated : the run's shards/ (kept rows), sampled by manifest.json's mixture when present
  (b) raw     : every row the run extracted -- shards/ + rejected/ with non-empty text, i.e. the
                unfiltered, undeduplicated text of the same WARCs
  (c) curated + annealing : (a) whose last `--anneal-fraction` of the budget is drawn from the
                training half of the Wikipedia sample with the LR decaying linearly to zero
  (d) curated, no annealing : = (a) (same cosine schedule over the whole budget)
Scored by perplexity and bits per byte on held-out Wikipedia: the sample's articles are split by a
hash of the article id, so no evaluation article is ever trained on (the annealing pool uses only
the training half). One BPE, trained on the raw text (a superset of the curated text, so if
anything it favours (b)), serves every run, so perplexities are comparable.

    .venv/bin/python benchmarks/ablation.py [--run-dir output/sample] [--seeds 3] [--tokens 300000]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import statistics
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
WIKI = REPO.parent / "shared" / "data" / "wikipedia" / "enwiki-sample.jsonl.gz"


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
            is_eval = hashlib.sha1(str(art["id"]).encode()).digest()[0] % 2 == 1
            (ev if is_eval else tr).write(json.dumps({"text": art["text"], "id": art["id"]}) + "\n")
            n_eval += is_eval
            n_train += not is_eval
    return train, held, n_train, n_eval


def run_one(name: str, seed: int, data: Path, manifest: Path | None, tok: Path, eval_path: Path, out: Path, args,
            anneal_path: Path | None) -> dict:
    from curate.train.config import TrainConfig
    from curate.train.loop import TrainInputs, train

    spec = {
        "tokens": args.tokens, "seq_len": args.seq_len, "micro_batch_size": args.batch, "seed": seed,
        "tokenizer": {"path": str(tok)}, "model": {"preset": "tiny"},
        "optim": {"lr": args.lr, "warmup_steps": 10},
        "eval": {"paths": [str(eval_path)], "interval": 10**9, "max_sequences": args.eval_sequences, "batch_size": 32},
        "checkpoint_interval": 10**9, "log_interval": 10, "progress": False,
    }
    if anneal_path is not None:
        spec["anneal"] = {"fraction": args.anneal_fraction, "paths": [str(anneal_path)]}
    cfg = TrainConfig.model_validate(spec)
    folder = out / f"{name}-seed{seed}"
    t0 = time.perf_counter()
    train(cfg, TrainInputs([str(data)], folder, manifest, [str(anneal_path)] if anneal_path else [], [str(eval_path)]), resume=False)
    recs = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in recs if "eval_loss" in r][-1]
    steps = max(r["step"] for r in recs if "loss" in r)
    return {"variant": name, "seed": seed, "eval_loss": final["eval_loss"], "eval_ppl": final["eval_ppl"],
            "eval_bpb": final["eval_bpb"], "steps": steps, "seconds": time.perf_counter() - t0}


def summarize(rows: list[dict], variant: str) -> tuple[float, float, float]:
    ppl = [r["eval_ppl"] for r in rows if r["variant"] == variant]
    bpb = [r["eval_bpb"] for r in rows if r["variant"] == variant]
    return statistics.mean(ppl), (statistics.stdev(ppl) if len(ppl) > 1 else 0.0), statistics.mean(bpb)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default="output/sample", help="a finished `curate run` output (shards/, rejected/)")
    ap.add_argument("--out", default=None, help="working folder (default <run-dir>/ablation)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=300_000, help="token budget per run")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--anneal-fraction", type=float, default=0.2)
    ap.add_argument("--eval-sequences", type=int, default=512)
    args = ap.parse_args()

    run_dir = Path(args.run_dir)
    shards = sorted((run_dir / "shards").glob("*.parquet"))
    rejected = sorted((run_dir / "rejected").glob("*.parquet"))
    if not shards:
        print(f"no shards in {run_dir / 'shards'}: run `curate run examples/sample.yaml` first "
              f"(or pass --run-dir to a finished run)", file=sys.stderr)
        return 2
    if not rejected:
        print(f"warning: {run_dir / 'rejected'} is empty: raw == curated", file=sys.stderr)

    from curate.train.tokenizer import train_bpe

    out = Path(args.out) if args.out else run_dir / "ablation"
    (out / "data").mkdir(parents=True, exist_ok=True)
    curated = nonempty_text(shards)
    raw = nonempty_text(shards + rejected)
    pq.write_table(curated, out / "data" / "curated.parquet")
    pq.write_table(raw.select(["text"]), out / "data" / "raw.parquet")
    wiki_train, wiki_eval, n_train, n_eval = wiki_split(out / "data")
    tok = train_bpe(raw["text"].to_pylist(), args.vocab)
    tok.save_pretrained(out / "data" / "tokenizer")
    tok_path = out / "data" / "tokenizer"

    def tokens_of(table: pa.Table) -> int:
        from curate.train.tokenizer import encode_batch

        return sum(len(ids) + 1 for ids in encode_batch(tok, table["text"].to_pylist()))

    manifest = run_dir / "manifest.json"
    print(f"curated: {curated.num_rows} docs, {tokens_of(curated):,} tokens | raw: {raw.num_rows} docs, "
          f"{tokens_of(raw):,} tokens | wiki: {n_train} train / {n_eval} held-out articles | "
          f"budget {args.tokens:,} tokens/run, seeds {args.seeds}")

    rows = []
    for seed in range(args.seeds):
        for name, data, man, anneal in (
            ("curated", out / "data" / "curated.parquet", manifest, None),
            ("raw", out / "data" / "raw.parquet", None, None),
            ("curated+anneal", out / "data" / "curated.parquet", manifest, wiki_train),
        ):
            r = run_one(name, seed, data, man if man and man.is_file() else None, tok_path, wiki_eval, out / "runs", args, anneal)
            rows.append(r)
            print(f"  seed {seed} {name:15s} eval ppl {r['eval_ppl']:8.2f}  bpb {r['eval_bpb']:.4f}  "
                  f"({r['steps']} steps, {r['seconds']:.0f}s)", flush=True)

    print(f"\nheld-out Wikipedia ({n_eval} articles), {args.tokens:,} training tokens, {args.seeds} seeds (mean ± sd):")
    for v in ("curated", "raw", "curated+anneal"):
        m, sd, bpb = summarize(rows, v)
        print(f"  {v:15s} ppl {m:8.2f} ± {sd:.2f}   bpb {bpb:.4f}")
    by = {(r["variant"], r["seed"]): r["eval_ppl"] for r in rows}
    diffs = [by[("raw", s)] - by[("curated", s)] for s in range(args.seeds)]
    anneal_gain = [by[("curated", s)] - by[("curated+anneal", s)] for s in range(args.seeds)]
    print(f"  (b)-(a) per seed: {', '.join(f'{d:+.2f}' for d in diffs)}  -> curated wins on {sum(d > 0 for d in diffs)}/{len(diffs)} seeds")
    print(f"  (d)-(c) per seed: {', '.join(f'{d:+.2f}' for d in anneal_gain)}  -> annealing helps on "
          f"{sum(d > 0 for d in anneal_gain)}/{len(anneal_gain)} seeds")
    (out / "results.json").write_text(json.dumps({"args": vars(args), "runs": rows}, indent=2))
    print(f"results: {out / 'results.json'}")
    return 0 if all(math.isfinite(r["eval_ppl"]) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
