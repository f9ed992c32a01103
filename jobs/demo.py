"""The project's demo: every stage built so far, on data the project generates, on a laptop.

Run it with ``make demo`` (which creates .venv first). Each stage prints what it does and what it
measured; outputs land in ``--out`` (default ``demo_out/``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from prtreid.cli import main as cli


def step(title: str) -> float:
    """Print a stage header; return the start time."""
    print(f"\n=== {title} ===", flush=True)
    return time.perf_counter()


def done(start: float) -> None:
    """Print the time a stage took."""
    print(f"    ({time.perf_counter() - start:.1f} s)", flush=True)


def run(argv: list[str]) -> None:
    """Run one ``prtreid`` subcommand, failing loudly."""
    print("$ prtreid " + " ".join(argv), flush=True)
    if cli(argv) != 0:
        raise SystemExit(f"demo stage failed: prtreid {' '.join(argv)}")


def main() -> None:
    """Generate a small league, build the re-id crop store, and print summaries."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument("--seqs", type=int, default=6)
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    data, crops = args.out / "data", args.out / "crops"

    t = step("1. Generate synthetic broadcast clips (SoccerNet-Tracking layout)")
    run(["synth", "--out", str(data), "--seqs", str(args.seqs), "--frames", str(args.frames), "--seed", "7"])
    done(t)

    t = step("2. Build the re-id crop store")
    run(["crops", "--data", str(data), "--out", str(crops), "--json"])
    done(t)

    summary = json.loads((crops / "summary.json").read_text())
    print(f"\nDemo finished: {summary.get('sequences')} sequences, {summary.get('identities')} identities, "
          f"{summary.get('crops')} crops in {args.out}")


if __name__ == "__main__":
    main()
