"""Tracking metrics through trackeval: perfect is 1, swaps and misses cost; team/role accuracy."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prtreid.cli import main as cli
from prtreid.data.soccernet import format_mot, write_sequence
from prtreid.data.types import MotTable, SeqInfo, Sequence, TrackInfo
from prtreid.errors import FormatError
from prtreid.eval.tracking import COMBINED, evaluate_tracking, iou_matrix


def _gt(frames: int = 30) -> MotTable:
    f = np.repeat(np.arange(1, frames + 1), 3)
    ids = np.tile([1, 2, 3], frames)
    x = np.where(ids == 1, 10 + 3 * f, np.where(ids == 2, 400 - 3 * f, 250.0))
    box = np.stack([x, np.full_like(x, 100.0), np.full_like(x, 40.0), np.full_like(x, 90.0)], 1)
    return MotTable(f, ids, box.astype(float), np.ones(len(f)))


def _write(root: Path, gt: MotTable, third: TrackInfo = TrackInfo(3, "referee", detail="main")) -> Path:
    tracks = {1: TrackInfo(1, "player", "left", "4"), 2: TrackInfo(2, "player", "right", "9"), 3: third}
    write_sequence(Sequence(SeqInfo("SNMOT-777", 30, 640, 360), tracks, gt), root / "SNMOT-777")
    return root


def _predict(pred_dir: Path, table: MotTable, teams=None, roles=None) -> None:
    pred_dir.mkdir(parents=True, exist_ok=True)
    (pred_dir / "SNMOT-777.txt").write_text(format_mot(table))
    if teams is not None:
        df = pd.DataFrame({"frame": table.frame, "track_id": table.track_id, "left": table.box[:, 0],
                           "top": table.box[:, 1], "width": table.box[:, 2], "height": table.box[:, 3],
                           "team": [teams[i] for i in table.track_id], "role": [roles[i] for i in table.track_id]})
        df.to_parquet(pred_dir / "SNMOT-777.tracks.parquet")


def test_perfect_prediction_scores_one(tmp_path: Path) -> None:
    gt = _gt()
    root = _write(tmp_path / "gt", gt)
    pred = MotTable(gt.frame, gt.track_id + 100, gt.box, np.ones(len(gt)))  # ids need not be equal
    _predict(tmp_path / "pred", pred, {101: 1, 102: 0, 103: None},
             {101: "player", 102: "player", 103: "referee"})
    res = evaluate_tracking(root, tmp_path / "pred")
    for key in ("HOTA", "DetA", "AssA", "MOTA", "IDF1"):
        assert res["SNMOT-777"][key] == pytest.approx(1.0)
    assert res[COMBINED]["HOTA"] == pytest.approx(1.0)
    # Team labels are swapped (1 for left) yet score 1: cluster ids are permutation-invariant.
    assert res["SNMOT-777"]["team_acc"] == 1.0 and res["SNMOT-777"]["role_acc"] == 1.0
    assert "keeper_team_acc" not in res["SNMOT-777"]  # no goalkeeper in this clip


def test_id_swap_and_misses_lower_the_scores(tmp_path: Path) -> None:
    gt = _gt()
    root = _write(tmp_path / "gt", gt)
    swapped_ids = gt.track_id.copy()
    late = gt.frame > 15
    swapped_ids[late & (gt.track_id == 1)] = 2
    swapped_ids[late & (gt.track_id == 2)] = 1
    _predict(tmp_path / "swap", MotTable(gt.frame, swapped_ids, gt.box, np.ones(len(gt))))
    swap = evaluate_tracking(root, tmp_path / "swap")["SNMOT-777"]
    assert swap["DetA"] == pytest.approx(1.0) and swap["AssA"] < 0.8 and swap["HOTA"] < 0.9
    assert swap["IDSW"] == 2
    keep = gt.frame % 2 == 0
    _predict(tmp_path / "miss", gt.select(keep))
    miss = evaluate_tracking(root, tmp_path / "miss")["SNMOT-777"]
    assert miss["DetA"] < 0.6 and miss["MOTA"] == pytest.approx(0.5)


def test_wrong_roles_and_split_teams_are_counted(tmp_path: Path) -> None:
    gt = _gt()
    root = _write(tmp_path / "gt", gt)
    _predict(tmp_path / "pred", gt, {1: 0, 2: 0, 3: None}, {1: "player", 2: "goalkeeper", 3: "referee"})
    res = evaluate_tracking(root, tmp_path / "pred")["SNMOT-777"]
    assert res["team_acc"] == pytest.approx(0.5)
    assert res["role_acc"] == pytest.approx(2 / 3)


def test_goalkeepers_team_is_scored_with_the_players_permutation(tmp_path: Path) -> None:
    gt = _gt()
    root = _write(tmp_path / "gt", gt, TrackInfo(3, "goalkeeper", "left", "1"))
    roles = {1: "player", 2: "player", 3: "goalkeeper"}
    for keeper_label, expected in ((1, 1.0), (0, 0.0), (None, 0.0)):
        _predict(tmp_path / "pred", gt, {1: 1, 2: 0, 3: keeper_label}, roles)  # players: 1 is left
        res = evaluate_tracking(root, tmp_path / "pred")
        assert res["SNMOT-777"]["team_acc"] == 1.0  # the keeper is not a player
        assert res["SNMOT-777"]["keeper_team_acc"] == expected == res[COMBINED]["keeper_team_acc"]
    # players in one cluster, one per side: no permutation gives the labels a side, so the keeper is not scored
    _predict(tmp_path / "pred", gt, {1: 0, 2: 0, 3: 1}, roles)
    res = evaluate_tracking(root, tmp_path / "pred")["SNMOT-777"]
    assert res["team_acc"] == 0.5 and "keeper_team_acc" not in res


def test_a_tracks_table_without_team_or_role_columns_is_scored_without_them(tmp_path: Path) -> None:
    gt = _gt()
    root = _write(tmp_path / "gt", gt)
    _predict(tmp_path / "pred", gt, {1: 0, 2: 1, 3: None}, {1: "player", 2: "player", 3: "referee"})
    path = tmp_path / "pred" / "SNMOT-777.tracks.parquet"
    pd.read_parquet(path).drop(columns=["team", "role"]).to_parquet(path)
    res = evaluate_tracking(root, tmp_path / "pred")["SNMOT-777"]
    assert res["HOTA"] == pytest.approx(1.0) and "team_acc" not in res and "role_acc" not in res


def test_mot_results_without_a_tracks_table_are_scored_with_a_warning(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    gt = _gt()
    root = _write(tmp_path / "gt", gt)
    _predict(tmp_path / "pred", gt)  # MOT text only, as another tracker writes, or a killed `prtreid track`
    res = evaluate_tracking(root, tmp_path / "pred")["SNMOT-777"]
    assert res["HOTA"] == pytest.approx(1.0) and "team_acc" not in res
    assert f"{tmp_path / 'pred' / 'SNMOT-777.tracks.parquet'} missing" in caplog.text
    caplog.clear()
    _predict(tmp_path / "pred", gt, {1: 0, 2: 1, 3: None}, {1: "player", 2: "player", 3: "referee"})
    evaluate_tracking(root, tmp_path / "pred")
    assert "not scored" not in caplog.text


def test_rows_without_a_role_count_as_wrong(tmp_path: Path) -> None:
    gt = _gt()
    root = _write(tmp_path / "gt", gt)
    _predict(tmp_path / "pred", gt, {1: 0, 2: 1, 3: None}, {1: "player", 2: None, 3: "referee"})
    path = tmp_path / "pred" / "SNMOT-777.tracks.parquet"
    table = pd.read_parquet(path)
    table.astype({"role": "string"}).to_parquet(path)  # the pipeline's dtype: missing is pd.NA
    assert evaluate_tracking(root, tmp_path / "pred")["SNMOT-777"]["role_acc"] == pytest.approx(2 / 3)


def test_missing_prediction_is_a_clear_error(tmp_path: Path) -> None:
    root = _write(tmp_path / "gt", _gt())
    with pytest.raises(FileNotFoundError, match="SNMOT-777.txt"):
        evaluate_tracking(root, tmp_path / "nothing")


BAD_ROWS = [  # (file, a row that replaces the table's 5th row, the error it must raise)
    pytest.param("pred", "2,-1,10,100,40,90,1,-1,-1,-1", "track id -1 is negative", id="pred-negative-id"),
    pytest.param("gt", "2,-1,10,100,40,90,1,-1,-1,-1", "track id -1 is negative", id="gt-negative-id"),
    pytest.param("pred", "2,1e30,10,100,40,90,1,-1,-1,-1", r"track id is not a whole number in 0\.\.2\*\*53",
                 id="pred-huge-id"),
    pytest.param("gt", "2,1e30,10,100,40,90,1,-1,-1,-1", r"track id is not a whole number in 0\.\.2\*\*53",
                 id="gt-huge-id"),
    pytest.param("pred", "1,1,10,100,40,90,1,-1,-1,-1", "frame 1 has track id 1 twice", id="pred-repeat"),
    pytest.param("gt", "1,1,10,100,40,90,1,-1,-1,-1", "frame 1 has track id 1 twice", id="gt-repeat"),
    pytest.param("pred", "31,1,10,100,40,90,1,-1,-1,-1", r"frame 31 is outside the sequence's frames 1\.\.30",
                 id="pred-late-frame"),
]


@pytest.mark.parametrize(("which", "row", "message"), BAD_ROWS)
def test_rows_trackeval_would_misread_are_refused_at_their_line(tmp_path: Path, which: str, row: str,
                                                                 message: str) -> None:
    gt = _gt()
    root = _write(tmp_path / "gt", gt)
    _predict(tmp_path / "pred", gt)
    path = root / "SNMOT-777" / "gt" / "gt.txt" if which == "gt" else tmp_path / "pred" / "SNMOT-777.txt"
    lines = path.read_text().splitlines()
    lines[4] = row
    path.write_text("\n\n" + "\n".join(lines) + "\n")  # blank lines first: the 5th row is on line 7
    with pytest.raises(FormatError, match=rf"^{re.escape(str(path))}:7: {message}"):
        evaluate_tracking(root, tmp_path / "pred")


def test_large_ids_are_scored_in_memory_that_does_not_grow_with_them(tmp_path: Path) -> None:
    gt = _gt()
    root = _write(tmp_path / "gt", MotTable(gt.frame, gt.track_id * 99_999_999_999, gt.box, gt.conf))
    ids = np.where((gt.frame > 15) & (gt.track_id < 3), 3 - gt.track_id, gt.track_id) + 2**52  # 1 and 2 swap
    _predict(tmp_path / "pred", MotTable(gt.frame, ids, gt.box, gt.conf))
    res = evaluate_tracking(root, tmp_path / "pred")["SNMOT-777"]  # trackeval alone allocates 2**52 floats
    assert res["DetA"] == pytest.approx(1.0) and res["IDSW"] == 2 and res["AssA"] < 0.8


def _gamestate(folder: Path, seq_length: int) -> Path:
    """A Game State sequence folder: 3 frames, 2 players; its prediction (``SNGS-001.txt``) is the truth."""
    images = [{"image_id": str(f), "file_name": f"{f:06d}.jpg", "width": 640, "height": 360} for f in (1, 2, 3)]
    anns = [{"image_id": str(f), "track_id": t, "bbox_image": {"x": 100.0 * t, "y": 50.0, "w": 20.0, "h": 40.0},
             "attributes": {"role": "player", "team": "left"}} for f in (1, 2, 3) for t in (1, 2)]
    doc = {"info": {"name": "SNGS-001", "seq_length": seq_length}, "images": images, "annotations": anns}
    (folder / "gt" / "SNGS-001").mkdir(parents=True)
    (folder / "gt" / "SNGS-001" / "Labels-GameState.json").write_text(json.dumps(doc))
    (folder / "pred").mkdir()
    (folder / "pred" / "SNGS-001.txt").write_text("".join(f"{f},{t},{100 * t},50,20,40,1,-1,-1,-1\n"
                                                          for f in (1, 2, 3) for t in (1, 2)))
    return folder / "gt"


def test_game_state_frames_beyond_its_length_are_refused(tmp_path: Path) -> None:
    assert evaluate_tracking(_gamestate(tmp_path / "ok", 3), tmp_path / "ok" / "pred")["SNGS-001"]["HOTA"] == 1.0
    root = _gamestate(tmp_path / "short", 2)
    path = re.escape(str(root / "SNGS-001" / "Labels-GameState.json"))
    with pytest.raises(FormatError, match=rf"^{path} \[annotations\]: frame 3 is outside the sequence's frames 1\.\.2"):
        evaluate_tracking(root, tmp_path / "short" / "pred")


def test_two_ground_truth_sequences_of_one_name_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    gt = _gt()
    _write(tmp_path / "a", gt)
    _write(tmp_path / "b", gt)
    (tmp_path / "gt").mkdir()
    shutil.move(tmp_path / "a" / "SNMOT-777", tmp_path / "gt" / "first")
    shutil.move(tmp_path / "b" / "SNMOT-777", tmp_path / "gt" / "second")
    _predict(tmp_path / "pred", gt)
    assert cli(["eval-tracking", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred")]) == 2
    first, second = (tmp_path / "gt" / name / "seqinfo.ini" for name in ("first", "second"))
    assert capsys.readouterr().err == (f"prtreid eval-tracking: error: {second} [name]: sequence name 'SNMOT-777' "
                                       f"is also the name of {first}\n")


def test_a_tracks_table_without_boxes_or_not_parquet_is_refused(tmp_path: Path) -> None:
    gt = _gt()
    root = _write(tmp_path / "gt", gt)
    _predict(tmp_path / "pred", gt, {1: 0, 2: 1, 3: None}, {1: "player", 2: "player", 3: "referee"})
    path = tmp_path / "pred" / "SNMOT-777.tracks.parquet"
    pd.read_parquet(path).drop(columns=["left", "frame", "team"]).to_parquet(path)
    with pytest.raises(FormatError, match=rf"^{re.escape(str(path))}: missing column\(s\) frame, left \(has: "):
        evaluate_tracking(root, tmp_path / "pred")
    path.write_text("frame,left\n1,2\n")
    with pytest.raises(FormatError, match=rf"^{re.escape(str(path))}: not a Parquet table"):
        evaluate_tracking(root, tmp_path / "pred")


def _at_row_5(value: object):
    def change(column: pd.Series) -> pd.Series:
        column = column.astype(object)
        column.iloc[4] = value
        return column
    return change


BAD_COLUMNS = [  # (column, how it is spoilt, the row the error names, how the message shows the value)
    pytest.param("left", _at_row_5(np.nan), 5, "nan", id="nan-left"),
    pytest.param("width", _at_row_5(-4.0), 5, "-4.0", id="negative-width"),
    pytest.param("frame", _at_row_5(2.5), 5, "2.5", id="fractional-frame"),
    pytest.param("team", _at_row_5(2.0), 5, "2.0", id="team-2"),
    pytest.param("team", lambda c: c.map({0.0: "left", 1.0: "right"}), 1, "'left'", id="team-text"),
    pytest.param("role", lambda c: pd.Series(range(len(c))), 1, "0", id="role-number"),
]


def _scored_tables(tmp_path: Path) -> tuple[Path, Path]:
    """A ground-truth folder and its perfect prediction; returns the folder and the tracks table's path."""
    gt = _gt()
    root = _write(tmp_path / "gt", gt)
    _predict(tmp_path / "pred", gt, {1: 0, 2: 1, 3: None}, {1: "player", 2: "player", 3: "referee"})
    return root, tmp_path / "pred" / "SNMOT-777.tracks.parquet"


