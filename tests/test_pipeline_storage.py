"""The storage layer, on local disk and on an S3-compatible store (moto in server mode on
127.0.0.1, started here): writes are atomic for readers, folders count only once their marker
is written, listings never show uncommitted files; a whole run with `output.path: s3://...`
gives the same shards as the run on local disk, resumes on the store, writes nothing to a
local folder of that name, and keeps the credentials out of its output."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from curate.config import load_config
from curate.pipeline.runner import Runner
from curate.pipeline.storage import COMMIT_MARKER, Storage, join

REPO = Path(__file__).resolve().parents[1]
BUCKET = "curate-test"
# Distinctive values, to find them if they ever leak into the output.
ACCESS_KEY = f"AKIDCURATE{uuid.uuid4().hex[:10].upper()}"
SECRET_KEY = f"curate-secret-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def s3_endpoint():
    """An S3-compatible server on 127.0.0.1 with one bucket, and AWS credentials in the
    driver's environment only (the Ray workers started before them never see them)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")}
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    storage = Storage({"endpoint_url": endpoint, "key": ACCESS_KEY, "secret": SECRET_KEY})
    try:
        storage.fs(f"s3://{BUCKET}")[0].mkdir(BUCKET)
    except FileExistsError:  # moto keeps one in-memory store per process: another module's server made it
        pass
    yield endpoint
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> tuple[Storage, str]:
    """(storage, a fresh folder on it)."""
    if request.param == "local":
        return Storage(), str(tmp_path / "store")
    endpoint = request.getfixturevalue("s3_endpoint")
    return Storage({"endpoint_url": endpoint}), f"s3://{BUCKET}/unit-{uuid.uuid4().hex[:8]}"


def _table(n: int) -> pa.Table:
    return pa.table({"x": list(range(n)), "s": [f"row {i}" for i in range(n)]})


def test_a_written_file_reads_back_whole_and_a_failed_write_leaves_nothing(store):
    storage, root = store
    storage.write_parquet(_table(100), join(root, "a", "part-1.parquet"))
    storage.write_json(join(root, "a", "marker.json"), {"rows": 100})
    assert pq.read_table(storage.open(join(root, "a", "part-1.parquet"))).equals(_table(100))
    assert storage.read_json(join(root, "a", "marker.json")) == {"rows": 100}
    with pytest.raises(Exception):  # an unknown codec fails inside the Parquet writer
        storage.write_parquet(_table(100), join(root, "a", "part-2.parquet"), compression="no-such-codec")
    assert not storage.exists(join(root, "a", "part-2.parquet"))
    assert storage.glob(join(root, "a", "*")) == [join(root, "a", "marker.json"), join(root, "a", "part-1.parquet")]


def test_listings_skip_temp_files_and_markers(store):
    storage, root = store
    storage.write_parquet(_table(3), join(root, "d", "part-1.parquet"))
    # What a writer that died mid-way leaves (a local temp name), and a folder's marker.
    storage.write_bytes(join(root, "d", ".part-2.parquet.1234.tmp"), b"half a file")
    storage.write_json(join(root, "d", COMMIT_MARKER), {})
    assert storage.glob(join(root, "d", "*")) == [join(root, "d", "part-1.parquet")]
    assert storage.glob(join(root, "d", "*.parquet")) == [join(root, "d", "part-1.parquet")]


def test_a_folder_counts_only_once_published_with_its_marker_written_last(store):
    storage, root = store
    folder = join(root, "global", "0-dedup")
    staging = storage.staging(folder)
    storage.write_parquet(_table(5), join(staging, "out-1.parquet"))
    assert not storage.committed(folder)
    storage.publish(staging, folder, {"seconds": 1.5})
    assert storage.committed(folder)
    assert storage.read_json(join(folder, COMMIT_MARKER)) == {"seconds": 1.5}
    assert storage.glob(join(folder, "*.parquet")) == [join(folder, "out-1.parquet")]
    storage.rmtree(folder)
    assert not storage.committed(folder) and storage.glob(join(folder, "*")) == []


def test_credentials_ship_from_the_driver_env_but_never_show_in_a_repr(s3_endpoint):
    from curate.config import StorageConfig

    storage = Storage.of(StorageConfig(endpoint_url=s3_endpoint))
    assert storage.options == {"endpoint_url": s3_endpoint, "key": ACCESS_KEY, "secret": SECRET_KEY}
    assert SECRET_KEY not in repr(storage) and SECRET_KEY not in repr(StorageConfig(options={"secret": SECRET_KEY}))
    assert "key" not in Storage.of(StorageConfig(endpoint_url=s3_endpoint, anon=True)).options


# -- a whole run ---------------------------------------------------------------------------------


