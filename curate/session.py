"""Starting or joining Ray, and telling the user where the dashboard is.

Ray >= 2.52 can protect the dashboard with a bearer token; 2.60 turns it on for a local
`ray.init()`. We keep it on by default (`ray.dashboard_auth: token`): the printed URL opens a
prompt that takes the token from `ray get-auth-token` (stored in ~/.ray/auth_token). With
`dashboard_auth: off` the embedded cluster starts with RAY_AUTH_MODE=disabled, allowed only
while the dashboard listens on loopback.

An embedded cluster is locked to this machine: every Ray server (GCS, raylet, object manager,
core workers, dashboard and runtime-env agents, metrics) binds to 127.0.0.1 in either auth mode,
so nothing of it is reachable from another host. Ray replaces a loopback node IP by the host's
address unless it runs in its single-machine mode (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`), which
is what a local run sets. A small reaper process ends the run's Ray processes if the driver is
killed (Ray leaves its dashboard and runtime-env agents running otherwise).

A cluster is joined only when asked (`ray.address` or RAY_ADDRESS); otherwise the run starts
its own embedded Ray even if `ray start` left a cluster running on this machine. When
RAY_AUTH_MODE is unset, joining a cluster that has token auth on sends the token from Ray's usual
places (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token); one without auth gets none.
"""

from __future__ import annotations

import ipaddress
import os
import select
import signal
import subprocess
import sys
from dataclasses import dataclass

from curate.config import RayConfig


@dataclass
class Session:
    dashboard_url: str | None
    token_auth: bool
    joined: bool  # True when we connected to an existing cluster
    num_cpus: int
    address: str | None = None  # the joined cluster's GCS address
    dashboard_off: bool = False  # a local Ray started without it (ray.dashboard: false)

    def banner(self) -> str:
        where = f"joined the Ray cluster at {self.address}" if self.joined else "started a local Ray"
        msg = f"{where} ({self.num_cpus} CPUs)\n"
        if self.dashboard_off:
            return msg + "Ray dashboard: off (ray.dashboard: false)"
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
        if "RAY_AUTH_MODE" not in os.environ and _cluster_wants_token(address):
            # `ray start --head` turns token auth on whenever a token exists on the head, but a
            # driver given an explicit address never does, and is refused. The mode must match
            # the cluster's (a driver in token mode on a cluster without auth hangs in Ray Data,
            # its workers cannot call back), so it is switched on only for a cluster that asks.
            _set_auth_mode("token")
        context = ray.init(address=address, log_to_driver=False)
        url = getattr(context, "dashboard_url", None) or None
    else:
        joined = False
        # Said explicitly, so Ray does not print its own notice about the default; our banner
        # tells the user what to do instead.
        _set_auth_mode("disabled" if cfg.dashboard_auth == "off" else "token")
        _bind_to_loopback()
        start_reaper()
        kwargs = {}
        if cfg.object_store_memory_gb:
            kwargs["object_store_memory"] = int(cfg.object_store_memory_gb * 2**30)
        context = ray.init(
            # "local": always a new embedded cluster. Without it ray.init() joins whatever
            # `ray start` last left running on this machine, which only an address may ask for.
            address="local",
            _node_ip_address=LOOPBACK,
            num_cpus=cfg.num_cpus,
            include_dashboard=cfg.dashboard,
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
    return Session(dashboard_url=url, token_auth=token, joined=joined, num_cpus=cpus, address=gcs,
                   dashboard_off=not joined and not cfg.dashboard)


LOOPBACK = "127.0.0.1"


def _bind_to_loopback() -> None:
    """Make Ray take 127.0.0.1 as this node's IP (it binds its servers to the node IP). Ray reads
    the switch when `ray` is imported; if that already happened, set the constant it became."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


_reaper: subprocess.Popen | None = None


def start_reaper() -> None:
    """Start the process that ends this driver's Ray processes once the driver is gone, however
    it went (SIGKILL included): it holds the read end of a pipe only the driver writes to."""
    global _reaper
    if _reaper is None or _reaper.poll() is not None:
        _reaper = subprocess.Popen(
            [sys.executable, "-c", "from curate.session import reap; reap()", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal must not reach it first
        )


def reap(poll_s: float = 0.5, settled_poll_s: float = 4.0, grace_s: float = 3.0) -> None:
    """Reaper main: keep a list of the driver's descendants (the Ray agents are re-parented to
    init when their raylet dies, so they must be known beforehand); when the driver's pipe closes,
    end those still alive (SIGTERM, then SIGKILL: the agents ignore SIGTERM for a while).

    The list is refreshed every `poll_s` while processes appear (Ray's start, a pool's actors),
    and ever less often, up to `settled_poll_s`, while none does: walking the process table twice
    a second cost a run's reaper 2.6 s of CPU. The driver's exit is seen at once either way."""
    import psutil

    driver = psutil.Process(int(sys.argv[1]))
    known: dict[int, float] = {}
    interval = poll_s
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], interval)
        if ready and not os.read(sys.stdin.fileno(), 1024):
            break  # EOF: the driver exited
        try:
            new = [child for child in driver.children(recursive=True) if child.pid not in known]
        except psutil.NoSuchProcess:
            break
        for child in new:
            try:
                known[child.pid] = child.create_time()
            except psutil.Error:
                continue
        interval = poll_s if new else min(2 * interval, settled_poll_s)
    left = []
    for pid, created in known.items():
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and pid != os.getpid():
                proc.send_signal(signal.SIGTERM)
                left.append(proc)
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(left, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass


def _set_auth_mode(mode: str) -> None:
    """RAY_AUTH_MODE for the cluster we are about to start. Ray reads it into a cached config
    when `ray` is first imported, so refresh that cache if the import already happened (what
    Ray itself does when it turns token auth on by default)."""
    import sys

    os.environ["RAY_AUTH_MODE"] = mode
    if "ray._raylet" in sys.modules:
        from ray._raylet import Config

        Config.initialize("")


def _cluster_wants_token(address: str, timeout_s: float = 10.0) -> bool:
    """Whether the cluster at host:port has token auth on: its GCS, asked for the cluster id
    without a token, refuses as unauthenticated. False when it cannot tell (`auto`, `ray://`,
    TLS, unreachable): then ray.init reports the real problem itself."""
    if "://" in address or ":" not in address:
        return False
    try:
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:  # pragma: no cover -- a Ray without these modules predates token auth
        return False
    with grpc.insecure_channel(address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout_s)
        except grpc.RpcError as err:
            return err.code() == grpc.StatusCode.UNAUTHENTICATED
    return False


def _token_auth_enabled() -> bool:
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled

        return bool(is_token_auth_enabled())
    except Exception:  # noqa: BLE001 -- older Ray without token auth
        return False
