"""Synthetic SoccerNet-Tracking clips: configuration, per-sequence assembly and writing.

The world model. A 105 x 68 m pitch (world metres, origin at the centre spot, ``x`` along the
touchlines, ``y`` away from the camera, ``z`` up) with mown grass, white markings, goals with nets,
advertising boards and a stand full of spectators behind the far touchline. Two teams of outfield
players plus a goalkeeper each (kits drawn per match, sometimes close in colour), up to three
referees and sometimes a few other people (staff, ball boys) off the pitch move in a small
football simulation: formation slots that shift with the ball, personal runs, dribbles, ground
and lofted passes, shots, pressing and tackles, all with bounded acceleration so paths are smooth
and players cross and occlude each other. A main broadcast camera stands elevated behind the near
touchline at the halfway line and pans/zooms after the ball with lag (fast pans on long balls), so
people leave and re-enter the view and appear smaller far away. Each person is an articulated
figure (head with hair, shirt with jersey number, sleeves and arms, shorts, socks and legs with a
speed-driven gait, boots) with a soft shadow, drawn far to near; the same rasterisation gives the
part-label maps. Ground truth boxes are the amodal extents of the drawn figures; detections are
noisy copies (jitter, occlusion- and size-dependent misses, false positives). Every sequence is a
function of ``(seed, sequence number)`` only.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from prtreid.data.masks import write_part_map
from prtreid.data.soccernet import write_sequence
from prtreid.data.synth.camera import Camera, camera_track, sample_rig
from prtreid.data.synth.detections import DetNoise, noisy_detections
from prtreid.data.synth.match import simulate
from prtreid.data.synth.motion import Motion, idle_motion, sample_start
from prtreid.data.synth.pitch import Stadium, build_stadium
from prtreid.data.synth.render import Overlay, Placed, layout_frame, person_luts, render_frame
from prtreid.data.synth.world import Cast, add_others, build_cast
from prtreid.data.types import MotTable, SeqInfo, Sequence, TrackInfo
from prtreid.storage import remove_stale_temps, temp_name

log = logging.getLogger(__name__)

GOAL_ACTIONS = ("Shots on target", "Shots off target", "Corner", "Clearance", "Goal")
OPEN_ACTIONS = ("Throw-in", "Foul", "Indirect free-kick", "Ball out of play", "Kick-off", "Offside",
                "Direct free-kick", "Substitution", "Yellow card")
_NAMES = ("ARS", "BAR", "CEL", "DOR", "EVE", "FCP", "GAL", "INT", "JUV", "LYO", "MCI", "NAP", "PSG", "RMA")


@dataclass(frozen=True)
class SynthConfig:
    """Settings of the synthetic dataset.

    Attributes:
        seqs, frames, width, height, fps: number of clips, frames per clip, image size, frame rate.
        seed: dataset seed; a clip is a function of ``(seed, first_index + i)``.
        first_index: number of the first clip (names ``SNMOT-{number:03d}``).
        players_per_team: outfield players per team (each team also has a goalkeeper).
        referees: 0 to 3 (main, then side top, side bottom).
        others_prob: chance that 1 or 2 other people (staff, ball boys) are near the pitch.
        close_kits_prob: chance that the two teams' kits are close in colour.
        goal_action_prob: chance that a clip starts near a goal (shot, corner), keepers in view.
        unknown_jersey_prob: chance that a player's jersey is ``X`` (unread) in gameinfo.
        overlay_prob: chance of a broadcast score overlay (it hides what is under it).
        min_inside: ground-truth boxes with less of their area inside the image are dropped.
        min_height: person boxes lower than this fraction of the image height are dropped.
        det_jitter, det_miss_rate, det_fp_rate, det_ball_miss_rate: see :class:`DetNoise`
            (a negative ball miss rate leaves the ball out of det.txt).
        jpeg_quality: JPEG quality of the frames.
    """

    seqs: int = 4
    frames: int = 150
    width: int = 960
    height: int = 540
    seed: int = 0
    fps: int = 25
    first_index: int = 1
    players_per_team: int = 10
    referees: int = 3
    others_prob: float = 0.35
    close_kits_prob: float = 0.3
    goal_action_prob: float = 0.4
    unknown_jersey_prob: float = 0.08
    overlay_prob: float = 0.7
    min_inside: float = 0.3
    min_height: float = 0.015
    det_jitter: float = 0.05
    det_miss_rate: float = 0.03
    det_fp_rate: float = 0.25
    det_ball_miss_rate: float = 0.35
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        checks = [
            (self.seqs >= 0, "seqs must be >= 0"), (self.frames >= 1, "frames must be >= 1"),
            (self.width >= 64 and self.height >= 64, "width and height must be >= 64"),
            (self.fps >= 1, "fps must be >= 1"), (self.first_index >= 0, "first_index must be >= 0"),
            (self.players_per_team >= 1, "players_per_team must be >= 1"),
            (0 <= self.referees <= 3, "referees must lie in 0..3"),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality must lie in 1..100"),
            (0.0 <= self.min_inside <= 1.0, "min_inside must lie in [0, 1]"),
            (self.det_jitter >= 0 and self.det_fp_rate >= 0, "det_jitter and det_fp_rate must be >= 0"),
        ]
        for name in ("others_prob", "close_kits_prob", "goal_action_prob", "unknown_jersey_prob",
                     "overlay_prob", "det_miss_rate"):
            checks.append((0.0 <= getattr(self, name) <= 1.0, f"{name} must lie in [0, 1]"))
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def det_noise(self) -> DetNoise:
        """The detector noise model."""
        return DetNoise(self.det_jitter, self.det_miss_rate, self.det_fp_rate, self.det_ball_miss_rate)


def sequence_name(index: int, cfg: SynthConfig) -> str:
    """Folder name of the ``index``-th clip (0-based) of a dataset."""
    return f"SNMOT-{cfg.first_index + index:03d}"


def generate_dataset(out_root: Path, cfg: SynthConfig,
                     progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Write ``cfg.seqs`` clips under ``out_root``; ``progress(done, total)`` after each."""
    paths = []
    for i in range(cfg.seqs):
        paths.append(generate_sequence(Path(out_root), i, cfg))
        if progress is not None:
            progress(i + 1, cfg.seqs)
    return paths


