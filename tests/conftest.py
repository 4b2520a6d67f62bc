"""Shared fixtures: the real data folder and one local Ray session for the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CURATE_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data folder not found at {SHARED_DATA} (set CURATE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def cc_http_server():
    """A Common-Crawl-shaped server on 127.0.0.1 (tests/cc_server.py), empty; tests fill it."""
    from cc_server import serve

    srv = serve()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that needs it (~5 s and ~1 GB to start)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",  # never a cluster some `ray start` left running on this machine
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}},
        )
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def wiki_api(shared_data):
    """A MediaWiki-API-shaped server on 127.0.0.1 over the real articles of the shared sample."""
    import gzip
    import json
    import threading

    from wiki_server import WikiServer

    with gzip.open(shared_data / "wikipedia" / "enwiki-sample.jsonl.gz", "rt") as fh:
        server = WikiServer([json.loads(line) for line in fh])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
