"""Frame sources: a SoccerNet sequence folder or a video file, streamed one frame at a time.

A source yields ``(frame_number, bgr_image)`` pairs with 1-based frame numbers (the MOT
convention), never holding more than one decoded frame. Decoding errors raise :class:`FrameError`
with the path, so a bulk run can turn a corrupt or truncated video into a failure record.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from prtreid.data.soccernet import SEQINFO, read_seqinfo
from prtreid.errors import FrameError
from prtreid.storage import atomic_path

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v")


@dataclass(frozen=True)
class SourceInfo:
    """What is known of a source before decoding it."""

    name: str
    width: int
    height: int
    fps: float
    num_frames: int | None
    """Frames the container declares, else its duration times ``fps`` (Matroska stores no count)."""


class SequenceFrames:
    """Frames of a SoccerNet sequence folder (``img1/000001.jpg`` ...)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        seq = read_seqinfo(self.root / SEQINFO)
        self.seqinfo = seq
        self.info = SourceInfo(seq.name, seq.im_width, seq.im_height, seq.frame_rate, seq.seq_length)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        folder = self.root / self.seqinfo.im_dir
        for frame in range(1, self.seqinfo.seq_length + 1):
            path = folder / f"{frame:06d}{self.seqinfo.im_ext}"
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise FrameError(f"{path}: missing or unreadable frame {frame}{_other_extension(path)}")
            if image.shape[:2] != (self.info.height, self.info.width):
                raise FrameError(f"{path}: frame {frame} is {image.shape[1]}x{image.shape[0]}, and {SEQINFO} "
                                 f"says {self.info.width}x{self.info.height}")
            yield frame, image


class VideoFrames:
    """Frames of a video file, decoded with PyAV (FFmpeg), threaded decoding on."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FrameError(f"{self.path}: no such video file")
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise FrameError(f"{self.path}: no video stream")
                stream = container.streams.video[0]
                fps = float(stream.average_rate or 25)
                self.info = SourceInfo(self.path.stem, stream.codec_context.width, stream.codec_context.height,
                                       fps, stream.frames or _frames_in_duration(container, fps))
        except av.error.FFmpegError as exc:
            raise FrameError(f"{self.path}: cannot open video ({exc})") from None

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        count = 0
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                first: tuple[int, ...] = ()
                for frame in container.decode(stream):
                    count += 1
                    image = frame.to_ndarray(format="bgr24")
                    first = first or image.shape[:2]
                    _check_size(self.path, count, image, first)
                    yield count, image
        except av.error.FFmpegError as exc:
            raise FrameError(f"{self.path}: decoding failed after {count} frames ({exc})") from None
        if count == 0:
            raise FrameError(f"{self.path}: the video has no decodable frame")
        declared = self.info.num_frames or 0
        # edit lists and rounded durations cost a frame or two; a long video may lose up to a second
        if declared - count > max(2, min(round(self.info.fps), declared // 100)):
            raise FrameError(f"{self.path}: truncated or corrupt: decoded {count} of the {declared} frames "
                             "its container declares")


def _other_extension(path: Path) -> str:
    """A hint where ``path`` is missing but the frame is there under another extension than seqinfo's imExt."""
    if path.exists():
        return ""
    others = sorted(p.name for p in path.parent.glob(f"{path.stem}.*") if p.suffix != path.suffix)
    return f" (the folder has {others[0]}: is seqinfo.ini's imExt right?)" if others else ""


def _check_size(path: Path, count: int, image: np.ndarray, first: tuple[int, ...]) -> None:
    """Refuse frame ``count`` where its size is not ``first`` (the first frame's): boxes, camera motion
    and batches of frames all assume one frame size per video."""
    if image.shape[:2] != first:
        raise FrameError(f"{path}: frame {count} is {image.shape[1]}x{image.shape[0]}, and the first frame is "
                         f"{first[1]}x{first[0]}: a video whose frame size changes is not supported")


def _frames_in_duration(container: av.container.InputContainer, fps: float) -> int | None:
    """Frames a container's duration holds at ``fps``, or None where it records no duration."""
    if not container.duration or container.duration <= 0:
        return None
    return round(container.duration / av.time_base * fps)


def open_frames(path: str | Path) -> SequenceFrames | VideoFrames:
    """A frame source for a sequence folder or a video file."""
    path = Path(path)
    if path.is_dir():
        if not (path / SEQINFO).exists():
            raise FrameError(f"{path}: a folder input must be a SoccerNet sequence (no {SEQINFO})")
        return SequenceFrames(path)
    if not path.exists():
        raise FrameError(f"{path}: no such video file or sequence folder")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise FrameError(f"{path}: unknown video type {path.suffix!r} (known: {', '.join(VIDEO_SUFFIXES)})")
    return VideoFrames(path)


def write_video(path: str | Path, frames: Iterator[np.ndarray], fps: float, crf: int = 23) -> int:
    """Encode BGR frames to an H.264 MP4 (libx264, yuv420p); returns the number of frames.

    The file appears under ``path`` only once complete (written under a temporary name first).

    Raises:
        ValueError: ``frames`` is empty (nothing is written).
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"{path}: no frames to encode")
    with atomic_path(path) as tmp:
        return _encode(tmp, itertools.chain([first], frames), first.shape, fps, crf)


def _encode(path: Path, frames: Iterator[np.ndarray], shape: tuple[int, ...], fps: float, crf: int) -> int:
    n = 0
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height = shape[1] // 2 * 2, shape[0] // 2 * 2  # yuv420p needs even sizes
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for image in frames:
            img = image[: stream.height, : stream.width]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")))
            n += 1
        container.mux(stream.encode())
    return n
