"""The project's demo: every stage built so far, on data the project generates, on a laptop.

Run it with ``make demo`` (which creates .venv first). Each stage prints the command it runs and
what it measured; everything lands in ``--out`` (default ``demo_out/``), ending with
``demo_out/REPORT.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from prtreid.cli import main as cli


class Demo:
    """Runs ``prtreid`` subcommands as numbered stages, timing each."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.stage = 0
        self.times: dict[str, float] = {}

    def run(self, title: str, argv: list[str]) -> None:
        """Print a stage header and the command, run it, fail loudly."""
        self.stage += 1
        print(f"\n=== {self.stage}. {title} ===\n$ prtreid {' '.join(argv)}", flush=True)
        start = time.perf_counter()
        if cli(argv) != 0:
            raise SystemExit(f"demo stage failed: prtreid {' '.join(argv)}")
        self.times[title] = time.perf_counter() - start
        print(f"    ({self.times[title]:.1f} s)", flush=True)


def main() -> None:
    """Generate a league, train PRTReID, evaluate it, track unseen clips, evaluate and render."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument("--train-seqs", type=int, default=16)
    parser.add_argument("--test-seqs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--fresh", action="store_true", help="delete --out first")
    args = parser.parse_args()
    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    out = args.out
    train_data, test_data = out / "data" / "train", out / "data" / "test"
    run, tracks = out / "run", out / "tracks"
    demo = Demo(out)

    demo.run("Generate training clips (SoccerNet-Tracking layout)",
             ["synth", "--out", str(train_data), "--seqs", str(args.train_seqs), "--frames", "50", "--seed", "7"])
    demo.run("Generate unseen test clips (other seed: new kits, players, camera paths)",
             ["synth", "--out", str(test_data), "--seqs", str(args.test_seqs), "--frames", "150", "--seed", "1001",
              "--first-index", "101"])
    demo.run("Build the re-id crop store", ["crops", "--data", str(train_data), "--out", str(out / "crops"),
                                           "--config", "configs/train_cpu_small.yaml", "--json"])
    demo.run("Train PRTReID (re-id + team + role)",
             ["train", "--data", str(out / "crops"), "--out", str(run), "--config", "configs/train_cpu_small.yaml",
              "--epochs", str(args.epochs)])
    demo.run("Evaluate re-id, team and role on the unseen clips",
             ["eval-reid", "--data", str(test_data), "--model", str(run / "model.pt")])
    demo.run("Track the unseen clips (oracle detections + PRTReID appearance)",
             ["track", "--input", str(test_data), "--model", str(run / "model.pt"), "--detector", "oracle",
              "--out", str(tracks)])
    demo.run("Evaluate tracking (trackeval HOTA, team and role accuracy)",
             ["eval-tracking", "--gt", str(test_data), "--pred", str(tracks)])
    first = sorted(p for p in test_data.iterdir() if p.is_dir())[0]
    demo.run("Render an overlay video", ["render", "--input", str(first), "--pred", str(tracks),
                                         "--out", str(out / f"{first.name}.overlay.mp4")])
    write_report(out, run, tracks, test_data, demo.times)
    print(f"\nDemo finished in {sum(demo.times.values()):.0f} s; report: {out / 'REPORT.md'}")


def write_report(out: Path, run: Path, tracks: Path, test_data: Path, times: dict[str, float]) -> None:
    """A Markdown summary of the run: re-id metrics, tracking metrics, stage times."""
    from prtreid.eval.tracking import evaluate_tracking

    history = json.loads((run / "metrics.json").read_text())
    final = history[-1]
    tracking = evaluate_tracking(test_data, tracks)
    lines = ["# PRTReID demo report", "", "## Re-id model (held-out training-split sequences)", "",
             "| mAP | rank-1 | team acc | role acc | role macro-F1 |", "|---|---|---|---|---|",
             "| " + " | ".join(f"{final.get(k, float('nan')):.3f}"
                              for k in ("mAP", "rank1", "team_acc", "role_acc", "role_macro_f1")) + " |",
             "", "## Tracking on unseen clips (oracle detections)", "",
             "| sequence | HOTA | DetA | AssA | MOTA | IDF1 | team acc | role acc |", "|---|---|---|---|---|---|---|---|"]
    for seq, m in sorted(tracking.items()):
        cells = [f"{m[k]:.3f}" if k in m else "-" for k in ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "team_acc", "role_acc")]
        lines.append(f"| {seq} | " + " | ".join(cells) + " |")
    lines += ["", "## Stage times", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in times.items()]
    overlays = sorted(p.name for p in out.glob("*.overlay.mp4"))
    lines += ["", f"Overlay video: {', '.join(overlays)}", ""]
    (out / "REPORT.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
