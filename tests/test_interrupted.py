"""Commands interrupted (Ctrl-C, SIGKILL) at a chosen point, then run again with the same arguments.

Each command runs as a real subprocess and gets a real signal once a given file appears; the rerun
must finish from what was written, leave no temporary file behind, and no file that looks whole
but is not.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from prtreid.cli import main

TINY_TRAIN = ["--set", "model.image_size=[64,32]", "--set", "crops.store_height=64", "--set", "crops.min_height=8",
              "--set", "crops.max_per_identity=6", "--set", "crops.eval_fraction=0.25",
              "--set", "sampler.k_instances=2", "--set", "sampler.epoch=identities", "--set", "train.device=cpu",
              "--set", "model.backbone=resnet10t"]


def run_until(argv: list[str], ready: Callable[[], bool], sig: int, log: Path, timeout: float = 180) -> int:
    """Run ``prtreid ARGV``, send ``sig`` as soon as ``ready()`` holds; its exit status.

    Fails the test when the command ended before ``ready()`` held (the signal would test nothing).
    """
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "prtreid.cli", *argv], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"prtreid {argv[0]} ended (or ran {timeout} s) before the point to interrupt it:\n"
                            f"{log.read_text()[-2000:]}")
            time.sleep(0.002)
        proc.send_signal(sig)
        return proc.wait(timeout=timeout)


def temporaries(folder: Path) -> list[Path]:
    """Hidden temporary files and folders anywhere below ``folder``."""
    return sorted(p for p in folder.rglob(".*") if p.name.endswith(".tmp"))


def synth_argv(out: Path) -> list[str]:
    return ["synth", "--out", str(out), "--seqs", "3", "--frames", "8", "--width", "320", "--height", "180"]


def clip_started(out: Path) -> Callable[[], bool]:
    """True once the second clip's temporary folder holds its fifth frame."""
    return lambda: any(out.glob(".SNMOT-002*/img1/000005.jpg"))


def test_synth_killed_mid_clip_then_rerun_leaves_only_whole_clips(tmp_path: Path) -> None:
    from prtreid.data.soccernet import find_sequences

    out = tmp_path / "data"
    assert run_until(synth_argv(out), clip_started(out), signal.SIGKILL, tmp_path / "log") == -signal.SIGKILL
    assert temporaries(out), "the kill should have left the second clip half-written"
    assert main(synth_argv(out)) == 0
    assert temporaries(out) == []  # a hidden half-clip would be found as a second SNMOT-002 by crops and track
    assert [p.name for p in find_sequences(out)] == ["SNMOT-001", "SNMOT-002", "SNMOT-003"]


def test_ctrl_c_ends_a_command_on_one_line_with_status_130(tmp_path: Path) -> None:
    out, log = tmp_path / "data", tmp_path / "log"
    assert run_until(synth_argv(out), clip_started(out), signal.SIGINT, log) == 130
    assert "Traceback" not in log.read_text()
    assert log.read_text().splitlines()[-1] == "prtreid synth: interrupted"
    assert temporaries(out) == []


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from prtreid.data.synth import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("interrupted-data")
    generate_dataset(out, SynthConfig(seqs=4, frames=20, width=320, height=180, seed=3))
    return out


