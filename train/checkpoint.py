"""Checkpoints: everything a run needs to continue exactly where it stopped.

One file per checkpoint (`checkpoints/step-000123.pt`), written to a temporary name and renamed,
so a crash mid-write never leaves a checkpoint that looks complete. Holds model, optimizer and
scheduler state, the data position (steps done: the stream is a pure function of the seed, so
that integer pins it) and every RNG state.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

_NAME = re.compile(r"^step-(\d+)\.pt$")


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:06d}.pt"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(folder: Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def save_checkpoint(folder: Path, step: int, payload: dict[str, Any], keep: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(folder, step)
    tmp = path.with_suffix(".pt.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    for _, old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    # Our own files: they hold numpy/python RNG tuples, which weights_only loading rejects.
    return torch.load(path, map_location="cpu", weights_only=False)
