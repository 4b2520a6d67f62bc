"""The Ray dashboard URL that `curate run` prints opens for the user: with token auth (the
default) the page loads and the token from `ray get-auth-token` unlocks the API; with
`dashboard_auth: off` on loopback no token is needed; off on a public interface is refused.
In both modes every port the embedded Ray listens on is on loopback, and a driver killed with
SIGKILL leaves no Ray process behind. Joining a cluster sends a token only to a cluster that has
token auth on."""

from __future__ import annotations

import ipaddress
import json
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
import yaml

from curate.config import RayConfig
from curate.session import start

# Each mode runs in a fresh interpreter: a process holds one Ray session, and the suite's
# shared session has no dashboard.
PROBE = textwrap.dedent(
    """
    import json, subprocess, sys
    import requests
    from curate import session
    from curate.config import RayConfig

    s = session.start(RayConfig(dashboard_port=0, num_cpus=1, dashboard_auth=sys.argv[1], dashboard=sys.argv[2] == "on"))
    url = s.dashboard_url
    out = {"url": url, "token_auth": s.token_auth, "banner": s.banner()}
    if url is None:
        print("RESULT " + json.dumps(out), flush=True)
        import time
        time.sleep(600)  # until the test kills this driver
    out["page"] = requests.get(url, timeout=30).status_code
    out["api_without_token"] = requests.get(url + "/api/jobs/", timeout=30).status_code
    if s.token_auth:
        token = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "get-auth-token"], capture_output=True,
                               text=True, check=True).stdout.strip()
        browser = requests.Session()  # the page posts the pasted token and keeps the cookie
        out["authenticate"] = browser.post(url + "/api/authenticate", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code
        out["api_with_token"] = browser.get(url + "/api/jobs/", timeout=30).status_code
    print("RESULT " + json.dumps(out), flush=True)
    import time
    time.sleep(600)  # until the test kills this driver
    """
)


def listening(pids: set[int]) -> list[tuple[str, int, str]]:
    """(address, port, process name) of every listening TCP socket of these processes."""
    out = []
    for c in psutil.net_connections(kind="tcp"):
        if c.status == psutil.CONN_LISTEN and c.pid in pids:
            try:
                name = psutil.Process(c.pid).name()
            except psutil.Error:
                continue
            out.append((c.laddr.ip, c.laddr.port, name))
    return out


def probe(mode: str, dashboard: str = "on") -> dict:
    """Start a session in a fresh driver, check its dashboard, list the sockets of the driver and
    every process below it, then SIGKILL the driver and see what of it is still alive."""
    proc = subprocess.Popen([sys.executable, "-c", PROBE, mode, dashboard], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 240
        while not line.startswith("RESULT ") and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()[-3000:]
        out = json.loads(line[len("RESULT "):])
        driver = psutil.Process(proc.pid)
        ray_procs = {p.pid: p for p in driver.children(recursive=True)}
        out["listening"] = listening({proc.pid, *ray_procs})
        out["processes"] = sorted({p.name() for p in ray_procs.values()})
        # The dashboard's modules run as processes of their own (ray-dashboard-NodeHead-0, ...); without
        # the dashboard Ray keeps only a minimal dashboard process, for its usage statistics.
        out["dashboard_modules"] = sum(" ".join(p.cmdline()).startswith("ray-dashboard-") for p in ray_procs.values())
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        _, alive = psutil.wait_procs(list(ray_procs.values()), timeout=30)
        out["left_behind"] = sorted(f"{p.pid} {p.name()}" for p in alive)
    finally:
        proc.kill()
        proc.wait()
    for p in alive:  # never leave a leak of a failed check running on the shared machine
        p.kill()
    return out


def assert_locked_down(run: dict) -> None:
    assert len(run["listening"]) >= 6, run["listening"]  # GCS, raylet, object manager, agents, workers, dashboard
    exposed = [s for s in run["listening"] if not ipaddress.ip_address(s[0]).is_loopback
               and not s[0].startswith("::ffff:127.")]
    assert exposed == [], exposed
    names = " ".join(run["processes"])
    assert "gcs_server" in names and "raylet" in names and "DashboardAgent" in names and "RuntimeEnvAgent" in names
    assert run["left_behind"] == []


@pytest.mark.slow
def test_printed_url_opens_with_the_token_and_without_auth_when_off():
    on = probe("token")
    assert on["url"].startswith("http://127.0.0.1:") and on["token_auth"]
    assert "ray get-auth-token" in on["banner"]
    assert on["page"] == 200 and on["api_without_token"] == 401
    assert on["authenticate"] == 200 and on["api_with_token"] == 200
    assert on["dashboard_modules"] >= 5
    assert_locked_down(on)

    off = probe("off")
    assert off["url"].startswith("http://127.0.0.1:") and not off["token_auth"]
    assert "get-auth-token" not in off["banner"]
    assert off["page"] == 200 and off["api_without_token"] == 200
    assert_locked_down(off)


@pytest.mark.slow
def test_a_local_ray_started_without_its_dashboard_runs_none_and_says_so():
    run = probe("token", dashboard="off")
    assert run["url"] is None and run["banner"].endswith("Ray dashboard: off (ray.dashboard: false)")
    assert run["dashboard_modules"] == 0
    assert "raylet" in " ".join(run["processes"]) and run["left_behind"] == []


@pytest.mark.parametrize("written", ["off", "false", "no", "'off'"])
def test_dashboard_auth_off_as_yaml_writes_it(written):
    """YAML reads a bare `off` as the boolean false; the user meant "off" either way."""
    assert RayConfig(**yaml.safe_load(f"dashboard_auth: {written}")).dashboard_auth == "off"
    assert RayConfig(**yaml.safe_load("dashboard_auth: token")).dashboard_auth == "token"


def test_auth_off_is_refused_on_a_public_interface():
    with pytest.raises(ValueError, match="dashboard_auth"):
        start(RayConfig(dashboard_host="0.0.0.0", dashboard_auth="off"))


def test_joining_sends_a_token_only_to_a_cluster_that_asks_for_one():
    """With an address and no RAY_AUTH_MODE, start() asks the cluster's GCS (without a token)
    whether it has token auth on: a driver in token mode on a cluster without auth hangs in Ray
    Data, one without a token on a token cluster is refused. Stand-in GCS servers here; a real
    token cluster from `ray start` is joined in test_cli_runs."""
    from concurrent import futures

    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    from curate.session import _cluster_wants_token

    class Gcs(gcs_service_pb2_grpc.NodeInfoGcsServiceServicer):
        def __init__(self, token_auth: bool) -> None:
            self.token_auth = token_auth

        def GetClusterId(self, request, context):  # noqa: N802 -- the RPC's name
            if self.token_auth:  # what Ray's server interceptor answers
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "InvalidAuthToken: Authentication token is missing")
            return gcs_service_pb2.GetClusterIdReply()

    for token_auth in (True, False):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        gcs_service_pb2_grpc.add_NodeInfoGcsServiceServicer_to_server(Gcs(token_auth), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            assert _cluster_wants_token(f"127.0.0.1:{port}") is token_auth
        finally:
            server.stop(None)
    # cannot tell: leave it to ray.init, which says what is wrong
    assert _cluster_wants_token("127.0.0.1:1", timeout_s=2) is False
    assert _cluster_wants_token("ray://head:10001") is False and _cluster_wants_token("auto") is False
