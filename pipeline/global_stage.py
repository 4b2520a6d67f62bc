"""The contract for global stages (dedup, reweighting).

A global stage sees the whole run at once: it takes the materialized output of the
per-document stages (or of the previous global stage) as a `ray.data.Dataset` with
the run's schema (`ctx.schema`: DOC_SCHEMA plus extra stage columns) and returns a Dataset with
the same rows and schema, with
`drop_reason` / `dup_of` / score columns updated. It must work through Ray's
shuffle/groupby/join (Ray Data's, or keyed all-to-all layers of Ray tasks over the object store
as the dedup stages do) and never collect all rows on the driver. The runner materializes each
global stage's output under `<output>/work/global/<name>/` with a completion marker, so a rerun
skips finished global stages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from curate.pipeline.storage import LOCAL, Storage
from curate.schema import DOC_SCHEMA

if TYPE_CHECKING:  # importing Ray Data costs ~1 s; the config and CLI import this module
    import ray.data


@dataclass
class GlobalContext:
    """What a global stage may use besides its input."""

    work_dir: Path | str  # a folder private to this stage for intermediate files, on `storage`
    num_cpus: int  # CPUs in the Ray cluster, for choosing partition counts
    rows_per_partition: int = 10_000  # documents per shuffle partition (`dedup.rows_per_partition`)
    schema: pa.Schema = DOC_SCHEMA  # the run's columns: DOC_SCHEMA plus the enabled stages' extra ones
    # The Parquet files the input dataset is exactly a read of (DOC_SCHEMA), when it is: a stage may
    # read them in its own tasks instead of through Ray Data's reader.
    input_files: list[str] = field(default_factory=list)
    storage: Storage = LOCAL  # where `input_files` and `work_dir` are: open them through it
    stats: dict[str, Any] = field(default_factory=dict)  # the stage writes its own counters here
    # The run's output folder, where a stage may leave what outlives the run (the dedup index).
    run_dir: Path | None = None


class GlobalStage(ABC):
    name: ClassVar[str]
    reason_namespaces: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def run(self, ds: ray.data.Dataset, ctx: GlobalContext) -> ray.data.Dataset: ...
