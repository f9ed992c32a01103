"""What a user of the command line sees: help texts, progress output, stdout that parses, final messages."""

from __future__ import annotations

import argparse
import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from prtreid.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
TINY_SYNTH = ["--seqs", "2", "--frames", "10", "--width", "320", "--height", "180"]
TINY_TRAIN = ["--set", "model.image_size=[64,32]", "--set", "crops.store_height=64", "--set", "crops.min_height=8",
              "--set", "crops.max_per_identity=6", "--set", "crops.eval_fraction=0.25",
              "--set", "sampler.k_instances=2", "--set", "sampler.epoch=identities", "--set", "train.device=cpu",
              "--set", "model.backbone=resnet10t"]


def prtreid(*argv: str) -> subprocess.CompletedProcess:
    """``prtreid ARGV`` in a process of its own (its logging set up as a user's is), output captured."""
    return subprocess.run([sys.executable, "-m", "prtreid.cli", *argv], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 10-frame clips, too short for any re-id query (none has a gallery crop 10 frames away)."""
    out = tmp_path_factory.mktemp("tiny")
    assert main(["synth", "--out", str(out), *TINY_SYNTH]) == 0
    return out


def test_every_option_has_help_and_each_command_says_what_it_does(capsys: pytest.CaptureFixture) -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in commands.items():
        assert command.description, name
        bare = [a.option_strings[0] for a in command._actions if a.option_strings and not a.help]
        assert bare == [], f"prtreid {name}: options without help: {bare}"
    with pytest.raises(SystemExit) as done:
        main(["synth", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "generate synthetic broadcast clips" in text and "number of sequences (default: 4)" in text
    assert "--set KEY=VALUE any other SynthConfig field" in text and "(default: [])" not in text


@pytest.mark.parametrize("job, argv, shown", [
    ("track.py", ["--help"], "CPUs Ray reserves for each actor (default: 1.0)"),
    ("tune.py", ["losses", "--help"], "total trials, across resumes (default: 20)"),
    ("train.py", ["--help"], "checkpoints kept in storage (default: 2)"),
])
def test_jobs_show_their_defaults(job: str, argv: list[str], shown: str, capsys: pytest.CaptureFixture) -> None:
    namespace = runpy.run_path(str(ROOT / "jobs" / job), run_name="jobs_" + job[:-3])
    parse = namespace.get("parse_args") or (lambda a: namespace["build_parser"]().parse_args(a))
    with pytest.raises(SystemExit):
        parse(argv)
    assert shown in " ".join(capsys.readouterr().out.split())


def test_log_lines_never_land_on_a_progress_bar_line(tmp_path: Path) -> None:
    run = prtreid("synth", "--out", str(tmp_path / "data"), *TINY_SYNTH)
    assert run.returncode == 0, run.stderr
    logged = [seg for seg in re.split(r"[\r\n]", run.stderr) if " INFO prtreid" in seg]
    assert len(logged) == 2  # one per sequence written, the second while the bar is drawn
    assert all(re.match(r"\d{4}-\d\d-\d\d ", seg) for seg in logged), logged  # each on its own line
    assert run.stdout == f"wrote 2 sequences to {tmp_path / 'data'}\n"


def test_export_prints_only_its_json_report_and_no_warnings(untrained_model: Path, tmp_path: Path) -> None:
    run = prtreid("export", "--model", str(untrained_model), "--out", str(tmp_path / "exp"))
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)  # the whole of stdout: torch.onnx's step messages go to stderr
    assert report["onnx"] == str(tmp_path / "exp" / "model.onnx")
    assert "Warning" not in run.stderr  # torch.jit's deprecation, not the user's to act on
    assert " INFO onnx" not in run.stderr  # the ONNX optimiser's passes, one line each


def test_track_and_render_show_each_video_s_frames_as_they_go(tiny_data: Path, tmp_path: Path) -> None:
    run = prtreid("track", "--input", str(tiny_data), "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    for i, name in enumerate(("SNMOT-001", "SNMOT-002"), start=1):  # a bar per video, counting its frames
        assert re.search(rf"track {i}/2 {name}: +100%.*\b10/10 \[", run.stderr), run.stderr
    assert run.stdout == f"tracked 2 input(s) into {tmp_path / 'out'}\n"
    run = prtreid("render", "--input", str(tiny_data / "SNMOT-002"), "--pred", str(tmp_path / "out"),
                  "--out", str(tmp_path / "clip.mp4"), "--max-frames", "6")
    assert run.returncode == 0, run.stderr
    assert re.search(r"render SNMOT-002: +100%.*\b6/6 \[", run.stderr), run.stderr


def test_evaluation_counts_the_crops_it_embeds(crop_store: Path, untrained_model: Path) -> None:
    import torch

    from prtreid.train.checkpoint import load_model
    from prtreid.train.evaluate import evaluate_store

    model, meta = load_model(untrained_model, "cpu")
    calls: list[tuple[int, int]] = []
    evaluate_store(model, crop_store, torch.device("cpu"), image_size=(64, 32), role_names=tuple(meta["role_names"]),
                   batch_size=16, progress=lambda done, total: calls.append((done, total)))
    total = calls[-1][1]
    assert calls[-1] == (total, total) and len(calls) >= total / 16
    assert [d for d, _ in calls] == sorted({d for d, _ in calls})  # rising, never repeated


def test_train_says_where_the_model_is_and_leaves_undefined_metrics_null(tiny_data: Path, tmp_path: Path) -> None:
    run = prtreid("train", "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--epochs", "1", *TINY_TRAIN)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["mAP"] is None and report["rank1"] is None  # no query could be scored: not a 0 score
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())[-1]["mAP"] is None  # nor in the file
    assert 0 <= report["team_acc"] <= 1
    assert "mAP and rank-1 are undefined" in run.stderr
    assert f"model in {tmp_path / 'run' / 'model.pt'}" in run.stderr


def test_retrieval_metrics_of_no_query_are_none() -> None:
    from prtreid.cli.reid import retrieval_defined

    assert retrieval_defined({"mAP": 0.0, "rank1": 0.0, "num_queries": 0, "team_acc": 0.5}) == \
        {"mAP": None, "rank1": None, "num_queries": 0, "team_acc": 0.5}
    scored = {"mAP": 0.0, "rank1": 0.0, "num_queries": 3}
    assert retrieval_defined(scored) == scored


def test_a_missing_file_is_named_plainly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nope.pt"
    assert main(["export", "--model", str(missing), "--out", str(tmp_path / "exp")]) == 2
    assert capsys.readouterr().err == f"prtreid export: error: {missing}: No such file or directory\n"


def test_train_detector_shows_no_ray_tune_warning(tiny_data: Path, tmp_path: Path) -> None:
    run = prtreid("train-detector", "--data", str(tiny_data), "--out", str(tmp_path / "det"), "--epochs", "1",
                  "--imgsz", "64")
    assert run.returncode == 0, run.stderr
    assert "get_trial_id" not in run.stderr  # ultralytics' Ray Tune callback, asking outside any Tune trial
    assert f"detector weights: {tmp_path / 'det'}" in run.stdout
