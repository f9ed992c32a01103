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
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import trackeval
from scipy.optimize import linear_sum_assignment

from prtreid.data.soccernet import GT_FILE, SEQINFO, find_sequences, format_mot, load_sequence, read_mot
from prtreid.data.types import TEAMS, MotTable, Sequence, TrackInfo
from prtreid.errors import FormatError
from prtreid.scratch import scratch

log = logging.getLogger(__name__)

TRACKER_NAME = "prtreid"
COMBINED = "COMBINED"
GAMESTATE_FILE = "Labels-GameState.json"
BOX_COLUMNS = ("frame", "left", "top", "width", "height")
"""Columns of a ``.tracks.parquet`` table that team and role scoring needs (``team``/``role`` are optional)."""
WHOLE_COLUMNS = ("frame", "track_id")
MAX_ID = 2**53
"""Largest track id: MOT text is read as float64, which holds whole numbers exactly only up to 2**53."""


def evaluate_tracking(gt_root: str | Path, pred_dir: str | Path) -> dict[str, dict[str, float]]:
    """Per-sequence and combined metrics (fractions in 0..1) for every sequence of ``gt_root``.

    Keys per sequence: ``HOTA``, ``DetA``, ``AssA``, ``MOTA``, ``IDF1``, ``IDSW`` and, when the
    prediction has a ``<seq>.tracks.parquet`` with team/role columns, ``team_acc``/``role_acc``
    (and ``keeper_team_acc`` where a goalkeeper of a team is seen).

    Raises:
        FormatError: two sequences of one name, or a table trackeval would misread (see :func:`table_problem`),
            or a tracks table that is not Parquet, lacks a box column or holds a value it cannot score
            (all checked before trackeval runs).
        FileNotFoundError: no sequence with ground truth, or a sequence without a prediction.
    """
    pred_dir = Path(pred_dir)
    seqs = [load_sequence(p, load_det=False) for p in find_sequences(gt_root)]
    seqs = [s for s in seqs if s.gt is not None]
    if not seqs:
        raise FileNotFoundError(f"{gt_root}: no sequence with ground truth")
    _check_unique_names(seqs)
    for s in seqs:
        _check_gt(s)
    preds = {s.name: _read_prediction(pred_dir, s) for s in seqs}
    paths = {s.name: pred_dir / f"{s.name}.tracks.parquet" for s in seqs}
    tables = {name: read_tracks(path, BOX_COLUMNS) for name, path in paths.items() if path.exists()}
    if untabled := [str(path) for name, path in paths.items() if name not in tables]:
        log.warning("team and role are not scored where the MOT results have no tracks table (another "
                    "tracker's results, or a `prtreid track` stopped before writing it): %s missing",
                    ", ".join(untabled))
    results = hota_metrics({s.name: s.gt for s in seqs}, preds, {s.name: s.info.seq_length for s in seqs})
    totals = {"team": [0, 0], "role": [0, 0], "keeper_team": [0, 0]}
    for s in seqs:
        if s.name in tables:
            acc = attribute_accuracy(s, tables[s.name])
            results[s.name] |= {k: v for k, v in acc.items() if not k.startswith("_")}
            for key in totals:
                totals[key][0] += acc[f"_{key}_correct"]
                totals[key][1] += acc[f"_{key}_total"]
    for key, (correct, total) in totals.items():
        if total:
            results[COMBINED][f"{key}_acc"] = correct / total
    return results


def read_tracks(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    """A ``.tracks.parquet`` table of ``prtreid track``, checked to hold ``columns``.

    Raises:
        FormatError: the file is not a Parquet table, lacks some of ``columns`` (all of them named), or
            holds a value that cannot be scored or drawn: a frame or track id that is not a whole number, a
            box coordinate that is not finite, a negative size, a team other than 0, 1 or missing, a role
            that is not text. The message names the first such row, counted from 1.
    """
    try:
        table = pd.read_parquet(path)
    except pa.ArrowException as exc:
        raise FormatError(path, None, f"not a Parquet table ({exc})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise FormatError(path, None, f"missing column(s) {', '.join(missing)} "
                                      f"(has: {', '.join(map(str, table.columns)) or 'none'})")
    problem = _column_problem(table)
    if problem:
        raise FormatError(path, f"row {problem[0] + 1}", problem[1])
    return table


def _column_problem(table: pd.DataFrame) -> tuple[int, str] | None:
    """The first row (0-based) whose value in a known column cannot be scored or drawn, and why."""
    checks = [(c, _not_whole) for c in WHOLE_COLUMNS] + [(c, _not_finite) for c in ("left", "top")]
    checks += [(c, _not_size) for c in ("width", "height")] + [("team", _not_team), ("role", _not_role)]
    found = []
    for column, check in checks:
        if column in table.columns:
            bad = np.flatnonzero(check(table[column]))
            if len(bad):
                value = table[column].iloc[bad[0]]
                shown = value.item() if isinstance(value, np.generic) else value  # 2.5, not np.float64(2.5)
                found.append((int(bad[0]), f"column {column!r} holds {shown!r}"))
    return min(found, default=None)


def _numbers(column: pd.Series) -> np.ndarray:
    """``column`` as float64, NaN where a value is missing or not a number."""
    try:
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):  # values pandas cannot even try, such as lists
        return np.full(len(column), np.nan)


def _not_finite(column: pd.Series) -> np.ndarray:
    return ~np.isfinite(_numbers(column))


