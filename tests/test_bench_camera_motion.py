"""benchmarks/camera_motion.py on a tiny generated clip: the table is built from real estimates."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_scripts import load_script


def test_table_ranks_estimators_against_the_true_motion(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bench = load_script("camera_motion")
    args = ["--work", str(tmp_path), "--seqs", "1", "--frames", "16", "--size", "320", "180", "--seed", "23"]
    assert bench.main(args) == 0
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[1][0].isdigit():
            rows[cells[0]] = (float(cells[1]), float(cells[3]))
    default, none = next(iter(rows.values())), rows["none (identity)"]
    assert next(iter(rows)).endswith("(default)") and len(rows) >= 8
    assert default[0] < none[0] / 2, (default, none)
    assert default[1] > 0
