"""``prtreid render`` refuses a bad tracks table or frame limit with one line naming it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prtreid.cli import main as cli
from prtreid.data.frames import open_frames, write_video


def _clip(tmp_path: Path) -> Path:
    """A 3-frame video ``clip.mp4`` and its tracks table ``pred/clip.tracks.parquet`` (one box a frame)."""
    video = tmp_path / "clip.mp4"
    write_video(video, (np.full((64, 96, 3), 40 * i, np.uint8) for i in range(3)), fps=25)
    (tmp_path / "pred").mkdir()
    pd.DataFrame({"frame": [1, 2, 3], "track_id": [7, 7, 7], "left": [10.0, 12, 14], "top": [20.0, 20, 20],
                  "width": [16.0, 16, 16], "height": [30.0, 30, 30], "team": [0, 0, 0],
                  "role": ["player"] * 3}).to_parquet(tmp_path / "pred" / "clip.tracks.parquet")
    return video


def _render(tmp_path: Path, *extra: str) -> int:
    return cli(["render", "--input", str(tmp_path / "clip.mp4"), "--pred", str(tmp_path / "pred"),
                "--out", str(tmp_path / "out.mp4"), *extra])


@pytest.mark.parametrize("limit", ["0", "-2"])
def test_a_frame_limit_below_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture, limit: str) -> None:
    _clip(tmp_path)
    assert _render(tmp_path, "--max-frames", "1") == 0
    assert len(list(open_frames(tmp_path / "out.mp4"))) == 1
    capsys.readouterr()
    assert _render(tmp_path, "--max-frames", limit) == 2
    assert capsys.readouterr().err == (f"prtreid render: error: --max-frames must be 1 or more, got {limit} "
                                       "(leave it out for every frame)\n")


@pytest.mark.parametrize("dropped", [["team"], ["left", "role"], ["frame"], ["track_id"]])
def test_a_tracks_table_without_what_render_draws_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                             dropped: list[str]) -> None:
    _clip(tmp_path)
    table = tmp_path / "pred" / "clip.tracks.parquet"
    pd.read_parquet(table).drop(columns=dropped).to_parquet(table)
    assert _render(tmp_path) == 2
    assert capsys.readouterr().err.startswith(
        f"prtreid render: error: {table}: missing column(s) {', '.join(dropped)} (has: ")
    assert not (tmp_path / "out.mp4").exists()


def test_a_tracks_table_that_is_not_parquet_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _clip(tmp_path)
    table = tmp_path / "pred" / "clip.tracks.parquet"
    table.write_text("frame,track_id\n1,7\n")
    assert _render(tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"prtreid render: error: {table}: not a Parquet table (") and err.count("\n") == 1
