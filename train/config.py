"""YAML section `train:`."""

from __future__ import annotations

from curate.config_base import StrictModel


class TrainConfig(StrictModel):
    pass
