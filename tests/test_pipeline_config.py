"""A bad config fails before any work starts, naming the field and what was expected."""

from __future__ import annotations

import pytest

from curate.config import ConfigError, load_config, parse_config

BASE = {"input": {"paths": ["x.warc.gz"]}, "output": {"path": "out"}}


def _err(data: dict) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    return str(e.value)


def test_minimal_config_fills_defaults():
    cfg = parse_config(BASE)
    assert cfg.input.source == "local"
    assert cfg.extract.engine == "trafilatura" and cfg.output.compression == "zstd"


def test_unknown_key_is_named():
    msg = _err({**BASE, "output": {"path": "o", "rows_per_shrad": 5}})
    assert "output.rows_per_shrad" in msg and "unknown key" in msg


def test_mistyped_section_is_named():
    assert "extrct" in _err({**BASE, "extrct": {}})


def test_wrong_type_names_field_and_value():
    msg = _err({**BASE, "output": {"path": "o", "rows_per_shard": "many"}})
    assert "output.rows_per_shard" in msg and "integer" in msg and "'many'" in msg


def test_missing_input_is_named():
    assert "input: required field is missing" in _err({"output": {"path": "o"}})


def test_bad_crawl_id_and_source():
    assert "input.crawl" in _err({"input": {"source": "commoncrawl", "crawl": "2024-10"}, "output": {"path": "o"}})
    assert "input.source must be one of" in _err({"input": {"source": "ftp"}, "output": {"path": "o"}})


def test_nested_filter_section_is_validated():
    assert "filters.language.min_score" in _err({**BASE, "filters": {"language": {"min_score": 2}}})


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_cli_rejects_bad_config_before_starting_ray(tmp_path, capsys):
    from curate.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("input: {paths: [x]}\noutput: {path: o, shards: 3}\n")
    assert main(["run", str(cfg)]) == 2
    assert "output.shards" in capsys.readouterr().out


def test_example_configs_are_valid():
    from pathlib import Path

    for name in ("sample.yaml", "crawl-2024.yaml"):
        load_config(Path(__file__).parents[1] / "examples" / name)


def test_a_mixture_without_topic_labels_is_refused_naming_both_sections():
    with pytest.raises(ConfigError, match="mixture.enabled needs classifiers.topics.enabled"):
        parse_config({"input": {"paths": ["x"]}, "output": {"path": "o"}, "mixture": {"enabled": True, "shares": {"Software": 0.2}}})
