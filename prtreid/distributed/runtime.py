"""Starting or joining Ray, and mapping the project's storage URIs onto Ray Train's storage.

Three ways to get a Ray runtime:

* :func:`start_local_ray`: a private single-machine Ray for tests, benchmarks and laptop runs. It
  binds to the loopback interface only, keeps its session files under ``tmpdir`` and caps the object
  store.
* :func:`connect`: what entrypoints call. An explicit address (``auto``, ``HOST:PORT``,
  ``ray://HOST:10001``) joins that cluster; otherwise ``RAY_ADDRESS`` (set by ``ray job submit``
  for the job's driver) joins the cluster the job runs on; otherwise a local Ray is started.
* nothing: when Ray is already initialised in this process, both functions keep it.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow.fs as pafs
import ray

from prtreid.errors import ConfigError
from prtreid.storage import split_uri

log = logging.getLogger(__name__)

# Loopback-only, private Ray: set only where the caller has not chosen otherwise.
LOCAL_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "GLOO_SOCKET_IFNAME": "lo",
}
DEFAULT_OBJECT_STORE = 1_000_000_000


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_local_ray(num_cpus: int = 2, tmpdir: str | Path | None = None, *, num_gpus: int | None = None,
                    object_store_memory: int | None = DEFAULT_OBJECT_STORE, include_dashboard: bool = True,
                    dashboard_port: int | None = None) -> dict[str, Any]:
    """Start a private Ray on this machine, listening on 127.0.0.1 only (no-op if already connected).

    Args:
        num_cpus, num_gpus: resources Ray may hand out (``num_gpus=None``: Ray detects them).
        tmpdir: folder of Ray's session files (``RAY_TMPDIR``), kept after the run; default a new
            folder in ``/tmp`` (short: Ray's socket paths must fit in 107 characters), removed when
            this process exits.
        object_store_memory: object store size in bytes; ``None`` lets Ray take 30% of memory.
        include_dashboard: the dashboard (needed by ``ray job submit``; Train/Tune were seen to
            hang at start-up without it on 2 CPUs).
        dashboard_port: its port on 127.0.0.1; default a free one (8265 may belong to a cluster).

    Returns:
        Ray's address info (``address``, ``webui_url``, ``session_dir``, ...).
    """
    if ray.is_initialized():
        return {"address": ray.get_runtime_context().gcs_address}
    _loopback_only()
    short = "/tmp" if os.path.isdir("/tmp") else None  # TMPDIR can be long (macOS: /var/folders/...)
    tmp = Path(tmpdir) if tmpdir else Path(tempfile.mkdtemp(prefix="ray-", dir=short))
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["RAY_TMPDIR"] = str(tmp)
    kwargs: dict[str, Any] = {"address": "local", "num_cpus": num_cpus, "include_dashboard": include_dashboard,
                              "object_store_memory": object_store_memory}
    if num_gpus is not None:
        kwargs["num_gpus"] = num_gpus
    if include_dashboard:
        kwargs |= {"dashboard_host": "127.0.0.1", "dashboard_port": dashboard_port or free_port()}
    context = ray.init(**kwargs)
    if not tmpdir:
        atexit.register(_remove_after_shutdown, tmp)  # runs before the exit hook ray.init registered
    log.info("started a local Ray (%d CPUs) in %s, dashboard %s", num_cpus, tmp, context.dashboard_url or "off")
    return dict(context.address_info)


def _remove_after_shutdown(tmp: Path) -> None:
    """Stop Ray, waiting for its processes (its own exit hook does not), then remove its session files."""
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


def _loopback_only() -> None:
    """Environment of a private Ray; Ray's child processes read it when they start."""
    for key, value in LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    # This process read RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when it imported ray, maybe before the
    # line above: without this, ray.init resolves 127.0.0.1 to the machine's external address
    # and its servers listen on every interface.
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] != "0"


def connect(address: str | None = None, num_cpus: int | None = None) -> dict[str, Any]:
    """Join a Ray cluster (``address``, else ``RAY_ADDRESS``), or start a local one.

    Returns Ray's address info, with ``local`` telling whether a private Ray was started.
    """
    if ray.is_initialized():
        return {"address": ray.get_runtime_context().gcs_address, "local": False}
    if address or os.environ.get("RAY_ADDRESS"):
        context = ray.init(address=address)  # None: Ray reads RAY_ADDRESS itself
        log.info("joined the Ray cluster at %s", context.address_info.get("address"))
        return dict(context.address_info) | {"local": False}
    info = start_local_ray(num_cpus or os.cpu_count() or 1)  # training moves no data through the store
    return info | {"local": True}


def check_fits(request: dict[str, float], private: bool, what: str) -> None:
    """Refuse a per-task resource request (``{"CPU": 1, "GPU": 0.5}``) that a private local Ray can never place.

    A task runs on one node, so the request must fit a single node's resources, not the cluster's sum.
    Ray would wait for ever. A cluster may gain nodes from its autoscaler, so there the same case
    is a warning only.

    Raises:
        ConfigError: ``private`` and the request exceeds this machine's Ray resources.
    """
    asked = {k.upper(): v for k, v in request.items() if v > 0}
    most = most_per_node(asked, [n["Resources"] for n in ray.nodes() if n.get("Alive")])
    if most is None:
        return
    message = (f"{what} asks for {_amounts(asked)} on one node; no Ray node has that "
               f"(the most one node has: {_amounts(most)})")
    if private:
        raise ConfigError(f"{message}: a local Ray on this machine could never start it")
    log.warning("%s now; it waits until a node that has them joins", message)


def most_per_node(request: dict[str, float], nodes: list[dict[str, float]]) -> dict[str, float] | None:
    """``None`` when some node of ``nodes`` holds all of ``request``; else the most of each resource one node has."""
    if any(all(node.get(k, 0.0) >= v for k, v in request.items()) for node in nodes):
        return None
    return {k: max((node.get(k, 0.0) for node in nodes), default=0.0) for k in request}


def _amounts(resources: dict[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in resources.items())


def stop_ray() -> None:
    """Shut down this process's Ray connection (and a local Ray it started)."""
    ray.shutdown()


def pickle_by_value(module: ModuleType) -> None:
    """Let Ray ship ``module``'s functions and classes by value, for code workers cannot import.

    Ray pickles importable code by reference; a module that only the driver has (a notebook helper,
    a test module, a script beside the job) must be shipped by value instead.
    """
    ray.cloudpickle.register_pickle_by_value(module)


def storage_for_ray(uri: str, endpoint: str | None = None) -> tuple[str, pafs.FileSystem | None]:
    """``(storage_path, storage_filesystem)`` for Ray's ``RunConfig`` from a folder or ``s3://`` URI.

    A local folder becomes its absolute path with no filesystem (Ray's default). ``s3://bucket/prefix``
    becomes ``bucket/prefix`` with a pyarrow S3 filesystem whose endpoint is ``endpoint`` or, when
    unset, ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (MinIO, moto, Ceph). Credentials are not
    part of the filesystem: every Ray worker resolves them itself (environment, instance profile).
    """
    fs, path = split_uri(uri, endpoint)
    if isinstance(fs, pafs.LocalFileSystem):
        Path(path).mkdir(parents=True, exist_ok=True)
        return path, None
    return path, fs


def storage_uri(path: str, fs: pafs.FileSystem | None) -> str:
    """The URI users see for a path inside a Ray storage filesystem (``s3://`` for S3)."""
    return f"s3://{path}" if isinstance(fs, pafs.S3FileSystem) else path
