"""PRT-Track: a StrongSORT-style tracker with part-based appearance and team-aware gating.

One :meth:`PRTTracker.update` per frame, on detections and per-detection appearance computed
upstream (the tracker never loads a model nor reads an image):

1. Kalman predict of every track (NSA Kalman on ``(cx, cy, w, h)``), then the camera-motion warp
   given by the caller applied to means and covariances (BoT-SORT's GMC).
2. Stage 1, confirmed tracks x detections: visibility-aware part distance between the track's
   per-part EMA features and the detection's, fused with the squared Mahalanobis distance
   (``mc_lambda``), gated by chi-square and by appearance limits; tracks unseen for more than
   ``relax_gate_after`` frames are matched on appearance alone with a stricter limit (their
   prediction is stale: a player leaving and re-entering the view can be anywhere). Without
   appearance this stage is IoU with the motion gate, as SORT.
3. Stage 2, tentative tracks and confirmed ones missed only this frame x remaining detections:
   IoU assignment.
4. Births of tentative tracks from unmatched confident detections; tentative tracks die at their
   first miss, confirmed ones after ``max_age`` frames unseen.

Team gating (optional) applies to both stages. Tracks are kept as arrays (one row per track), so
a frame costs a handful of numpy calls whatever the number of tracks.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from prtreid.track.cmc import warp_tracks
from prtreid.track.config import TrackerConfig
from prtreid.track.kalman import CHI2INV95, KalmanFilter, xywh_to_xyxy, xyxy_to_xywh
from prtreid.track.matching import assign, fuse_motion_appearance, iou_matrix, l2_normalize, part_distance, team_gate


@dataclass(frozen=True)
class Detections:
    """Detections of one frame: ``boxes`` ``(N, 4)`` xyxy pixels, ``scores`` ``(N,)``."""

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        if np.shape(self.boxes) != (len(self.scores), 4):
            raise ValueError(f"Detections: boxes {np.shape(self.boxes)} do not match scores ({len(self.scores)},)")


@dataclass(frozen=True)
class Appearance:
    """Per-detection appearance, rows in detection order.

    Attributes:
        feats: ``(N, P, D)`` re-id descriptors (parts, foreground, global); L2-normalised per part
            by the tracker.
        vis: ``(N, P)`` part visibility in [0, 1]; ``None`` means every part visible.
        team: ``(N, Dt)`` team embeddings, or ``None``.
        role_probs: ``(N, R)`` softmax role probabilities, or ``None`` (not used by the tracker;
            tracklet post-processing votes on them).
        kit: ``(N, Dk)`` kit colours (:mod:`prtreid.model.kit`), or ``None`` (not used by the tracker;
            tracklet post-processing may cluster teams on them).
    """

    feats: np.ndarray
    vis: np.ndarray | None = None
    team: np.ndarray | None = None
    role_probs: np.ndarray | None = None
    kit: np.ndarray | None = None


@dataclass(frozen=True)
class Tracks:
    """Tracks updated this frame: confirmed ones from :meth:`PRTTracker.update`, tentative ones in
    :attr:`PRTTracker.tentative`.

    Attributes:
        ids: ``(M,)`` track ids (1-based, unique within a video).
        boxes: ``(M, 4)`` xyxy boxes.
        scores: ``(M,)`` scores of the detections that updated them.
        det_index: ``(M,)`` row of that detection in the frame's :class:`Detections`.
    """

    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    det_index: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class TrackStore:
    """All tracks of a video as arrays, one row per track (internal state of :class:`PRTTracker`).

    ``feats`` ``(T, P, D)`` holds each track's per-part EMA descriptors and ``vis`` ``(T, P)``
    how visible each part was when it was learnt (0 = never seen); ``team_sum`` ``(T, Dt)`` sums
    the unit team embeddings of ``team_n`` observations. ``tsu`` counts frames since the last
    update and ``matched_det`` is the detection row that updated a track this frame (-1 if none).
    """

    ids: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    hits: np.ndarray
    tsu: np.ndarray
    confirmed: np.ndarray
    score: np.ndarray
    matched_det: np.ndarray
    team_n: np.ndarray
    feats: np.ndarray | None = None
    vis: np.ndarray | None = None
    team_sum: np.ndarray | None = None

    @classmethod
    def empty(cls) -> TrackStore:
        """No tracks."""
        i = np.zeros(0, np.int64)
        return cls(i, np.zeros((0, 8)), np.zeros((0, 8, 8)), i, i, np.zeros(0, bool), np.zeros(0), i, i)

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, rows: np.ndarray) -> TrackStore:
        """The tracks at ``rows`` (a boolean mask or indices)."""
        return TrackStore(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[rows]
                             for f in fields(self)})

    def append(
        self, ids: np.ndarray, mean: np.ndarray, cov: np.ndarray, scores: np.ndarray, det_rows: np.ndarray,
        confirmed: bool, feats: np.ndarray | None, vis: np.ndarray | None, team: np.ndarray | None,
    ) -> TrackStore:
        """These tracks plus new ones (one hit, just updated)."""
        n = len(ids)
        ones = np.ones(n, np.int64)
        new = TrackStore(ids, mean, cov, ones, 0 * ones, np.full(n, confirmed), scores, det_rows,
                         np.zeros(n, np.int64))
        if self.feats is not None:
            new.feats = np.zeros((n, *self.feats.shape[1:]), np.float32) if feats is None else feats
            new.vis = np.zeros((n, self.vis.shape[1]), np.float32) if vis is None else vis
        if self.team_sum is not None:
            new.team_sum = np.zeros((n, self.team_sum.shape[1]))
            if team is not None:
                new.update_team(np.arange(n), team)
        return TrackStore(**{f.name: None if getattr(self, f.name) is None
                             else np.concatenate([getattr(self, f.name), getattr(new, f.name)])
                             for f in fields(self)})

    def ensure_appearance(self, feat_shape: tuple[int, ...], team_dim: int | None) -> None:
        """Allocate appearance arrays (zero = unknown) the first time appearance is given."""
        if self.feats is None:
            self.feats = np.zeros((len(self), *feat_shape), np.float32)
            self.vis = np.zeros((len(self), feat_shape[0]), np.float32)
        elif self.feats.shape[1:] != tuple(feat_shape):
            raise ValueError(f"appearance changed shape within a video: {self.feats.shape[1:]} -> {feat_shape}")
        if team_dim is not None and self.team_sum is None:
            self.team_sum = np.zeros((len(self), team_dim))
        elif team_dim is not None and self.team_sum.shape[1] != team_dim:
            raise ValueError(f"team embedding changed size within a video: {self.team_sum.shape[1]} -> {team_dim}")

    def update_appearance(self, rows: np.ndarray, feats: np.ndarray, vis: np.ndarray, alpha: float,
                          vis_threshold: float) -> None:
        """Visibility-aware per-part EMA.

        A part is updated only when visible in the detection (``vis >= vis_threshold``), as
        ``normalize(alpha * v_t * f_t + (1 - alpha) * v_d * f_d)``: plain EMA when both are fully
        visible, a part the track never saw (``v_t = 0``) takes the detection's descriptor, a
        half-visible detection moves the descriptor less. The track's part visibility becomes
        ``max(v_t, v_d)`` (how well the descriptor has been seen).
        """
        tf, tv = self.feats[rows], self.vis[rows]
        use = vis >= vis_threshold
        a = alpha * tv
        b = (1.0 - alpha) * vis * use
        blended = l2_normalize(a[..., None] * tf + b[..., None] * feats)
        self.feats[rows] = np.where((use & (a + b > 0))[..., None], blended, tf)
        self.vis[rows] = np.where(use, np.maximum(tv, vis), tv)

    def update_team(self, rows: np.ndarray, team: np.ndarray) -> None:
        """Add unit team embeddings (rows with non-finite values, or all zeros, "unknown", are skipped)."""
        ok = np.isfinite(team).all(1) & (np.abs(team).sum(1) > 0)
        self.team_sum[rows[ok]] += team[ok]
        self.team_n[rows[ok]] += 1


class PRTTracker:
    """Online multi-person tracker; see the module docstring for the algorithm.

    Args:
        cfg: settings (:meth:`TrackerConfig.sports` for broadcast soccer).

    Attributes:
        tentative: after each :meth:`update`, the tentative tracks it updated (born or matched, not yet
            confirmed), in the form ``update`` returns confirmed ones. An online caller ignores them;
            an offline one may keep the rows of the ids that are confirmed later, so a track starts at
            its first detection rather than ``n_init - 1`` frames after it
            (:func:`prtreid.track.tracklets.backfill_tentative`).
    """

    def __init__(self, cfg: TrackerConfig = TrackerConfig()) -> None:
        self.cfg = cfg
        self.kf = KalmanFilter(cfg.std_weight_position, cfg.std_weight_velocity)
        self.gate = CHI2INV95[2 if cfg.gate_only_position else 4]
        self.reset()

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (next video)."""
        self.tracks = TrackStore.empty()
        self.tentative = Tracks(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
        self.frame = 0
        self._next_id = 1

    def update(
        self, dets: Detections, appearance: Appearance | None = None, warp: np.ndarray | None = None
    ) -> Tracks:
        """Advance one frame.

        Args:
            dets: this frame's detections.
            appearance: their appearance, or ``None`` (motion and IoU only).
            warp: 2x3 affine from the previous frame to this one (camera motion); ``None`` = identity.

        Detections scored below ``min_conf``, or without a positive width and height (a box clipped
        to nothing at the image border), are ignored.
        """
        self.frame += 1
        boxes = np.asarray(dets.boxes, dtype=np.float64).reshape(-1, 4)
        sized = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        keep = np.flatnonzero((np.asarray(dets.scores) >= self.cfg.min_conf) & sized)
        boxes = boxes[keep]
        scores = np.clip(np.asarray(dets.scores, dtype=np.float64)[keep], 0.0, 1.0)
        feats, vis, team = self._prepare_appearance(appearance, keep, len(dets.scores))
        self._predict(warp)

        xywh = xyxy_to_xywh(boxes)
        allowed_team = self._team_allowed(team, len(boxes))
        matches1, free_dets = self._stage1(xywh, boxes, feats, vis, allowed_team)
        matches2, free_dets = self._stage2(boxes, free_dets, matches1[:, 0], feats, vis, allowed_team)
        matches = np.concatenate([matches1, matches2])

        self._apply_matches(matches, xywh, scores, feats, vis, team)
        self._remove_dead(matches[:, 0])
        births = free_dets[scores[free_dets] >= self.cfg.birth_conf]
        self._birth(xywh[births], scores[births], feats, vis, team, births)
        self.tentative = self._output(boxes, keep, confirmed=False)
        return self._output(boxes, keep, confirmed=True)

    # -- steps ----------------------------------------------------------------------------------

    def _prepare_appearance(
        self, appearance: Appearance | None, keep: np.ndarray, n_dets: int
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        if appearance is None:
            return None, None, None
        if np.ndim(appearance.feats) != 3 or len(appearance.feats) != n_dets:
            raise ValueError(f"Appearance.feats must be ({n_dets}, P, D), got {np.shape(appearance.feats)}")
        parts = np.shape(appearance.feats)[1]
        if appearance.vis is not None and np.shape(appearance.vis) != (n_dets, parts):
            raise ValueError(f"Appearance.vis must be ({n_dets}, {parts}), got {np.shape(appearance.vis)}")
        team = appearance.team
        if team is not None and (np.ndim(team) != 2 or len(team) != n_dets):
            raise ValueError(f"Appearance.team must be ({n_dets}, Dt), got {np.shape(team)}")
        feats = l2_normalize(np.asarray(appearance.feats, dtype=np.float32)[keep])
        vis = (np.ones(feats.shape[:2], np.float32) if appearance.vis is None
               else np.asarray(appearance.vis, dtype=np.float32)[keep])
        team = None if appearance.team is None else l2_normalize(np.asarray(appearance.team, np.float64)[keep])
        self.tracks.ensure_appearance(feats.shape[1:], None if team is None else team.shape[1])
        return feats, vis, team

    def _predict(self, warp: np.ndarray | None) -> None:
        t = self.tracks
        if len(t) == 0:
            return
        t.mean, t.cov = self.kf.multi_predict(t.mean, t.cov)
        t.mean, t.cov = warp_tracks(t.mean, t.cov, warp)
        t.tsu += 1

    def _team_allowed(self, team: np.ndarray | None, n_dets: int) -> np.ndarray:
        t, c = self.tracks, self.cfg
        if not c.team_gating or team is None or t.team_sum is None:
            return np.ones((len(t), n_dets), bool)
        return team_gate(t.team_sum, t.team_n, team, c.team_gate_min_sim, c.team_gate_min_obs,
                         c.team_gate_min_consistency)

    def _stage1(
        self, xywh: np.ndarray, boxes: np.ndarray, feats: np.ndarray | None, vis: np.ndarray | None,
        allowed_team: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Confirmed tracks x all detections; returns (track row, det row) matches and free dets."""
        t, c = self.tracks, self.cfg
        rows = np.flatnonzero(t.confirmed)
        if len(rows) == 0 or len(boxes) == 0:
            return np.zeros((0, 2), np.int64), np.arange(len(boxes))
        maha = self.kf.gating_distance(t.mean[rows], t.cov[rows], xywh, c.gate_only_position)
        if feats is None or t.feats is None:
            cost = 1.0 - iou_matrix(xywh_to_xyxy(t.mean[rows, :4]), boxes)
            allowed = (maha <= self.gate) & (cost <= c.max_iou_dist)
        else:
            app = part_distance(t.feats[rows], t.vis[rows], feats, vis)
            long_lost = t.tsu[rows] - 1 > c.relax_gate_after  # frames unseen before this one
            cost, allowed = fuse_motion_appearance(app, maha, long_lost, self.gate, c.max_app_dist,
                                                   c.reid_max_dist, c.mc_lambda)
        matched, _, free = assign(cost, allowed & allowed_team[rows])
        return np.stack([rows[matched[:, 0]], matched[:, 1]], axis=1), free

    def _stage2(
        self, boxes: np.ndarray, free_dets: np.ndarray, taken: np.ndarray,
        feats: np.ndarray | None, vis: np.ndarray | None, allowed_team: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tentative and just-missed confirmed tracks x free dets, by IoU.

        Pairs whose appearance is known and beyond ``max_app_dist`` are forbidden (BoT-SORT's
        appearance gate of the IoU stage): two overlapping players must not swap here.
        """
        t = self.tracks
        candidate = (~t.confirmed) | (t.tsu == 1)
        candidate[taken] = False
        rows = np.flatnonzero(candidate)
        if len(rows) == 0 or len(free_dets) == 0:
            return np.zeros((0, 2), np.int64), free_dets
        cost = 1.0 - iou_matrix(xywh_to_xyxy(t.mean[rows, :4]), boxes[free_dets])
        allowed = (cost <= self.cfg.max_iou_dist) & allowed_team[np.ix_(rows, free_dets)]
        if self.cfg.iou_app_gate and feats is not None and t.feats is not None:
            app = part_distance(t.feats[rows], t.vis[rows], feats[free_dets], vis[free_dets])
            allowed &= ~(np.isfinite(app) & (app > self.cfg.max_app_dist))
        matched, _, free = assign(cost, allowed)
        return np.stack([rows[matched[:, 0]], free_dets[matched[:, 1]]], axis=1), free_dets[free]

    def _apply_matches(
        self, matches: np.ndarray, xywh: np.ndarray, scores: np.ndarray,
        feats: np.ndarray | None, vis: np.ndarray | None, team: np.ndarray | None,
    ) -> None:
        t, c = self.tracks, self.cfg
        t.matched_det = np.full(len(t), -1, np.int64)
        if len(matches) == 0:
            return
        r, d = matches[:, 0], matches[:, 1]
        stale = t.tsu[r] - 1 > c.relax_gate_after
        mean, cov = self.kf.update(t.mean[r], t.cov[r], xywh[d], scores[d] if c.nsa else None)
        fresh_mean, fresh_cov = self.kf.initiate(xywh[d])
        t.mean[r] = np.where(stale[:, None], fresh_mean, mean)
        t.cov[r] = np.where(stale[:, None, None], fresh_cov, cov)
        t.hits[r] += 1
        t.tsu[r] = 0
        t.score[r] = scores[d]
        t.confirmed[r] |= t.hits[r] >= c.n_init
        t.matched_det[r] = d
        if feats is not None:
            t.update_appearance(r, feats[d], vis[d], c.ema_alpha, c.vis_threshold)
        if team is not None:
            t.update_team(r, team[d])

    def _remove_dead(self, matched_rows: np.ndarray) -> None:
        t = self.tracks
        missed = np.ones(len(t), bool)
        missed[matched_rows] = False
        dead = (missed & ~t.confirmed) | (t.tsu > self.cfg.max_age)
        if dead.any():
            self.tracks = t.select(~dead)

    def _birth(
        self, xywh: np.ndarray, scores: np.ndarray,
        feats: np.ndarray | None, vis: np.ndarray | None, team: np.ndarray | None, rows: np.ndarray,
    ) -> None:
        n = len(xywh)
        if n == 0:
            return
        mean, cov = self.kf.initiate(xywh)
        ids = np.arange(self._next_id, self._next_id + n)
        self._next_id += n
        confirmed = self.cfg.n_init <= 1 or (self.cfg.confirm_first_frame and self.frame == 1)
        self.tracks = self.tracks.append(
            ids, mean, cov, scores, rows, confirmed,
            None if feats is None else feats[rows], None if vis is None else vis[rows],
            None if team is None else team[rows],
        )

    def _output(self, boxes: np.ndarray, keep: np.ndarray, confirmed: bool) -> Tracks:
        t = self.tracks
        sel = np.flatnonzero((t.confirmed == confirmed) & (t.tsu == 0))
        det = t.matched_det[sel]
        out_boxes = boxes[det] if self.cfg.output_box == "detection" else xywh_to_xyxy(t.mean[sel, :4])
        return Tracks(ids=t.ids[sel].copy(), boxes=out_boxes, scores=t.score[sel].copy(),
                      det_index=keep[det].astype(np.int64))
