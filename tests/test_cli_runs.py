"""`curate` as a user runs it, each command a separate process: help, a bad config, and a run
on a Ray cluster started with `ray start --head` that is killed part-way, resumed, and compared
byte for byte with an uninterrupted run; then `curate stats` on the output."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

BIN = Path(sys.executable).parent
CURATE, RAY = str(BIN / "curate"), str(BIN / "ray")
INPUTS, PAGES_PER_INPUT = 8, 8  # the resume test's inputs: real-pages.warc.gz split into 8 WARCs


def curate(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([CURATE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_help():
    top = curate("--help")
    assert top.returncode == 0
    for command in ("run", "stats", "train", "generate"):
        assert command in top.stdout
    run = curate("run", "--help")
    assert run.returncode == 0
    for flag in ("config", "--output", "--no-progress", "--no-train"):
        assert flag in run.stdout


def test_bad_config_exits_2_naming_the_field_before_any_work(tmp_path, shared_data):
    cfg = tmp_path / "bad.yaml"
    out = tmp_path / "out"
    cfg.write_text(yaml.safe_dump({
        "input": {"paths": [str(shared_data / "warc/commoncrawl-whirlwind/whirlwind.warc.gz")]},
        "output": {"path": str(out), "rows_per_shard": "many"},
        "extract": {"engin": "trafilatura"},
    }))
    t0 = time.perf_counter()
    proc = curate("run", str(cfg), timeout=60)
    assert proc.returncode == 2
    assert "output.rows_per_shard" in proc.stdout and "'many'" in proc.stdout
    assert "extract.engin" in proc.stdout and "unknown key" in proc.stdout
    assert "Ray" not in proc.stdout and not out.exists()  # nothing started, nothing written
    assert time.perf_counter() - t0 < 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A one-node cluster from `ray start --head --block` with token auth (Ray 2.60's default
    when a token exists), in its own temp dir (RAY_TMPDIR), with its own token file and on free
    ports, so it cannot meet any other Ray on this machine; yields (address, env for drivers).
    The drivers' env has the token path but no RAY_AUTH_MODE: `curate run` must see that a
    token exists and send it.

    It is stopped by killing the process group it was started in, not with `ray stop`, which
    stops every Ray of this user on the machine."""
    tmp = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    (tmp / "auth_token").write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    env.update(RAY_TMPDIR=str(tmp), RAY_AUTH_TOKEN_PATH=str(tmp / "auth_token"))
    port = _free_port()
    log_path = tmp / "ray-start.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--include-dashboard=false", f"--dashboard-port={_free_port()}", f"--ray-client-server-port={_free_port()}",
         f"--dashboard-agent-listen-port={_free_port()}", "--disable-usage-stats", "--block"],
        env={**env, "RAY_AUTH_MODE": "token"}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in log_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it failed to start and took its group with it
            pass
        proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _finished_inputs(out: Path) -> dict[str, int]:
    """Inputs whose completion marker exists and whose part files hold all its rows (the
    runner's own definition of finished): key -> rows."""
    done = {}
    for marker in (out / "work/read").glob("*.json"):
        rows = json.loads(marker.read_text())["rows"]
        parts = (out / "work/docs" / marker.stem).glob("part-*.parquet")
        if sum(pq.ParquetFile(p).metadata.num_rows for p in parts) == rows:
            done[marker.stem] = rows
    return done


def _snapshot(out: Path, keys) -> dict[str, tuple]:
    """What a finished input left: its marker's mtime and its part files' names."""
    return {k: ((out / "work/read" / f"{k}.json").stat().st_mtime_ns,
                sorted(p.name for p in (out / "work/docs" / k).glob("part-*.parquet"))) for k in keys}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.parquet"))}


def split_warc(src: Path, folder: Path, inputs: int, per_input: int) -> list[Path]:
    """Real WARCs from one: response k*inputs + i of `src` goes to file i, gzip members copied as is."""
    from warcio.archiveiterator import ArchiveIterator

    data = src.read_bytes()
    spans = []
    with open(src, "rb") as f:
        it = ArchiveIterator(f)
        for record in it:
            if record.rec_type == "response":
                record.content_stream().read()  # the length is known once the record is read
                spans.append((it.get_record_offset(), it.get_record_length()))
    folder.mkdir()
    paths = []
    for i in range(inputs):
        path = folder / f"part-{i}.warc.gz"
        path.write_bytes(b"".join(data[o:o + n] for o, n in spans[i:inputs * per_input:inputs]))
        paths.append(path)
    return paths


