"""Smoke test of benchmarks/tracking.py: its adapters feed boxmot and PRT-Track the same inputs."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from prtreid.data.soccernet import find_sequences, load_sequence
from prtreid.data.synth import SynthConfig, generate_dataset
from prtreid.data.types import Sequence
from prtreid.track.config import TrackerConfig

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "tracking.py"


def _load_bench():
    if str(BENCH.parent) not in sys.path:  # as when run as a script: it imports tracking_peers.py beside it
        sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("bench_tracking", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


bench = _load_bench()
peers = sys.modules["tracking_peers"]


@pytest.fixture(scope="module")
def tiny_seq(tmp_path_factory: pytest.TempPathFactory) -> Sequence:
    out = tmp_path_factory.mktemp("bench_tracking")
    generate_dataset(out, SynthConfig(seqs=1, frames=40, width=320, height=180, seed=3))
    return load_sequence(find_sequences(out)[0])


def _ideal_inputs(seq: Sequence) -> list:
    """Ground-truth boxes (ball left out) with a perfect appearance: one-hot of the identity."""
    people = np.array([t for t, info in seq.tracks.items() if info.role != "ball"])
    gt = seq.gt.select(np.isin(seq.gt.track_id, people))
    dim = int(gt.track_id.max()) + 1
    frames = []
    for f in range(1, seq.info.seq_length + 1):
        rows = gt.at_frame(f)
        boxes = np.concatenate([rows.box[:, :2], rows.box[:, :2] + rows.box[:, 2:]], axis=1)
        onehot = np.eye(dim, dtype=np.float32)[rows.track_id]
        feats = np.repeat(onehot[:, None, :], 3, axis=1)  # one part, foreground, global
        frames.append(bench.FrameInputs(boxes, np.ones(len(rows)), feats, np.ones((len(rows), 3), np.float32),
                                        np.zeros((len(rows), 4), np.float32), np.full((len(rows), 4), 0.25)))
    return frames


def test_boxmot_embedding_is_unit_and_averages_foreground_and_global_cosines() -> None:
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(2, 4, 8)).astype(np.float32)
    emb = peers.boxmot_embedding(feats)
    assert emb.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    unit = feats / np.linalg.norm(feats, axis=2, keepdims=True)
    expected = (unit[0, 2] @ unit[1, 2] + unit[0, 3] @ unit[1, 3]) / 2
    assert emb[0] @ emb[1] == pytest.approx(expected, abs=1e-5)


def test_boxmot_detections_and_mot_table() -> None:
    pytest.importorskip("boxmot")  # an optional extra (make bench): the PRT-Track rows below run without it
    frame = bench.FrameInputs(np.array([[10.0, 20.0, 30.0, 80.0]]), np.array([1.2]),
                              np.ones((1, 3, 4), np.float32), np.ones((1, 3)), np.zeros((1, 2)), np.ones((1, 4)))
    dets = peers.to_boxmot_detections(frame, "s:1", with_embeddings=True)
    assert dets.embeddings.shape == (1, 8) and float(dets.scores[0]) == 1.0  # scores clipped to boxmot's range
    empty = bench.FrameInputs(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 3, 4), np.float32), np.zeros((0, 3)),
                              np.zeros((0, 2)), np.zeros((0, 4)))
    assert len(peers.to_boxmot_detections(empty, "s:2", with_embeddings=True)) == 0
    assert peers.to_boxmot_detections(empty, "s:2", with_embeddings=False).embeddings is None
    table = bench.tracks_table([3, 4], [np.array([7]), np.array([7, 9])],
                               [np.array([[1.0, 2.0, 4.0, 8.0]]), np.array([[1, 2, 4, 8], [0, 0, 1, 1.0]])])
    assert table.frame.tolist() == [3, 4, 4] and table.track_id.tolist() == [7, 7, 9]
    np.testing.assert_allclose(table.box[0], [1, 2, 3, 6])


def _run(seq: Sequence, names: list[str], monkeypatch: pytest.MonkeyPatch) -> dict:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the benchmark tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    n = seq.info.seq_length
    prepared = bench.PreparedSequence(seq, list(range(1, n + 1)), {"oracle": _ideal_inputs(seq)},
                                      {"oracle": [None] * n}, cmc_seconds={"oracle": 0.004 * n})
    results = bench.benchmark([prepared], bench.make_adapters(names, TrackerConfig.sports()), ["oracle"])["oracle"]
    assert list(results) == names
    for name, r in results.items():
        assert r["ms"] > 0 and 0 < r["HOTA"] <= 1, (name, r)
        assert r["HOTA"] > 0.6, (name, r)  # oracle boxes: every tracker must do well
    table = bench.format_table(results)
    assert table.count("\n") == len(names) + 1
    assert "| PRT-Track |" in table and " 1.00 |" in table.splitlines()[2]
    return results


def test_prt_track_rows_without_boxmot(tiny_seq: Sequence, monkeypatch: pytest.MonkeyPatch) -> None:
    results = _run(tiny_seq, [bench.PRT, bench.PRT_OFFLINE], monkeypatch)
    assert results[bench.PRT_OFFLINE]["HOTA"] > results[bench.PRT]["HOTA"]  # tentative frames kept, gaps filled
    assert results[bench.PRT]["AssA"] > 0.9 and results[bench.PRT]["IDF1"] > 0.85  # perfect appearance
    assert results[bench.PRT]["cmc_ms"] == pytest.approx(4.0)  # camera motion upstream: 4 ms per frame given


def test_every_tracker_runs_on_the_same_inputs_offline(tiny_seq: Sequence, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("boxmot")
    results = _run(tiny_seq, [bench.PRT, bench.PRT_OFFLINE, *bench.BOXMOT_TRACKERS], monkeypatch)
    assert results["StrongSORT"]["AssA"] > 0.9 and results["StrongSORT"]["IDF1"] > 0.85  # perfect appearance
    # camera motion: upstream for PRT-Track, inside update for boxmot's
    assert results["StrongSORT"]["cmc_ms"] > 0 and results["BoT-SORT"]["cmc_ms"] > 0
    assert results["ByteTrack"]["cmc_ms"] == 0 and results["OC-SORT"]["cmc_ms"] == 0
