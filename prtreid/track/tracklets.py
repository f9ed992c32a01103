"""Tracklet post-processing: team clustering, role vote, gap interpolation and box smoothing.

The tracker's per-frame outputs are collected into a :class:`TrackTable` (one row per track per
frame, with the detection's team embedding and role probabilities). Once the video is done:

* :func:`backfill_tentative`: a confirmed track's first frames, matched while it was tentative (first,
  so the votes below see them).
* :func:`vote_roles`: each tracklet's role from its **mean softmax probabilities** (averaging raw
  logits, as tracklab does, lets one overconfident frame outvote many), settled by the match
  context when given (:mod:`prtreid.track.context`: a kit worn by several people at once is a
  team kit).
* :func:`assign_teams`: tracklet means of unit team embeddings and of kit colours, split in two
  over player tracklets (on what :mod:`prtreid.track.teams` picks) weighted by their length; short
  player tracklets take their team from that split, goalkeepers the team seen in numbers around
  them; referees and others get no team. Team labels 0/1 are arbitrary (evaluation is permutation-invariant).
* :func:`interpolate_gaps`: linear interpolation of boxes across short gaps within a track
  (StrongSORT's linear interpolation).
* :func:`smooth_boxes`: a centred Savitzky-Golay filter (scipy's) over each track's boxes, which
  takes out a detector's frame-to-frame jitter without the lag of the online Kalman estimate
  (StrongSORT++ smooths offline too, with its Gaussian-smoothed interpolation).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.signal import savgol_filter

from prtreid.data.types import MotTable
from prtreid.track.context import RoleContext, contextual_roles
from prtreid.track.teams import split_teams, team_features, unit_rows
from prtreid.track.tracker import Appearance, Tracks


DETECTION_COLUMNS = ("team", "role_probs", "kit")
"""The optional per-detection columns of a :class:`TrackTable` (model outputs; NaN where unknown)."""


@dataclass(frozen=True)
class TrackTable:
    """Tracker output of a video, one row per (frame, track).

    Attributes:
        frame: ``(N,)`` int64 frame numbers.
        track_id: ``(N,)`` int64.
        box: ``(N, 4)`` float64 xyxy pixels.
        score: ``(N,)`` detection scores.
        team: ``(N, Dt)`` float32 team embeddings of the detections, or ``None``; NaN rows are unknown.
        role_probs: ``(N, R)`` float32 role probabilities of the detections, or ``None``; NaN rows unknown.
        kit: ``(N, Dk)`` float32 kit colours of the detections (:mod:`prtreid.model.kit`), or ``None``;
            NaN rows unknown.
        interpolated: ``(N,)`` True for rows added by :func:`interpolate_gaps`.
    """

    frame: np.ndarray
    track_id: np.ndarray
    box: np.ndarray
    score: np.ndarray
    team: np.ndarray | None = None
    role_probs: np.ndarray | None = None
    interpolated: np.ndarray | None = None
    kit: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.frame)
        if self.interpolated is None:
            object.__setattr__(self, "interpolated", np.zeros(n, bool))
        sizes = [len(self.track_id), len(self.box), len(self.score), len(self.interpolated)]
        sizes += [len(getattr(self, k)) for k in DETECTION_COLUMNS if getattr(self, k) is not None]
        if any(s != n for s in sizes):
            raise ValueError(f"TrackTable columns disagree in length: {n} frames vs {sizes}")

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def from_tracks(cls, frame: int, tracks: Tracks, appearance: Appearance | None = None) -> TrackTable:
        """Rows of one frame: the tracker's output plus the matched detections' team, role and kit data."""
        n, idx = len(tracks), tracks.det_index
        # float32, as the model gives them: a full match holds millions of rows
        rows = {k: None if appearance is None or getattr(appearance, k) is None
                else np.asarray(getattr(appearance, k))[idx].astype(np.float32) for k in DETECTION_COLUMNS}
        return cls(np.full(n, frame, np.int64), np.asarray(tracks.ids, np.int64),
                   np.asarray(tracks.boxes, np.float64).reshape(n, 4), np.asarray(tracks.scores, np.float64), **rows)

    @classmethod
    def concat(cls, tables: Iterable[TrackTable]) -> TrackTable:
        """Stack tables; a table lacking team, role or kit columns gets NaN rows where others have them."""
        tables = list(tables)
        if not tables:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))

        def stack(name: str) -> np.ndarray | None:
            cols = [getattr(t, name) for t in tables]
            width = next((c.shape[1] for c in cols if c is not None), None)
            if width is None:
                return None
            return np.concatenate([np.full((len(t), width), np.nan, np.float32) if c is None else c
                                   for t, c in zip(tables, cols)])

        return cls(*(np.concatenate([getattr(t, k) for t in tables]) for k in ("frame", "track_id", "box", "score")),
                   interpolated=np.concatenate([t.interpolated for t in tables]),
                   **{k: stack(k) for k in DETECTION_COLUMNS})

    def select(self, rows: np.ndarray) -> TrackTable:
        """Rows at ``rows`` (a boolean mask or indices)."""
        opt = {k: None if getattr(self, k) is None else getattr(self, k)[rows] for k in DETECTION_COLUMNS}
        return TrackTable(self.frame[rows], self.track_id[rows], self.box[rows], self.score[rows],
                          interpolated=self.interpolated[rows], **opt)

    def sorted(self) -> TrackTable:
        """Rows ordered by frame, then track id."""
        return self.select(np.lexsort((self.track_id, self.frame)))

    def to_mot(self) -> MotTable:
        """The MOT table (left, top, width, height boxes) for a SoccerNet submission file."""
        ltwh = np.concatenate([self.box[:, :2], self.box[:, 2:] - self.box[:, :2]], axis=1)
        return MotTable(self.frame.copy(), self.track_id.copy(), ltwh, self.score.copy())


def _group_mean(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-key mean of rows of ``values``: (unique keys, means, counts)."""
    order = np.argsort(keys, kind="stable")
    uniq, starts, counts = np.unique(keys[order], return_index=True, return_counts=True)
    if len(uniq) == 0:
        return uniq, np.zeros((0, values.shape[1])), counts
    sums = np.add.reduceat(values[order], starts, axis=0)
    return uniq, sums / counts[:, None], counts