@pytest.mark.parametrize(("column", "spoil", "row", "shown"), BAD_COLUMNS)
def test_a_tracks_table_value_that_cannot_be_scored_is_refused_by_row(tmp_path: Path, column: str, spoil,
                                                                      row: int, shown: str) -> None:
    root, path = _scored_tables(tmp_path)
    table = pd.read_parquet(path)
    table[column] = spoil(table[column])
    table.to_parquet(path)
    with pytest.raises(FormatError, match=rf"^{re.escape(str(path))} \[row {row}\]: column '{column}' holds {shown}$"):
        evaluate_tracking(root, tmp_path / "pred")


def test_several_bad_values_are_reported_at_the_first_row_whatever_the_column(tmp_path: Path) -> None:
    root, path = _scored_tables(tmp_path)
    table = pd.read_parquet(path).astype({"frame": float})
    table.loc[4, "frame"] = 2.5  # a column checked before team, in a later row
    table.loc[1, "team"] = 2.0
    table.to_parquet(path)
    with pytest.raises(FormatError, match=rf"^{re.escape(str(path))} \[row 2\]: column 'team' holds 2.0$"):
        evaluate_tracking(root, tmp_path / "pred")


def test_a_tracks_table_with_zero_size_boxes_is_scored(tmp_path: Path) -> None:
    root, path = _scored_tables(tmp_path)
    table = pd.read_parquet(path)
    table.loc[4, "width"] = 0.0  # a box that has collapsed to a line is a value, not a malformed table
    table.loc[7, "height"] = 0.0
    table.to_parquet(path)
    assert "team_acc" in evaluate_tracking(root, tmp_path / "pred")["SNMOT-777"]

def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10.0]])
    b = np.array([[5, 0, 10, 10], [20, 20, 5, 5.0]])
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 0], [50 / 150, 0]])
