"""YAML section `filters:`."""

from __future__ import annotations

from curate.config_base import StrictModel


class FiltersConfig(StrictModel):
    pass
