"""YAML section `dedup:`."""

from __future__ import annotations

from curate.config_base import StrictModel


class DedupConfig(StrictModel):
    pass
