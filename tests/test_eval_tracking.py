"""Tracking metrics through trackeval: perfect is 1, swaps and misses cost; team/role accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prtreid.data.soccernet import format_mot, write_sequence
from prtreid.data.types import MotTable, SeqInfo, Sequence, TrackInfo
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


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10.0]])
    b = np.array([[5, 0, 10, 10], [20, 20, 5, 5.0]])
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 0], [50 / 150, 0]])