def generate_sequence(out_root: Path, index: int, cfg: SynthConfig) -> Path:
    """Write the ``index``-th clip (0-based) of the dataset under ``out_root``; returns its folder.

    The clip is built in a temporary folder beside the final one (``.NAME.PID.RANDOM.tmp``, its
    ``seqinfo.ini`` written last by :func:`write_sequence`) and renamed when complete, so a killed run never leaves a folder
    that looks finished; the next run removes such a folder of a killed process. An existing folder
    is replaced.
    """
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    name = sequence_name(index, cfg)
    remove_stale_temps(out_root, (name,))
    final = out_root / name
    tmp = out_root / temp_name(name)
    tmp.mkdir()  # not mkdtemp, whose 0700 the rename would keep: the clip gets the umask's mode
    try:
        _build(tmp, name, cfg.first_index + index, cfg)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %s", final)
    return final


@dataclass(frozen=True, eq=False)
class _Scene:
    """Everything needed to draw the frames of one clip."""

    cams: list[Camera]
    stadium: Stadium
    layouts: list[list[Placed]]
    luts: list[np.ndarray]
    light: float
    overlay: Overlay | None


@dataclass(frozen=True, eq=False)
class _Play:
    """The match of one clip before rendering: who plays, how they move, where the camera looks."""

    cast: Cast
    near_goal: bool
    motion: Motion
    cams: list[Camera]
    rngs: list[np.random.Generator]  # the clip's remaining streams: others, render, detections, game info


def _play(number: int, cfg: SynthConfig) -> _Play:
    r_cast, r_motion, r_cam, *rngs = np.random.default_rng([cfg.seed, number]).spawn(7)
    cast = build_cast(r_cast, cfg.players_per_team, cfg.referees, cfg.close_kits_prob, cfg.unknown_jersey_prob)
    near_goal = bool(r_motion.random() < cfg.goal_action_prob)
    motion = simulate(cast.agents, cfg.frames, cfg.fps, sample_start(r_motion, near_goal), r_motion)
    cams = camera_track(motion.ball, cfg.fps, cfg.width, cfg.height, sample_rig(r_cam), r_cam)
    return _Play(cast, near_goal, motion, cams, rngs)


