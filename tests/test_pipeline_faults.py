"""A worker lost mid-run costs nothing: a busy extraction actor killed with SIGKILL while it works
is replaced, the inputs it left unfinished are done again, and the run ends with exactly the
shards of a clean run (byte for byte), no row lost or written twice. A driver killed with SIGKILL
mid-extraction and again mid-dedup leaves no process behind, and the rerun redoes nothing that
had finished and writes the shards of a clean run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import psutil
import pytest

from curate.config import parse_config
from curate.pipeline.runner import Runner


def split_real_pages(shared_data: Path, folder: Path, files: int = 2, per_file: int = 40) -> list[str]:
    """The first files * per_file records of real-pages.warc.gz as `files` WARCs (gzip members kept)."""
    data, members, pos = (shared_data / "real-pages.warc.gz").read_bytes(), [], 0
    while pos < len(data) and len(members) < 1 + files * per_file:
        z = zlib.decompressobj(31)
        z.decompress(data[pos:])
        end = len(data) - len(z.unused_data)
        members.append(data[pos:end])
        pos = end
    folder.mkdir()
    paths = []
    for k in range(files):
        path = folder / f"part-{k}.warc.gz"
        path.write_bytes(members[0] + b"".join(members[1 + k * per_file: 1 + (k + 1) * per_file]))
        paths.append(str(path))
    return paths


def config(inputs: list[str], out: Path):
    return parse_config({"input": {"paths": inputs}, "output": {"path": str(out), "rows_per_shard": 16},
                         "ray": {"batch_size": 4}})


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.glob("*/*.parquet"))
            if p.parent.name in ("shards", "rejected")}


def stage_actors() -> list[psutil.Process]:
    """This test session's extraction actors (never another Ray's on the machine)."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "StageGroup" in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:
            continue
    return found


@pytest.mark.slow
def test_a_busy_extraction_actor_killed_mid_run_leaves_the_output_of_a_clean_run(ray_session, shared_data, tmp_path):
    inputs = split_real_pages(shared_data, tmp_path / "in")
    clean = Runner(config(inputs, tmp_path / "clean")).run(num_cpus=2)

    out = tmp_path / "killed"
    killed: list[int] = []

    def kill_a_busy_actor() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            parts = list((out / "work" / "docs").glob("*/part-*.parquet")) if (out / "work" / "docs").exists() else []
            actors = stage_actors()
            if parts and actors:  # extraction under way: batches are queued at every actor
                actors[0].send_signal(signal.SIGKILL)
                killed.append(actors[0].pid)
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_a_busy_actor)
    killer.start()
    result = Runner(config(inputs, out)).run(num_cpus=2)
    killer.join()
    assert killed, "no extraction actor was found to kill"
    assert shard_bytes(out) == shard_bytes(tmp_path / "clean")
    assert {k: result.stats[k] for k in ("read", "kept", "rejected", "errored")} == \
        {k: clean.stats[k] for k in ("read", "kept", "rejected", "errored")}


def curate_run(cfg: Path, out: Path, kill_when=None) -> tuple[int | None, list[str]]:
    """`curate run` as a user runs it; with `kill_when`, SIGKILL the driver once it holds, and
    return what of its process tree is still alive 30 s later (the reaper must end it all)."""
    cmd = [str(Path(sys.executable).parent / "curate"), "run", str(cfg), "--output", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if kill_when is None:
        console = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, console[-3000:]
        return proc.returncode, []
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and proc.poll() is None and not kill_when(out):
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before the moment to kill it:\n" + proc.stdout.read()[-3000:]
    tree = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    proc.wait()
    _, alive = psutil.wait_procs(tree, timeout=30)
    left = [f"{p.pid} {p.name()}" for p in alive if p.is_running()]
    for p in alive:
        p.kill()
    return None, left


@pytest.mark.slow
def test_a_driver_killed_mid_extraction_and_mid_dedup_then_rerun_equals_a_clean_run(ray_session, shared_data, tmp_path):
    import yaml

    from curate.config import load_config

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "input": {"paths": [str(shared_data / "warc/dolma-wget/sample-0000.warc.gz"),
                            str(shared_data / "warc/resiliparse/CC-MAIN-2020-34-sample.warc.gz")]},
        "output": {"path": str(tmp_path / "unused"), "rows_per_shard": 8},
        "ray": {"num_cpus": 2, "dashboard_port": 0, "batch_size": 4}}))
    # The clean reference runs in this process on the suite's Ray (same config, same 2 CPUs):
    # the kills and the rerun below are `curate run` processes.
    clean_cfg = load_config(cfg)
    clean_cfg.output.path = str(tmp_path / "clean")
    Runner(clean_cfg).run(num_cpus=2)
    out = tmp_path / "killed"
    _, left = curate_run(cfg, out, kill_when=lambda o: any((o / "work" / "docs").glob("*/part-*.parquet")))
    assert left == []
    _, left = curate_run(cfg, out, kill_when=lambda o: any((o / "work" / "global").glob(".*.tmp")))
    assert left == []
    curate_run(cfg, out)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["inputs_processed_this_run"] == 0  # extraction finished in the second attempt: not redone
    assert shard_bytes(out) == shard_bytes(tmp_path / "clean")
