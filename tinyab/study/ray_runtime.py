"""Ray for one search: a local instance (session files in a short temporary folder) or a cluster.

Every service of the local instance binds to 127.0.0.1 (see ``_loopback_node``) and keeps Ray's token
authentication, whose token file is private (0600); binding the dashboard elsewhere is the caller's
explicit choice and is announced with a warning. A dashboard that cannot start does not stop the
search: the reason is reported instead of the URL. A cluster given by address is left as it is.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import shutil
import signal
import socket
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tinyab.errors import UserError
from tinyab.records.lock import pid_alive

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
DASHBOARD_PORT = 8265


@dataclass(frozen=True)
class RayOptions:
    """Which Ray to run on: a cluster's address, or a local instance (with or without its dashboard)."""

    address: str | None = None
    dashboard: bool = True
    dashboard_host: str = "127.0.0.1"
    verbose: bool = False


@dataclass
class RayInfo:
    """What the driver tells the user about the Ray it runs on."""

    address: str
    local: bool
    dashboard_url: str | None = None
    notes: list[str] = field(default_factory=list)
    resources: dict[str, float] = field(default_factory=dict)


def quiet_tune() -> None:
    """tinyab prints its own progress and writes its own records: Tune's console output and per-trial
    logs would only repeat them (and Tune then warns that the logs it did not write are missing)."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    for name in ("ray.tune.analysis.experiment_analysis", "ray.tune.search.searcher", "ray.tune.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _private_token(create: bool = False) -> None:
    """The login token is a secret: readable by its owner only (Ray writes it 0644).

    With ``create`` (before a local Ray starts), a missing token file is created here, 0600, so that it
    is never readable by others, not even while Ray starts; Ray then finds it and uses it.
    """
    path = token_path()
    token_auth = os.environ.get("RAY_AUTH_MODE", "token").lower() == "token"
    if create and token_auth and not os.environ.get("RAY_AUTH_TOKEN") and not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))  # what Ray's own generator writes: 256 random bits
    if path.is_file() and path.stat().st_mode & 0o077:
        path.chmod(0o600)


def token_path() -> Path:
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


# Ray turns a node IP of 127.0.0.1 into the machine's outward address (services.resolve_ip_for_localhost)
# unless clusters are disabled, its default on macOS and Windows only; this variable (read into
# ray_constants.ENABLE_RAY_CLUSTER) disables them. With the node IP on loopback every service binds there:
# the gRPC servers of the GCS, raylet, object manager and workers (node IP == 127.0.0.1), and the
# dashboard agent, runtime-env agent and metrics servers (is_localhost(node IP)).
SINGLE_NODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextmanager
def _loopback_node() -> Iterator[None]:
    """While a local Ray starts and runs, its node IP is 127.0.0.1, so no service listens beyond it.

    Ray reads the variable when it is imported; if it was imported already (a test, a notebook) its
    constant is set too. Both are restored afterwards: a later cluster connection is not affected.
    """
    from ray._private import ray_constants

    env_before = os.environ.get(SINGLE_NODE_ENV)
    constant_before = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[SINGLE_NODE_ENV] = "0"  # also inherited by every Ray process started from here
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = constant_before
        if env_before is None:
            os.environ.pop(SINGLE_NODE_ENV, None)
        else:
            os.environ[SINGLE_NODE_ENV] = env_before


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4 loopback address mapped into IPv6 (how gRPC binds 127.0.0.1)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost"
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


TEMP_PREFIX = "tinyab-ray-"
DRIVER_PID = "tinyab-driver.pid"  # in a local Ray's temp dir: which driver owns it


def _short_temp_dir() -> str:
    """Ray's Unix sockets live under its temp dir; their paths must stay under ~107 characters. The
    driver's PID is written there so that a later command can clean up after a driver that died."""
    base = "/tmp" if Path("/tmp").is_dir() else None
    folder = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=base)
    (Path(folder) / DRIVER_PID).write_text(str(os.getpid()))
    return folder


