"""benchmarks/seed_sweep_table.py: the sweep's lines grouped by variant and averaged over seeds."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

TABLE = Path(__file__).resolve().parents[1] / "benchmarks" / "seed_sweep_table.py"


@pytest.fixture(scope="module")
def sweep_table():
    spec = importlib.util.spec_from_file_location("seed_sweep_table", TABLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _line(run: str, k: int, team: float) -> str:
    return f"{run} set{k} " + json.dumps({"mAP": 0.5, "team_acc": team, "role_acc": 0.9, "role_macro_f1": 0.8})


def test_runs_group_by_variant_and_average_over_seeds(sweep_table, tmp_path: Path, capsys,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "sweep.txt"
    out.write_text("\n".join([
        "NVIDIA H100 80GB HBM3", "base_s0 trained: exit 0, 65 s",
        _line("base_s0", 1, 0.9), _line("base_s1", 1, 1.0), _line("base_s0", 2, 0.8), _line("base_s1", 2, 0.6),
        _line("clothes_w03_s0", 1, 0.95), _line("clothes_w03_s0", 2, 0.85),
    ]) + "\n")
    table = sweep_table.collect([out])
    assert set(table) == {"base", "clothes_w03"}
    assert set(table["base"]) == {"base_s0", "base_s1"} and table["base"]["base_s1"][2]["team_acc"] == 0.6
    monkeypatch.setattr(sys, "argv", ["seed_sweep_table.py", str(out)])
    sweep_table.main()
    rows = {line.split(" | ")[0].strip("| "): line for line in capsys.readouterr().out.splitlines()}
    assert "0.950 / 0.700, 0.825" in rows["base"] and "| 2 |" in rows["base"]
    assert "0.950 / 0.850, 0.900" in rows["clothes_w03"]
