"""The stage contract.

A stage is a small class configured from its YAML section. Its constructor loads whatever it
needs once (a model loads once per Ray actor, not per batch); `__call__` maps one
`pyarrow.Table` batch to another with the same schema (`curate.schema.DOC_SCHEMA`). The same
object runs in a plain loop in unit tests and inside Ray Data `map_batches` in production.

Stages never remove rows: they set `drop_reason` (``"<namespace>:<detail>"``) and skip rows
that already have one. `reason_namespaces` lists the prefixes a stage may emit, which is how
the funnel attributes every drop to exactly one stage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import schema


class Stage(ABC):
    """One per-document step: `batch -> batch`, same rows, same schema."""

    #: Funnel name of the stage (shown in stats, progress and the Ray dashboard).
    name: ClassVar[str]
    #: Prefixes of the drop reasons this stage emits, e.g. ("lang",) for "lang:fr".
    reason_namespaces: ClassVar[tuple[str, ...]] = ()
    #: Stages that load a model run as a Ray actor pool; the rest run as (fused) tasks.
    uses_model: ClassVar[bool] = False

    @abstractmethod
    def __call__(self, batch: pa.Table) -> pa.Table: ...

    def stats(self) -> dict[str, Any]:
        """Extra per-stage counters accumulated since construction (e.g. PII hits per type).
        Summed across workers into stats.json. Override when a stage has any."""
        return {}


class DocFilter(Stage):
    """A stage that decides keep/drop per active document from its text (and other columns).

    Subclasses implement `reasons(active: pa.Table) -> list[str | None]`, one entry per active
    row (None = keep). Rows already dropped are never shown to the filter.
    """

    @abstractmethod
    def reasons(self, active: pa.Table) -> list[str | None] | pa.Array: ...

    def __call__(self, batch: pa.Table) -> pa.Table:
        mask = schema.active_mask(batch)
        n_active = pc.sum(mask).as_py() or 0
        if n_active == 0:
            return batch
        active = batch.filter(mask)
        decided = self.reasons(active)
        decided = decided if isinstance(decided, (pa.Array, pa.ChunkedArray)) else pa.array(decided, pa.string())
        if len(decided) != n_active:
            raise ValueError(f"{self.name}: got {len(decided)} reasons for {n_active} rows")
        return schema.mark_dropped(batch, scatter(mask, decided, pa.string()))


def scatter(mask: pa.ChunkedArray | pa.Array, values: pa.Array | pa.ChunkedArray, type_: pa.DataType) -> pa.Array:
    """Place `values` (one per True in `mask`) back at the True positions; null elsewhere."""
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    mask_np = mask.to_numpy(zero_copy_only=False)
    idx = np.flatnonzero(mask_np)
    positions = np.full(len(mask_np), -1, dtype=np.int64)
    positions[idx] = np.arange(len(idx))
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    take_idx = pa.array(positions, mask=positions < 0)
    return values.cast(type_).take(take_idx)