def _not_size(column: pd.Series) -> np.ndarray:
    values = _numbers(column)
    return ~(np.isfinite(values) & (values >= 0))


def _not_whole(column: pd.Series) -> np.ndarray:
    values = _numbers(column)
    return ~(np.isfinite(values) & (values == np.round(values)))


def _not_team(column: pd.Series) -> np.ndarray:
    """A team is a cluster id, 0 or 1, or missing (no team: referees, staff)."""
    values = _numbers(column)
    return ~(np.isin(values, (0, 1)) | column.isna().to_numpy())


def _not_role(column: pd.Series) -> np.ndarray:
    return ~np.array([isinstance(v, str) for v in column], bool) & ~column.isna().to_numpy()


def table_problem(table: MotTable, seq_length: int) -> tuple[int, str] | None:
    """The first row (0-based, in file order) that trackeval would misread, and why; ``None`` if none.

    trackeval indexes arrays by track id and frame: a track id must be a whole number in 0..``MAX_ID``
    (-1 would index the largest id), a frame must lie in 1..``seq_length``, and a (frame, id) pair may
    appear once.
    """
    bad_id = (table.track_id < 0) | (table.track_id > MAX_ID)
    bad_frame = (table.frame < 1) | (table.frame > seq_length)
    bad = np.flatnonzero(bad_id | bad_frame | _repeats(table))
    if not len(bad):
        return None
    row = int(bad[0])
    frame, tid = int(table.frame[row]), int(table.track_id[row])
    if bad_id[row]:
        if -MAX_ID <= tid < 0:
            return row, f"track id {tid} is negative (ids are whole numbers 0 or more)"
        return row, f"track id is not a whole number in 0..2**53 (frame {frame})"
    if bad_frame[row]:
        return row, f"frame {frame} is outside the sequence's frames 1..{seq_length} (track id {tid})"
    return row, f"frame {frame} has track id {tid} twice"


def _repeats(table: MotTable) -> np.ndarray:
    """True on every row whose (frame, track id) pair an earlier row has."""
    order = np.lexsort((table.track_id, table.frame))  # stable: a repeat sorts after its first row
    same = (np.diff(table.frame[order]) == 0) & (np.diff(table.track_id[order]) == 0)
    out = np.zeros(len(table), bool)
    out[order[1:][same]] = True
    return out


def check_mot(table: MotTable, seq_length: int, path: Path) -> None:
    """Refuse a table read from the MOT file ``path`` that trackeval would misread.

    Raises:
        FormatError: at the line of the first bad row (see :func:`table_problem`).
    """
    problem = table_problem(table, seq_length)
    if problem:
        raise FormatError(path, _line_number(path, problem[0]), problem[1])


def _line_number(path: Path, row: int) -> int:
    """1-based line of the ``row``-th table row of a MOT file (:func:`read_mot` skips blank lines)."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return [n for n, line in enumerate(lines, start=1) if line.strip()][row]


def _check_gt(seq: Sequence) -> None:
    """Refuse ground truth that trackeval would misread; a Game State file is named by its annotations."""
    if (seq.root / SEQINFO).exists():
        check_mot(seq.gt, seq.info.seq_length, seq.root / GT_FILE)
        return
    problem = table_problem(seq.gt, seq.info.seq_length)
    if problem:
        raise FormatError(seq.root / GAMESTATE_FILE, "annotations", problem[1])


def _check_unique_names(seqs: list[Sequence]) -> None:
    """Refuse two ground-truth sequences of one name: both would be scored against one prediction."""
    seen: dict[str, Path] = {}
    for s in seqs:
        path, key = _name_source(s)
        if s.name in seen:
            raise FormatError(path, key, f"sequence name {s.name!r} is also the name of {seen[s.name]}")
        seen[s.name] = path


def _name_source(seq: Sequence) -> tuple[Path, str]:
    """The file and key that a sequence's name comes from."""
    if (seq.root / SEQINFO).exists():
        return seq.root / SEQINFO, "name"
    return seq.root / GAMESTATE_FILE, "info.name"


def _read_prediction(pred_dir: Path, seq: Sequence) -> MotTable:
    path = pred_dir / f"{seq.name}.txt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no prediction for sequence {seq.name}")
    table = read_mot(path)
    check_mot(table, seq.info.seq_length, path)
    return table


def _dense_ids(table: MotTable) -> MotTable:
    """``table`` with its track ids renumbered 0..n-1: trackeval sizes arrays by the largest id."""
    ids = np.unique(table.track_id, return_inverse=True)[1].reshape(-1)
    return MotTable(table.frame, ids.astype(np.int64), table.box, table.conf)


def hota_metrics(gt: dict[str, MotTable], pred: dict[str, MotTable],
                 lengths: dict[str, int]) -> dict[str, dict[str, float]]:
    """Run trackeval on in-memory tables; returns metrics per sequence and ``COMBINED``.

    Track ids only need to be distinct: each table's are renumbered densely, so memory does not grow with them.
    Tables are expected to pass :func:`table_problem`.
    """
    with scratch("trackeval-") as root:
        for name, table in gt.items():
            (root / "gt" / name / "gt").mkdir(parents=True)
            (root / "gt" / name / "gt" / "gt.txt").write_text(format_mot(_dense_ids(table)))
            out = root / "trackers" / TRACKER_NAME / "data" / f"{name}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(format_mot(_dense_ids(pred[name])))
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
