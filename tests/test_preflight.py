"""What a config gets wrong about the machine fails before Ray starts, with exit 2 and one line
naming the key; inputs that fail for good are shown and counted against
`input.max_failed_fraction`, beyond which the run exits 1 naming them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from curate import cli
from curate.config import parse_config
from curate.preflight import check


def config(tmp_path: Path, shared_data: Path, **sections) -> dict:
    raw = {"input": {"paths": [str(shared_data / "warc/commoncrawl-whirlwind/whirlwind.warc.gz")]},
           "output": {"path": str(tmp_path / "out")}, "ray": {"dashboard_port": 0}}
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    return raw


def run_cli(tmp_path: Path, raw: dict, monkeypatch, capsys) -> tuple[int, str]:
    """`curate run` in this process, with Ray's start replaced by a failure: exit 2 must come first."""
    from curate import session

    def ray_must_not_start(_cfg):
        raise AssertionError("Ray was started before the config was checked")

    monkeypatch.setattr(session, "start", ray_must_not_start)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    code = cli.main(["run", str(path), "--no-progress"])
    return code, capsys.readouterr().out


@pytest.mark.parametrize(("case", "key"), [
    ("missing_input", "input.paths"),
    ("output_is_a_file", "output.path"),
    ("output_cannot_be_created", "output.path"),
    ("output_with_a_broken_marker", "output.path"),
    ("output_not_made_by_curate", "output.path"),
    ("dashboard_port_in_use", "ray.dashboard_port"),
    ("negative_threshold", "filters.gopher_repetition.dup_line_frac"),
    ("negative_size", "read.max_record_bytes"),
])
def test_a_config_wrong_for_this_machine_exits_2_naming_the_key(case, key, tmp_path, shared_data, monkeypatch, capsys):
    raw = config(tmp_path, shared_data)
    listener = None
    if case == "missing_input":
        raw["input"]["paths"] = [str(tmp_path / "nowhere" / "*.warc.gz")]
    elif case == "output_is_a_file":
        (tmp_path / "out").write_text("x")
    elif case == "output_cannot_be_created":
        (tmp_path / "file").write_text("x")
        raw["output"]["path"] = str(tmp_path / "file" / "out")
    elif case == "output_with_a_broken_marker":
        (tmp_path / "out" / "work").mkdir(parents=True)
        (tmp_path / "out" / "work" / "config.json").write_text("{not json")
    elif case == "output_not_made_by_curate":
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "thesis.tex").write_text("years of work")
    elif case == "dashboard_port_in_use":
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        raw["ray"]["dashboard_port"] = listener.getsockname()[1]
    elif case == "negative_threshold":
        raw["filters"] = {"gopher_repetition": {"dup_line_frac": -0.3}}
    elif case == "negative_size":
        raw["read"] = {"max_record_bytes": -5}
    try:
        code, out = run_cli(tmp_path, raw, monkeypatch, capsys)
    finally:
        if listener is not None:
            listener.close()
    assert code == 2
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) <= 2 and key in out, out  # one line (pydantic's own errors: a header and the field)
    assert "Traceback" not in out
    if case == "output_not_made_by_curate":
        assert (tmp_path / "out" / "thesis.tex").read_text() == "years of work"


def test_a_good_config_passes_and_a_rerun_of_it_or_of_changed_settings_too(tmp_path, shared_data):
    cfg = parse_config(config(tmp_path, shared_data))
    check(cfg)
    (tmp_path / "out" / "work").mkdir(parents=True)
    (tmp_path / "out" / "work" / "config.json").write_text(json.dumps({"fingerprint": cfg.fingerprint()}))
    check(cfg)  # the folder of this config's earlier run
    # Another threshold (-1 "disables" is allowed): the run reuses what still holds (finer resume).
    check(parse_config(config(tmp_path, shared_data, filters={"c4": {"min_num_sentences": -1}})))


def test_failed_inputs_are_listed_and_the_budget_decides_the_exit(capsys):
    from rich.console import Console

    console = Console(width=200)
    failed = [{"uri": f"https://data.example/{i}.warc.gz", "error": "warc:transfer_failed", "detail": "gave up"} for i in range(2)]
    assert cli._within_failure_budget(console, {"inputs": 40, "failed_inputs": failed}, 0.05)
    assert not cli._within_failure_budget(console, {"inputs": 20, "failed_inputs": failed}, 0.05)
    out = capsys.readouterr().out
    assert out.count("https://data.example/1.warc.gz: warc:transfer_failed (gave up)") == 2
    assert "more than input.max_failed_fraction (0.05)" in out
    assert cli._within_failure_budget(console, {"inputs": 20, "failed_inputs": []}, 0.0)


@pytest.mark.slow
def test_a_run_where_every_download_fails_completes_and_exits_1(tmp_path):
    """Two URLs on a port nobody listens on: the run completes (stats written), names both, exit 1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    urls = [f"http://127.0.0.1:{port}/crawl/{i}.warc.gz" for i in range(2)]
    raw = {"input": {"source": "urls", "urls": urls, "retries": 0, "backoff_s": 0},
           "output": {"path": str(tmp_path / "out")}, "ray": {"num_cpus": 1, "dashboard_port": 0},
           "dedup": {"exact": {"enabled": False}, "minhash": {"enabled": False}}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run([str(Path(sys.executable).parent / "curate"), "run", str(tmp_path / "run.yaml"), "--no-progress"],
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    assert all(f"{u}: warc:transfer_failed" in proc.stdout for u in urls)
    assert "2 of 2 inputs failed for good" in proc.stdout
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert [f["uri"] for f in stats["failed_inputs"]] == urls


@pytest.mark.slow
def test_ctrl_c_stops_with_one_line_and_130_and_the_rerun_finishes_with_a_clean_console(tmp_path, shared_data):
    """A run interrupted by Ctrl-C says one line and exits 130; the same command then resumes and
    finishes, and its console holds none of Ray's internal warnings and no line over 80 columns."""
    import os
    import signal
    import time

    raw = {"input": {"paths": [str(shared_data / "warc/dolma-wget/sample-0000.warc.gz"),
                               str(shared_data / "warc/resiliparse/CC-MAIN-2020-34-sample.warc.gz")]},
           "output": {"path": str(tmp_path / "out")}, "ray": {"num_cpus": 2, "dashboard_port": 0, "batch_size": 4}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw))
    cmd = [str(Path(sys.executable).parent / "curate"), "run", str(tmp_path / "run.yaml"), "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}  # not a terminal, no width given
    # As a terminal starts it: SIGINT at its default (a background test runner may ignore it).
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (tmp_path / "out" / "work" / "docs").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    first.send_signal(signal.SIGINT)  # what the terminal sends the foreground process on Ctrl-C
    out, err = first.communicate(timeout=120)
    assert first.returncode == 130, out + err[-3000:]
    assert "Traceback" not in out + err
    assert [line for line in err.splitlines() if line.strip()] == \
        ["interrupted: finished work is kept; run the same command again to resume"]

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    console = again.stdout + again.stderr
    assert again.returncode == 0, console[-3000:]
    assert "core_worker.cc" not in console and "available CPUs" not in console
    table = again.stdout[again.stdout.index("funnel:"):again.stdout.index(" documents in ")].splitlines()[:-1]
    assert len(table) > 10 and max(len(line) for line in table) <= 80  # the funnel table, not the paths after it
