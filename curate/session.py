"""Starting or joining Ray, and telling the user where the dashboard is.

Ray >= 2.52 can protect the dashboard with a bearer token; 2.60 turns it on for a local
`ray.init()`. We keep it on by default (`ray.dashboard_auth: token`): the printed URL opens a
prompt that takes the token from `ray get-auth-token` (stored in ~/.ray/auth_token). With
`dashboard_auth: off` the embedded cluster starts with RAY_AUTH_MODE=disabled, allowed only
while the dashboard listens on loopback.

A cluster is joined only when asked (`ray.address` or RAY_ADDRESS); otherwise the run starts
its own embedded Ray even if `ray start` left a cluster running on this machine. Joining a
cluster with token auth sends the local token (Ray's default places) when RAY_AUTH_MODE is unset.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from curate.config import RayConfig


@dataclass
class Session:
    dashboard_url: str | None
    token_auth: bool
    joined: bool  # True when we connected to an existing cluster
    num_cpus: int
    address: str | None = None  # the joined cluster's GCS address

    def banner(self) -> str:
        where = f"joined the Ray cluster at {self.address}" if self.joined else "started a local Ray"
        msg = f"{where} ({self.num_cpus} CPUs)\n"
        if not self.dashboard_url:
            return msg + "Ray dashboard: " + ("none reported by the cluster" if self.joined else "not running (install ray[default])")
        msg += f"Ray dashboard: {self.dashboard_url}"
        if self.token_auth:
            msg += ("\n  token auth is on: when the page asks, paste the token that `ray get-auth-token` prints"
                    " (it is kept in ~/.ray/auth_token)")
        return msg


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start(cfg: RayConfig) -> Session:
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if not address and cfg.dashboard_auth == "off" and not _is_loopback(cfg.dashboard_host):
        raise ValueError("ray.dashboard_auth: 'off' is only allowed with a loopback ray.dashboard_host")
    import ray

    url = None
    if ray.is_initialized():
        joined = True  # the caller's Ray (a notebook, the test suite): used as it is
    elif address:
        joined = True
        if "RAY_AUTH_MODE" not in os.environ and _have_token():
            # Ray turns token auth on by default for `ray start --head` whenever a token exists,
            # but a driver given an explicit address never does, and is then refused. A token
            # here (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) means: send it.
            _set_auth_mode("token")
        context = ray.init(address=address, log_to_driver=False)
        url = getattr(context, "dashboard_url", None) or None
    else:
        joined = False
        # Said explicitly, so Ray does not print its own notice about the default; our banner
        # tells the user what to do instead.
        _set_auth_mode("disabled" if cfg.dashboard_auth == "off" else "token")
        kwargs = {}
        if cfg.object_store_memory_gb:
            kwargs["object_store_memory"] = int(cfg.object_store_memory_gb * 2**30)
        context = ray.init(
            # "local": always a new embedded cluster. Without it ray.init() joins whatever
            # `ray start` last left running on this machine, which only an address may ask for.
            address="local",
            num_cpus=cfg.num_cpus,
            include_dashboard=True,
            dashboard_host=cfg.dashboard_host,
            dashboard_port=cfg.dashboard_port,
            log_to_driver=False,
            configure_logging=False,
            **kwargs,
        )
        url = getattr(context, "dashboard_url", None) or None
    if url and not url.startswith("http"):
        url = "http://" + url
    token = _token_auth_enabled()
    cpus = int(ray.cluster_resources().get("CPU", 1))
    gcs = ray.get_runtime_context().gcs_address if joined else None
    return Session(dashboard_url=url, token_auth=token, joined=joined, num_cpus=cpus, address=gcs)


def _set_auth_mode(mode: str) -> None:
    """RAY_AUTH_MODE for the cluster we are about to start. Ray reads it into a cached config
    when `ray` is first imported, so refresh that cache if the import already happened (what
    Ray itself does when it turns token auth on by default)."""
    import sys

    os.environ["RAY_AUTH_MODE"] = mode
    if "ray._raylet" in sys.modules:
        from ray._raylet import Config

        Config.initialize("")


def _have_token() -> bool:
    """Whether Ray finds an auth token, wherever it looks (env, token path, ~/.ray/auth_token)."""
    try:
        from ray._raylet import AuthenticationTokenLoader

        return bool(AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True))
    except Exception:  # noqa: BLE001 -- older Ray without token auth
        return False


def _token_auth_enabled() -> bool:
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled

        return bool(is_token_auth_enabled())
    except Exception:  # noqa: BLE001 -- older Ray without token auth
        return False
