"""The training loop: pretraining on the run's shards, then annealing on the high-quality pool.

Single process on CPU or one GPU, or many GPUs under `torchrun` (DDP; each rank reads its own
slice of every global batch, see `StepPlan`). Rank 0 trains the tokenizer and tokenizes the
pools; the other ranks wait at a barrier and then memory-map the same files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from curate.train import checkpoint as ckpt
from curate.train.config import TrainConfig
from curate.pipeline.storage import LOCAL, Storage, is_local
from curate.pipeline.storage import join as url_join
from curate.train.data import (
    BatchLoader,
    PackedStream,
    RowFilter,
    StepPlan,
    TokenPool,
    nonempty_mask,
    expand,
    iter_batches,
    select_documents,
    tokenize_file,
    tokenizer_hash,
)
from curate.train.model import build_model, count_params, flops_per_token, llama_config
from curate.train.plots import plot_loss, read_metrics
from curate.train.schedule import LRSchedule
from curate.train.tokenizer import EOS, PAD, load_tokenizer, train_bpe

# Peak dense bf16 FLOP/s used for MFU, by device name substring.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


@dataclass
class TrainInputs:
    """Where a training run reads from and writes to, with defaults already resolved."""

    data_paths: list[str]  # local globs or object-store URLs (read through `storage`)
    output_dir: Path  # local: checkpoints, token files, the final model
    manifest: Path | str | None = None
    anneal_paths: list[str] = field(default_factory=list)
    eval_paths: list[str] = field(default_factory=list)
    storage: Storage = LOCAL


def resolve_inputs(tcfg: TrainConfig, run_output: str | Path | None, storage: Storage = LOCAL) -> TrainInputs:
    """Fill the defaults that point into the curation run's output folder (a local folder or
    an object-store URL; the trainer's own output is always a local folder)."""
    base = str(run_output) if run_output is not None else None
    local_base = Path(base) if base is not None and is_local(base) else None
    if tcfg.data.paths:
        data_paths = list(tcfg.data.paths)
    elif base is not None:
        data_paths = [url_join(base, "shards", "*.parquet")]
    else:
        raise ValueError("train.data.paths is not set and there is no run output folder to read shards from")
    if tcfg.data.manifest:
        manifest: Path | str | None = tcfg.data.manifest
    else:
        manifest = local_base / "manifest.json" if local_base else (url_join(base, "manifest.json") if base else None)
    if tcfg.output_dir:
        out = Path(tcfg.output_dir)
    elif local_base is not None:
        out = local_base / "model"
    elif base is not None:
        raise ValueError(f"train.output_dir is not set: output.path {base} is an object store, the trainer needs a local folder")
    else:
        raise ValueError("train.output_dir is not set and there is no run output folder")
    return TrainInputs(data_paths, out, manifest, list(tcfg.anneal.paths), list(tcfg.eval.paths), storage)


@dataclass(frozen=True)
class Mixture:
    """How to sample the main pool, from manifest.json's `mixture`."""

    column: str  # the label column the weights are about (domain, topic, format)
    weights: dict[str, float]  # label -> token share (the natural or the target mixture)
    weight_column: str | None = None  # per-row expected repeats written by the reweighting stage


