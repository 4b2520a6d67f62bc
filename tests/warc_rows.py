"""A whole WARC file read as the pipeline's reader reads it: one table of `schema.RAW_SCHEMA` rows."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from curate.config import ReadConfig
from curate.pipeline.sources import InputFile
from curate.pipeline.warc import ReadReport, WarcReader


def read_raw(path: Path, cfg: ReadConfig | None = None) -> pa.Table:
    with open(path, "rb") as fh:
        return pa.concat_tables(list(WarcReader(cfg or ReadConfig()).read(InputFile(str(path)), fh, ReadReport(str(path)))))
