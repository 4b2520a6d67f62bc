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
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from curate import schema
from curate.pipeline.storage import LOCAL, Storage
from curate.schema import DOC_SCHEMA

if TYPE_CHECKING:  # importing Ray Data costs ~1 s; the config and CLI import this module
    import ray
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


class InputBlock(NamedTuple):
    """One row group of the stage's input, read into the object store by a Ray task."""

    ref: ray.ObjectRef
    rows: int
    bytes: int  # uncompressed, from the Parquet metadata


def read_input_blocks(ctx: GlobalContext) -> list[InputBlock]:
    """`ctx.input_files` as Arrow blocks of `ctx.schema`, one Ray task per row group, in order.
    Cheaper than executing the input dataset: Ray Data's Parquet read lists the files in a task of
    its own before reading them, seconds of fixed cost per stage (10-30 s seen on a loaded 2-CPU
    machine, against well under 1 s for these tasks), which dominated the global stages of small runs."""
    read = _row_group_reader()
    blocks = []
    for path in ctx.input_files:
        meta = pq.ParquetFile(ctx.storage.open(path)).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            blocks.append(InputBlock(read.remote(path, g, ctx.schema, ctx.storage), group.num_rows, group.total_byte_size))
    return blocks


def input_refs(ds: ray.data.Dataset, ctx: GlobalContext) -> list[ray.ObjectRef]:
    """The stage's input as object refs of Arrow blocks: its files' row groups when it is exactly a
    read of them (`read_input_blocks`), else the dataset's own blocks."""
    return [b.ref for b in read_input_blocks(ctx)] if ctx.input_files else ds.to_arrow_refs()


def _read_row_group(path: str, group: int, run_schema: pa.Schema, storage: Storage) -> pa.Table:
    return schema.conform(pq.ParquetFile(storage.open(path)).read_row_group(group), run_schema)


@cache
def _row_group_reader() -> Any:
    import ray

    return ray.remote(_read_row_group)
