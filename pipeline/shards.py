"""Fixed-size Parquet shards, written atomically, with row and token counts for the manifest."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import schema

# Words and punctuation marks: a tokenizer-free token count, close to a GPT-2 pre-tokenizer's.
TOKEN_PATTERN = r"\w+|[^\w\s]"


def count_tokens(texts: pa.ChunkedArray | pa.Array) -> list[int]:
    return pc.count_substring_regex(pc.fill_null(texts, ""), TOKEN_PATTERN).to_pylist()


class ShardWriter:
    """Buffers rows and writes `<prefix>-NNNNN.parquet` files of exactly `rows_per_shard` rows
    (the last may be shorter). Same rows in the same order give byte-identical files."""

    def __init__(self, folder: Path, prefix: str, rows_per_shard: int, compression: str) -> None:
        self.folder, self.prefix, self.rows = Path(folder), prefix, rows_per_shard
        self.compression = None if compression == "none" else compression
        self._buf: list[pa.Table] = []
        self._buffered = 0
        self._written: list[dict] = []

    def add(self, table: pa.Table) -> list[int]:
        """Queue rows; returns their token counts."""
        if table.num_rows == 0:
            return []
        tokens = count_tokens(table.column(schema.TEXT))
        self._buf.append(table.append_column("_tokens", pa.array(tokens, pa.int64())))
        self._buffered += table.num_rows
        while self._buffered >= self.rows:
            self._flush(self.rows)
        return tokens

    def _flush(self, n: int) -> None:
        whole = pa.concat_tables(self._buf)
        shard, rest = whole.slice(0, n), whole.slice(n)
        self._buf, self._buffered = ([rest] if rest.num_rows else []), rest.num_rows
        name = f"{self.prefix}-{len(self._written):05d}.parquet"
        path = self.folder / name
        tmp = self.folder / f".{name}.{uuid.uuid4().hex}.tmp"
        data = schema.conform(shard.drop_columns(["_tokens"]))
        pq.write_table(data, tmp, compression=self.compression, row_group_size=min(n, 2048))
        os.replace(tmp, path)
        self._written.append({
            "path": f"{self.folder.name}/{name}",
            "rows": shard.num_rows,
            "tokens": int(pc.sum(shard.column("_tokens")).as_py() or 0),
            "bytes": path.stat().st_size,
        })

    def close(self) -> list[dict]:
        if self._buffered:
            self._flush(self._buffered)
        return self._written
