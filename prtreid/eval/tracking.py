"""Tracking evaluation: HOTA / CLEAR / Identity through trackeval, plus team and role accuracy.

HOTA follows the public SoccerNet tracking evaluation: trackeval's ``MotChallenge2DBox`` with
``BENCHMARK=SNMOT``, ``DO_PREPROC=False`` (no distractor removal, classes ignored) and the metrics
HOTA, CLEAR and Identity. Ground truth comes from the sequence folders (``gt/gt.txt``); predictions
are ``PRED_DIR/<sequence>.txt`` in the same MOTChallenge format.

Team and role accuracy are scored per tracklet-frame: in every frame, ground-truth boxes are matched
to predicted boxes (Hungarian on IoU, IoU >= 0.5); each matched pair whose ground truth has a role
scores role accuracy, and each matched ground-truth *player* with a team scores team accuracy. Team
labels of a prediction are cluster ids (0/1), so a sequence is scored with the better of the two
label permutations. Goalkeepers are scored apart (``keeper_team_acc``), with the permutation that
suits the players: their kit tells nothing of their team, so the tracker has to place them
otherwise (:func:`prtreid.track.assign_teams`).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import trackeval
from scipy.optimize import linear_sum_assignment

from prtreid.data.soccernet import find_sequences, format_mot, load_sequence, read_mot
from prtreid.data.types import TEAMS, MotTable, Sequence, TrackInfo

TRACKER_NAME = "prtreid"
COMBINED = "COMBINED"


def evaluate_tracking(gt_root: str | Path, pred_dir: str | Path) -> dict[str, dict[str, float]]:
    """Per-sequence and combined metrics (fractions in 0..1) for every sequence of ``gt_root``.

    Keys per sequence: ``HOTA``, ``DetA``, ``AssA``, ``MOTA``, ``IDF1``, and, when the
    prediction has a ``<seq>.tracks.parquet`` with team/role columns, ``team_acc``/``role_acc``
    (and ``keeper_team_acc`` where a goalkeeper of a team is seen).
    """
    pred_dir = Path(pred_dir)
    seqs = [load_sequence(p, load_det=False) for p in find_sequences(gt_root)]
    seqs = [s for s in seqs if s.gt is not None]
    if not seqs:
        raise FileNotFoundError(f"{gt_root}: no sequence with ground truth")
    preds = {s.name: _read_prediction(pred_dir, s.name) for s in seqs}
    results = hota_metrics({s.name: s.gt for s in seqs}, preds, {s.name: s.info.seq_length for s in seqs})
    totals = {"team": [0, 0], "role": [0, 0], "keeper_team": [0, 0]}
    for s in seqs:
        table = pred_dir / f"{s.name}.tracks.parquet"
        if table.exists():
            acc = attribute_accuracy(s, pd.read_parquet(table))
            results[s.name] |= {k: v for k, v in acc.items() if not k.startswith("_")}
            for key in totals:
                totals[key][0] += acc[f"_{key}_correct"]
                totals[key][1] += acc[f"_{key}_total"]
    for key, (correct, total) in totals.items():
        if total:
            results[COMBINED][f"{key}_acc"] = correct / total
    return results


def _read_prediction(pred_dir: Path, name: str) -> MotTable:
    path = pred_dir / f"{name}.txt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no prediction for sequence {name}")
    return read_mot(path)


def hota_metrics(gt: dict[str, MotTable], pred: dict[str, MotTable],
                 lengths: dict[str, int]) -> dict[str, dict[str, float]]:
    """Run trackeval on in-memory tables; returns metrics per sequence and ``COMBINED``."""
    with tempfile.TemporaryDirectory(prefix="prtreid-trackeval-") as tmp:
        root = Path(tmp)
        for name, table in gt.items():
            (root / "gt" / name / "gt").mkdir(parents=True)
            (root / "gt" / name / "gt" / "gt.txt").write_text(format_mot(table))
            out = root / "trackers" / TRACKER_NAME / "data" / f"{name}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(format_mot(pred[name]))
        raw = _run_trackeval(root, lengths)
    return {(COMBINED if seq == "COMBINED_SEQ" else seq): _summarise(res["pedestrian"]) for seq, res in raw.items()}


def _run_trackeval(root: Path, lengths: dict[str, int]) -> dict[str, Any]:
    eval_cfg = {"USE_PARALLEL": False, "BREAK_ON_ERROR": True, "LOG_ON_ERROR": None,
                "PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
                "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False,
                "DISPLAY_LESS_PROGRESS": True}
    data_cfg = {"GT_FOLDER": str(root / "gt"), "TRACKERS_FOLDER": str(root / "trackers"),
                "OUTPUT_FOLDER": str(root / "out"), "TRACKERS_TO_EVAL": [TRACKER_NAME],
                "BENCHMARK": "SNMOT", "SPLIT_TO_EVAL": "test", "DO_PREPROC": False,
                "SKIP_SPLIT_FOL": True, "TRACKER_SUB_FOLDER": "data", "SEQ_INFO": dict(lengths),
                "PRINT_CONFIG": False}
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
               trackeval.metrics.Identity({"PRINT_CONFIG": False})]
    with contextlib.redirect_stdout(io.StringIO()):  # trackeval prints progress unconditionally
        evaluator = trackeval.Evaluator(eval_cfg)
        res, msg = evaluator.evaluate([trackeval.datasets.MotChallenge2DBox(data_cfg)], metrics)
    if msg["MotChallenge2DBox"][TRACKER_NAME] != "Success":
        raise RuntimeError(f"trackeval failed: {msg['MotChallenge2DBox'][TRACKER_NAME]}")
    return res["MotChallenge2DBox"][TRACKER_NAME]


def _summarise(res: dict[str, dict[str, Any]]) -> dict[str, float]:
    hota = res["HOTA"]
    return {"HOTA": float(np.mean(hota["HOTA"])), "DetA": float(np.mean(hota["DetA"])),
            "AssA": float(np.mean(hota["AssA"])), "MOTA": float(res["CLEAR"]["MOTA"]),
            "IDF1": float(res["Identity"]["IDF1"]), "IDSW": float(res["CLEAR"]["IDSW"])}


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes given as (left, top, width, height), (N, 4) x (M, 4) -> (N, M)."""
    a1, a2 = a[:, None, :2], a[:, None, :2] + a[:, None, 2:]
    b1, b2 = b[None, :, :2], b[None, :, :2] + b[None, :, 2:]
    inter = np.clip(np.minimum(a2, b2) - np.maximum(a1, b1), 0, None).prod(-1)
    union = a[:, None, 2:].prod(-1) + b[None, :, 2:].prod(-1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def attribute_accuracy(seq: Sequence, tracks: pd.DataFrame, min_iou: float = 0.5) -> dict[str, float]:
    """Team and role accuracy of a prediction table (columns frame, left, top, width, height, team, role).

    A prediction without any role (or team) label or column, such as motion-only tracking, gets no
    role (or team) score; a missing label on some rows counts as wrong. Goalkeepers' team labels are
    scored with the permutation the players agree with more, so not where the players leave it open.
    """
    gt_ids, rows = _matched_pairs(seq.gt, tracks, min_iou)
    known = np.array([g in seq.tracks for g in gt_ids], bool)
    gt_ids, rows = gt_ids[known], rows[known]
    out: dict[str, float] = {f"_{key}_{n}": 0 for key in ("team", "role", "keeper_team") for n in ("correct", "total")}
    if "role" in tracks and tracks["role"].notna().any():
        pred_roles = tracks["role"].to_numpy(dtype=object, na_value=None)[rows]  # pd.NA == x is NA, not False
        ok = int(sum(p == seq.tracks[g].role for g, p in zip(gt_ids, pred_roles)))
        out |= {"_role_correct": ok, "_role_total": len(gt_ids)}
    if "team" in tracks and tracks["team"].notna().any():
        pred = tracks["team"].to_numpy(dtype=float, na_value=np.nan)[rows]
        side = np.array([_team_index(seq.tracks[g]) for g in gt_ids], int)
        scored = side >= 0
        agree = int(np.sum(pred[scored] == side[scored]))
        flipped = int(np.sum(pred[scored] == 1 - side[scored]))
        out |= {"_team_correct": max(agree, flipped), "_team_total": int(scored.sum())}
        keeper_side = np.array([_team_index(seq.tracks[g], "goalkeeper") for g in gt_ids], int)
        kept = (keeper_side >= 0) & (agree != flipped)  # cluster labels 0/1 mean a side only through the players
        truth = 1 - keeper_side[kept] if flipped > agree else keeper_side[kept]
        out |= {"_keeper_team_correct": int(np.sum(pred[kept] == truth)), "_keeper_team_total": int(kept.sum())}
    for key in ("team", "role", "keeper_team"):
        if out[f"_{key}_total"]:
            out[f"{key}_acc"] = out[f"_{key}_correct"] / out[f"_{key}_total"]
    return out


def _team_index(info: TrackInfo, role: str = "player") -> int:
    """0/1 for a person of ``role`` with a side, -1 for everyone else (not scored)."""
    return TEAMS.index(info.team) if info.role == role and info.team in TEAMS else -1


def _matched_pairs(gt: MotTable, tracks: pd.DataFrame, min_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame Hungarian matching on IoU: ground-truth ids and the matched rows of ``tracks``."""
    boxes = tracks[["left", "top", "width", "height"]].to_numpy(float)
    frames = tracks["frame"].to_numpy()
    gt_ids, rows = [], []
    for frame in np.unique(gt.frame):
        cand = np.flatnonzero(frames == frame)
        if not len(cand):
            continue
        g = gt.at_frame(frame)
        iou = iou_matrix(g.box, boxes[cand])
        r, c = linear_sum_assignment(-iou)
        good = iou[r, c] >= min_iou
        gt_ids.append(g.track_id[r[good]])
        rows.append(cand[c[good]])
    if not gt_ids:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(gt_ids), np.concatenate(rows)
