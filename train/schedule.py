"""Learning rate as a pure function of the step: warmup, then cosine or warmup-stable-decay,
then the annealing phase (linear to zero). Pure so a resumed run recomputes it exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass

from curate.train.config import OptimConfig


@dataclass(frozen=True)
class LRSchedule:
    peak: float
    warmup_steps: int
    total_steps: int
    anneal_steps: int
    kind: str = "cosine"
    min_lr_ratio: float = 0.1
    wsd_decay_fraction: float = 0.2

    @classmethod
    def from_config(cls, cfg: OptimConfig, total_steps: int, anneal_steps: int) -> LRSchedule:
        return cls(
            peak=cfg.lr,
            warmup_steps=min(cfg.warmup_steps, max(total_steps - anneal_steps - 1, 0)),
            total_steps=total_steps,
            anneal_steps=anneal_steps,
            kind=cfg.schedule,
            min_lr_ratio=cfg.min_lr_ratio,
            wsd_decay_fraction=cfg.wsd_decay_fraction,
        )

    def _base(self, step: int) -> float:
        """LR of the main schedule (warmup + cosine/wsd over the whole run)."""
        if step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = min((step - self.warmup_steps) / span, 1.0)
            floor = self.peak * self.min_lr_ratio
            return floor + (self.peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        # wsd: stable at peak, linear decay to zero over the last `wsd_decay_fraction` of steps
        decay = max(round(self.total_steps * self.wsd_decay_fraction), 1)
        start = self.total_steps - decay
        if step < start:
            return self.peak
        return self.peak * max(self.total_steps - step, 0) / decay

    def __call__(self, step: int) -> float:
        """LR used for optimizer step `step` (0-based)."""
        pretrain = self.total_steps - self.anneal_steps
        if self.anneal_steps == 0 or step < pretrain:
            if self.kind == "wsd" and self.anneal_steps:
                # With annealing, wsd's decay *is* the anneal: stable until it starts.
                return self.peak * (step + 1) / self.warmup_steps if step < self.warmup_steps else self.peak
            return self._base(step)
        # Annealing: from the LR the main schedule had reached, linearly to zero at the end.
        start_lr = self.peak if self.kind == "wsd" else self._base(pretrain)
        return start_lr * (self.total_steps - step) / (self.anneal_steps + 1)