def test_train_killed_while_saving_epoch_2_resumes_after_epoch_1(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_data), "--out", str(run), "--epochs", "2", *TINY_TRAIN]

    def saving_epoch_2() -> bool:  # epoch 1's checkpoint is in place, epoch 2's is being written
        return (run / "checkpoint.pt").exists() and any(run.glob(".checkpoint.pt.*.tmp"))

    assert run_until(argv, saving_epoch_2, signal.SIGKILL, tmp_path / "log") == -signal.SIGKILL
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 0  # epoch 1 (0-based)
    assert main(argv) == 0
    history = json.loads((run / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]  # resumed: no epoch trained twice in the history
    assert temporaries(run) == []  # the killed save's partial checkpoint (as large as the run's state) is gone


def killed_pid() -> int:
    """The process id of a process that was just killed (SIGKILL)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.pid


def plant_temporaries(folder: Path, name: str) -> tuple[Path, Path]:
    """What a process killed while it wrote ``folder/name`` leaves, and what one still writing it has."""
    folder.mkdir(parents=True, exist_ok=True)
    killed = folder / f".{name}.{killed_pid()}.abc123.tmp"
    running = folder / f".{name}.{os.getpid()}.def456.tmp"
    for path in (killed, running):
        path.write_bytes(b"partial")
    return killed, running


# The two below plant what a kill leaves: their writes take well under a millisecond, too short to hit
# reliably with a signal (it was, by hand: `.index.parquet.PID.*.tmp` and `.SNMOT-001.txt.PID.*.tmp`).
def test_a_crops_build_removes_the_temporaries_of_a_killed_build(tiny_data: Path, tmp_path: Path) -> None:
    from prtreid.data.crops import CropConfig, build_crops

    killed, running = plant_temporaries(tmp_path / "crops", "index.parquet")
    build_crops(tiny_data, tmp_path / "crops", CropConfig(min_height=8, max_per_identity=2, store_height=32))
    assert not killed.exists() and running.exists()  # a running process's temporary is left alone


def test_a_crop_store_of_train_or_eval_removes_the_stamp_temporaries_of_a_killed_run(tiny_data: Path,
                                                                                      tmp_path: Path) -> None:
    from prtreid.cli.reid import crop_store
    from prtreid.data.crops import CropConfig

    killed, running = plant_temporaries(tmp_path / "crops", "build.json")
    store = crop_store(tiny_data, tmp_path / "crops", CropConfig(min_height=8, max_per_identity=2, store_height=32))
    assert store == tmp_path / "crops" and (store / "build.json").is_file()
    assert not killed.exists() and running.exists()


def test_track_rerun_removes_the_temporaries_of_a_killed_run(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "tracks"
    killed, running = plant_temporaries(out, "SNMOT-001.txt")
    assert main(["track", "--input", str(tiny_data / "SNMOT-001"), "--out", str(out)]) == 0
    assert not killed.exists() and running.exists()
    assert (out / "SNMOT-001.summary.json").is_file()


def test_eval_reid_killed_while_cutting_crops_leaves_them_to_the_next_run(tiny_data: Path, untrained_model: Path,
                                                                          tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"  # the system's temporary folder and the staging folder of both runs
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setenv("PRTREID_STAGING_DIR", str(scratch / "staging"))
    argv = ["eval-reid", "--data", str(tiny_data), "--model", str(untrained_model), "--json"]
    cutting = lambda: any(scratch.rglob("images/SNMOT-002"))  # noqa: E731
    assert run_until(argv, cutting, signal.SIGKILL, tmp_path / "log") == -signal.SIGKILL
    assert main(argv) == 0
    assert not list(scratch.rglob("images"))  # the killed run's crops (a copy of every person) are gone


def test_eval_tracking_removes_the_tables_of_a_killed_evaluation(tiny_data: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRTREID_STAGING_DIR", str(tmp_path / "staging"))
    left = tmp_path / "staging" / str(killed_pid()) / "trackeval-abc"  # what a kill during trackeval leaves
    left.mkdir(parents=True)
    assert main(["track", "--input", str(tiny_data / "SNMOT-001"), "--out", str(tmp_path / "tracks")]) == 0
    assert main(["eval-tracking", "--gt", str(tiny_data / "SNMOT-001"), "--pred", str(tmp_path / "tracks")]) == 0
    assert not left.exists() and not list((tmp_path / "staging" / str(os.getpid())).iterdir())



def test_temporaries_carry_their_writers_pid_and_only_a_dead_writers_are_removed(tmp_path: Path) -> None:
    import shutil

    from prtreid.storage import atomic_path, remove_stale_temps

    dead = killed_pid()
    folder = tmp_path / f".model.pt.{dead}.0123abcd.tmp"  # a folder written in the same form (temp_name)
    (folder / "weights").mkdir(parents=True)
    other = tmp_path / f".metrics.json.{dead}.0123abcd.tmp"  # a temporary of a name not asked about
    other.write_bytes(b"partial")
    with atomic_path(tmp_path / "model.pt") as tmp:
        tmp.write_bytes(b"whole")
        assert tmp.name.startswith(f".model.pt.{os.getpid()}.") and tmp.name.endswith(".tmp")
        left = tmp_path / tmp.name.replace(f".{os.getpid()}.", f".{dead}.", 1)  # the same, by a killed writer
        shutil.copyfile(tmp, left)
        assert sorted(remove_stale_temps(tmp_path, ["model.pt"])) == sorted([folder, left])
        assert tmp.exists()  # its writer (this process) runs
    assert (tmp_path / "model.pt").read_bytes() == b"whole" and other.exists()


def test_clean_stale_removes_only_the_scratch_of_processes_that_ended(tmp_path: Path) -> None:
    from prtreid.scratch import clean_stale, scratch

    dead, running, not_a_pid = tmp_path / str(killed_pid()), tmp_path / "1", tmp_path / "notes"
    for folder in (dead, running, not_a_pid):
        (folder / "eval-x").mkdir(parents=True)
    with scratch("eval-", tmp_path) as mine:
        assert clean_stale(tmp_path) == 1
        assert not dead.exists() and running.is_dir() and not_a_pid.is_dir() and mine.is_dir()
    assert not mine.exists()

def test_export_killed_leaves_no_file_that_looks_whole(untrained_model: Path, tmp_path: Path) -> None:
    model_path, out = untrained_model, tmp_path / "export"
    argv = ["export", "--model", str(model_path), "--out", str(out)]

    def saving_torchscript() -> bool:  # under whatever name the export writes it
        return any(p.stat().st_size > 0 for p in out.glob("*torchscript*"))

    assert run_until(argv, saving_torchscript, signal.SIGKILL, tmp_path / "log") == -signal.SIGKILL
    left = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert left == [], f"a killed export left {left}, which look finished"
    assert main(argv) == 0
    assert temporaries(out) == []
    torch.jit.load(str(out / "model.torchscript.pt"))


def test_train_detector_killed_while_saving_keeps_the_last_complete_weights(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "detector"
    argv = ["train-detector", "--data", str(tiny_data), "--out", str(out), "--epochs", "1", "--imgsz", "64"]
    assert main(argv) == 0
    weights = out / "runs" / "detector" / "weights"
    finished = digests(weights)
    before = (weights / "last.pt").stat()

    def saving_again() -> bool:  # the rerun writes a last.pt, wherever it trains
        return any(_changed(p, before) for p in (out / "runs").rglob("last.pt"))

    assert run_until(argv, saving_again, signal.SIGKILL, tmp_path / "log") == -signal.SIGKILL
    assert digests(weights) == finished  # not half-overwritten
    assert main(argv) == 0
    assert temporaries(out / "runs") == [] and (weights / "best.pt").is_file()


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of each file in ``folder``, by name."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _changed(path: Path, before: os.stat_result) -> bool:
    """Whether ``path`` now holds bytes and is another file than ``before``, or was written since."""
    try:
        now = path.stat()
    except FileNotFoundError:  # renamed meanwhile
        return False
    return now.st_size > 0 and (now.st_ino, now.st_mtime_ns) != (before.st_ino, before.st_mtime_ns)