@pytest.mark.slow
def test_run_on_a_cluster_killed_and_resumed_equals_a_clean_run(cluster, shared_data, tmp_path):
    address, base_env = cluster
    split_warc(shared_data / "real-pages.warc.gz", tmp_path / "in", INPUTS, PAGES_PER_INPUT)
    out = tmp_path / "out"
    off = {"enabled": False}
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "input": {"paths": [str(tmp_path / "in/*.warc.gz")]},
        "output": {"path": str(out), "rows_per_shard": 20},
        "ray": {"num_cpus": 2, "dashboard_port": 0, "batch_size": 4},
        # extraction and language ID: both shards and rejected rows, at little cost
        "filters": {k: off for k in ("url", "gopher_repetition", "gopher_quality", "c4", "fineweb", "pii")},
        "dedup": {"exact": off, "minhash": off},
    }))
    joined = {**base_env, "RAY_ADDRESS": address}

    # 1. Kill the run (SIGKILL, no cleanup) once some inputs are finished and others are not.
    t0 = time.perf_counter()
    proc = subprocess.Popen([CURATE, "run", str(cfg), "--no-progress"], env=joined,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while proc.poll() is None and not 1 <= len(_finished_inputs(out)) < INPUTS:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed:\n" + proc.stdout.read()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first_out = proc.stdout.read()
    assert "joined the Ray cluster at" in first_out, first_out[-3000:]
    # the cluster ends the dead driver's actors; wait until nothing writes parts any more
    files = None
    while files != (files := sorted((out / "work/docs").rglob("*"))):
        time.sleep(1.5)
    finished = _finished_inputs(out)
    assert 1 <= len(finished) < INPUTS and not (out / "stats.json").exists()
    before = _snapshot(out, finished)
    t_kill = time.perf_counter() - t0

    # 2. The same command again: finished inputs are not read again.
    t0 = time.perf_counter()
    rerun = curate("run", str(cfg), "--no-progress", env=joined)
    t_resume = time.perf_counter() - t0
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "joined the Ray cluster at" in rerun.stdout
    assert f"inputs: {INPUTS} ({len(finished)} finished earlier, {INPUTS - len(finished)} to process)" in rerun.stdout
    stats = json.loads((out / "stats.json").read_text())
    assert stats["inputs"] == INPUTS and stats["inputs_processed_this_run"] == INPUTS - len(finished)
    assert _snapshot(out, finished) == before  # markers not rewritten, parts not redone

    # 3. An uninterrupted run, embedded: Ray's RAY_TMPDIR still advertises the cluster, but
    #    without an address `curate run` starts its own Ray instead of joining it.
    t0 = time.perf_counter()
    clean = curate("run", str(cfg), "--no-progress", "--output", str(tmp_path / "clean"), env=base_env)
    t_clean = time.perf_counter() - t0
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]
    assert "started a local Ray" in clean.stdout and "joined" not in clean.stdout

    resumed_shards, clean_shards = _files(out / "shards"), _files(tmp_path / "clean/shards")
    assert resumed_shards and resumed_shards == clean_shards
    assert _files(out / "rejected") == _files(tmp_path / "clean/rejected")
    clean_stats = json.loads((tmp_path / "clean/stats.json").read_text())
    for key in ("read", "kept", "rejected", "errored", "file_errors", "records_by_type"):
        assert stats[key] == clean_stats[key], key
    assert stats["read"] == INPUTS * PAGES_PER_INPUT and stats["kept"] > 0 and stats["rejected"] > 0

    # 4. `curate stats` prints the funnel of the finished run.
    shown = curate("stats", str(out))
    assert shown.returncode == 0 and f"{stats['read']:,} read -> {stats['kept']:,} kept" in shown.stdout
    print(f"\nkilled after {t_kill:.1f} s with {len(finished)}/{INPUTS} inputs finished; resumed run "
          f"{t_resume:.1f} s; clean embedded run {t_clean:.1f} s; {len(resumed_shards)} shards identical; "
          f"{stats['read']} read, {stats['kept']} kept")