def session_processes(folder: Path) -> list[int]:
    """PIDs of the processes of a local Ray session: its temp dir is in their command line or among
    their open files (the agents rename themselves, ``ray::DashboardAgent``, but keep their logs open)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            uses = str(folder) in (proc / "cmdline").read_bytes().decode(errors="replace")
            if not uses:
                uses = any(os.readlink(fd).startswith(str(folder)) for fd in (proc / "fd").iterdir())
        except OSError:
            continue
        if uses:
            found.append(int(proc.name))
    return found


def reap_orphans(base: Path = Path("/tmp")) -> list[str]:
    """End the Ray processes and remove the temp dirs that killed drivers left behind.

    A local Ray's processes carry its temp dir in their command lines; when the driver whose PID the
    dir records is gone, they are killed (SIGKILL, by PID) and the dir removed. Returns one note per
    cleaned-up session.
    """
    notes = []
    for folder in sorted(base.glob(f"{TEMP_PREFIX}*")):
        try:
            owner = int((folder / DRIVER_PID).read_text())
        except (OSError, ValueError):
            continue  # not ours, or being created
        if pid_alive(owner):
            continue
        pids = session_processes(folder)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        killed = len(pids)
        shutil.rmtree(folder, ignore_errors=True)
        notes.append(f"cleaned up after a driver that died (PID {owner}): {killed} Ray process(es), {folder}")
    return notes


def free_port(host: str, first: int = DASHBOARD_PORT, tries: int = 20) -> int | None:
    """The first port from ``first`` that ``host`` can bind (another Ray may hold 8265)."""
    for port in range(first, first + tries):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    return None


def _dashboard_status(url: str | None) -> str | None:
    """None when the dashboard answers at ``url``; else why not."""
    if not url:
        return "Ray did not start it (see Ray's dashboard log)"
    try:
        with urllib.request.urlopen(f"http://{url}/", timeout=5) as response:
            response.read(1)
    except urllib.error.HTTPError:
        return None  # it answered (e.g. 401 without the token)
    except OSError as err:
        return f"no answer at http://{url}/ ({err})"
    return None


def _describe_dashboard(info: RayInfo, url: str | None, wanted: bool, host: str) -> None:
    if not wanted:
        info.notes.append("dashboard: off (--no-dashboard)")
        return
    problem = _dashboard_status(url)
    if problem:
        info.notes.append(f"dashboard: not available, continuing without it: {problem}")
        return
    info.dashboard_url = f"http://{url}"
    info.notes.append(f"dashboard: http://{url} (login token in {token_path()})")
    if host not in LOCAL_HOSTS:
        info.notes.append(
            f"WARNING: the dashboard listens on {host}: anyone who can reach this machine can try it "
            "(token authentication stays on)"
        )


@contextmanager
def ray_session(
    address: str | None = None,
    *,
    dashboard: bool = True,
    dashboard_host: str = "127.0.0.1",
    verbose: bool = False,
) -> Iterator[RayInfo]:
    """Connect to ``address`` or start a local Ray; shut it down (and remove its files) afterwards.

    If this process is already connected to Ray (a test, a notebook), that connection is used as is.
    """
    quiet_tune()
    import ray

    if ray.is_initialized():
        yield RayInfo(address="(this process's Ray)", local=False, resources=ray.cluster_resources())
        return
    notes = reap_orphans()
    # a local Ray listens on loopback only; a cluster given by address is the user's own
    with contextlib.nullcontext() if address else _loopback_node():
        if not address:
            _private_token(create=True)
        temp_dir = None if address else _short_temp_dir()
        # Ray's own warnings (e.g. that token authentication is on) only with --verbose:
        # tinyab says what matters
        level = logging.INFO if verbose else logging.ERROR
        logging.getLogger("ray").setLevel(level)
        kwargs: dict = {"log_to_driver": verbose, "logging_level": level}
        if address:
            kwargs["address"] = address
        else:
            port = free_port(dashboard_host) if dashboard else None
            kwargs.update(_temp_dir=temp_dir, include_dashboard=None if port else False)
            if port:
                kwargs.update(dashboard_host=dashboard_host, dashboard_port=port)
        try:
            context = ray.init(**kwargs)
        except (ConnectionError, ValueError) as err:
            if temp_dir:
                shutil.rmtree(temp_dir, ignore_errors=True)
            if not address:
                raise UserError(f"cannot start a local Ray instance: {str(err).splitlines()[0]}") from None
            hint = ""
            if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
                hint = (
                    " (a cluster started with `ray start` requires its token: set RAY_AUTH_MODE=token and "
                    f"provide the token in {token_path()} or RAY_AUTH_TOKEN)"
                )
            raise UserError(
                f"--address: cannot connect to the Ray cluster at {address}: {str(err).splitlines()[0]}{hint}"
            ) from None
        try:
            info = RayInfo(
                address=address or context.address_info.get("gcs_address", "local"),
                local=not address,
                resources=ray.cluster_resources(),
                notes=notes,
            )
            _private_token()
            node_ip = context.address_info.get("node_ip_address", "")
            if not address and not is_loopback(node_ip):
                info.notes.append(
                    f"WARNING: Ray chose node IP {node_ip}: its services listen beyond this machine's "
                    "loopback (token authentication stays on)"
                )
            if address:
                url = context.dashboard_url
                info.dashboard_url = f"http://{url}" if url else None
                info.notes.append(f"dashboard: http://{url}" if url else "dashboard: the cluster has none")
            elif dashboard and not port:
                info.notes.append(
                    "dashboard: not available, continuing without it: "
                    f"ports {DASHBOARD_PORT}-{DASHBOARD_PORT + 19} on {dashboard_host} are all in use"
                )
            else:
                _describe_dashboard(info, context.dashboard_url, dashboard, dashboard_host)
            yield info
        finally:
            ray.shutdown()
            if temp_dir:
                shutil.rmtree(temp_dir, ignore_errors=True)