def read_mixture(manifest: Path | str | None, storage: Storage = LOCAL) -> Mixture | None:
    """The manifest's mixture: per-row weights (`weight_column`, from the reweighting stage) or
    label -> share weights; None when absent or empty."""
    if manifest is None or not storage.exists(str(manifest)):
        return None
    mixture = storage.read_json(str(manifest)).get("mixture") or {}
    shares = mixture.get("targets") or mixture.get("weights") or {}
    weights = {str(k): float(v) for k, v in shares.items() if float(v) > 0}
    if not weights and not mixture.get("weight_column"):
        return None
    return Mixture(str(mixture.get("column") or "domain"), weights, mixture.get("weight_column"))


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(kind: str, info: DistInfo) -> torch.device:
    if kind == "cuda" or (kind == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("train.device is cuda but no CUDA device is available")
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


class Trainer:
    """One training run; `train()` resumes from the newest checkpoint in `output_dir` if any."""

    def __init__(self, tcfg: TrainConfig, inputs: TrainInputs, resume: bool = True):
        self.cfg, self.inputs, self.resume = tcfg, inputs, resume
        self.out = inputs.output_dir
        want_cuda = tcfg.device == "cuda" or (tcfg.device == "auto" and torch.cuda.is_available())
        self.dist = init_distributed("cuda" if want_cuda else "cpu")
        self.device = pick_device(tcfg.device, self.dist)
        self.use_bf16 = self.device.type == "cuda" and tcfg.bf16
        self.ckpt_dir = self.out / "checkpoints"
        self.metrics_path = self.out / "metrics.jsonl"

    # ------------------------------------------------------------------ setup

    def _barrier(self) -> None:
        if self.dist.world_size > 1:
            dist.barrier()

    def _tokenizer(self):
        saved = self.out / "tokenizer"
        if (saved / "tokenizer.json").is_file():
            return load_tokenizer(saved)
        if self.cfg.tokenizer.path:  # a local path, or a tokenizer.json on a store (fetched once)
            tok = load_tokenizer(self.inputs.storage.local_copy(self.cfg.tokenizer.path))
        else:
            sample = self._tokenizer_sample(self.cfg.tokenizer.sample_docs)
            tok = train_bpe(sample, self.cfg.tokenizer.vocab_size, self.cfg.tokenizer.min_frequency)
        tok.save_pretrained(saved)
        return tok

    def _tokenizer_sample(self, size: int) -> list[str]:
        """A seeded uniform sample of `size` non-empty documents of the training data, in corpus
        order, drawn in one streaming pass (reservoir sampling): memory is the sample's, not the
        corpus's."""
        rng = np.random.default_rng(self.cfg.seed)
        kept: list[tuple[int, str]] = []
        seen = 0
        column = self.cfg.data.text_column
        for url in expand(self.inputs.data_paths, self.inputs.storage):
            for batch in iter_batches(url, [column], self.inputs.storage):
                if not batch.num_rows or column not in batch.column_names:
                    continue
                texts = batch[column].filter(pa.array(nonempty_mask(batch[column]))).to_pylist()
                fill = min(max(size - seen, 0), len(texts))
                kept += [(seen + i, texts[i]) for i in range(fill)]
                if fill < len(texts):  # each later document replaces a random slot with prob size/(index+1)
                    index = np.arange(seen + fill, seen + len(texts))
                    slots = rng.integers(0, index + 1)
                    for i in np.flatnonzero(slots < size):
                        kept[slots[i]] = (int(index[i]), texts[fill + i])
                seen += len(texts)
        return [text for _, text in sorted(kept)]

    def _segments(self, paths: list[str], group_column: str | None = None, weight_column: str | None = None):
        """(file, segment) of every file of `paths`, tokenized by rank 0 (once: cached under
        `tokens/files/` by fingerprint), opened by every rank."""
        files = expand(paths, self.inputs.storage)
        cache = self.out / "tokens" / "files"
        tok_hash = tokenizer_hash(self.tokenizer)
        kwargs = dict(text_column=self.cfg.data.text_column, group_column=group_column, weight_column=weight_column, tok_hash=tok_hash)
        if self.dist.is_main:
            segments = [tokenize_file(cache, f, self.tokenizer, self.inputs.storage, **kwargs) for f in files]
        self._barrier()
        if not self.dist.is_main:  # the files are there now: this only opens them
            segments = [tokenize_file(cache, f, self.tokenizer, self.inputs.storage, **kwargs) for f in files]
        return list(zip(files, segments))

    def _pool(self, name: str, paths: list[str], group_column: str | None = None, weight_column: str | None = None) -> TokenPool:
        return TokenPool([seg for _, seg in self._segments(paths, group_column, weight_column)], name=name)

    def _anneal_pool(self, main_group: str | None, main_weight: str | None) -> TokenPool | None:
        """Rows of the training data passing the row filter (documents of the main pool's own
        token files, so nothing is tokenized again) plus every document of `anneal.paths`."""
        a = self.cfg.anneal
        if a.fraction <= 0:
            return None
        segments, selections = [], []
        if a.min_score is not None or a.domains:
            flt = RowFilter(a.score_column if a.min_score is not None else None, a.min_score, tuple(a.domains) if a.domains else None)
            for url, seg in self._segments(self.inputs.data_paths, main_group, main_weight):
                segments.append(seg)
                selections.append(select_documents(seg, url, flt, self.inputs.storage))
        if self.anneal_paths:
            for _, seg in self._segments(self.anneal_paths):
                segments.append(seg)
                selections.append(None)
        pool = TokenPool(segments, selections, name="anneal", with_weights=False)  # drawn uniformly, not by the mixture
        if pool.num_docs == 0:
            raise ValueError("the annealing pool is empty: no row passes anneal.min_score / anneal.domains and no anneal.paths")
        return pool

    def _fetched_wikipedia(self) -> tuple[list[str], list[str]]:
        """(eval files, anneal files) of `eval.wikipedia` / `anneal.wikipedia`: fetched once by
        rank 0, the anneal set excluding every eval article."""
        from curate.train.wikipedia import article_ids, fetch_wikipedia

        def fetch(wiki, exclude: set[str] | None = None) -> Path:
            return fetch_wikipedia(Path(wiki.cache), articles=wiki.articles, seed=wiki.seed, min_chars=wiki.min_chars,
                                   api_url=wiki.api_url, exclude=exclude)

        def both() -> tuple[list[str], list[str]]:
            evals = [fetch(self.cfg.eval.wikipedia)] if self.cfg.eval.wikipedia else []
            held_out = article_ids(evals[0]) if evals else None
            anneal = [fetch(self.cfg.anneal.wikipedia, held_out)] if self.cfg.anneal.wikipedia and self.cfg.anneal.fraction > 0 else []
            return [str(p) for p in evals], [str(p) for p in anneal]

        if self.dist.is_main:
            both()
        self._barrier()
        return both()  # cached now: no request

    def setup(self) -> None:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            self.tokenizer = self._tokenizer()
        self._barrier()
        if not self.dist.is_main:
            self.tokenizer = load_tokenizer(self.out / "tokenizer")

        fetched_eval, fetched_anneal = self._fetched_wikipedia()
        self.eval_paths, self.anneal_paths = self.inputs.eval_paths + fetched_eval, self.inputs.anneal_paths + fetched_anneal
        mixture = read_mixture(self.inputs.manifest, self.inputs.storage) if cfg.data.use_mixture else None
        self.mixture = mixture
        group, weight = (mixture.column, mixture.weight_column) if mixture else (None, None)
        self.main_pool = self._pool("main", self.inputs.data_paths, group, weight)
        self.anneal_pool = self._anneal_pool(group, weight)
        self.eval_pool = self._pool("eval", self.eval_paths) if self.eval_paths else None

        world = self.dist.world_size
        self.tokens_per_step = cfg.seq_len * cfg.micro_batch_size * cfg.grad_accum * world
        total = cfg.max_steps if cfg.max_steps is not None else math.ceil(cfg.tokens / self.tokens_per_step)
        anneal = 0
        if self.anneal_pool is not None:
            anneal = min(max(round(total * cfg.anneal.fraction), 1), total - 1)
        self.plan = StepPlan(total, anneal, cfg.micro_batch_size, cfg.grad_accum, world)
        by_row = bool(mixture and mixture.weight_column)
        self.main_stream = PackedStream(self.main_pool, cfg.seq_len, cfg.seed,
                                        mixture.weights if mixture and not by_row else None, doc_weights=by_row)
        self.anneal_stream = PackedStream(self.anneal_pool, cfg.seq_len, cfg.seed + 1) if self.anneal_pool else None
        self.eval_stream = PackedStream(self.eval_pool, cfg.seq_len, cfg.seed, shuffle=False) if self.eval_pool else None

        torch.manual_seed(cfg.seed)
        eos, pad = self.tokenizer.convert_tokens_to_ids(EOS), self.tokenizer.convert_tokens_to_ids(PAD)
        self.model_config = llama_config(cfg.model, len(self.tokenizer), cfg.seq_len, eos, pad)
        self.model = build_model(self.model_config).to(self.device)
        self.n_params = count_params(self.model)
        self.flops_per_token = flops_per_token(self.model_config, count_params(self.model, non_embedding=True), cfg.seq_len)

        # Weight decay on matrices only (not norms/biases), the usual GPT/Llama recipe.
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        opt = cfg.optim
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": opt.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=opt.lr,
            betas=(opt.beta1, opt.beta2),
            eps=opt.eps,
            fused=True,  # one kernel per step on CUDA and CPU alike
        )
        self.lr_schedule = LRSchedule.from_config(opt, total, anneal)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: self.lr_schedule(s) / opt.lr)

        self.forward_model: torch.nn.Module = self.model
        if cfg.compile:
            self.forward_model = torch.compile(self.forward_model)
        if world > 1:
            self.forward_model = DistributedDataParallel(
                self.forward_model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )

    # ------------------------------------------------------------------ state

    def _state(self, step: int) -> dict:
        return {
            "step": step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": ckpt.rng_state(),
            "data": {"steps_done": step, "plan": asdict(self.plan), "seed": self.cfg.seed,
                     "main_pool": self.main_pool.key, "anneal_pool": self.anneal_pool.key if self.anneal_pool else None},
        }

    def _restore(self) -> int:
        path = ckpt.latest_checkpoint(self.ckpt_dir) if self.resume else None
        if path is None:
            if self.dist.is_main and self.metrics_path.exists():
                self.metrics_path.unlink()
            return 0
        state = ckpt.load_checkpoint(path)
        data = state["data"]
        if data["main_pool"] != self.main_pool.key or data["plan"]["total_steps"] != self.plan.total_steps:
            raise RuntimeError(f"{path} was written for different data or budget; use a new output_dir or --fresh")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
        step = int(state["step"])
        if self.dist.is_main:  # drop metrics logged after the checkpoint: they will be redone
            kept = [r for r in read_metrics(self.metrics_path) if r["step"] <= step]
            self.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        return step

    def _log(self, records: list[dict]) -> None:
        if self.dist.is_main and records:
            with open(self.metrics_path, "a") as fh:
                for r in records:
                    fh.write(json.dumps(r) + "\n")

    # ------------------------------------------------------------------ eval

    def _autocast(self):
        if self.use_bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean next-token loss over the held-out sequences (ranks split them, sums all-reduced)."""
        stream, ecfg = self.eval_stream, self.cfg.eval
        n_seq = min(ecfg.max_sequences, self.eval_pool.num_tokens // self.cfg.seq_len)
        if n_seq == 0:
            raise ValueError(f"held-out text has fewer than seq_len={self.cfg.seq_len} tokens")
        self.model.eval()
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        mine = list(range(self.dist.rank, n_seq, self.dist.world_size))
        for lo in range(0, len(mine), ecfg.batch_size):
            idx = mine[lo : lo + ecfg.batch_size]
            ids = torch.from_numpy(np.stack([stream.sequence(i) for i in idx])).to(self.device)
            with self._autocast():
                loss = self.model(input_ids=ids, labels=ids).loss
            n_pred = ids.shape[0] * (ids.shape[1] - 1)
            total += torch.tensor([loss.double().item() * n_pred, n_pred], dtype=torch.float64, device=self.device)
        if self.dist.world_size > 1:
            dist.all_reduce(total)
        self.model.train()
        mean = float(total[0] / total[1])
        bytes_per_token = self.eval_pool.text_bytes / max(self.eval_pool.num_tokens, 1)
        return {"eval_loss": mean, "eval_ppl": math.exp(min(mean, 50.0)), "eval_bpb": mean / math.log(2) / bytes_per_token}

    # ------------------------------------------------------------------ train

    def train(self, stop_after_step: int | None = None) -> Path:
        """Run to the end of the budget (or stop after `stop_after_step` steps, checkpointing
        there, which is how tests interrupt a run) and return the final model folder."""
        cfg, plan = self.cfg, self.plan
        start = self._restore()
        end = plan.total_steps if stop_after_step is None else min(stop_after_step, plan.total_steps)
        loader = BatchLoader(plan, self.main_stream, self.anneal_stream, start, self.dist.rank, cfg.prefetch, self.device.type == "cuda")
        self.model.train()
        pending: list[tuple[int, torch.Tensor, torch.Tensor, float]] = []
        micro_losses: list[torch.Tensor] = []
        peak = next((v for k, v in PEAK_BF16_FLOPS.items() if self.device.type == "cuda" and k in torch.cuda.get_device_name()), None)
        progress = self._progress(start, end)
        t_last, steps_since = time.perf_counter(), 0
        try:
            for step, micro, ids in loader:
                if step >= end:
                    break
                ids = ids.to(self.device, non_blocking=True)
                last_micro = micro == cfg.grad_accum - 1
                sync = contextlib.nullcontext() if (last_micro or self.dist.world_size == 1) else self.forward_model.no_sync()
                with sync:
                    with self._autocast():
                        loss = self.forward_model(input_ids=ids, labels=ids).loss
                    (loss / cfg.grad_accum).backward()
                micro_losses.append(loss.detach())
                if not last_micro:
                    continue
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf"))
                lr = self.scheduler.get_last_lr()[0]
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                pending.append((step + 1, torch.stack(micro_losses).mean(), grad_norm.detach(), lr))
                micro_losses = []
                steps_since += 1
                done = step + 1
                is_last = done == end
                if done % cfg.log_interval == 0 or is_last or done % cfg.checkpoint_interval == 0:
                    elapsed = time.perf_counter() - t_last
                    tps = steps_since * self.tokens_per_step / max(elapsed, 1e-9)
                    self._flush(pending, tps, peak)
                    if progress is not None:
                        progress.update(self._task, completed=done - start, loss=self._last_loss, tps=tps)
                    pending, t_last, steps_since = [], time.perf_counter(), 0
                if self.eval_stream is not None and (done % cfg.eval.interval == 0 or done == plan.total_steps):
                    result = self.evaluate()
                    self._log([{"step": done, **result}])
                if done % cfg.checkpoint_interval == 0 or is_last:
                    if self.dist.is_main:
                        ckpt.save_checkpoint(self.ckpt_dir, done, self._state(done), cfg.keep_checkpoints)
                    self._barrier()
                if done % cfg.eval.interval == 0 or done % cfg.checkpoint_interval == 0:
                    t_last = time.perf_counter()  # keep eval/checkpoint time out of tokens/s
                if is_last:
                    break
        finally:
            loader.close()
            if progress is not None:
                progress.stop()
        if end < plan.total_steps:
            return self.ckpt_dir
        return self._finish()

    def _flush(self, pending: list, tps: float, peak: float | None) -> None:
        losses = torch.stack([p[1] for p in pending]).float()
        norms = torch.stack([p[2] for p in pending]).float()
        if self.dist.world_size > 1:
            dist.all_reduce(losses)
            losses /= self.dist.world_size
        losses_l, norms_l = losses.tolist(), norms.tolist()
        records = []
        for (step, _, _, lr), loss, norm in zip(pending, losses_l, norms_l):
            rec = {"step": step, "loss": loss, "lr": lr, "grad_norm": norm, "tokens": step * self.tokens_per_step,
                   "phase": "anneal" if step > self.plan.pretrain_steps else "pretrain", "tokens_per_s": tps}
            if peak:
                rec["mfu"] = tps * self.flops_per_token / (peak * self.dist.world_size)
            records.append(rec)
        self._last_loss = losses_l[-1]
        self._log(records)

    def _progress(self, start: int, end: int):
        self._last_loss = float("nan")
        if not (self.cfg.progress and self.dist.is_main):
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("{task.fields[tps]:,.0f} tok/s"), TimeRemainingColumn(),
        )
        progress.start()
        self._task = progress.add_task("train", total=end - start, loss=float("nan"), tps=0.0)
        return progress

    def _finish(self) -> Path:
        final = self.out / "final"
        if self.dist.is_main:
            final.mkdir(parents=True, exist_ok=True)
            self.model.config.use_cache = True  # for generate()
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # a one-file save needs no "Writing model shards" bar
            self.model.save_pretrained(final)
            self.model.config.use_cache = False
            self.tokenizer.save_pretrained(final)
            (final / "curate_train.json").write_text(json.dumps({
                "train_config": self.cfg.model_dump(mode="json"),
                "plan": asdict(self.plan),
                "tokens_per_step": self.tokens_per_step,
                "n_params": self.n_params,
                "main_pool": {"docs": self.main_pool.num_docs, "tokens": self.main_pool.num_tokens},
                "anneal_pool": {"docs": self.anneal_pool.num_docs, "tokens": self.anneal_pool.num_tokens} if self.anneal_pool else None,
                "mixture": self.mixture.weights if self.mixture else None,
                "mixture_column": self.mixture.column if self.mixture else None,
                "weight_column": self.mixture.weight_column if self.mixture else None,
                "realised_mixture": self._realised_mixture(),
            }, indent=2))
            plot_loss(self.metrics_path, self.out / "loss.png", self.plan.pretrain_steps if self.plan.anneal_steps else None)
        self._barrier()
        return final

    def _realised_mixture(self) -> dict[str, float] | None:
        """Token shares per label of the main pool over the pretraining budget, as sampled."""
        if not self.mixture:
            return None
        tokens = self.main_stream.doc_tokens(self.plan.pretrain_steps * self.tokens_per_step)
        per_group = np.bincount(self.main_pool.group_ids, weights=tokens, minlength=len(self.main_pool.groups))
        total = per_group.sum() or 1.0
        return {str(g): round(float(t / total), 6) for g, t in zip(self.main_pool.groups, per_group) if t > 0}

    def close(self) -> None:
        if self.dist.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def train(tcfg: TrainConfig, inputs: TrainInputs, resume: bool = True, stop_after_step: int | None = None) -> Path:
    trainer = Trainer(tcfg, inputs, resume=resume)
    try:
        trainer.setup()
        return trainer.train(stop_after_step=stop_after_step)
    finally:
        trainer.close()
