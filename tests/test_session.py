"""The Ray dashboard URL that `curate run` prints opens for the user: with token auth (the
default) the page loads and the token from `ray get-auth-token` unlocks the API; with
`dashboard_auth: off` on loopback no token is needed; off on a public interface is refused."""

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
