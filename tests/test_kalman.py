"""Kalman filter against the textbook equations; camera-motion estimation and warping."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from scipy.stats import chi2

from prtreid.data.frames import open_frames
from prtreid.data.synth import SynthConfig, clip_cameras, generate_dataset
from prtreid.track.cmc import CameraMotion, warp_boxes, warp_tracks
from prtreid.track.kalman import CHI2INV95, KalmanFilter, xywh_to_xyxy, xyxy_to_xywh

WP, WV = 1.0 / 20, 1.0 / 160


def _random_state(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    mean = np.concatenate([rng.uniform(100, 500, 2), rng.uniform(30, 120, 2), rng.normal(0, 2, 4)])
    a = rng.normal(size=(8, 8))
    return mean, a @ a.T + 8 * np.eye(8)


def _f() -> np.ndarray:
    f = np.eye(8)
    f[:4, 4:] = np.eye(4)
    return f


def _h() -> np.ndarray:
    return np.eye(4, 8)


def _r(mean: np.ndarray) -> np.ndarray:
    w, h = mean[2], mean[3]
    return np.diag(np.square([WP * w, WP * h, WP * w, WP * h]))


def test_predict_matches_textbook() -> None:
    rng = np.random.default_rng(0)
    mean, cov = _random_state(rng)
    w, h = mean[2], mean[3]
    q = np.diag(np.square([WP * w, WP * h, WP * w, WP * h, WV * w, WV * h, WV * w, WV * h]))
    m, p = KalmanFilter(WP, WV).predict(mean, cov)
    np.testing.assert_allclose(m, _f() @ mean)
    np.testing.assert_allclose(p, _f() @ cov @ _f().T + q)


@pytest.mark.parametrize("conf", [None, 0.0, 0.7])
def test_update_matches_textbook_and_nsa_scales_r(conf: float | None) -> None:
    rng = np.random.default_rng(1)
    mean, cov = _random_state(rng)
    z = mean[:4] + rng.normal(0, 5, 4)
    r = _r(mean) * (1.0 if conf is None else 1.0 - conf)
    h = _h()
    k = cov @ h.T @ np.linalg.inv(h @ cov @ h.T + r)
    expect_mean = mean + k @ (z - h @ mean)
    expect_cov = (np.eye(8) - k @ h) @ cov
    m, p = KalmanFilter(WP, WV).update(mean, cov, z, conf)
    np.testing.assert_allclose(m, expect_mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(p, expect_cov, rtol=1e-7, atol=1e-7)


def test_nsa_confident_detection_moves_state_further() -> None:
    rng = np.random.default_rng(2)
    mean, cov = _random_state(rng)
    z = mean[:4] + 20.0
    kf = KalmanFilter(WP, WV)
    low, _ = kf.update(mean, cov, z, np.array(0.1))
    high, _ = kf.update(mean, cov, z, np.array(0.95))
    assert np.all(np.abs(high[:4] - z) < np.abs(low[:4] - z))


def test_gating_distance_is_mahalanobis() -> None:
    rng = np.random.default_rng(3)
    states = [_random_state(rng) for _ in range(3)]
    means, covs = np.stack([s[0] for s in states]), np.stack([s[1] for s in states])
    meas = rng.uniform(50, 500, (5, 4))
    kf = KalmanFilter(WP, WV)
    d4, d2 = kf.gating_distance(means, covs, meas), kf.gating_distance(means, covs, meas, only_position=True)
    for t, (mean, cov) in enumerate(states):
        s = _h() @ cov @ _h().T + _r(mean)
        for j, z in enumerate(meas):
            diff = z - mean[:4]
            assert d4[t, j] == pytest.approx(diff @ np.linalg.inv(s) @ diff, rel=1e-9)
            assert d2[t, j] == pytest.approx(diff[:2] @ np.linalg.inv(s[:2, :2]) @ diff[:2], rel=1e-9)


def test_chi2_table() -> None:
    for dof, value in CHI2INV95.items():
        assert value == pytest.approx(chi2.ppf(0.95, dof), abs=1e-3)


def test_multi_predict_and_batched_update_equal_single_calls() -> None:
    rng = np.random.default_rng(4)
    states = [_random_state(rng) for _ in range(4)]
    means, covs = np.stack([s[0] for s in states]), np.stack([s[1] for s in states])
    kf = KalmanFilter(WP, WV)
    bm, bc = kf.multi_predict(means, covs)
    z, conf = rng.uniform(50, 500, (4, 4)), rng.uniform(0, 1, 4)
    um, uc = kf.update(bm, bc, z, conf)
    for i, (m, c) in enumerate(states):
        m1, c1 = kf.predict(m, c)
        np.testing.assert_allclose(bm[i], m1)
        np.testing.assert_allclose(bc[i], c1)
        m2, c2 = kf.update(m1, c1, z[i], conf[i])
        np.testing.assert_allclose(um[i], m2)
        np.testing.assert_allclose(uc[i], c2)


def test_initiate_and_box_conversions() -> None:
    boxes = np.array([[10.0, 20.0, 50.0, 120.0]])
    xywh = xyxy_to_xywh(boxes)
    np.testing.assert_allclose(xywh, [[30.0, 70.0, 40.0, 100.0]])
    np.testing.assert_allclose(xywh_to_xyxy(xywh), boxes)
    mean, cov = KalmanFilter(WP, WV).initiate(xywh)
    np.testing.assert_allclose(mean[0], [30, 70, 40, 100, 0, 0, 0, 0])
    np.testing.assert_allclose(np.sqrt(np.diag(cov[0]))[[0, 1, 4, 5]], [2 * WP * 40, 2 * WP * 100, 10 * WV * 40, 10 * WV * 100])


def test_warp_tracks_moves_and_scales_states() -> None:
    rng = np.random.default_rng(5)
    mean, cov = _random_state(rng)
    s, dx, dy = 1.2, 15.0, -7.0
    warp = np.array([[s, 0.0, dx], [0.0, s, dy]])
    wm, wc = warp_tracks(mean[None], cov[None], warp)
    np.testing.assert_allclose(xywh_to_xyxy(wm[:, :4]), warp_boxes(xywh_to_xyxy(mean[None, :4]), warp))
    np.testing.assert_allclose(wm[0, 4:], s * mean[4:])
    np.testing.assert_allclose(wc[0], s**2 * cov)
    tm, tc = warp_tracks(mean[None], cov[None], np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]))
    np.testing.assert_allclose(tm[0], mean + [dx, dy, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(tc[0], cov)


def _texture(rng: np.random.Generator, h: int = 360, w: int = 640) -> np.ndarray:
    noise = rng.uniform(0, 255, (h, w)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 3)
    return cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


@pytest.mark.parametrize("method", ["ecc", "sparse"])
def test_camera_motion_recovers_shift(method: str) -> None:
    rng = np.random.default_rng(6)
    big = _texture(rng, 420, 720)
    dx, dy = 9.0, -5.0
    prev = big[30:390, 40:680]
    cur = cv2.warpAffine(big, np.array([[1, 0, dx], [0, 1, dy]], np.float32), (720, 420))[30:390, 40:680]
    cmc = CameraMotion(method, downscale=2)
    np.testing.assert_allclose(cmc.estimate(prev), np.eye(2, 3))
    warp = cmc.estimate(cur)
    np.testing.assert_allclose(warp[:, 2], [dx, dy], atol=1.0)
    np.testing.assert_allclose(warp[:, :2], np.eye(2), atol=0.01)


@pytest.mark.parametrize("method, most_px", [("sparse", 0.6), ("ecc", 1.0)])
def test_camera_motion_follows_the_generated_broadcast_camera(method: str, most_px: float, tmp_path) -> None:
    cfg = SynthConfig(seqs=1, frames=40, width=640, height=360, seed=23)  # 3.2 px per frame
    (seq,) = generate_dataset(tmp_path, cfg)
    cams = clip_cameras(0, cfg)
    pts = np.stack(np.meshgrid(np.linspace(40, 600, 8), np.linspace(30, 330, 6)), -1).reshape(-1, 2)
    cmc, moved, errors = CameraMotion(method), [], []
    for (_, img), prev_cam, cam in zip(open_frames(seq), [None, *cams], cams):
        warp = cmc.estimate(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
        if prev_cam is not None:
            h = np.c_[pts, np.ones(len(pts))] @ prev_cam.homography_to(cam).T
            truth = h[:, :2] / h[:, 2:]
            moved.append(np.linalg.norm(truth - pts, axis=1).mean())
            errors.append(np.linalg.norm(pts @ warp[:, :2].T + warp[:, 2] - truth, axis=1).mean())
    assert np.mean(moved) > 2.0
    with pytest.raises(ValueError, match="different positions"):
        cams[0].homography_to(dataclasses.replace(cams[1], position=cams[1].position + 1.0))
    assert np.mean(errors) < min(most_px, np.mean(moved) / 3), (np.mean(errors), np.mean(moved))


def test_camera_motion_checks_its_settings() -> None:
    with pytest.raises(ValueError, match="max_corners"):
        CameraMotion("sparse", max_corners=2)


def test_camera_motion_none_is_identity() -> None:
    frame = np.zeros((40, 60), np.uint8)
    assert np.array_equal(CameraMotion("none").estimate(frame), np.eye(2, 3))
