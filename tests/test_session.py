"""The Ray dashboard URL that `curate run` prints opens for the user: with token auth (the
default) the page loads and the token from `ray get-auth-token` unlocks the API; with
`dashboard_auth: off` on loopback no token is needed; off on a public interface is refused.
Joining a cluster sends a token only to a cluster that has token auth on."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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

    s = session.start(RayConfig(dashboard_port=0, num_cpus=1, dashboard_auth=sys.argv[1]))
    url = s.dashboard_url
    out = {"url": url, "token_auth": s.token_auth, "banner": s.banner()}
    out["page"] = requests.get(url, timeout=30).status_code
    out["api_without_token"] = requests.get(url + "/api/jobs/", timeout=30).status_code
    if s.token_auth:
        token = subprocess.run([sys.argv[2], "get-auth-token"], capture_output=True, text=True, check=True).stdout.strip()
        browser = requests.Session()  # the page posts the pasted token and keeps the cookie
        out["authenticate"] = browser.post(url + "/api/authenticate", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code
        out["api_with_token"] = browser.get(url + "/api/jobs/", timeout=30).status_code
    print("RESULT " + json.dumps(out))
    """
)


def probe(mode: str) -> dict:
    ray_cli = str(Path(sys.executable).parent / "ray")
    proc = subprocess.run([sys.executable, "-c", PROBE, mode, ray_cli], capture_output=True, text=True, timeout=180)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.slow
def test_printed_url_opens_with_the_token_and_without_auth_when_off():
    on = probe("token")
    assert on["url"].startswith("http://127.0.0.1:") and on["token_auth"]
    assert "ray get-auth-token" in on["banner"]
    assert on["page"] == 200 and on["api_without_token"] == 401
    assert on["authenticate"] == 200 and on["api_with_token"] == 200

    off = probe("off")
    assert off["url"].startswith("http://127.0.0.1:") and not off["token_auth"]
    assert "get-auth-token" not in off["banner"]
    assert off["page"] == 200 and off["api_without_token"] == 200


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
