"""Local folders and ``s3://`` URIs behind one small interface with atomic, retried writes.

Built on :mod:`pyarrow.fs`. S3 credentials come from the standard AWS chain (environment,
shared config, instance profile); an S3-compatible endpoint (MinIO, moto, Ceph) is taken from the
standard ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` variables or given explicitly.

Atomicity: a local write goes to a hidden temporary name in the same folder, then is renamed;
an S3 object only becomes visible when its upload completes. Either way a reader never sees a
partial file, so "the file exists" can serve as a completion marker.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import pyarrow.fs as pafs

from prtreid.errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")
_PERMANENT = (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError)
_PERMANENT_ERRNO = (errno.ENAMETOOLONG, errno.EROFS)
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: mkstemp's files are 0600, a finished file gets the usual mode
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@:]*:[^@]*@")
"""The ``user:secret@`` part of a URI (a secret may hold ``/``, as AWS secret keys do)."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name beside ``path``; renamed onto ``path`` when the block succeeds, removed otherwise.

    The name, ``.NAME.PID.RANDOM.tmp``, carries the writer's process id, so that what a killed
    process left behind can be told from what a running one is writing (:func:`remove_stale_temps`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def temp_name(name: str) -> str:
    """A hidden name beside ``name`` for a folder being written, in the form :func:`remove_stale_temps` knows."""
    return f".{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"


def is_temp_name(name: str) -> bool:
    """Whether a file or folder name is one :func:`atomic_path` or :func:`temp_name` gives: not a finished one."""
    return name.startswith(".") and name.endswith(".tmp")


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: str | Path, names: Iterable[str]) -> list[Path]:
    """Remove the temporaries that :func:`atomic_path` made for ``names`` in ``folder`` and that a process
    no longer running left (one killed while it wrote); returns what was removed.

    Temporaries of running processes are kept: they may be writing. A temporary may be a folder
    (``.NAME.PID.RANDOM.tmp`` made by another writer in the same form).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = "|".join(re.escape(n) for n in names)
    pattern = re.compile(rf"\.(?:{wanted})\.(\d+)\.[A-Za-z0-9_]+\.tmp")
    removed = []
    for entry in folder.iterdir():
        match = pattern.fullmatch(entry.name)
        if match is None or process_alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        log.info("removed %s, left by a process that was killed while it wrote", entry)
        removed.append(entry)
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a local file so that readers see the old file or the whole new one, never a part."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """UTF-8 text through :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def s3_filesystem(endpoint: str | None = None, region: str | None = None) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem; ``endpoint`` like ``http://127.0.0.1:9000`` overrides AWS's.

    Without ``region`` (or ``AWS_REGION`` / ``AWS_DEFAULT_REGION``), the AWS SDK finds it as usual
    (``~/.aws/config``, instance metadata).
    """
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    kwargs: dict[str, object] = {"region": region} if region else {}
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs |= {"endpoint_override": parsed.netloc, "scheme": parsed.scheme or "https"}
    return pafs.S3FileSystem(**kwargs)


def redact_uri(uri: str) -> str:
    """``uri`` with the credentials of a ``scheme://user:secret@host`` part replaced by ``***``, for messages."""
    return _USERINFO.sub(r"\1***@", uri)


def check_no_credentials(uri: str) -> None:
    """Refuse a URI that carries credentials (``s3://KEY:SECRET@bucket``): they would be echoed in logs and reports.

    Raises:
        ConfigError: the URI has a ``user:secret@`` part (the message shows it redacted).
    """
    if _USERINFO.match(uri):
        raise ConfigError(f"{redact_uri(uri)}: a URI with credentials (user:secret@) is refused; give S3 "
                          "credentials through the AWS chain (environment, AWS_PROFILE, instance role)")


def name_problem(name: str, what: str) -> str | None:
    """Why ``name`` cannot be one file or folder name, or ``None`` when it can.

    Names from input files and arguments (a sequence's name, a run's, a sweep's) become file and folder
    names under an output folder: a path in one would write outside it.
    """
    if not name.strip():
        return f"{what} is empty"
    if name in (".", "..") or "/" in name or "\\" in name or any(ord(c) < 32 for c in name):
        return f"{what} {name!r} must be one file or folder name (no '/', backslash, control character, '.' or '..')"
    return None


def check_folder_name(name: str, what: str) -> None:
    """Refuse ``name`` unless it is one folder name (a run or study name that becomes a folder in storage).

    Raises:
        ConfigError: see :func:`name_problem`.
    """
    if problem := name_problem(name, what):
        raise ConfigError(problem)


