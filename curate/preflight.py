"""What a config can get wrong about this machine, checked before Ray starts (which takes seconds):
missing inputs, an output folder that cannot be written or holds something else, a port in use,
a negative threshold. Each failure is one line that names the config key to change.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import uuid
from pathlib import Path

from pydantic import BaseModel

from curate.config import Config, LocalInput, RayConfig

# A folder holding this file was made by curate: only there are shards/ and rejected/ replaced.
MARKER = Path("work") / "config.json"


class PreflightError(ValueError):
    """The config cannot run on this machine; the message starts with the config key."""


def check(cfg: Config) -> None:
    _no_negative_numbers(cfg)
    if isinstance(cfg.input, LocalInput):  # remote listings are fetched (with retries) by the run itself
        from curate.pipeline.sources import InputError, resolve_inputs
        from curate.pipeline.storage import Storage

        try:
            resolve_inputs(cfg.input, Storage.of(cfg.storage))  # paths may be on an object store
        except InputError as err:
            raise PreflightError(str(err)) from None
    check_output_folder(cfg)
    if cfg.ray.dashboard and not (cfg.ray.address or os.environ.get("RAY_ADDRESS")):
        _dashboard_port_free(cfg.ray)


def check_output_folder(cfg: Config) -> None:
    """output.path is (or can become) a writable folder, empty or holding a run of this config."""
    out = Path(cfg.output.path)
    if out.exists() and not out.is_dir():
        raise PreflightError(f"output.path: {out} is a file, not a folder")
    marker = out / MARKER
    if marker.is_file():
        # A run of this or another config: the run reuses what its settings still decide the same
        # way (see curate.pipeline.resume) and names what changed. The marker must be curate's.
        try:
            json.loads(marker.read_text())["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            raise PreflightError(f"output.path: {out} has an unreadable {MARKER}; choose another output.path "
                                 "or delete that folder") from None
    elif out.is_dir() and any(out.iterdir()):
        raise PreflightError(f"output.path: {out} is not empty and was not made by curate; choose a new or empty folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PreflightError(f"output.path: cannot write to {out} ({err.strerror or err})") from None


def _dashboard_port_free(cfg: RayConfig) -> None:
    if cfg.dashboard_port == 0:
        return
    family = socket.AF_INET6 if ":" in cfg.dashboard_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # Like a server binding: a port in TIME_WAIT is free, one with a listener is not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((cfg.dashboard_host, cfg.dashboard_port))
        except OSError as err:
            why = "is already in use" if err.errno == errno.EADDRINUSE else f"cannot be bound ({err.strerror})"
            raise PreflightError(f"ray.dashboard_port: {cfg.dashboard_port} on {cfg.dashboard_host} {why}; "
                                 "set another port, or 0 for any free one") from None


def _no_negative_numbers(model: BaseModel, prefix: str = "") -> None:
    """Thresholds, sizes and counts are never negative; -1 only where a field says it disables."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            _no_negative_numbers(value, key + ".")
            continue
        numbers = value.values() if isinstance(value, dict) else [value]
        for v in numbers:
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
                if v == -1 and "-1 disables" in (field.description or ""):
                    continue
                raise PreflightError(f"{key}: must not be negative (got {v})")
