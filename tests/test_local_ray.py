"""A private local Ray leaves nothing behind in ``/tmp`` unless asked to keep its session files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_START = """
import sys
from prtreid.distributed.runtime import start_local_ray
info = start_local_ray(num_cpus=1, tmpdir=sys.argv[1] or None, include_dashboard=False)
print(info["session_dir"])
"""


def _session_dir(tmpdir: str) -> Path:
    """Start a local Ray in a child process that exits without stopping it; its session folder."""
    done = subprocess.run([sys.executable, "-c", _START, tmpdir], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_folder_ray_made_for_itself_is_removed_at_exit_and_a_given_one_kept() -> None:
    made = _session_dir("")
    assert made.parts[:2] == ("/", "tmp") and made.parent.parent.name.startswith("ray-")
    assert not made.parent.parent.exists()

    given = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # pytest's tmp_path is too long for Ray's sockets
    try:
        session = _session_dir(str(given))
        assert session.is_relative_to(given) and (session / "logs").is_dir()
    finally:
        shutil.rmtree(given, ignore_errors=True)