def _config_file(tmp: Path, shared_data: Path, output: str, endpoint: str | None, batch: int | None = None,
                 inputs: list[str] | None = None) -> Path:
    """examples/sample.yaml (filters, exact and MinHash dedup, site caps) on three small real
    WARCs (39 documents), or the same files where `inputs` names them; `batch`: documents per
    block and batch, else the defaults (one per input)."""
    raw = yaml.safe_load((REPO / "examples" / "sample.yaml").read_text())
    raw.pop("train", None)
    # No topic labeller (nor the mixture that needs it): its own pool would be the one writing
    # the parts, one actor on a two-CPU cluster, and storage is what these runs test.
    raw["classifiers"]["topics"]["enabled"] = raw["mixture"]["enabled"] = False
    raw["input"]["paths"] = inputs or [str(shared_data / "warc" / "dolma-wget" / "sample-0000.warc.gz"),
                                       str(shared_data / "warc" / "resiliparse" / "*.warc.gz")]
    raw["output"]["path"] = output
    if endpoint is not None:
        raw["storage"] = {"endpoint_url": endpoint}
    if batch is not None:
        raw["read"] = {"records_per_batch": batch}
        raw["ray"]["batch_size"] = batch
    path = tmp / f"run-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _config(tmp: Path, shared_data: Path, output: str, endpoint: str | None):
    return load_config(_config_file(tmp, shared_data, output, endpoint))


def _shards(storage: Storage, out: str) -> dict[str, bytes]:
    return {p.rsplit("/", 1)[1]: storage.read_bytes(p) for p in storage.glob(join(out, "shards", "*.parquet"))}


@pytest.fixture(scope="module")
def local_run(ray_session, shared_data, tmp_path_factory):
    """The reference: the run on one node, output on local disk."""
    tmp = tmp_path_factory.mktemp("storage-local")
    return Runner(_config(tmp, shared_data, str(tmp / "local-out"), None)).run(num_cpus=2)