def vote_roles(
    track_ids: np.ndarray,
    role_prob_rows: np.ndarray,
    role_names: Sequence[str],
    *,
    frames: np.ndarray | None = None,
    team_rows: np.ndarray | None = None,
    context: RoleContext | None = None,
) -> dict[int, str]:
    """Role of each tracklet from its mean role probabilities, with the match context if given.

    Args:
        track_ids: ``(N,)`` track id of each row.
        role_prob_rows: ``(N, R)`` softmax probabilities (NaN rows are skipped). Logits are
            refused: averaging logits is not averaging beliefs.
        role_names: the R role names, in column order.
        frames, team_rows, context: the rows' frame numbers and team embeddings and the
            settings of :func:`prtreid.track.context.contextual_roles`, which then decides from
            the tracklets' mean team embeddings; without them, the argmax of the mean probabilities.

    Returns:
        ``{track_id: role}`` for tracklets with at least one known row.
    """
    probs = np.asarray(role_prob_rows, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(role_names):
        raise ValueError(f"role_prob_rows must be (N, {len(role_names)}), got {probs.shape}")
    ok = np.isfinite(probs).all(1)
    if ((probs[ok] < -1e-6).any() or not np.allclose(probs[ok].sum(1), 1.0, atol=1e-3)):
        raise ValueError("role_prob_rows must be softmax probabilities (non-negative rows summing to 1), not logits")
    ids = np.asarray(track_ids)[ok]
    uniq, mean, _ = _group_mean(ids, probs[ok])
    roles = {int(t): role_names[int(k)] for t, k in zip(uniq, mean.argmax(1))}
    if context is None or frames is None or team_rows is None:
        return roles
    # the context decides for the tracklets with team rows; the others keep their head's vote
    ok &= np.isfinite(team_rows).all(1)
    ids = np.asarray(track_ids)[ok]
    uniq, mean, _ = _group_mean(ids, probs[ok])
    _, team_mean, _ = _group_mean(ids, unit_rows(np.asarray(team_rows, np.float64)[ok]))
    item_of_row = np.searchsorted(uniq, ids)
    chosen = contextual_roles(team_mean, mean, item_of_row, np.asarray(frames)[ok], role_names, context)
    return roles | {int(t): role_names[int(k)] for t, k in zip(uniq, chosen)}


def assign_teams(
    track_ids: np.ndarray,
    team_emb_rows: np.ndarray,
    roles: Mapping[int, str] | None,
    team_roles: Sequence[str] = ("player",),
    keeper_roles: Sequence[str] = ("goalkeeper",),
    min_rows: int = 5,
    seed: int = 0,
    frames: np.ndarray | None = None,
    kit_rows: np.ndarray | None = None,
    team_from: str = "embedding",
    team_split: str = "kmeans",
) -> dict[int, int | None]:
    """Team (0 or 1) of each tracklet, or ``None``.

    Each tracklet is summarised by the mean of its L2-normalised team embeddings (NaN rows
    skipped), normalised again, and by the mean of its kit colours (``kit_rows``); ``team_from``
    picks what is clustered (:func:`~prtreid.track.teams.team_features`, scaled over the tracklets
    clustered). They are split in two (``team_split``, :func:`~prtreid.track.teams.split_teams`,
    seeded; ``kmeans``: KMeans(2), the paper's) over the tracklets whose voted role is in
    ``team_roles`` and that have at least ``min_rows`` rows, each weighted by its number of rows,
    so short noisy fragments do not move the centroids. Every such tracklet, long or short, then
    takes its team from that split.

    Goalkeepers (``keeper_roles``) wear a kit unlike both teams', so their embedding cannot tell
    their team. Given the rows' ``frames``, a goalkeeper joins the team with more player rows in
    the frames where he is seen: a camera that shows a keeper shows his goal, which his team
    defends in numbers. Without ``frames``, or on a tie, he takes the team the split gives his mean. Other
    roles (referees, others) get ``None``; ``roles`` maps track ids to roles
    (:func:`vote_roles`), and ``None`` treats every tracklet as a player.
    """
    track_ids = np.asarray(track_ids)
    emb = np.asarray(team_emb_rows, dtype=np.float64)
    ok = np.isfinite(emb).all(1)
    kit = None if kit_rows is None else np.asarray(kit_rows, dtype=np.float64)
    if kit is not None:
        ok &= np.isfinite(kit).all(1)
    uniq, mean, counts = _group_mean(track_ids[ok], unit_rows(emb[ok]))
    kit_mean = None if kit is None else _group_mean(track_ids[ok], kit[ok])[1]
    role_of = [team_roles[0] if roles is None else roles.get(int(t)) for t in uniq]
    is_team = np.array([r in team_roles for r in role_of], bool)
    is_keeper = np.array([r in keeper_roles for r in role_of], bool)
    out: dict[int, int | None] = {int(t): None for t in np.unique(track_ids)}
    fit = is_team & (counts >= min_rows)
    if not fit.any():
        fit = is_team
    if not fit.any():
        return out
    x = team_features(mean, kit_mean, team_from, scale_rows=fit)
    split = split_teams(x[fit], counts[fit], seed, team_split).predict(x)
    out.update({int(t): int(team) for t, team in zip(uniq[is_team], split[is_team])})
    row_team = None
    if frames is not None and is_keeper.any():  # keepers are still None here: only players count
        all_ids, item_of_row = np.unique(track_ids, return_inverse=True)  # per tracklet, not per row: long videos
        row_team = np.array([-1 if out[int(t)] is None else out[int(t)] for t in all_ids])[item_of_row]
    for t, team in zip(uniq[is_keeper], split[is_keeper]):
        crowd = None if row_team is None else _crowd_team(np.asarray(frames), track_ids == t, row_team)
        out[int(t)] = int(team) if crowd is None else crowd
    return out


def _crowd_team(frames: np.ndarray, own_rows: np.ndarray, row_team: np.ndarray) -> int | None:
    """The team (0/1) with more rows in the frames of ``own_rows``, or ``None`` on a tie."""
    seen = np.isin(frames, frames[own_rows])
    n0, n1 = int((row_team[seen] == 0).sum()), int((row_team[seen] == 1).sum())
    return None if n0 == n1 else int(n1 > n0)


def backfill_tentative(table: TrackTable, tentative: TrackTable) -> TrackTable:
    """``table`` plus the rows of ``tentative`` whose track was confirmed later (its id is in ``table``).

    A track is reported from its confirmation on (``n_init`` hits); its first frames, matched while
    tentative, are known once it is confirmed. Tracks that died tentative leave nothing. Returns the
    table sorted by frame, then track.
    """
    kept = tentative.select(np.isin(tentative.track_id, table.track_id))
    return TrackTable.concat([table, kept]).sorted()


def interpolate_gaps(table: TrackTable, max_gap: int) -> TrackTable:
    """Fill gaps of at most ``max_gap`` missing frames within each track by linear interpolation.

    Boxes and scores are interpolated between the rows bracketing the gap; team and role columns of
    the new rows are NaN and ``interpolated`` is True. Returns the table sorted by frame, then track.
    """
    t = table.select(np.lexsort((table.frame, table.track_id)))
    gap = np.diff(t.frame) - 1
    fill = (t.track_id[1:] == t.track_id[:-1]) & (gap >= 1) & (gap <= max_gap)
    starts, lengths = np.flatnonzero(fill), gap[fill]
    if len(starts) == 0:
        return t.sorted()
    src = np.repeat(starts, lengths)
    step = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + 1
    w = (step / np.repeat(lengths + 1, lengths))[:, None]
    nan_cols = {k: None if getattr(t, k) is None else np.full((len(src), getattr(t, k).shape[1]), np.nan,
                                                               getattr(t, k).dtype)
                for k in DETECTION_COLUMNS}
    new = TrackTable(
        frame=t.frame[src] + step,
        track_id=t.track_id[src],
        box=t.box[src] + (t.box[src + 1] - t.box[src]) * w,
        score=t.score[src] + (t.score[src + 1] - t.score[src]) * w[:, 0],
        interpolated=np.ones(len(src), bool),
        **nan_cols,
    )
    return TrackTable.concat([t, new]).sorted()


def smooth_boxes(table: TrackTable, window: int, order: int = 2) -> TrackTable:
    """Smooth each track's boxes with a Savitzky-Golay filter of ``window`` frames and ``order``.

    The filter fits a polynomial of degree ``order`` to the ``window`` frames centred on each row
    (at a run's ends, to its first or last window), so motion at constant speed or acceleration
    passes unchanged while independent per-frame errors shrink. Runs are the stretches of a track
    on consecutive frames (after :func:`interpolate_gaps`, most of it); a run shorter than the
    window uses the longest odd window it holds, and one of at most ``order + 1`` rows is left as
    is. Returns the table sorted by frame, then track.
    """
    if window < 1 or window % 2 == 0 or window <= order:
        raise ValueError(f"smooth_boxes: window must be odd and above order {order}, got {window}")
    t = table.select(np.lexsort((table.frame, table.track_id)))
    box = t.box.copy()
    breaks = np.flatnonzero((np.diff(t.track_id) != 0) | (np.diff(t.frame) != 1)) + 1
    for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(t)]):
        fit = min(window, stop - start - (stop - start + 1) % 2)  # the longest odd window the run holds
        if fit > order + 1:
            box[start:stop] = savgol_filter(t.box[start:stop], fit, order, axis=0, mode="interp")
    return replace(t, box=box).sorted()
