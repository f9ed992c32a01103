"""Frame sources: sequence folders and H.264 videos stream frames; bad videos raise FrameError."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from prtreid.data.frames import FrameError, SequenceFrames, VideoFrames, open_frames, write_video
from prtreid.data.soccernet import write_sequence
from prtreid.data.types import SeqInfo, Sequence


def _frames(n: int = 12, h: int = 72, w: int = 128) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 255, (9, 16, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    return [np.roll(base, 4 * i, axis=1) for i in range(n)]


def test_video_round_trip(tmp_path: Path) -> None:
    frames = _frames()
    assert write_video(tmp_path / "clip.mp4", iter(frames), fps=25) == 12
    source = open_frames(tmp_path / "clip.mp4")
    assert isinstance(source, VideoFrames)
    assert (source.info.width, source.info.height, round(source.info.fps)) == (128, 72, 25)
    decoded = list(source)
    assert [f for f, _ in decoded] == list(range(1, 13))
    err = np.mean([np.abs(a.astype(int) - b).mean() for (_, a), b in zip(decoded, frames)])
    assert err < 12  # lossy but the same pictures


def test_no_frames_write_no_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames to encode"):
        write_video(tmp_path / "clip.mp4", iter([]), fps=25)
    assert list(tmp_path.iterdir()) == []


def test_sequence_folder_source(tmp_path: Path) -> None:
    write_sequence(Sequence(SeqInfo("SNMOT-001", 3, 128, 72)), tmp_path)
    for i, img in enumerate(_frames(3), start=1):
        (tmp_path / "img1").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "img1" / f"{i:06d}.jpg"), img)
    source = open_frames(tmp_path)
    assert isinstance(source, SequenceFrames) and source.info.num_frames == 3
    assert [f for f, _ in source] == [1, 2, 3]
    (tmp_path / "img1" / "000002.jpg").unlink()
    with pytest.raises(FrameError, match="000002.jpg: missing or unreadable frame 2$"):
        list(open_frames(tmp_path))
    for i in (1, 2, 3):  # frames saved as PNG while seqinfo.ini says .jpg
        cv2.imwrite(str(tmp_path / "img1" / f"{i:06d}.png"), _frames(1)[0])
        (tmp_path / "img1" / f"{i:06d}.jpg").unlink(missing_ok=True)
    with pytest.raises(FrameError, match=r"000001.jpg: missing or unreadable frame 1 \(the folder has 000001.png: "
                                         r"is seqinfo.ini's imExt right\?\)"):
        list(open_frames(tmp_path))


def test_bad_videos_raise_frame_errors(tmp_path: Path) -> None:
    with pytest.raises(FrameError, match="no such video"):
        open_frames(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(FrameError, match="junk.mp4"):
        list(open_frames(tmp_path / "junk.mp4"))
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(FrameError, match="empty.mp4"):
        list(open_frames(tmp_path / "empty.mp4"))
    write_video(tmp_path / "ok.mp4", iter(_frames(40)), fps=25)
    data = (tmp_path / "ok.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(FrameError, match="cut.mp4"):
        list(open_frames(tmp_path / "cut.mp4"))


@pytest.mark.parametrize("suffix, options", [(".mp4", {"movflags": "faststart"}), (".mkv", {})],
                         ids=["mp4 with its index first", "matroska, which stores no frame count"])
def test_a_truncated_video_that_still_opens_is_an_error(tmp_path: Path, suffix: str, options: dict) -> None:
    # both open when cut and decode fine, only shorter: the mp4 from the index that "faststart" puts
    # first, the mkv from a duration in its header
    with av.open(str(tmp_path / f"whole{suffix}"), "w", options=options) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 72, "yuv420p"
        for image in np.random.default_rng(0).integers(0, 255, (40, 72, 128, 3), dtype=np.uint8):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(stream.encode())
    assert open_frames(tmp_path / f"whole{suffix}").info.num_frames == 40
    assert len(list(open_frames(tmp_path / f"whole{suffix}"))) == 40
    data = (tmp_path / f"whole{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    assert open_frames(tmp_path / f"cut{suffix}").info.num_frames == 40
    with pytest.raises(FrameError, match=rf"cut\{suffix}: truncated or corrupt: decoded \d+ of the 40 frames"):
        list(open_frames(tmp_path / f"cut{suffix}"))
