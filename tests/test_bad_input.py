"""Bad input and settings end a command with one line naming the file, line or key (exit 2), and lose nothing.

Each case here once ended in a traceback, in silently wrong output, or in lost work.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from prtreid.cli import main as cli
from prtreid.config import load_yaml
from prtreid.data.synth import SynthConfig, generate_dataset
from prtreid.errors import ConfigError, FormatError
from prtreid.model.prtreid import ModelConfig, PRTReID
from prtreid.pipeline.video import PipelineConfig
from prtreid.search_space import parse_space
from prtreid.train.checkpoint import load_checkpoint, model_meta, save_model
from prtreid.train.config import ExperimentConfig, TrainConfig
from prtreid.train.loop import resolve_device

ROLES = ("player", "goalkeeper", "referee", "other")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two short generated clips."""
    root = tmp_path_factory.mktemp("bad-input")
    return generate_dataset(root / "data", SynthConfig(seqs=2, frames=6, width=480, height=270, seed=4))


def one_error_line(capsys: pytest.CaptureFixture, prog: str) -> str:
    """The command's single error line (after its progress output)."""
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith(f"prtreid {prog}: error: ")]
    assert len(err) == 1, err
    return err[0]


def test_two_inputs_of_one_name_are_refused_before_any_tracking(clips: list[Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    twin = tmp_path / "elsewhere" / clips[0].name
    shutil.copytree(clips[0], twin)
    out = tmp_path / "out"
    assert cli(["track", "--input", str(clips[0]), str(twin), "--detector", "oracle", "--out", str(out)]) == 2
    assert f"would both write the results named '{clips[0].name}'" in one_error_line(capsys, "track")
    assert not out.exists()


def test_a_frame_of_another_size_is_named(clips: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    seq = tmp_path / clips[0].name
    shutil.copytree(clips[0], seq)
    frame = seq / "img1" / "000003.jpg"
    cv2.imwrite(str(frame), np.zeros((100, 200, 3), np.uint8))
    assert cli(["track", "--input", str(seq), "--detector", "oracle", "--out", str(tmp_path / "out")]) == 2
    assert f"{frame}: frame 3 is 200x100, and seqinfo.ini says 480x270" in one_error_line(capsys, "track")


def test_a_mistyped_data_folder_leaves_the_crop_store_as_it_was(clips: list[Path], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    store = tmp_path / "crops"
    assert cli(["crops", "--data", str(clips[0].parent), "--out", str(store)]) == 0
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    assert cli(["crops", "--data", str(tmp_path / "no-such-data"), "--out", str(store)]) == 2
    assert "no-such-data: no such folder" in one_error_line(capsys, "crops")
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before
    (tmp_path / "afile").write_text("")
    assert cli(["crops", "--data", str(clips[0].parent), "--out", str(tmp_path / "afile" / "crops")]) == 2
    assert "Not a directory" in one_error_line(capsys, "crops")


def test_data_without_ground_truth_makes_no_empty_store(clips: list[Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    seq = tmp_path / "data" / clips[0].name
    shutil.copytree(clips[0], seq)
    (seq / "gt" / "gt.txt").write_text("")
    assert cli(["crops", "--data", str(seq.parent), "--out", str(tmp_path / "crops")]) == 2
    assert "no ground-truth box to crop" in one_error_line(capsys, "crops")
    assert not (tmp_path / "crops" / "index.parquet").exists()


def test_training_without_an_evaluation_split_stops_before_the_first_epoch(
        clips: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["train", "--data", str(clips[0].parent), "--out", str(tmp_path / "run"), "--set", "crops.eval_fraction=0"]
    assert cli(args) == 2
    assert "no query and no gallery crops to evaluate on: crops.eval_fraction" in one_error_line(capsys, "train")
    assert cli(["train", "--data", str(clips[0].parent), "--out", str(tmp_path / "run"), "--epochs", "0"]) == 2
    assert "train.epochs: must be at least 1, got 0" in one_error_line(capsys, "train")


def test_eval_reid_refuses_clips_too_short_for_any_query(clips: list[Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    cfg = ModelConfig(image_size=(64, 32), embed_dim=32, team_dim=8)
    save_model(tmp_path / "m.pt", PRTReID.from_config(cfg, num_roles=len(ROLES)), model_meta(cfg, len(ROLES), 0, ROLES))
    assert cli(["eval-reid", "--data", str(clips[0].parent), "--model", str(tmp_path / "m.pt"), "--json"]) == 2
    assert "mAP and rank-1 are undefined: evaluate longer clips" in one_error_line(capsys, "eval-reid")


def test_config_files_that_cannot_be_read_are_named(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes("train:\n  seed: 1 # \xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.yaml: not UTF-8 text"):
        load_yaml(tmp_path / "latin1.yaml")
    with pytest.raises(ConfigError, match="a folder, not a config file"):
        load_yaml(tmp_path)
    (tmp_path / "bad.yaml").write_text("train:\n  seed: 1\n  lr: [1\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path / "bad.yaml")
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{tmp_path / 'bad.yaml'}:4:")


def test_game_state_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    from prtreid.data.gamestate import read_gamestate

    (tmp_path / "Labels-GameState.json").write_bytes(b'{"info": "\xff"}')
    with pytest.raises(FormatError, match="Labels-GameState.json: not UTF-8 text"):
        read_gamestate(tmp_path / "Labels-GameState.json")


def test_a_byte_order_mark_in_gt_is_read(clips: list[Path], tmp_path: Path) -> None:
    from prtreid.data.soccernet import read_mot

    path = tmp_path / "gt.txt"
    path.write_bytes(b"\xef\xbb\xbf" + (clips[0] / "gt" / "gt.txt").read_bytes())
    assert len(read_mot(path)) == len(read_mot(clips[0] / "gt" / "gt.txt")) > 0


@pytest.mark.parametrize("field", ["lr", "weight_decay", "warmup_factor", "budget_minutes"])
def test_nan_training_settings_are_refused(field: str) -> None:
    with pytest.raises(ConfigError, match=f"train.{field}: must be"):
        TrainConfig(**{field: math.nan})


def test_settings_refused_where_they_are_read() -> None:
    with pytest.raises(ConfigError, match="cmc_downscale: must be positive"):
        PipelineConfig(cmc_downscale=0)
    with pytest.raises(ConfigError, match="device 'gpu': use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device 'cuda': this machine has no CUDA GPU"):
            resolve_device("cuda")


def test_training_checkpoints_that_are_not_ours_are_format_errors(tmp_path: Path) -> None:
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(512))
    with pytest.raises(FormatError, match=r"noise.pt: not a prtreid training checkpoint \("):
        load_checkpoint(tmp_path / "noise.pt")
    torch.save({"meta": {}, "model": {}}, tmp_path / "partial.pt")
    with pytest.raises(FormatError, match="missing: epoch, experiment, history, optimizer, scaler, scheduler"):
        load_checkpoint(tmp_path / "partial.pt")


def test_search_spaces_check_every_value_of_small_int_ranges_and_steps() -> None:
    with pytest.raises(ConfigError, match=r"smooth_window: value=6 is outside the field's domain"):
        parse_space({"smooth_window": {"type": "int", "low": 5, "high": 9}}, PipelineConfig)
    parse_space({"smooth_window": {"type": "int", "low": 5, "high": 9, "step": 2}}, PipelineConfig)
    with pytest.raises(ConfigError, match=r"high - low \(2\) must be a multiple of step \(5\)"):
        parse_space({"tracker.n_init": {"type": "int", "low": 1, "high": 3, "step": 5}}, PipelineConfig)
    space = parse_space({"train.lr": {"type": "float", "low": "1e-4", "high": "1e-2", "log": True}}, ExperimentConfig)
    assert (space.params[0].low, space.params[0].high) == (1e-4, 1e-2)


def test_a_key_given_twice_in_a_yaml_file_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "twice.yaml").write_text("train:\n  lr: 0.001\n  seed: 1\n  lr: 0.01\n")
    with pytest.raises(ConfigError, match=r"twice.yaml:4:3: invalid YAML: key 'lr' is given twice"):
        load_yaml(tmp_path / "twice.yaml")
    (tmp_path / "ok.yaml").write_text("train:\n  lr: 0.001\nloss:\n  lr_like: 1\n")  # one key per mapping
    assert load_yaml(tmp_path / "ok.yaml") == {"train": {"lr": 0.001}, "loss": {"lr_like": 1}}
    (tmp_path / "merge.yaml").write_text("a: &w {low: 1, high: 2}\nb: {<<: *w, high: 3}\n")  # merge keys still work
    assert load_yaml(tmp_path / "merge.yaml") == {"a": {"low": 1, "high": 2}, "b": {"low": 1, "high": 3}}


def test_detector_datasets_refuse_sequences_of_one_name(clips: list[Path], tmp_path: Path) -> None:
    from prtreid.detect.yolo_train import export_yolo_dataset

    twin = tmp_path / "elsewhere" / clips[0].name
    shutil.copytree(clips[0], twin)
    with pytest.raises(FormatError, match=f"{twin}: its name '{clips[0].name}' is also that of {clips[0]}"):
        export_yolo_dataset([clips[0], twin], tmp_path / "yolo")
    with pytest.raises(ConfigError, match="frame_stride must be at least 1"):
        export_yolo_dataset([clips[0]], tmp_path / "yolo", frame_stride=0)