def clip_cameras(index: int, cfg: SynthConfig) -> list[Camera]:
    """The camera of each frame of the ``index``-th clip (0-based) of a dataset, as it was drawn.

    The ground truth of camera motion: ``cams[t - 1].homography_to(cams[t])`` maps frame ``t - 1``'s
    pixels to frame ``t``'s. Replays the clip's match without rendering it.
    """
    return _play(cfg.first_index + index, cfg).cams


def _build(folder: Path, name: str, number: int, cfg: SynthConfig) -> None:
    play = _play(number, cfg)
    cast, near_goal, cams = play.cast, play.near_goal, play.cams
    r_others, r_render, r_det, r_game = play.rngs
    motion = _with_others(cast, play.motion, cams[0], cfg, r_others)
    stadium = build_stadium(r_render, [k.shirt for k in cast.kits.teams])
    light = float(r_render.uniform(-1.0, 1.0))
    game = _game_info(r_game, cfg, near_goal)
    overlay = _overlay(r_game, cast, game) if r_game.random() < cfg.overlay_prob else None
    speed = np.linalg.norm(motion.vel, axis=2)
    layouts = [layout_frame(cams[t], cast.people, motion.pos[t], motion.heading[t], speed[t], motion.phase[t],
                            motion.ball[t], light) for t in range(cfg.frames)]
    rows = [_gt_rows(t, layout, cfg) for t, layout in enumerate(layouts)]
    ids = _assign_ids(rows)
    scene = _Scene(cams, stadium, layouts, person_luts(cast.people), light, overlay)
    vis = _render_frames(folder, scene, rows, ids, cfg)
    gt, visibility, is_ball = _gt_table(rows, ids, vis)
    det = noisy_detections(gt, visibility, is_ball, cfg.frames, cfg.width, cfg.height, cfg.det_noise, r_det)
    info = SeqInfo(name=name, seq_length=cfg.frames, im_width=cfg.width, im_height=cfg.height,
                   frame_rate=float(cfg.fps))
    write_sequence(Sequence(info=info, tracks=_tracks(cast, ids), gt=gt, det=det, game=game), folder)


def _render_frames(folder: Path, scene: _Scene, rows, ids: dict[int, int],
                   cfg: SynthConfig) -> dict[tuple[int, int], float]:
    """Write every frame and part map; returns the visible fraction of each (frame, agent) drawn."""
    frame = np.zeros((cfg.height, cfg.width, 3), np.uint8)
    labels = np.zeros((cfg.height, cfg.width), np.uint16)
    (folder / "img1").mkdir()
    vis: dict[tuple[int, int], float] = {}
    ov = scene.overlay
    for t in range(cfg.frames):
        clock = ov and Overlay(ov.names, ov.colors, ov.score, ov.clock_s + t / cfg.fps)
        # only people with a ground-truth box in this frame are labelled (others only occlude)
        frame_ids = {agent: ids[agent] for _, agent, _ in rows[t] if agent >= 0}
        counts = render_frame(frame, labels, scene.cams[t], scene.stadium, scene.layouts[t], scene.luts,
                              frame_ids, scene.light, clock)
        for agent, (own, seen) in counts.items():
            vis[(t, agent)] = seen / own if own else 0.0
        path = folder / "img1" / f"{t + 1:06d}.jpg"
        if not cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]):
            raise OSError(f"could not write {path}")
        write_part_map(folder / "parts" / f"{t + 1:06d}.png", labels)
    return vis


def _with_others(cast: Cast, motion: Motion, cam0: Camera, cfg: SynthConfig, rng: np.random.Generator) -> Motion:
    """Maybe add 1 or 2 people off the pitch (the first in the opening view) and their motion."""
    count = int(rng.integers(1, 3)) if rng.random() < cfg.others_prob else 0
    if count == 0:
        return motion
    homes = add_others(cast, cam0, count, rng)
    face = -np.c_[np.zeros(count), np.sign(homes[:, 1])] + np.c_[-np.sign(homes[:, 0]) * 0.3, np.zeros(count)]
    idle = idle_motion(homes, cfg.frames, cfg.fps, rng, face)
    return Motion(pos=np.concatenate([motion.pos, idle.pos], axis=1),
                  vel=np.concatenate([motion.vel, idle.vel], axis=1),
                  heading=np.concatenate([motion.heading, idle.heading], axis=1),
                  phase=np.concatenate([motion.phase, idle.phase], axis=1), ball=motion.ball)


