"""PRT-Track: Kalman filter, camera-motion compensation, matching, the tracker, tracklet post-processing.

Typical use, one video::

    tracker = PRTTracker(TrackerConfig.sports())
    cmc = CameraMotion("sparse")
    for frame in frames:
        dets, app = detect_and_embed(frame)        # upstream, batched
        tracks = tracker.update(dets, app, warp=cmc.estimate(frame, dets.boxes))
"""

from prtreid.track.ball import BallTrack
from prtreid.track.cmc import CameraMotion, warp_boxes, warp_tracks
from prtreid.track.config import TrackerConfig
from prtreid.track.context import RoleContext, contextual_roles
from prtreid.track.kalman import CHI2INV95, KalmanFilter
from prtreid.track.tracker import Appearance, Detections, PRTTracker, Tracks
from prtreid.track.tracklets import (
    TrackTable, assign_teams, backfill_tentative, interpolate_gaps, smooth_boxes, vote_roles,
)

__all__ = [
    "CHI2INV95", "Appearance", "BallTrack", "CameraMotion", "Detections", "KalmanFilter", "PRTTracker", "RoleContext",
    "TrackTable", "TrackerConfig", "Tracks", "assign_teams", "backfill_tentative", "contextual_roles",
    "interpolate_gaps", "smooth_boxes", "vote_roles", "warp_boxes", "warp_tracks",
]
