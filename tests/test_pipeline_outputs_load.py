"""The outputs load where users load them: `datasets.load_dataset("parquet", ...)` reads the
shards and rejected/ of real pages as they are, every column typed (pii_counts included). No PII
leaves in rejected/ either: rows dropped before the PII stage are redacted when written, and an
e-mail address in a URL never reaches the `url` column."""

from __future__ import annotations

import io

import pyarrow.parquet as pq

from curate import schema
from curate.config import ExtractConfig, ReadConfig
from curate.filters.config import PiiConfig
from curate.filters.pii import PiiRedactor
from curate.pipeline.extract import Extract
from curate.pipeline.shards import plan_shards, write_shard
from curate.pipeline.sources import InputFile
from curate.pipeline.warc import ReadReport, WarcReader, redact_url_emails
from warc_rows import read_raw

MAIL = "Write to jane.roe@example.org for the minutes."


def test_shards_and_rejected_load_with_datasets(shared_data, tmp_path):
    import datasets

    raw = read_raw(shared_data / "warc/dolma-wget/sample-0000.warc.gz")
    docs = Extract(ExtractConfig())(raw)
    # Two kept pages get an address in their text; two others are dropped before PII (as a
    # language filter would) with one in theirs.
    text = docs.column(schema.TEXT).to_pylist()
    reason = docs.column(schema.DROP_REASON).to_pylist()
    active = [i for i, r in enumerate(reason) if r is None]
    assert len(active) >= 4
    for i in active[:2]:
        text[i] = f"{text[i]}\n{MAIL}"
    for i in active[2:4]:
        text[i], reason[i] = f"{text[i]}\n{MAIL}", "lang:xx"
    docs = schema.set_column(schema.set_column(docs, schema.TEXT, text), schema.DROP_REASON, reason)
    docs = PiiRedactor(PiiConfig())(docs)
    pq.write_table(schema.conform(docs), tmp_path / "part.parquet")

    out = tmp_path / "out"
    for sub in ("shards", "rejected"):
        (out / sub).mkdir(parents=True)
    plan = plan_shards([str(tmp_path / "part.parquet")], out, 8, "zstd", True, redact_rejected=PiiConfig())
    for spec in plan.kept + plan.rejected:
        write_shard(spec)

    cache = tmp_path / "hf-cache"
    kept = datasets.load_dataset("parquet", data_files=str(out / "shards" / "*.parquet"), split="train", cache_dir=str(cache))
    rejected = datasets.load_dataset("parquet", data_files=str(out / "rejected" / "*.parquet"), split="train",
                                     cache_dir=str(cache))
    assert kept.num_rows == plan.reasons[None] and rejected.num_rows == sum(n for r, n in plan.reasons.items() if r)
    assert set(schema.DOC_SCHEMA.names) <= set(kept.column_names)
    assert kept.features[schema.PII_COUNTS] == datasets.List({"kind": datasets.Value("string"), "count": datasets.Value("int32")})
    assert kept.features[schema.FETCH_TIME].dtype.startswith("timestamp")
    assert all(t for t in kept[schema.TEXT]) and all(r is None for r in kept[schema.DROP_REASON])
    assert sum(MAIL.replace("jane.roe@example.org", "<EMAIL>") in t for t in kept[schema.TEXT]) == 2
    assert {"kind": "email", "count": 1} in [c for counts in kept[schema.PII_COUNTS] for c in counts]
    # Rejected rows keep their text (output.rejected_text), but not the address in it.
    redacted = [t for t, r in zip(rejected[schema.TEXT], rejected[schema.DROP_REASON]) if r == "lang:xx"]
    assert len(redacted) == 2 and all("<EMAIL>" in t for t in redacted)
    assert not any("jane.roe@example.org" in (t or "") for t in [*kept[schema.TEXT], *rejected[schema.TEXT]])


def test_email_addresses_never_reach_the_url_column():
    assert redact_url_emails("https://shop.example/unsubscribe?email=jane.roe%40example.org&id=7") == \
        "https://shop.example/unsubscribe?email=<EMAIL>&id=7"
    assert redact_url_emails("https://example.org/u/jane@example.org#to=a.b@mail.example.co.uk") == \
        "https://example.org/u/<EMAIL>#to=<EMAIL>"
    assert redact_url_emails("https://medium.com/@writer/a-post") == "https://medium.com/@writer/a-post"
    assert redact_url_emails("https://user@example.org/page") == "https://user@example.org/page"
    record = (b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-000000000001>\r\n"
              b"WARC-Target-URI: https://example.org/login?user=jane.roe@example.org\r\nContent-Length: 64\r\n\r\n"
              + b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><p>hi</p></html>\r\n".ljust(64, b" ") + b"\r\n\r\n")
    rows = [r for b in WarcReader(ReadConfig()).read(InputFile("x.warc"), io.BytesIO(record), ReadReport("x.warc"))
            for r in b.to_pylist()]
    assert [r["url"] for r in rows] == ["https://example.org/login?user=<EMAIL>"]


def test_rejected_shard_mixing_redacted_and_unredacted_rows():
    """A duplicate (PII stage ran: counts set) next to a page dropped before the PII stage: only
    the second is redacted at write time, and both keep one column type."""
    import pyarrow as pa

    from curate.pipeline.shards import _redact_unredacted

    rows = schema.from_rows([{schema.TEXT: "mail <EMAIL>", schema.PII_COUNTS: [("email", 1)]}, {schema.TEXT: MAIL}])
    read_back = pa.Table.from_pylist(rows.to_pylist(), schema=rows.schema)  # as write_shard reads a part
    out = _redact_unredacted(read_back, PiiConfig()).select([schema.TEXT, schema.PII_COUNTS]).to_pylist()
    assert out == [{"text": "mail <EMAIL>", "pii_counts": [{"kind": "email", "count": 1}]},
                   {"text": MAIL.replace("jane.roe@example.org", "<EMAIL>"), "pii_counts": [{"kind": "email", "count": 1}]}]