@pytest.fixture(scope="module")
def local_and_s3_runs(ray_session, shared_data, s3_endpoint, local_run, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("storage-run")
    local = local_run
    out = f"s3://{BUCKET}/out"
    cwd = os.getcwd()
    os.chdir(tmp)  # a relative local folder named like the URL would land here
    try:
        cfg = _config(tmp, shared_data, out, s3_endpoint)
        remote = Runner(cfg).run(num_cpus=2)
    finally:
        os.chdir(cwd)
    return tmp, cfg, local, remote, Storage.of(cfg.storage)


def test_a_run_on_s3_writes_the_same_shards_as_on_local_disk_and_nothing_local(local_and_s3_runs):
    tmp, cfg, local, remote, storage = local_and_s3_runs
    out = cfg.output.path
    assert remote.output == out and remote.processed_inputs == local.processed_inputs == 3
    local_shards = _shards(Storage(), str(local.output))
    assert local_shards and _shards(storage, out) == local_shards
    assert {k: remote.stats[k] for k in ("read", "kept", "rejected", "errored")} == \
        {k: local.stats[k] for k in ("read", "kept", "rejected", "errored")}
    for name in ("stats.json", "manifest.json", "report.md", "funnel.png", "work/config.json"):
        assert storage.exists(join(out, name)), name
    assert storage.read_json(join(out, "manifest.json"))["shards"] == remote.manifest["shards"]
    assert storage.glob(join(out, "work", "read", "*.json")) and storage.glob(join(out, "work", "docs", "*", "part-*.parquet"))
    stage_dirs = storage.fs(out)[0].ls(f"{BUCKET}/out/work/global")
    assert len(stage_dirs) == len(remote.stats["global"]) > 0 and all(storage.committed(f"s3://{d}") for d in stage_dirs)
    for folder in (tmp, Path.cwd(), REPO):
        assert not (folder / "s3:").exists() and not (folder / BUCKET).exists()
    assert not any(p.name.startswith(("s3:", BUCKET)) for p in tmp.rglob("*"))


def test_the_credentials_never_reach_the_output(local_and_s3_runs):
    _, cfg, _, _, storage = local_and_s3_runs
    fs, root = storage.fs(cfg.output.path)
    for path in fs.find(root):
        data = fs.cat_file(path)
        assert SECRET_KEY.encode() not in data and ACCESS_KEY.encode() not in data, path


def test_curate_stats_reads_the_funnel_of_a_run_on_s3(local_and_s3_runs, s3_endpoint, monkeypatch, capsys):
    from curate.cli import main

    _, cfg, _, remote, _ = local_and_s3_runs
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # no config here: the client's own chain
    assert main(["stats", cfg.output.path]) == 0
    assert f"{remote.stats['read']:,} read -> {remote.stats['kept']:,} kept" in capsys.readouterr().out


def test_a_resumed_run_on_s3_redoes_only_the_input_whose_marker_is_gone(local_and_s3_runs):
    _, cfg, local, _, storage = local_and_s3_runs
    out = cfg.output.path
    markers = storage.glob(join(out, "work", "read", "*.json"))
    gone = markers[0]
    key = gone.rsplit("/", 1)[1].removesuffix(".json")
    others = {p for p in storage.glob(join(out, "work", "docs", "*", "part-*.parquet")) if f"/docs/{key}/" not in p}
    storage.unlink(gone)
    again = Runner(cfg).run(num_cpus=2)
    assert again.processed_inputs == 1 and again.skipped_inputs == len(markers) - 1
    assert storage.exists(gone)
    # Its rows came from the extraction cache on the store: read and extracted once, in the first run.
    reused = again.stats["resume"]["reused_from_cache"]["extract"]["rows"]
    assert reused == storage.read_json(gone)["rows"] > 0
    # The other inputs' part files are the very same objects; the shards equal the local run's.
    assert {p for p in storage.glob(join(out, "work", "docs", "*", "part-*.parquet")) if f"/docs/{key}/" not in p} == others
    assert _shards(storage, out) == _shards(Storage(), str(local.output))


def _rows_without_paths(storage: Storage, out: str) -> list[pa.Table]:
    """The shards' rows with warc_path (which names where the WARC was read) left out."""
    return [pq.read_table(storage.open(p)).drop_columns(["warc_path"]) for p in storage.glob(join(out, "shards", "*.parquet"))]


def test_warc_inputs_read_from_s3_give_the_rows_of_the_same_files_on_disk(local_run, shared_data, s3_endpoint, tmp_path):
    """input.paths on the store (one object by name, a glob) open through the storage layer with
    the config's endpoint: the same documents, in the same order, as the local files of the
    one-node run (the same config, reading them from disk)."""
    storage = Storage({"endpoint_url": s3_endpoint})
    inputs = f"s3://{BUCKET}/inputs-{uuid.uuid4().hex[:6]}"
    warcs = shared_data / "warc"
    files = [warcs / "dolma-wget" / "sample-0000.warc.gz", *sorted((warcs / "resiliparse").glob("*.warc.gz"))]
    for local in files:
        storage.write_bytes(join(inputs, local.parent.name, local.name), local.read_bytes())
    paths = [join(inputs, "dolma-wget", files[0].name), join(inputs, "resiliparse", "*.warc.gz")]
    from_s3 = Runner(load_config(_config_file(tmp_path, shared_data, str(tmp_path / "out"), s3_endpoint, inputs=paths))).run(num_cpus=2)
    uris = [i["uri"] for i in from_s3.manifest["inputs"]]
    assert uris == [join(inputs, f.parent.name, f.name) for f in files]
    assert [i["uri"] for i in local_run.manifest["inputs"]] == [str(f) for f in files]
    # The same faults too (the resiliparse folder holds a file cut mid-record).
    assert [i["error"] for i in from_s3.manifest["inputs"]] == [i["error"] for i in local_run.manifest["inputs"]]
    assert from_s3.processed_inputs == 3
    got, want = (_rows_without_paths(Storage(), str(r.output)) for r in (from_s3, local_run))
    assert got and len(got) == len(want) and all(a.equals(b) for a, b in zip(got, want))


# -- several nodes ----------------------------------------------------------------------------

_DRIVER = """
import sys, time
import ray
from curate import session
from curate.config import load_config
from curate.pipeline.runner import Runner

cfg = load_config(sys.argv[1])
session.start(cfg.ray)  # joins RAY_ADDRESS
deadline = time.monotonic() + 120
while ray.cluster_resources().get("CPU", 0) < 2:  # both worker nodes joined
    if time.monotonic() > deadline:
        sys.exit("the worker nodes never joined")
    time.sleep(0.5)
Runner(cfg).run(num_cpus=int(ray.cluster_resources()["CPU"]))
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout_s: float = 120) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.slow
def test_a_run_on_a_three_node_cluster_writes_the_same_shards_as_one_node(local_run, shared_data, s3_endpoint, tmp_path):
    """A head (no CPUs) and two 1-CPU worker nodes, each a `ray start` with its own temp dir,
    output to the S3 server: the shards equal the one-node run's, and the part files were
    written on both worker nodes."""
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    from curate.pipeline.runner import PART_STATS_KEY

    ray_cli = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--node-ip-address=127.0.0.1",
               "--disable-usage-stats", "--include-log-monitor=false", "--object-store-memory=100000000"]
    # The nodes get no AWS credentials: the driver ships its own through the run's storage options.
    node_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_ADDRESS"))}
    node_env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    head_port = _free_port()
    # Short private temp dirs: Ray's socket paths must stay under the 107-byte limit.
    temp_dirs = [tempfile.mkdtemp(prefix="rn", dir="/tmp") for _ in range(3)]
    nodes = [subprocess.Popen([*ray_cli, "--head", f"--port={head_port}", "--num-cpus=0", "--include-dashboard=false",
                               f"--ray-client-server-port={_free_port()}", f"--dashboard-port={_free_port()}",
                               f"--dashboard-agent-listen-port={_free_port()}",
                               f"--temp-dir={temp_dirs[0]}"], env=node_env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait_for_port(head_port)  # the head's GCS must listen before the workers join
        for temp_dir in temp_dirs[1:]:
            nodes.append(subprocess.Popen([*ray_cli, f"--address=127.0.0.1:{head_port}", "--num-cpus=1",
                                           f"--dashboard-agent-listen-port={_free_port()}", f"--temp-dir={temp_dir}"],
                                          env=node_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        out = f"s3://{BUCKET}/multi-node"
        # Small batches, so that the 39 documents are work for more than one actor.
        config_path = _config_file(tmp_path, shared_data, out, s3_endpoint, batch=4)
        driver = subprocess.run([sys.executable, "-c", _DRIVER, str(config_path)], cwd=tmp_path, capture_output=True, text=True,
                                env={**node_env, "RAY_ADDRESS": f"127.0.0.1:{head_port}", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                                     "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                                     # Ray resolves 127.0.0.1 to the host's address unless told the
                                     # cluster is local; the nodes registered as 127.0.0.1.
                                     "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}, timeout=600)
        assert driver.returncode == 0, driver.stderr[-3000:]
    finally:
        for node in reversed(nodes):  # `ray start --block` stops its node's processes on SIGTERM
            node.terminate()
        for node in nodes:
            node.wait(timeout=60)
        for temp_dir in temp_dirs:
            shutil.rmtree(temp_dir, ignore_errors=True)
    storage = Storage({"endpoint_url": s3_endpoint, "key": ACCESS_KEY, "secret": SECRET_KEY})
    assert _shards(storage, out) == _shards(Storage(), str(local_run.output))
    parts = storage.glob(join(out, "work", "docs", "*", "part-*.parquet"))
    nodes_of_parts = {json.loads(pq.read_schema(storage.open(p)).metadata[PART_STATS_KEY])["node"] for p in parts}
    assert len(nodes_of_parts) == 2 and None not in nodes_of_parts
    assert not any(p.name.startswith(("s3:", BUCKET)) for p in tmp_path.rglob("*"))


# -- model files -----------------------------------------------------------------------------


def test_a_model_on_the_store_is_fetched_once_and_scores_exactly_as_the_local_file(s3_endpoint, shared_data, tmp_path):
    import gzip
    import json

    from curate import schema
    from curate.classifiers.model import SHIPPED_MODEL
    from curate.config import parse_config
    from curate.pipeline import registry
    from curate.pipeline.runner import _with_local_models

    storage = Storage({"endpoint_url": s3_endpoint, "key": ACCESS_KEY, "secret": SECRET_KEY})
    url = f"s3://{BUCKET}/models/{uuid.uuid4().hex}/wiki_quality.ftz"
    storage.write_bytes(url, SHIPPED_MODEL.read_bytes())
    cache = tmp_path / "cache"
    local = storage.local_copy(url, cache)
    assert Path(local).name == "wiki_quality.ftz" and Path(local).read_bytes() == SHIPPED_MODEL.read_bytes()
    assert storage.local_copy(url, cache) == local and len(list(cache.iterdir())) == 1  # fetched once
    storage.write_bytes(url, SHIPPED_MODEL.read_bytes() + b"\0")  # a replaced object is fetched anew
    assert storage.local_copy(url, cache) != local
    storage.write_bytes(url, SHIPPED_MODEL.read_bytes())
    assert Storage().local_copy(str(SHIPPED_MODEL)) == str(SHIPPED_MODEL)  # local paths as they are

    with gzip.open(shared_data / "wikipedia/enwiki-sample.jsonl.gz", "rt") as fh:
        arts = [json.loads(line) for _, line in zip(range(12), fh)]
    docs = schema.from_rows([{schema.ID: a["id"], schema.TEXT: a["text"], schema.URL: a["url"]} for a in arts])
    scores = {}
    for where, path in (("store", url), ("disk", str(SHIPPED_MODEL))):
        cfg = parse_config({"input": {"paths": ["x"]}, "output": {"path": "o"},
                            "classifiers": {"wiki_quality": {"enabled": True, "model_path": path}}})
        entry = next(e for e in registry.ENTRIES if e.path == "classifiers.wiki_quality")
        section = _with_local_models(registry.section_of(cfg, entry), storage)
        assert not section.model_path.startswith("s3://")
        scores[where] = entry.load()(section)(docs).column(schema.WIKI_SCORE).to_pylist()
    assert scores["store"] == scores["disk"] and all(s is not None for s in scores["store"])
