"""One local Ray per test session (per pytest-xdist worker under ``make test``), shared by its Ray tests.

It depends on :func:`s3_fixtures.s3_server` on purpose: Ray's workers inherit the environment of
the process that starts Ray, so the S3 endpoint and credentials must be exported before Ray starts
for workers to reach the session's moto_server.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

# a line Ray's log monitor forwards from a worker, "(MapWorker(...) pid=123) ...", possibly coloured: the
# session's Ray outlives each test, so a late line from an earlier test's job can reach a later test's stderr
_RAY_WORKER_LINE = re.compile(r"^(\x1b\[[0-9;]*m)?\(.*? pid=\d+\)")


def own_lines(text: str) -> list[str]:
    """The lines of captured output, without those Ray forwarded from its workers."""
    return [line for line in text.strip().splitlines() if not _RAY_WORKER_LINE.match(line)]


@pytest.fixture(scope="session")
def ray_session(s3_server: str) -> Iterator[dict[str, Any]]:
    """A local, loopback-only Ray with 2 CPUs and a capped object store; yields its address info."""
    from prtreid.distributed.runtime import start_local_ray, stop_ray

    tmp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must fit in 107 characters
    info = start_local_ray(num_cpus=2, tmpdir=tmp)
    try:
        yield info
    finally:
        stop_ray()
        shutil.rmtree(tmp, ignore_errors=True)
