"""The per-document stage contract.

A stage is a small class configured from its YAML section (registered in
`curate.pipeline.registry`). Its constructor takes that section and loads whatever it needs once
(a model loads once per Ray actor, not per batch); `__call__` maps one `pyarrow.Table` batch to
another with the same rows and the run's schema (`curate.schema.DOC_SCHEMA` plus the
`output_fields` of the enabled stages). The same object runs in a plain loop in unit tests and
inside Ray Data `map_batches` in production.

Stages never remove rows: they set `drop_reason` (``"<namespace>:<detail>"``, or
``"error:<namespace>:<detail>"`` for a row that could not be processed) and skip rows that
already have one. `reason_namespaces` lists the prefixes a stage may emit; the registry checks
that no two stages share one and the runner checks that a stage emits only its own, so the
funnel attributes every drop to exactly one stage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa


@dataclass(frozen=True)
class Resources:
    """What one actor of a stage needs. Consecutive stages with equal resources run fused in one
    actor pool (no copies between them); a stage that declares other resources gets its own."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_gb: float | None = None  # Ray's memory reservation per actor; None = no reservation
    batch_size: int | None = None  # documents per batch; None = `ray.batch_size`


class Stage(ABC):
    """One per-document step: `batch -> batch`, same rows."""

    #: Funnel name of the stage (shown in stats, progress and the Ray dashboard).
    name: ClassVar[str]
    #: Prefixes of the drop reasons this stage emits, e.g. ("lang",) for "lang:fr".
    reason_namespaces: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def __call__(self, batch: pa.Table) -> pa.Table: ...

    # Decided from the config alone: the driver plans pools and the run's schema without
    # constructing a stage (which may load a model, or need a GPU the driver lacks).
    @classmethod
    def resources(cls, cfg: Any) -> Resources:
        """What one actor of this stage needs, given its config section."""
        return Resources()

    @classmethod
    def output_fields(cls, cfg: Any) -> tuple[pa.Field, ...]:
        """Columns this stage writes beyond DOC_SCHEMA (e.g. a score column named in its config)."""
        return ()

    def stats(self) -> dict[str, Any]:
        """Extra per-stage counters accumulated since construction (e.g. PII hits per type).
        Summed across workers into stats.json. Override when a stage has any."""
        return {}
