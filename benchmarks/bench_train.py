"""Training throughput: curate's trainer vs a plain PyTorch/transformers loop, in one process.

Both sides train the same Llama config from the same seed on the same tokens (Wikipedia text,
the same BPE), with the same sequence length, batch and step count. The plain loop is what one
writes from the transformers docs: tokenize the texts, concatenate with EOS, cut into blocks,
DataLoader over a TensorDataset with shuffling, AdamW, forward/backward/step.

Timed two ways:
  steady : optimizer steps only (both sides warmed up by their first steps)
  e2e    : from raw text to the last step (tokenize + pack + train), what a user waits for
Sides alternate (ours, plain, ours, plain, ...) and medians are reported, because the machine is
shared and timings are noisy. Also measures the data path alone: streaming tokenize+pack vs the
pre-tokenized memmap this trainer uses.

    .venv/bin/python benchmarks/bench_train.py [--steps 30] [--repeats 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
WIKI = REPO.parent / "shared" / "data" / "wikipedia" / "enwiki-sample.jsonl.gz"


def wiki_texts() -> list[str]:
    with gzip.open(WIKI, "rt") as fh:
        return [json.loads(line)["text"] for line in fh]


def plain_loop(texts: list[str], tok_dir: Path, model_cfg, seq_len: int, batch: int, steps: int, lr: float, seed: int) -> tuple[float, float]:
    """(e2e seconds, seconds of steps 2..N) for the textbook loop."""
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import AutoTokenizer, LlamaForCausalLM

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(tok_dir)
    ids: list[int] = []
    for enc in tok(texts, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(tok.eos_token_id)
    n = len(ids) // seq_len
    blocks = torch.tensor(ids[: n * seq_len]).view(n, seq_len)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(blocks), batch_size=batch, shuffle=True, drop_last=True, generator=gen)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(model_cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    done, t_first = 0, None
    while done < steps:
        for (x,) in loader:
            loss = model(input_ids=x, labels=x).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
            done += 1
            if done == 1:
                t_first = time.perf_counter()
            if done == steps:
                break
    t_end = time.perf_counter()
    return t_end - t0, t_end - t_first


def ours(texts_file: Path, tok_dir: Path, out: Path, seq_len: int, batch: int, steps: int, lr: float, seed: int,
         model_overrides: dict) -> tuple[float, float]:
    from curate.train.config import TrainConfig
    from curate.train.loop import TrainInputs, Trainer

    cfg = TrainConfig.model_validate({
        "max_steps": steps, "seq_len": seq_len, "micro_batch_size": batch, "seed": seed, "progress": False,
        "tokenizer": {"path": str(tok_dir)}, "model": model_overrides,
        "optim": {"lr": lr, "warmup_steps": 0}, "checkpoint_interval": 10 * steps, "log_interval": 1,
    })
    t0 = time.perf_counter()
    trainer = Trainer(cfg, TrainInputs([str(texts_file)], out), resume=False)
    trainer.setup()
    trainer.train()
    t_end = time.perf_counter()
    # steps 2..N from the per-step log: tokens/s of each logged window is exact per step here
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steady = sum(cfg.seq_len * cfg.micro_batch_size / r["tokens_per_s"] for r in recs if "loss" in r and r["step"] > 1)
    return t_end - t0, steady


def data_path(tok, pool, seq_len: int, batch: int, n_batches: int, texts: list[str]) -> tuple[float, float]:
    """Batches/s: streaming (tokenize docs as needed, pack) vs memmap gather (PackedStream)."""
    from curate.train.data import PackedStream
    from curate.train.tokenizer import encode_batch

    eos = tok.eos_token_id
    t0 = time.perf_counter()
    buf: list[int] = []
    di, made = 0, 0
    while made < n_batches:
        while len(buf) < seq_len * batch:
            for ids in encode_batch(tok, texts[di : di + 8]):
                buf.extend(ids)
                buf.append(eos)
            di = (di + 8) % len(texts)
        torch.tensor(buf[: seq_len * batch]).view(batch, seq_len)
        del buf[: seq_len * batch]
        made += 1
    streaming = n_batches / (time.perf_counter() - t0)
    stream = PackedStream(pool, seq_len, seed=0)
    t0 = time.perf_counter()
    for b in range(n_batches):
        torch.from_numpy(stream.batch(b * batch, batch))
    memmap = n_batches / (time.perf_counter() - t0)
    return streaming, memmap


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=4096)
    args = ap.parse_args()
    if not WIKI.is_file():
        print(f"missing {WIKI}", file=sys.stderr)
        return 2

    import curate.train.loop  # noqa: F401  (import cost is paid here, outside both timings)
    import matplotlib.pyplot  # noqa: F401
    from curate.train.config import ModelConfig
    from curate.train.data import TokenPool, read_documents
    from curate.train.model import llama_config
    from curate.train.tokenizer import EOS, PAD, train_bpe

    texts = wiki_texts()
    work = Path(tempfile.mkdtemp(prefix="bench_train_"))
    texts_file = work / "wiki.jsonl"
    texts_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    tok = train_bpe(texts[:400], args.vocab)
    tok_dir = work / "tok"
    tok.save_pretrained(tok_dir)
    overrides = {"preset": "tiny", "hidden_size": args.hidden, "num_layers": args.layers, "intermediate_size": args.hidden * 8 // 3 // 8 * 8}
    model_cfg = llama_config(ModelConfig(**overrides), len(tok), args.seq_len,
                             tok.convert_tokens_to_ids(EOS), tok.convert_tokens_to_ids(PAD))
    tokens_per_run = args.steps * args.seq_len * args.batch
    print(f"model: hidden {args.hidden}, {args.layers} layers, vocab {len(tok)}; seq_len {args.seq_len}, batch {args.batch}, "
          f"{args.steps} steps = {tokens_per_run:,} tokens/run; torch threads {torch.get_num_threads()}")

    res = {"ours": {"e2e": [], "steady": []}, "plain": {"e2e": [], "steady": []}}
    for r in range(args.repeats):
        # alternate which side goes first so a load spike on the shared machine hits both
        if r % 2:
            e2e, steady = plain_loop(texts, tok_dir, model_cfg, args.seq_len, args.batch, args.steps, 1e-3, 0)
            res["plain"]["e2e"].append(e2e)
            res["plain"]["steady"].append(steady)
        e2e, steady = ours(texts_file, tok_dir, work / f"ours{r}", args.seq_len, args.batch, args.steps, 1e-3, 0, overrides)
        res["ours"]["e2e"].append(e2e)
        res["ours"]["steady"].append(steady)
        if not r % 2:
            e2e, steady = plain_loop(texts, tok_dir, model_cfg, args.seq_len, args.batch, args.steps, 1e-3, 0)
            res["plain"]["e2e"].append(e2e)
            res["plain"]["steady"].append(steady)
        print(f"  repeat {r}: ours e2e {res['ours']['e2e'][-1]:.2f}s steady {res['ours']['steady'][-1]:.2f}s | "
              f"plain e2e {res['plain']['e2e'][-1]:.2f}s steady {res['plain']['steady'][-1]:.2f}s")

    steady_tokens = (args.steps - 1) * args.seq_len * args.batch
    o_s = steady_tokens / statistics.median(res["ours"]["steady"])
    p_s = steady_tokens / statistics.median(res["plain"]["steady"])
    o_e = tokens_per_run / statistics.median(res["ours"]["e2e"])
    p_e = tokens_per_run / statistics.median(res["plain"]["e2e"])
    print(f"steady tokens/s : ours {o_s:,.0f}  plain {p_s:,.0f}  ratio {o_s / p_s:.2f}x")
    print(f"e2e tokens/s    : ours {o_e:,.0f}  plain {p_e:,.0f}  ratio {o_e / p_e:.2f}x  (includes tokenizing {len(texts)} articles)")

    pool = TokenPool.build(work / "pool", "bench", read_documents([texts_file]), tok)
    streaming, memmap = data_path(tok, pool, args.seq_len, args.batch, 300, texts)
    print(f"data path batches/s: streaming tokenize+pack {streaming:,.0f}  pre-tokenized memmap {memmap:,.0f}  "
          f"ratio {memmap / streaming:.1f}x  (model step needs ~{o_s / (args.seq_len * args.batch):.0f} batches/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
