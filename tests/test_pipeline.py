"""One video end to end: `prtreid track` on generated sequences, with oracle detections and tiny YOLO."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prtreid.cli import main as cli
from prtreid.data.frames import open_frames, write_video
from prtreid.data.soccernet import find_sequences, load_sequence, read_mot
from prtreid.data.types import MotTable
from prtreid.eval.tracking import COMBINED, evaluate_tracking, hota_metrics
from prtreid.storage import Storage


def test_track_command_writes_to_s3(synth_data: Path, s3_bucket: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    seq = find_sequences(synth_data)[0]
    monkeypatch.chdir(tmp_path)
    assert cli(["track", "--input", str(seq), "--detector", "oracle", "--out", f"{s3_bucket}/run"]) == 0
    assert Storage(f"{s3_bucket}/run").exists(f"{seq.name}.summary.json")
    assert list(tmp_path.iterdir()) == []  # nothing under ./s3:/...
    with pytest.raises(ValueError, match="two slashes"):
        Storage(str(Path(f"{s3_bucket}/run")))
    # a mistyped bucket is refused before anything is tracked, at once (no retries)
    capsys.readouterr()
    assert cli(["track", "--input", str(seq), "--detector", "oracle", "--out", "s3://no-such-bucket/run"]) == 2
    assert "s3://no-such-bucket/run: no such bucket 'no-such-bucket'" in capsys.readouterr().err
    with pytest.raises(OSError, match="NO_SUCH_BUCKET"):
        Storage("s3://no-such-bucket/run", backoff=60.0).write_text("a.txt", "x")  # a retry would wait 60 s


def test_oracle_tracking_writes_all_outputs_and_scores_well(synth_data: Path, tmp_path: Path) -> None:
    seq = find_sequences(synth_data)[0]
    assert cli(["track", "--input", str(seq), "--detector", "oracle", "--out", str(tmp_path)]) == 0
    name = seq.name
    mot = read_mot(tmp_path / f"{name}.txt")
    tracks = pd.read_parquet(tmp_path / f"{name}.tracks.parquet")
    summary = json.loads((tmp_path / f"{name}.summary.json").read_text())
    assert len(mot) == len(tracks) > 0 and summary["frames"] == 30
    assert set(summary["seconds"]) >= {"decode", "detect", "embed", "track", "post", "total"}
    res = evaluate_tracking(seq, tmp_path)
    assert res[name]["HOTA"] > 0.6 and res[name]["DetA"] > 0.6, res[name]
    # the ball: one track of its own, with the ground truth's box on every frame the ball is labelled
    gt = load_sequence(seq).gt
    ball_ids = [t for t, info in load_sequence(seq).tracks.items() if info.role == "ball"]
    gt_ball = gt.select(np.isin(gt.track_id, ball_ids))
    assert len(gt_ball) > 0
    pred_rows = [np.flatnonzero((mot.frame == f) & (np.abs(mot.box - b).max(1) < 0.01))
                 for f, b in zip(gt_ball.frame, gt_ball.box)]
    assert all(len(r) == 1 for r in pred_rows)
    ball_track = np.unique(mot.track_id[np.concatenate(pred_rows)])
    assert len(ball_track) == 1 and (mot.track_id == ball_track[0]).sum() == len(gt_ball)


def test_model_adds_team_and_role_per_tracklet(synth_data: Path, untrained_model: Path, tmp_path: Path) -> None:
    seq = find_sequences(synth_data)[1]
    assert cli(["track", "--input", str(seq), "--model", str(untrained_model), "--out", str(tmp_path)]) == 0
    tracks = pd.read_parquet(tmp_path / f"{seq.name}.tracks.parquet")
    assert tracks["role"].notna().all()
    assert set(tracks["role"].unique()) <= {"player", "goalkeeper", "referee", "other", "ball"}
    ball = tracks[tracks["role"] == "ball"]
    assert ball["track_id"].nunique() == 1 and ball["team"].isna().all()  # the oracle's ball: no team
    per_track = tracks.groupby("track_id")[["team", "role"]].nunique(dropna=False)
    assert (per_track["role"] == 1).all() and (per_track["team"] == 1).all()  # one label per tracklet
    players = tracks[tracks["role"] == "player"]
    assert players["team"].notna().all() and set(players["team"]) == {0, 1}  # two teams, even untrained


def test_tiny_yolo_on_a_video_file(synth_data: Path, untrained_model: Path, tmp_path: Path) -> None:
    seq = find_sequences(synth_data)[0]
    frames = (img for i, img in open_frames(seq) if i <= 12)
    video = tmp_path / "clip.mp4"
    write_video(video, frames, fps=25)
    cfg = tmp_path / "pipeline.yaml"
    # an untrained YOLO scores far below the tracker's thresholds: let its boxes through
    cfg.write_text("detection:\n  imgsz: 160\n  conf: 0.0\n  max_det: 20\ncmc: ecc\n"
                   "tracker:\n  min_conf: 0.0\n  birth_conf: 0.0\n")
    out = tmp_path / "out"
    assert cli(["track", "--input", str(video), "--detector", "yolo:yolov8n.yaml", "--config", str(cfg),
                "--model", str(untrained_model), "--out", str(out)]) == 0
    summary = json.loads((out / "clip.summary.json").read_text())
    assert summary["frames"] == 12 and summary["config"]["detector"] == "yolo:yolov8n.yaml"
    mot = read_mot(out / "clip.txt")
    assert len(mot) > 0 and np.all(mot.frame <= 12)  # boxes went through detection, embedding and tracking
    tracks = pd.read_parquet(out / "clip.tracks.parquet")
    assert len(tracks) == len(mot) and tracks["role"].notna().all()


def test_eval_and_render_commands(synth_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    seq = find_sequences(synth_data)[2]
    (tmp_path / "det.yaml").write_text("detector: det\n")  # the config's detector holds without --detector
    assert cli(["track", "--input", str(seq), "--config", str(tmp_path / "det.yaml"), "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / f"{seq.name}.summary.json").read_text())["config"]["detector"] == "det"
    capsys.readouterr()
    assert cli(["eval-tracking", "--gt", str(seq), "--pred", str(tmp_path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert 0.6 < res[COMBINED]["HOTA"] <= 1, res[COMBINED]  # 0.82: det.txt's noisy boxes, no appearance
    assert cli(["render", "--input", str(seq), "--pred", str(tmp_path), "--out", str(tmp_path / "o.mp4"),
                "--max-frames", "10"]) == 0
    assert open_frames(tmp_path / "o.mp4").info.width == 640
    rendered = [image.astype(int) for _, image in open_frames(tmp_path / "o.mp4")]
    assert len(rendered) == 10
    # where frame 5's own boxes change the picture, the video shows them (h264 blurs, so by a margin)
    from prtreid.pipeline.render import draw_frame

    source = next(image for f, image in open_frames(seq) if f == 5)
    tracks = pd.read_parquet(tmp_path / f"{seq.name}.tracks.parquet")
    expected = draw_frame(source, tracks[tracks.frame == 5]).astype(int)
    changed = np.abs(expected - source).max(2) > 60
    assert changed.sum() > 200
    assert np.abs(rendered[4] - expected)[changed].mean() * 3 < np.abs(rendered[4] - source)[changed].mean()


def test_overlay_draws_each_box_in_its_team_colour() -> None:
    from prtreid.pipeline.render import TEAM_COLOURS, draw_frame

    image = np.full((120, 200, 3), 90, np.uint8)
    rows = pd.DataFrame({"track_id": [7], "left": [50.0], "top": [40.0], "width": [30.0], "height": [60.0],
                         "team": [1], "role": ["player"]})
    drawn = draw_frame(image, rows)
    assert tuple(drawn[39, 50]) == TEAM_COLOURS[1]  # the id tag's background, above the box
    assert np.abs(drawn[70, 50].astype(int) - TEAM_COLOURS[1]).max() < 20  # the box's left edge (anti-aliased)
    assert tuple(drawn[70, 65]) == (90, 90, 90) and tuple(drawn[110, 150]) == (90, 90, 90)  # inside, far away
    assert (image == 90).all()  # drawn on a copy


def test_bad_inputs_fail_with_their_path(synth_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from prtreid.data.frames import FrameError
    from prtreid.errors import ConfigError
    from prtreid.pipeline.video import PipelineConfig, VideoPipeline

    pipeline = VideoPipeline(PipelineConfig(detector="oracle"))
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00" * 4096)
    with pytest.raises(FrameError, match="corrupt.mp4"):
        pipeline.run(tmp_path / "corrupt.mp4")
    with pytest.raises(FrameError, match="missing.mp4: no such video file or sequence folder"):
        pipeline.run(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    assert cli(["track", "--input", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'empty'}: no sequence folders" in capsys.readouterr().err
    assert cli(["render", "--input", str(synth_data / "SNMOT-001"), "--pred", str(tmp_path / "empty"),
                "--out", str(tmp_path / "r.mp4")]) == 2
    assert f"{tmp_path / 'empty' / 'SNMOT-001.tracks.parquet'}: no such file" in capsys.readouterr().err
    assert cli(["track", "--input", str(tmp_path / "corrupt.mp4"), "--detector", "yolo:yolov8n.yaml",
                "--out", str(tmp_path / "out")]) == 2  # a message, not a traceback
    assert "corrupt.mp4" in capsys.readouterr().err
    seq = find_sequences(synth_data)[0]
    write_video(tmp_path / "ok.mp4", (img for i, img in open_frames(seq) if i <= 3), fps=25)
    with pytest.raises(ConfigError, match="use a learned detector"):
        pipeline.run(tmp_path / "ok.mp4")


def test_detector_boxes_are_smoothed_and_oracle_boxes_kept(synth_data: Path) -> None:
    from prtreid.errors import ConfigError
    from prtreid.pipeline.video import PipelineConfig, VideoPipeline

    seqs = [load_sequence(p) for p in find_sequences(synth_data)[:3]]

    def run(detector: str, window: int) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
        pipeline = VideoPipeline(PipelineConfig(detector=detector, smooth_window=window, cmc="none"))
        tracks = {s.name: pipeline.run(s.root).tracks for s in seqs}
        pred = {n: MotTable(t.frame.to_numpy(), t.track_id.to_numpy(), t[["left", "top", "width", "height"]].to_numpy(),
                            t.conf.to_numpy()) for n, t in tracks.items()}
        metrics = hota_metrics({s.name: s.gt for s in seqs}, pred, {s.name: s.info.seq_length for s in seqs})
        return tracks, metrics[COMBINED]

    _, raw_m = run("det", 0)
    _, smooth_m = run("det", 9)
    assert smooth_m["DetA"] > raw_m["DetA"] + 0.01  # the jitter of det.txt is partly taken out
    oracle_raw, _ = run("oracle", 0)
    oracle_smooth, _ = run("oracle", 9)
    for name in oracle_raw:
        pd.testing.assert_frame_equal(oracle_raw[name], oracle_smooth[name])
    with pytest.raises(ConfigError, match="smooth_window"):
        PipelineConfig(smooth_window=8)
    with pytest.raises(ConfigError, match="batch_frames: must be at least 1"):
        PipelineConfig(batch_frames=0)  # would decode a whole match into one batch


def test_confirmed_tracks_start_at_their_first_detection(synth_data: Path) -> None:
    from prtreid.pipeline.video import PipelineConfig, VideoPipeline
    from prtreid.track import TrackerConfig

    seqs = [load_sequence(p) for p in find_sequences(synth_data)[:3]]
    tracker = TrackerConfig.sports(confirm_first_frame=False)  # every track is tentative for 2 frames

    def run(backfill: bool) -> tuple[dict[str, pd.DataFrame], float]:
        pipeline = VideoPipeline(PipelineConfig(detector="oracle", tracker=tracker, backfill=backfill,
                                                interpolate_gap=0, cmc="none"))
        tracks = {s.name: pipeline.run(s.root).tracks for s in seqs}
        pred = {n: MotTable(t.frame.to_numpy(), t.track_id.to_numpy(), t[["left", "top", "width", "height"]].to_numpy(),
                            t.conf.to_numpy()) for n, t in tracks.items()}
        return tracks, hota_metrics({s.name: s.gt for s in seqs}, pred,
                                    {s.name: s.info.seq_length for s in seqs})[COMBINED]["DetA"]

    online, online_deta = run(False)
    filled, filled_deta = run(True)
    added = 0
    for name, before in online.items():
        after = filled[name]
        keys = ["frame", "track_id"]
        assert not after.duplicated(keys).any()
        merged = after.merge(before[keys], on=keys, how="left", indicator=True)
        new = merged[merged["_merge"] == "left_only"]
        assert len(merged) - len(new) == len(before)  # every online row is kept
        assert set(new.track_id) <= set(before.track_id)  # rows only for tracks confirmed later
        first_online = before.groupby("track_id").frame.min()
        assert (new.frame.to_numpy() < first_online[new.track_id].to_numpy()).all()  # before confirmation
        added += len(new)
    assert added > 0 and filled_deta > online_deta


def test_eval_reid_command(synth_data: Path, untrained_model: Path, capsys: pytest.CaptureFixture,
                           tmp_path: Path) -> None:
    data = tmp_path / "two_matches"  # two of the eight: the command's plumbing, at a quarter of the time
    data.mkdir()
    for seq in find_sequences(synth_data)[:2]:
        (data / seq.name).symlink_to(seq, target_is_directory=True)
    assert cli(["eval-reid", "--data", str(data), "--model", str(untrained_model), "--json"]) == 0
    brief = json.loads(capsys.readouterr().out)
    assert set(brief) == {"mAP", "rank1", "team_acc", "role_acc", "role_macro_f1"}
    assert all(0.0 <= v <= 1.0 for v in brief.values())
    assert cli(["eval-reid", "--data", str(data), "--model", str(untrained_model)]) == 0
    full = json.loads(capsys.readouterr().out)
    names = {s.name for s in find_sequences(data)}
    assert full["team_acc"] == brief["team_acc"] and full["team_acc_per_sequence"]
    assert set(full["team_acc_per_sequence"]) == names  # every given clip is held out, none trained on
    assert full["num_queries"] > 0 and full["skipped_queries"] >= 0
    assert len(full["role_confusion"]) == len(full["role_names"]) == 4


def test_embedder_crops_boxes_clipped_to_the_frame(untrained_model: Path) -> None:
    import torch

    from prtreid.pipeline.embed import Embedder
    from prtreid.train.checkpoint import load_model

    embedder = Embedder(load_model(untrained_model)[0], torch.device("cpu"))
    frame = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    past_the_edges = np.array([[-20.0, 10, 20, 80], [140, -5, 175, 60]])
    clipped = np.array([[0.0, 10, 20, 80], [140, 0, 160, 60]])
    a, b = (embedder.embed([frame], [boxes])[0] for boxes in (past_the_edges, clipped))
    assert np.allclose(a.feats, b.feats, atol=1e-5) and np.allclose(a.team, b.team, atol=1e-5)


def test_a_partial_tracker_section_keeps_the_sports_preset(tmp_path: Path) -> None:
    import dataclasses

    from prtreid.cli.track import pipeline_config
    from prtreid.pipeline.video import PipelineConfig
    from prtreid.track.config import TrackerConfig

    (tmp_path / "p.yaml").write_text("tracker:\n  max_age: 200\ncmc: none\n")
    cfg = pipeline_config(tmp_path / "p.yaml")
    assert cfg.tracker == dataclasses.replace(TrackerConfig.sports(), max_age=200) != TrackerConfig(max_age=200)
    assert cfg.cmc == "none" and cfg.role_context == PipelineConfig().role_context
