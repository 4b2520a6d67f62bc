"""Starting or joining Ray, and telling the user where the dashboard is.

Ray >= 2.52 can protect the dashboard with a bearer token; 2.60 turns it on for a local
`ray.init()`. We keep it on by default (`ray.dashboard_auth: token`): the printed URL opens a
prompt that takes the token from `ray get-auth-token` (stored in ~/.ray/auth_token). With
`dashboard_auth: off` the embedded cluster starts with RAY_AUTH_MODE=disabled, allowed only
while the dashboard listens on loopback.
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

    def banner(self) -> str:
        if not self.dashboard_url:
            return "Ray dashboard: not running (install ray[default])"
        msg = f"Ray dashboard: {self.dashboard_url}"
        if self.token_auth:
            msg += "  (token auth on: paste the token printed by `ray get-auth-token` when the page asks)"
        return msg


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start(cfg: RayConfig) -> Session:
    if cfg.dashboard_auth == "off" and not (cfg.address or os.environ.get("RAY_ADDRESS")):
        if not _is_loopback(cfg.dashboard_host):
            raise ValueError("ray.dashboard_auth: 'off' is only allowed with a loopback ray.dashboard_host")
        # Must be set before Ray reads its config.
        os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray

    address = cfg.address or os.environ.get("RAY_ADDRESS")
    joined = bool(address) or ray.is_initialized()
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            kwargs = {}
            if cfg.object_store_memory_gb:
                kwargs["object_store_memory"] = int(cfg.object_store_memory_gb * 2**30)
            ray.init(
                num_cpus=cfg.num_cpus,
                include_dashboard=True,
                dashboard_host=cfg.dashboard_host,
                dashboard_port=cfg.dashboard_port,
                log_to_driver=False,
                configure_logging=False,
                **kwargs,
            )
    url = None
    try:
        url = ray.worker.get_dashboard_url() or None  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 -- no dashboard in a minimal install or a joined session
        url = None
    if url and not url.startswith("http"):
        url = "http://" + url
    token = _token_auth_enabled()
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return Session(dashboard_url=url, token_auth=token, joined=joined, num_cpus=cpus)


def _token_auth_enabled() -> bool:
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled

        return bool(is_token_auth_enabled())
    except Exception:  # noqa: BLE001 -- older Ray without token auth
        return False
