"""benchmarks/team_descriptors.py: each column scored on crops and on players' means, and a real run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench_scripts import load_script


def test_columns_score_crops_and_players_means() -> None:
    bench = load_script("team_descriptors")
    rng = np.random.default_rng(0)
    people = np.repeat(np.arange(8), 5)  # 8 players of one clip, 5 crops each
    teams = (people >= 5).astype(int)  # 5 against 3
    emb = rng.normal(size=(40, 4))  # no team signal
    kit = np.where(teams[:, None] == 1, 20.0, 0.0) + rng.normal(0, 1.0, (40, 6))
    noisy_kit = kit.copy()
    noisy_kit[0] = kit[-1]  # one crop of player 0 shows the other kit: wrong alone, outvoted in its player's mean
    rows = bench.accuracies(emb, noisy_kit, kit, teams, np.zeros(40, int), people)
    assert bench.accuracies(emb, noisy_kit, kit, teams, np.zeros(40, int), people, "kmeans")["kit"] == rows["kit"]
    assert rows["kit, true masks"] == (1.0, 1.0)
    assert rows["kit"] == (39 / 40, 1.0)
    assert rows["embedding"][0] < 0.9
    # a second clip with one team only is not scored
    clips = np.r_[np.zeros(40, int), np.ones(5, int)]
    two = bench.accuracies(*(np.concatenate([a, a[:5]]) for a in (emb, noisy_kit, kit)),
                           np.r_[teams, teams[:5]], clips, np.r_[people, people[:5]])
    assert two["kit"] == rows["kit"]


def test_runs_on_generated_clips(synth_data: Path, untrained_model: Path, capsys: pytest.CaptureFixture) -> None:
    assert load_script("team_descriptors").main(["--model", str(untrained_model), "--data", str(synth_data)]) == 0
    out = capsys.readouterr().out
    assert out.count("| set | embedding | kit | both | kit, true masks |") == 2
    assert "(mixture per clip" in out and "(kmeans per clip" in out
    row = next(line for line in out.splitlines() if line.startswith(f"| {synth_data.name} |"))
    values = [float(v) for cell in row.split("|")[2:-1] for v in cell.split("/")]
    assert len(values) == 8 and all(0.5 <= v <= 1.0 for v in values)
