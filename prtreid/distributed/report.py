"""Per-video records and the run report of a bulk tracking run (plain data, no Ray)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prtreid.pipeline.video import STAGES

STATUSES = ("done", "skipped", "failed")


@dataclass(frozen=True)
class VideoRecord:
    """What happened to one input in one run (a row of the Ray dataset's output).

    Attributes:
        name, uri: the input's result name and location.
        status: ``done`` (tracked and written now), ``skipped`` (already complete) or ``failed``.
        frames, rows, tracks: frames tracked, result rows, distinct tracks.
        seconds_*: time per pipeline stage (decode, detect, embed, track, post) and in all.
        error: ``Type: message`` of a failure, else empty.
    """

    name: str
    uri: str
    status: str
    frames: int = 0
    rows: int = 0
    tracks: int = 0
    seconds_decode: float = 0.0
    seconds_detect: float = 0.0
    seconds_embed: float = 0.0
    seconds_track: float = 0.0
    seconds_post: float = 0.0
    seconds_total: float = 0.0
    error: str = ""

    @staticmethod
    def columns() -> list[str]:
        """Field names, in order (the columns of the dataset rows)."""
        return [f.name for f in dataclasses.fields(VideoRecord)]

    @classmethod
    def from_summary(cls, name: str, uri: str, summary: dict[str, Any]) -> VideoRecord:
        """The record of a video tracked now, from its result summary."""
        secs = summary.get("seconds", {})
        return cls(name, uri, "done", int(summary.get("frames", 0)), int(summary.get("rows", 0)),
                   int(summary.get("tracks", 0)),
                   **{f"seconds_{k}": float(secs.get(k, 0.0)) for k in (*STAGES, "total")})

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> VideoRecord:
        """A record from a dataset row (numpy scalars become Python values)."""
        kinds = {f.name: f.type for f in dataclasses.fields(cls)}
        cast = {"str": str, "int": int, "float": float}
        return cls(**{k: cast[str(kinds[k])](row[k]) for k in cls.columns()})

    def failure_json(self) -> dict[str, str]:
        """The content of ``failures/<name>.json`` (deterministic: no times, no local paths)."""
        return {"name": self.name, "uri": self.uri, "status": "failed", "error": self.error}


@dataclass(frozen=True)
class BulkReport:
    """Outcome of one bulk run: counts, frames, throughput end to end and per stage, failures.

    ``stage_seconds`` add up every video's per-stage time (all actors together); ``stage_fps``
    is frames / those seconds, what one actor would sustain if that stage were all it did.
    ``fps`` is frames / wall-clock time of the whole run (start-up and all actors included).
    """

    out: str
    started: str
    wall_seconds: float
    counts: dict[str, int]
    frames: int
    fps: float
    stage_seconds: dict[str, float]
    stage_fps: dict[str, float | None]
    failures: list[dict[str, str]]
    videos: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, records: Sequence[VideoRecord], out: str, started: float, wall_seconds: float,
              settings: dict[str, Any] | None = None) -> BulkReport:
        """Aggregate the records of a run."""
        done = [r for r in records if r.status == "done"]
        frames = sum(r.frames for r in done)
        stage = {s: round(sum(getattr(r, f"seconds_{s}") for r in done), 4) for s in (*STAGES, "total")}
        return cls(
            out=out, started=dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(timespec="seconds"),
            wall_seconds=round(wall_seconds, 3),
            counts={"total": len(records)} | {s: sum(r.status == s for r in records) for s in STATUSES},
            frames=frames, fps=round(frames / wall_seconds, 3) if wall_seconds > 0 else 0.0,
            stage_seconds=stage,
            stage_fps={s: round(frames / v, 3) if v > 0 else None for s, v in stage.items()},
            failures=[r.failure_json() for r in records if r.status == "failed"],
            videos=[dataclasses.asdict(r) for r in records if r.status != "skipped"],
            settings=settings or {},
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (the content of ``_report.json``)."""
        return dataclasses.asdict(self)

    def format(self) -> str:
        """A short human-readable summary: counts, throughput, per-stage table, failures."""
        c = self.counts
        lines = [f"bulk tracking into {self.out}: {c['done']} done, {c['skipped']} skipped, "
                 f"{c['failed']} failed of {c['total']} inputs in {self.wall_seconds:.1f} s",
                 f"frames {self.frames}, end to end {self.fps:.2f} frames/s",
                 f"{'stage':<8}{'seconds':>10}{'frames/s':>11}{'share':>8}"]
        total = self.stage_seconds.get("total") or 0.0
        for s in STAGES:
            secs, fps = self.stage_seconds[s], self.stage_fps[s]
            share = f"{secs / total:.0%}" if total else "-"
            lines.append(f"{s:<8}{secs:>10.2f}{'-' if fps is None else f'{fps:.1f}':>11}{share:>8}")
        lines += [f"failed: {f['name']} ({f['uri']}): {f['error']}" for f in self.failures]
        return "\n".join(lines)
