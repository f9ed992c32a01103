"""Re-id, team and role metrics against independent computations (sklearn, direct numpy, by hand)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import accuracy_score, average_precision_score, confusion_matrix, f1_score
from sklearn.mixture import GaussianMixture

import prtreid.train.evaluate as evaluate
from prtreid.data.crops import read_crop_index
from prtreid.eval.reid import part_distance, reid_metrics, role_metrics, team_accuracy
from prtreid.track.context import RoleContext, contextual_roles

ROLES = ("player", "goalkeeper", "referee", "other")


def _reference_reid(dist: np.ndarray, qp: np.ndarray, gp: np.ndarray, qm: np.ndarray, gm: np.ndarray,
                    qf: np.ndarray, gf: np.ndarray, gap: int) -> tuple[list[float], list[int], int]:
    """Per-query sklearn AP and 0-based rank of the first true match (no ties), and the skipped count."""
    aps, firsts, skipped = [], [], 0
    for i in range(len(qp)):
        keep = [j for j in range(len(gp)) if gm[j] == qm[i] and not (gp[j] == qp[i] and abs(gf[j] - qf[i]) < gap)]
        truth = np.array([gp[j] == qp[i] for j in keep], bool)
        if not truth.any():
            skipped += 1
            continue
        scores = -dist[i, keep]
        aps.append(float(average_precision_score(truth, scores)))
        firsts.append(int((scores > scores[truth].max()).sum()))
    return aps, firsts, skipped


def test_reid_metrics_match_sklearn_and_hand_cmc_on_random_cases() -> None:
    rng = np.random.default_rng(7)
    for _ in range(100):
        nq, ng = int(rng.integers(1, 8)), int(rng.integers(1, 30))
        qp, gp, qm, gm = rng.integers(0, 5, nq), rng.integers(0, 5, ng), rng.integers(0, 2, nq), rng.integers(0, 2, ng)
        qf, gf = rng.integers(0, 40, nq), rng.integers(0, 40, ng)
        dist = rng.random((nq, ng))
        out = reid_metrics(dist, qp, gp, qm, gm, qf, gf, min_frame_gap=10)
        aps, firsts, skipped = _reference_reid(dist, qp, gp, qm, gm, qf, gf, 10)
        assert out["skipped_queries"] == skipped and out["num_queries"] == len(aps) == nq - skipped
        if aps:
            assert out["mAP"] == pytest.approx(np.mean(aps), abs=1e-12)
            assert out["rank1"] == pytest.approx(np.mean(np.array(firsts) < 1))
            assert out["rank5"] == pytest.approx(np.mean(np.array(firsts) < 5))
        else:
            assert out["mAP"] == out["rank1"] == 0.0


def test_reid_metrics_ties_count_against_the_query_whatever_the_gallery_order() -> None:
    # Four gallery crops at the same distance, two of them the query's identity: the ranking is
    # wrong, wrong, right, right whatever the gallery order -> AP = (1/3 + 2/4) / 2, no rank-1 hit.
    dist = np.full((1, 4), 0.5)
    frames, zeros = np.arange(4) * 100 + 100, np.zeros(4, int)
    for g_pids in ([2, 2, 1, 1], [1, 1, 2, 2], [1, 2, 1, 2]):
        out = reid_metrics(dist, np.array([1]), np.array(g_pids), np.array([0]), zeros, np.array([0]), frames)
        assert out["mAP"] == pytest.approx((1 / 3 + 2 / 4) / 2), g_pids
        assert out["rank1"] == 0.0 and out["rank5"] == 1.0
    # A tie only among crops of the query's identity changes nothing.
    out = reid_metrics(np.array([[0.1, 0.1, 0.2]]), np.array([1]), np.array([1, 1, 2]), np.array([0]),
                       np.zeros(3, int), np.array([0]), np.array([100, 200, 300]))
    assert out["mAP"] == 1.0 and out["rank1"] == 1.0


def test_near_duplicate_rule_is_strict_and_per_identity() -> None:
    # Same identity exactly min_frame_gap frames away stays; 9 frames away goes; another identity in
    # the query's own frame stays (it ranks first here and takes rank-1).
    dist = np.array([[0.0, 0.1, 0.2]])
    g_pids, g_frames = np.array([2, 1, 1]), np.array([50, 59, 60])
    out = reid_metrics(dist, np.array([1]), g_pids, np.array([0]), np.zeros(3, int), np.array([50]), g_frames,
                       min_frame_gap=10)
    assert out["num_queries"] == 1 and out["rank1"] == 0.0 and out["mAP"] == pytest.approx(0.5)


def _reference_part_distance(qf: np.ndarray, qv: np.ndarray, gf: np.ndarray, gv: np.ndarray) -> np.ndarray:
    ref = np.full((len(qf), len(gf)), np.nan)
    for i in range(len(qf)):
        for j in range(len(gf)):
            w = qv[i] * gv[j]
            if w.sum() > 0:
                ref[i, j] = (np.linalg.norm(qf[i] - gf[j], axis=1) * w).sum() / w.sum()
    finite = ref[np.isfinite(ref)]
    return np.nan_to_num(ref, nan=finite.max() + 1 if finite.size else 1.0)


def test_part_distance_matches_direct_numpy_with_soft_visibility_and_chunks() -> None:
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        nq, ng, p = (int(x) for x in torch.randint(1, 7, (3,), generator=gen))
        qf, gf = torch.randn(nq, p, 4, generator=gen), torch.randn(ng, p, 4, generator=gen)
        qv = torch.rand(nq, p, generator=gen) * (torch.rand(nq, p, generator=gen) > 0.4)
        gv = torch.rand(ng, p, generator=gen) * (torch.rand(ng, p, generator=gen) > 0.4)
        got = part_distance(qf, qv, gf, gv, chunk=2).numpy()
        want = _reference_part_distance(qf.numpy(), qv.numpy(), gf.numpy(), gv.numpy())
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_part_distance_holistic_rows_always_count() -> None:
    # Descriptor layout of the model: K parts, then foreground and global with visibility 1. No part
    # shared: the mean of the foreground and global distances; one part shared: mean of three.
    q = torch.tensor([[[0.0], [0.0], [0.0], [0.0]]])
    g = torch.tensor([[[6.0], [9.0], [1.0], [2.0]]])
    d_none = part_distance(q, torch.tensor([[1.0, 0.0, 1.0, 1.0]]), g, torch.tensor([[0.0, 1.0, 1.0, 1.0]]))
    d_one = part_distance(q, torch.tensor([[1.0, 0.0, 1.0, 1.0]]), g, torch.tensor([[1.0, 1.0, 1.0, 1.0]]))
    assert d_none.item() == pytest.approx(1.5) and d_one.item() == pytest.approx(3.0)


def _reference_split(x: np.ndarray, seed: int, split: str) -> np.ndarray:
    """KMeans(2); for ``mixture``, then EM of a tied-covariance Gaussian mixture from its centres,
    regularised by 0.3 of the mean variance per dimension, unless it leaves a team empty."""
    km = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(x)
    if split == "kmeans":
        return km.labels_
    gm = GaussianMixture(2, covariance_type="tied", means_init=km.cluster_centers_, reg_covar=0.3 * x.var(0).mean(),
                         random_state=seed).fit(x)
    labels = gm.predict(x)
    return labels if len(set(labels.tolist())) == 2 else km.labels_


def _reference_team(emb: np.ndarray, teams: np.ndarray, matches: np.ndarray, seed: int,
                    normalize: bool = True, kit: np.ndarray | None = None, split: str = "kmeans") -> tuple[float, dict]:
    per, correct, total = {}, 0.0, 0
    for m in np.unique(matches):
        sel = (matches == m) & (teams >= 0)
        if len(set(teams[sel].tolist())) < 2:
            continue
        x = emb[sel] / np.linalg.norm(emb[sel], axis=1, keepdims=True) if normalize else emb[sel]
        if kit is not None:
            k = kit[sel]
            x = np.hstack([x / np.sqrt(x.var(0).sum()), 2 * k / np.sqrt(k.var(0).sum())])
        labels = _reference_split(x, seed, split)
        per[int(m)] = max(accuracy_score(teams[sel], labels), accuracy_score(teams[sel], 1 - labels))
        correct, total = correct + per[int(m)] * sel.sum(), total + int(sel.sum())
    return correct / total, per


def test_team_accuracy_is_crop_weighted_and_matches_independent_kmeans() -> None:
    rng = np.random.default_rng(5)
    # match 0: 40 samples, match 1: 6 samples, match 2: one team only (skipped), match 3: no team at all
    sizes = {0: 40, 1: 6, 2: 8, 3: 5}
    matches = np.repeat(list(sizes), list(sizes.values()))
    teams = np.concatenate([rng.integers(-1, 2, 40), [0, 1, 0, 1, 1, 0], [1] * 7 + [-1], [-1] * 5])
    emb = rng.normal(size=(len(teams), 3)) + np.where(teams == 1, 0.8, 0.0)[:, None]
    acc, per = team_accuracy(emb, teams, matches, seed=2)
    want_acc, want_per = _reference_team(emb, teams, matches, seed=2)
    assert set(per) == set(want_per) == {0, 1}
    assert all(per[m] == pytest.approx(want_per[m]) for m in per)
    assert acc == pytest.approx(want_acc)
    assert team_accuracy(emb, teams, matches, seed=2) == (acc, per)  # seeded: the same on a rerun


def test_role_metrics_match_sklearn_with_absent_roles() -> None:
    rng = np.random.default_rng(9)
    names = ROLES + ("staff",)
    for _ in range(30):
        n = int(rng.integers(1, 25))
        truth, scores = rng.integers(0, 3, n), rng.normal(size=(n, len(names)))  # "other" never true
        pred = scores.argmax(1)
        out = role_metrics(scores, truth, names)
        assert out["role_acc"] == pytest.approx(accuracy_score(truth, pred))
        assert out["role_macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro", zero_division=0))
        assert out["role_confusion"] == confusion_matrix(truth, pred, labels=range(len(names))).tolist()
    # rows are truth, columns prediction; "other" and "staff" (absent from both) do not lower macro-F1
    out = role_metrics(np.array([0, 0, 2]), np.array([0, 1, 2]), names)
    assert out["role_confusion"][1][0] == 1 and out["role_confusion"][0][1] == 0
    assert out["role_macro_f1"] == pytest.approx((2 / 3 + 0 + 1) / 3)


def test_role_metrics_without_samples() -> None:
    out = role_metrics(np.zeros((0, 4)), np.zeros(0, np.int64), ROLES)
    assert out["role_acc"] == 0.0 and out["role_macro_f1"] == 0.0
    assert out["role_confusion"] == [[0] * 4 for _ in range(4)]


def _fake_outputs(index: pd.DataFrame) -> dict[int, dict[str, np.ndarray]]:
    """Model outputs keyed by crop id: noisy identity, team and role signals."""
    rng = np.random.default_rng(0)
    ident = {k: rng.normal(size=(4, 3)) for k in sorted(index["identity"].unique())}
    out = {}
    for row in index.itertuples():
        vis = np.r_[(rng.random(2) > 0.3).astype(float), 1.0, 1.0]
        team = np.eye(3)[{"left": 0, "right": 1}.get(row.team, 2)] + rng.normal(0, 0.6, 3)
        role = np.eye(len(ROLES))[ROLES.index(row.role)] * 2 + rng.normal(0, 1.0, len(ROLES))
        kit = np.array([20.0, 20.0]) * {"left": 1, "right": 2}.get(row.team, 3) + rng.normal(0, 8, 2)
        out[row.crop_id] = {"feats": ident[row.identity] + rng.normal(0, 0.8, (4, 3)), "vis": vis,
                            "team": team, "role_logits": role, "kit": kit}
    return out


def test_evaluate_store_wiring_against_an_independent_computation(crop_store: Path, monkeypatch) -> None:
    index = read_crop_index(crop_store)
    fake = _fake_outputs(index)

    def extract(model, dataset, device, batch_size=64, num_workers=0, on_batch=None) -> dict:
        rows = [fake[c] for c in dataset.crop_ids]
        return {"feats": torch.tensor(np.stack([r["feats"] for r in rows]), dtype=torch.float32),
                "vis": torch.tensor(np.stack([r["vis"] for r in rows]), dtype=torch.float32),
                "team": np.stack([r["team"] for r in rows]), "role_logits": np.stack([r["role_logits"] for r in rows]),
                "kit": np.stack([r["kit"] for r in rows])}

    monkeypatch.setattr(evaluate, "extract", extract)
    out = evaluate.evaluate_store(None, crop_store, torch.device("cpu"), image_size=(32, 16), role_names=ROLES,
                                  min_frame_gap=5)
    q, g = index[index["split"] == "query"], index[index["split"] == "gallery"]
    qf, gf = (np.stack([fake[c]["feats"] for c in s["crop_id"]]) for s in (q, g))
    qv, gv = (np.stack([fake[c]["vis"] for c in s["crop_id"]]) for s in (q, g))
    dist = _reference_part_distance(qf, qv, gf, gv)
    codes = {k: i for i, k in enumerate(sorted(index["identity"].unique()))}
    seqs = {k: i for i, k in enumerate(sorted(index["sequence"].unique()))}
    qp, gp = q["identity"].map(codes).to_numpy(), g["identity"].map(codes).to_numpy()
    qm, gm = q["sequence"].map(seqs).to_numpy(), g["sequence"].map(seqs).to_numpy()
    aps, firsts, skipped = _reference_reid(dist, qp, gp, qm, gm, q["frame"].to_numpy(), g["frame"].to_numpy(), 5)
    assert out["num_queries"] == len(aps) > 0 and out["skipped_queries"] == skipped
    assert out["mAP"] == pytest.approx(np.mean(aps), abs=1e-5)
    assert out["rank1"] == pytest.approx(np.mean(np.array(firsts) < 1))
    assert out["rank5"] == pytest.approx(np.mean(np.array(firsts) < 5))

    both = pd.concat([q, g])
    emb = np.stack([fake[c]["team"] for c in both["crop_id"]])
    teams = np.where(both["role"] == "player", both["team"].map({"left": 0, "right": 1}).fillna(-1), -1).astype(int)
    kit = np.stack([fake[c]["kit"] for c in both["crop_id"]])
    sequences = both["sequence"].map(seqs).to_numpy()
    # the default: per sequence, unit embeddings and kit colours side by side, each over its spread, kit x2,
    # split by the mixture
    want_acc, want_per = _reference_team(emb, teams, sequences, seed=0, kit=kit, split="mixture")
    assert want_per and out["team_acc"] == out["team_acc_both"] == pytest.approx(want_acc)
    assert out["team_acc_per_sequence"] == pytest.approx({sorted(seqs)[m]: a for m, a in want_per.items()})
    assert out["team_acc_kmeans"] == pytest.approx(_reference_team(emb, teams, sequences, seed=0, kit=kit)[0])
    kit_alone = _reference_team(kit, teams, sequences, seed=0, normalize=False, split="mixture")[0]
    embedding_alone = _reference_team(emb, teams, sequences, seed=0, split="mixture")[0]
    assert out["team_acc_kit"] == pytest.approx(kit_alone)
    assert out["team_acc_embedding"] == pytest.approx(embedding_alone)

    logits = np.stack([fake[c]["role_logits"] for c in both["crop_id"]])
    truth = both["role"].map(ROLES.index).to_numpy()
    assert out["role_acc_crop"] == pytest.approx(accuracy_score(truth, logits.argmax(1)))
    pred = logits.argmax(1)
    probs = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    for seq in both["sequence"].unique():  # the match context, sequence by sequence
        sel = np.flatnonzero((both["sequence"] == seq).to_numpy())
        pred[sel] = contextual_roles(emb[sel], probs[sel], np.arange(len(sel)), both["frame"].to_numpy()[sel],
                                     ROLES, RoleContext())
    assert out["role_acc"] == pytest.approx(accuracy_score(truth, pred))
    assert out["role_macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro", zero_division=0))