def split_uri(uri: str, endpoint: str | None = None) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the root path of a local path or ``s3://bucket/prefix``."""
    check_no_credentials(uri)
    if uri.startswith("s3://"):
        return s3_filesystem(endpoint), uri[len("s3://"):].rstrip("/")
    if uri.startswith("s3:/"):  # what pathlib.Path makes of s3://: never a local folder named "s3:"
        raise ConfigError(f"{uri!r}: an S3 URI needs two slashes (s3://bucket/prefix)")
    if "://" in uri and not uri.startswith("file://"):
        raise ConfigError(f"unsupported storage URI {redact_uri(uri)!r} (a local path or s3://bucket/prefix)")
    path = os.path.abspath(uri[len("file://"):] if uri.startswith("file://") else uri)
    return pafs.LocalFileSystem(), path


class Storage:
    """Files under a root (local folder or S3 prefix), addressed by relative names ``a/b.txt``."""

    def __init__(self, uri: str, endpoint: str | None = None, retries: int = 4, backoff: float = 0.5) -> None:
        self.uri = str(uri)
        self.endpoint = endpoint
        self.fs, self.root = split_uri(self.uri, endpoint)
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)
        self.retries = retries
        self.backoff = backoff

    def __reduce__(self) -> tuple[type, tuple]:  # pyarrow filesystems are rebuilt on Ray workers
        return Storage, (self.uri, self.endpoint, self.retries, self.backoff)

    def path(self, name: str) -> str:
        """Full filesystem path of a relative name."""
        return f"{self.root}/{name}" if name else self.root

    def url(self, name: str) -> str:
        """Human-readable location of a relative name (for reports)."""
        return f"s3://{self.path(name)}" if not self.is_local else self.path(name)

    def exists(self, name: str) -> bool:
        """Whether a file exists."""
        info = self._retry(lambda: self.fs.get_file_info(self.path(name)), f"stat {name}")
        return info.type == pafs.FileType.File

    def read_bytes(self, name: str) -> bytes:
        """Contents of a file."""
        def read() -> bytes:
            with self.fs.open_input_stream(self.path(name)) as fh:
                return fh.read()
        return self._retry(read, f"read {name}")

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write atomically (readers never see a partial file), retrying transient errors."""
        self._retry(lambda: self._write_once(name, data), f"write {name}")

    def write_text(self, name: str, text: str) -> None:
        """UTF-8 text through :meth:`write_bytes`."""
        self.write_bytes(name, text.encode("utf-8"))

    def list(self, prefix: str = "") -> list[str]:
        """Relative names of the files below ``prefix`` (recursive), sorted."""
        selector = pafs.FileSelector(self.path(prefix), allow_not_found=True, recursive=True)
        infos = self._retry(lambda: self.fs.get_file_info(selector), f"list {prefix}")
        base = len(self.root) + 1
        return sorted(i.path[base:] for i in infos if i.type == pafs.FileType.File)

    def delete(self, name: str) -> None:
        """Remove a file if it exists."""
        if self.exists(name):
            self._retry(lambda: self.fs.delete_file(self.path(name)), f"delete {name}")

    def check_bucket(self) -> None:
        """Fail now, not after hours of work, when an ``s3://`` root's bucket does not exist.

        Raises:
            FileNotFoundError: no such bucket (a local root always passes: folders are created).
        """
        if self.is_local:
            return
        bucket = self.root.split("/", 1)[0]
        info = self._retry(lambda: self.fs.get_file_info(bucket), f"stat bucket {bucket}")
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{self.uri}: no such bucket {bucket!r}")

    def check_writable(self) -> None:
        """Fail now, not after hours of work, where results cannot be written.

        A local root gets a probe file, written and removed; an ``s3://`` root only its bucket
        checked (a probe object would leave versions behind in a versioned bucket).

        Raises:
            FileNotFoundError: no such bucket.
            ConfigError: a local root cannot be written (a file in the way, no permission, a read-only disk).
        """
        self.check_bucket()
        if not self.is_local:
            return
        probe = ".prtreid-write-probe"
        try:
            self.write_bytes(probe, b"")
            self.delete(probe)
        except OSError as exc:
            raise ConfigError(f"{self.uri}: cannot write there ({type(exc).__name__}: {exc})") from None

    def _write_once(self, name: str, data: bytes) -> None:
        if self.is_local:
            atomic_write_bytes(self.path(name), data)
            return
        with self.fs.open_output_stream(self.path(name)) as fh:
            fh.write(data)

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except (OSError, ConnectionError) as exc:
                permanent = isinstance(exc, _PERMANENT) or getattr(exc, "errno", None) in _PERMANENT_ERRNO or any(
                    code in str(exc) for code in ("NO_SUCH_BUCKET", "ACCESS_DENIED"))  # S3 errors no retry mends
                if permanent or attempt == self.retries:
                    raise
                delay = self.backoff * 2 ** attempt
                log.warning("storage %s failed (%s); retry %d/%d in %.1fs",
                            what, type(exc).__name__, attempt + 1, self.retries, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")