def _gt_rows(t: int, layout: list[Placed], cfg: SynthConfig) -> list[tuple[int, int, tuple[int, int, int, int]]]:
    """(frame index, agent, integer clipped box) of the entities that make the ground truth."""
    out = []
    for p in layout:
        x0, y0, x1, y1 = p.box
        area = max((x1 - x0) * (y1 - y0), 1e-6)
        cx0, cy0 = max(x0, 0.0), max(y0, 0.0)
        cx1, cy1 = min(x1, float(cfg.width)), min(y1, float(cfg.height))
        if cx1 <= cx0 or cy1 <= cy0 or (cx1 - cx0) * (cy1 - cy0) / area < cfg.min_inside:
            continue
        box = (int(round(cx0)), int(round(cy0)), int(round(cx1)), int(round(cy1)))
        small = (box[2] - box[0] < 2) if p.agent < 0 else (box[3] - box[1] < cfg.min_height * cfg.height)
        if not small:
            out.append((t, p.agent, box))
    return out


def _assign_ids(rows: list[list[tuple[int, int, tuple[int, int, int, int]]]]) -> dict[int, int]:
    """Track ids 1..N in order of first appearance (then left to right), keyed by agent (-1 = ball)."""
    ids: dict[int, int] = {}
    for frame_rows in rows:
        for _, agent, _ in sorted(frame_rows, key=lambda r: r[2][0]):
            if agent not in ids:
                ids[agent] = len(ids) + 1
    return ids


def _gt_table(rows, ids: dict[int, int], vis: dict[tuple[int, int], float]):
    flat = [r for frame_rows in rows for r in frame_rows]
    frame = np.array([t + 1 for t, _, _ in flat], np.int64)
    tid = np.array([ids[a] for _, a, _ in flat], np.int64)
    box = np.array([(b[0], b[1], b[2] - b[0], b[3] - b[1]) for _, _, b in flat], np.float64).reshape(-1, 4)
    visibility = np.array([1.0 if a < 0 else vis.get((t, a), 0.0) for t, a, _ in flat], np.float64)
    is_ball = np.array([a < 0 for _, a, _ in flat], bool)
    gt = MotTable(frame, tid, box, np.ones(len(flat)))
    order = np.lexsort((tid, frame))
    return gt.select(order), visibility[order], is_ball[order]


def _tracks(cast: Cast, ids: dict[int, int]) -> dict[int, TrackInfo]:
    tracks = {}
    for agent, tid in ids.items():
        if agent < 0:
            tracks[tid] = TrackInfo(tid, "ball", detail="1")
        else:
            lab = cast.labels[agent]
            tracks[tid] = TrackInfo(tid, lab.role, lab.team, lab.jersey, lab.detail)
    return tracks


def _game_info(rng: np.random.Generator, cfg: SynthConfig, near_goal: bool) -> dict[str, str]:
    half = int(rng.integers(1, 3))
    start_s = int(rng.uniform(0, 44 * 60))
    dur_ms = int(round(1000 * cfg.frames / cfg.fps))
    clip_start = int(rng.uniform(0, 40 * 60)) * 1000
    action = str(rng.choice(GOAL_ACTIONS if near_goal else OPEN_ACTIONS))
    return {
        "gameID": str(int(rng.integers(1, 400))),
        "gameTimeStart": f"{half} - {start_s // 60:02d}:{start_s % 60:02d}",
        "gameTimeStop": f"{half} - {(start_s + dur_ms // 1000) // 60:02d}:{(start_s + dur_ms // 1000) % 60:02d}",
        "clipStart": str(clip_start),
        "clipStop": str(clip_start + dur_ms),
        "actionPosition": str(clip_start + int(rng.uniform(0.2, 0.8) * dur_ms)),
        "actionClass": action,
        "visibility": "visible",
    }


def _overlay(rng: np.random.Generator, cast: Cast, game: dict[str, str]) -> Overlay:
    names = rng.choice(_NAMES, 2, replace=False)
    half, clock = game["gameTimeStart"].split(" - ")
    minutes, seconds = (int(v) for v in clock.split(":"))
    clock_s = (45 * 60 if half == "2" else 0) + minutes * 60 + seconds
    return Overlay((str(names[0]), str(names[1])), (cast.kits.teams[0].shirt, cast.kits.teams[1].shirt),
                   (int(rng.integers(0, 4)), int(rng.integers(0, 4))), float(clock_s))
