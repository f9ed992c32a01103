"""Averages the output of ``benchmarks/seed_sweep.sh`` over seeds: one row per variant.

    python benchmarks/seed_sweep_table.py SWEEP_OUTPUT [...]

A variant's runs are named ``VARIANT`` + ``_s`` + seed (``base_s0``, ``base_s1``, ...); every line
``NAME setK {json}`` of the sweep's output is read, other lines are skipped.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path
from statistics import mean

METRICS = ("mAP", "team_acc", "role_acc", "role_macro_f1")
LINE = re.compile(r"^(?P<run>\S+) set(?P<set>\d+) (?P<json>\{.*\})\s*$")


def collect(paths: list[Path]) -> dict[str, dict[str, dict[int, dict[str, float]]]]:
    """``{variant: {run: {set: metrics}}}`` from sweep outputs."""
    table: dict[str, dict[str, dict[int, dict[str, float]]]] = defaultdict(lambda: defaultdict(dict))
    for path in paths:
        for line in path.read_text().splitlines():
            match = LINE.match(line)
            if match:
                run = match["run"]
                table[re.sub(r"_s\d+$", "", run)][run][int(match["set"])] = json.loads(match["json"])
    return table


def main() -> None:
    """Print the per-variant means over seeds, per unseen set and overall."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outputs", type=Path, nargs="+")
    table = collect(parser.parse_args().outputs)
    print("| variant | seeds | " + " | ".join(f"{m} (sets 1 / 2 / 3, mean)" for m in METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for variant, runs in table.items():
        sets = sorted({k for run in runs.values() for k in run})
        cells = []
        for metric in METRICS:
            per_set = [mean(run[k][metric] for run in runs.values() if k in run) for k in sets]
            cells.append(" / ".join(f"{v:.3f}" for v in per_set) + f", {mean(per_set):.3f}")
        print(f"| {variant} | {len(runs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
