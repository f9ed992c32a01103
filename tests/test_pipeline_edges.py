"""The one-video pipeline on unusual but possible inputs: degenerate boxes, odd videos, odd tables to draw."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from prtreid.cli import main as cli
from prtreid.data.frames import open_frames
from prtreid.errors import FormatError, FrameError
from prtreid.pipeline.video import PipelineConfig, VideoPipeline


@pytest.fixture(scope="module")
def tiny_seq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated sequence of 12 frames of 320x180, with gt.txt, det.txt and a ball."""
    from prtreid.data.synth import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("edges")
    generate_dataset(out, SynthConfig(seqs=1, frames=12, width=320, height=180, seed=3))
    return out / "SNMOT-001"


def _copy(seq: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(seq, tmp_path / seq.name))


def _add_rows(path: Path, rows: list[str]) -> None:
    path.write_text(path.read_text() + "".join(f"{r}\n" for r in rows))


def test_boxes_with_no_pixel_in_the_frame_are_dropped_and_counted(tiny_seq: Path, tmp_path: Path) -> None:
    seq = _copy(tiny_seq, tmp_path)
    outside = [f"{f},-1,1000,1000,20,40,0.9" for f in range(1, 13)]  # a player-sized box far off the 320x180 image
    flat = [f"{f},-1,50,50,0,30,0.9" for f in range(1, 13)] + ["3,-1,60,60,10,0,0.9"]
    _add_rows(seq / "det" / "det.txt", outside + flat)
    result = VideoPipeline(PipelineConfig(detector="det", cmc="none")).run(seq)
    t = result.tracks
    assert len(t) > 0 and (t.left < 320).all() and (t.top < 180).all()  # no track of the off-image box
    assert result.summary["dropped_boxes"] == len(outside) + len(flat)


def test_partly_outside_boxes_are_kept_as_they_are(tiny_seq: Path, tmp_path: Path) -> None:
    seq = _copy(tiny_seq, tmp_path)
    (seq / "det" / "det.txt").write_text("".join(f"{f},-1,-10,-20,30,60,0.9\n" for f in range(1, 13)))
    result = VideoPipeline(PipelineConfig(detector="det", cmc="none", smooth_window=0)).run(seq)
    assert len(result.tracks) == 12 and result.summary["dropped_boxes"] == 0
    assert np.allclose(result.tracks[["left", "top", "width", "height"]].to_numpy(), [-10, -20, 30, 60], atol=1e-6)


def test_the_ball_keeps_its_role_where_no_person_is_tracked(tiny_seq: Path, untrained_model: Path,
                                                           tmp_path: Path) -> None:
    seq = _copy(tiny_seq, tmp_path)
    ball_id = next(line.split("=")[0].removeprefix("trackletID_") for line in
                   (seq / "gameinfo.ini").read_text().splitlines() if line.endswith("= ball;1"))
    gt = seq / "gt" / "gt.txt"
    gt.write_text("".join(line + "\n" for line in gt.read_text().splitlines() if line.split(",")[1] == ball_id))
    tracks = VideoPipeline(PipelineConfig(detector="oracle", cmc="none"), untrained_model).run(seq).tracks
    assert tracks["role"].tolist() == ["ball"] * 12  # not <NA>, as with a model every track has a role


def test_public_detections_beyond_seq_length_are_refused(tiny_seq: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    seq = _copy(tiny_seq, tmp_path)
    _add_rows(seq / "det" / "det.txt", ["13,-1,10,10,20,40,0.9"])  # the first frame after the last one
    with pytest.raises(FormatError, match=r"det/det.txt: row \d+ has frame 13 beyond seqLength=12 \(1 such rows\)"):
        VideoPipeline(PipelineConfig(detector="det")).run(seq)
    assert cli(["track", "--input", str(seq), "--detector", "det", "--out", str(tmp_path / "out")]) == 2
    assert "det.txt: row" in capsys.readouterr().err


def _encode_ts(path: Path, width: int, height: int, frames: int) -> bytes:
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.full((height, width, 3), 40 * i, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode())
    return path.read_bytes()


def test_a_video_whose_frame_size_changes_fails_with_its_path(tmp_path: Path) -> None:
    video = tmp_path / "joined.mp4"  # two recordings of different sizes, one after the other
    video.write_bytes(_encode_ts(tmp_path / "a.ts", 160, 96, 4) + _encode_ts(tmp_path / "b.ts", 128, 64, 4))
    with pytest.raises(FrameError, match=r"joined.mp4: frame 5 is 128x64, and the first frame is 160x96"):
        list(open_frames(video))


def test_render_draws_boxes_far_outside_the_frame(tiny_seq: Path, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from prtreid.pipeline.render import render

    tracks = pd.DataFrame({"frame": [1, 2, 13, 30], "track_id": [1, 2, 3, 3], "left": [-1e10, 10.0, 10.0, 10.0],
                           "top": [-1e10, 10.0, 10.0, 10.0], "width": [3e10, 20.0, 20.0, 20.0],
                           "height": [3e10, 40.0, 40.0, 40.0], "team": pd.array([0, None, 1, 1], dtype="Int64"),
                           "role": pd.array(["player", None, "player", "player"], dtype="string")})
    with caplog.at_level(logging.WARNING, logger="prtreid.pipeline.render"):
        assert render(tiny_seq, tracks, tmp_path / "o.mp4") == 12
    assert "has 12 frames, and 2 rows of the tracks are in later frames (up to frame 30)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="prtreid.pipeline.render"):
        assert render(tiny_seq, tracks, tmp_path / "o.mp4", max_frames=5) == 5
    assert caplog.text == ""  # rows after --max-frames are left out as asked
