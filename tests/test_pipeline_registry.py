"""The stage registry: one ordered list of stages keyed by YAML section, read by the config, the
runner (fused pools by resources), the funnel and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate import schema
from curate.config import ConfigError, parse_config
from curate.pipeline import registry
from curate.pipeline.runner import PART_STATS_KEY, Runner, StageGroup, _new_drops, plan_pools
from curate.pipeline.stage import Resources, Stage
from warc_rows import read_raw


def _cfg(tmp: Path | str = "out", inputs: list[str] | None = None, **sections) -> object:
    return parse_config({"input": {"paths": inputs or ["x.warc.gz"]}, "output": {"path": str(tmp)}, **sections})


def test_the_registry_is_the_pipeline_order_and_the_config_sections():
    cfg = _cfg()
    assert [s.name for s in registry.build_stages(cfg)] == [
        "url", "language_prefilter", "extract", "language", "gopher_repetition", "gopher_quality", "c4", "fineweb", "pii"]
    # the language pre-filter is a switch of filters.language, not a section of its own
    off = _cfg(filters={"language": {"prefilter": False}})
    assert "language_prefilter" not in [s.name for s in registry.build_stages(off)]
    assert "language_prefilter" not in [s.name for s in registry.build_stages(_cfg(filters={"language": {"enabled": False}}))]
    assert [s.name for s in registry.build_stages(cfg, "global")] == ["dedup_exact", "dedup_minhash", "dedup_paragraph",
                                                                      "dedup_earlier"]
    # every registered section is a config section, and an unknown key in one names its path
    for e in registry.ENTRIES:
        assert registry.section_of(cfg, e) is not None
    with pytest.raises(ConfigError, match="dedup.minhash.bandz"):
        _cfg(dedup={"minhash": {"bandz": 3}})
    with pytest.raises(ConfigError, match="filters.pii.resources.num_cpus"):
        _cfg(filters={"pii": {"resources": {"num_cpus": -1}}})


def test_drop_reasons_have_exactly_one_owner():
    owners = registry.reason_owners(_cfg())
    namespaces = [ns for _, nss in owners for ns in nss]
    for reason, stage in [("lang:fr", "language"), ("dup:minhash", "dedup_minhash"), ("dup:exact", "dedup_exact"),
                          ("dup:url", "dedup_exact"), ("error:extract_timeout", "extract"), ("lang_prefilter:fr", "language_prefilter"),
                          ("error:gopher_quality:ValueError", "gopher_quality"), ("extract:empty", "extract")]:
        assert [name for name, nss in owners if registry.owns(nss, reason)] == [stage], reason
    assert len(namespaces) == len(set(namespaces))

    class Clash(Stage):
        name = "clash"
        reason_namespaces = ("dup",)

        def __call__(self, batch):
            return batch

    with pytest.raises(ValueError, match="both claim"):
        registry.check_namespaces([*registry.build_stages(_cfg(), "global"), Clash()])


def test_a_stage_that_sets_a_reason_outside_its_namespaces_fails_loudly():
    class Sloppy(Stage):
        name = "sloppy"
        reason_namespaces = ("sloppy",)

        def __call__(self, batch):
            return schema.mark_dropped(batch, ["lang:xx"] * batch.num_rows)

    batch = schema.from_rows([{"id": "a", "text": "t"}])
    with pytest.raises(RuntimeError, match="outside its namespaces"):
        _new_drops(Sloppy(), schema.active_mask(batch), Sloppy()(batch))


def test_stages_with_equal_resources_fuse_and_others_get_their_own_pool():
    cpu, big, gpu = Resources(), Resources(memory_gb=4), Resources(num_cpus=1, num_gpus=1)
    assert plan_pools([("a", cpu), ("b", cpu), ("c", cpu)], 2, 0) == [(["a", "b", "c"], cpu, 2)]
    # a GPU classifier between CPU stages: its own pool, one actor per GPU; CPUs left to the rest
    assert plan_pools([("a", cpu), ("g", gpu), ("b", cpu)], 8, 2) == [(["a"], cpu, 5), (["g"], gpu, 2), (["b"], cpu, 1)]
    assert plan_pools([("a", cpu), ("m", big)], 2, 0) == [(["a"], cpu, 1), (["m"], big, 1)]
    # the override in a section's `resources:` is what the runner plans with
    cfg = _cfg(filters={"pii": {"resources": {"num_cpus": 0.5}}})
    pools = plan_pools(registry.document_resources(cfg), 2, 0)
    assert [p[0][-1] for p in pools] == ["filters.fineweb", "filters.pii"]


def test_an_earlier_pool_hands_its_stage_reports_on_with_the_rows(shared_data, tmp_path):
    """Two groups in one process, as two pools would run them: the part's footer holds every
    stage's report, each batch's reports summed, whichever way the rows were split between them."""

    cfg = _cfg(inputs=[str(shared_data / "warc/dolma-wget/sample-0000.warc.gz")])
    path = shared_data / "warc/dolma-wget/sample-0000.warc.gz"
    raw = read_raw(path, cfg.read)
    sections = [s for s, _ in registry.document_resources(cfg)]
    run_schema = registry.run_schema(cfg)
    first = StageGroup(cfg, sections[:3], None, run_schema)
    handed = pa.concat_tables([first(raw.slice(0, 10)), first(raw.slice(10))])
    out = tmp_path / "docs"
    second = StageGroup(cfg, sections[3:], str(out), run_schema)
    second(handed.slice(0, 7)), second(handed.slice(7))
    parts = sorted(out.rglob("part-*.parquet"))
    reports = [json.loads(pq.read_schema(p).metadata[PART_STATS_KEY]) for p in parts]
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in parts) == raw.num_rows
    seen = {stage for r in reports for stage in r["seconds"]}
    assert seen == {"url", "language_prefilter", "extract", "language", "gopher_repetition", "gopher_quality", "c4", "fineweb", "pii"}
    # drops counted where they happened equal the drop reasons the rows carry
    rows = pa.concat_tables([pq.read_table(p) for p in parts])
    counted = sum(n for r in reports for d in r["dropped"].values() for n in d.values())
    assert counted == sum(1 for r in rows.column(schema.DROP_REASON).to_pylist() if r and not r.startswith(("warc", "error:warc")))


def _near_duplicate_warc(shared_data: Path, path: Path) -> None:
    """A WARC of two captures of one real article (AEB) whose main text differs by one word,
    the first article long enough to pass the quality filters."""
    import gzip
    import io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    truth = json.loads((shared_data / "extraction/aeb/ground-truth.json").read_text())
    for key, page in sorted(truth.items()):
        body = page["articleBody"]
        html = gzip.decompress((shared_data / f"extraction/aeb/html/{key}.html.gz").read_bytes())
        unique = [w for w in body.split() if len(w) > 7 and w.isalpha() and html.count(w.encode()) == 1]
        if len(body) > 3000 and unique:
            break
    edited = html.replace(unique[len(unique) // 2].encode(), b"different", 1)
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for n, payload in enumerate((html, edited)):
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            record = writer.create_warc_record(f"{page['url']}?capture={n}", "response", payload=io.BytesIO(payload),
                                               http_headers=http)
            writer.write_record(record)


@pytest.mark.ray
@pytest.mark.slow
def test_a_stage_with_other_resources_runs_in_its_own_pool_with_the_same_output(ray_session, shared_data, tmp_path):
    _near_duplicate_warc(shared_data, tmp_path / "near-dup.warc.gz")
    inputs = [str(shared_data / "warc/dolma-wget/sample-0000.warc.gz"), str(shared_data / "warc/resiliparse/*.warc.gz"),
              str(tmp_path / "near-dup.warc.gz")]
    fused = Runner(_cfg(tmp_path / "fused", inputs)).run(num_cpus=2)
    # The edited capture is a near duplicate: dropped by MinHash and counted under it, not under exact dedup.
    by_stage = {f["stage"]: f["dropped"] for f in fused.stats["funnel"]}
    assert by_stage["dedup_minhash"] == {"dup:minhash": 1} and "dup:minhash" not in by_stage["dedup_exact"]
    split = Runner(_cfg(tmp_path / "split", inputs, filters={"pii": {"resources": {"num_cpus": 0.5}}})).run(num_cpus=2)

    def rows(result) -> pa.Table:
        return pa.concat_tables([pq.read_table(result.output / s["path"]) for s in result.manifest["shards"] + result.manifest["rejected"]])

    assert rows(fused).equals(rows(split))
    assert [f["stage"] for f in fused.stats["funnel"]] == [f["stage"] for f in split.stats["funnel"]]
    reports = [json.loads(pq.read_schema(p).metadata[PART_STATS_KEY])
               for p in (tmp_path / "split" / "work" / "docs").rglob("part-*.parquet")]
    workers = [r["workers"] for r in reports if "pii" in r["workers"]]
    assert workers and all(w["pii"] != w["extract"] for w in workers)  # pii ran in another actor
    fused_workers = [r["workers"] for r in (json.loads(pq.read_schema(p).metadata[PART_STATS_KEY])
                     for p in (tmp_path / "fused" / "work" / "docs").rglob("part-*.parquet"))]
    assert all(w["pii"] == w["extract"] for w in fused_workers)
