"""The project's demo: every stage built so far, on data the project generates, on a laptop.

Run it with ``make demo`` (which creates .venv first). Each stage prints the command it runs and
what it measured; everything lands in ``--out`` (default ``demo_out/``), ending with
``demo_out/REPORT.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from prtreid.cli import main as cli
from prtreid.storage import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import track as track_job  # noqa: E402  (jobs/ is not a package)
import train as train_job  # noqa: E402


class Demo:
    """Runs the demo's stages, numbered and timed: ``prtreid`` subcommands and Ray jobs' ``main``."""

    def __init__(self) -> None:
        self.stage = 0
        self.times: dict[str, float] = {}

    def run(self, title: str, argv: list[str]) -> None:
        """A ``prtreid`` subcommand as a stage."""
        self._stage(title, f"prtreid {' '.join(argv)}", lambda: cli(argv))

    def job(self, title: str, entry: Callable[[list[str]], int | None], argv: list[str]) -> None:
        """A Ray job's ``main`` (jobs/*.py), run in this process, as a stage."""
        self._stage(title, f"python jobs/{entry.__module__}.py {' '.join(argv)}", lambda: entry(argv))

    def _stage(self, title: str, command: str, fn: Callable[[], int | None]) -> None:
        self.stage += 1
        print(f"\n=== {self.stage}. {title} ===\n$ {command}", flush=True)
        start = time.perf_counter()
        if fn():
            raise SystemExit(f"demo stage failed: {command}")
        self.times[title] = time.perf_counter() - start
        print(f"    ({self.times[title]:.1f} s)", flush=True)


def write_manifest(out: Path, test_data: Path) -> Path:
    """A bulk manifest: the test clips, a missing video and a corrupt one.

    The clips are SoccerNet folders tracked with oracle detections; video files need a detector
    (``--detector yolo:WEIGHTS``, e.g. from ``prtreid train-detector``).
    """
    seqs = sorted(p for p in test_data.iterdir() if p.is_dir())
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    (videos / "corrupt.mp4").write_bytes(b"\x00" * 4096)
    entries = [*seqs, videos / "missing.mp4", videos / "corrupt.mp4"]
    lines = [str(p.resolve()) for p in entries]
    manifest = out / "manifest.txt"
    header = "# demo season: sequence folders, a missing file and a corrupt video\n"
    atomic_write_text(manifest, header + "\n".join(lines) + "\n")
    return manifest


def main() -> None:
    """Generate a league, train PRTReID, evaluate it, track unseen clips, evaluate and render."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument("--train-seqs", type=int, default=120)
    parser.add_argument("--train-frames", type=int, default=10)
    parser.add_argument("--test-seqs", type=int, default=2)
    parser.add_argument("--epochs", type=int, help="most training epochs (default: the preset's); "
                                                   "--train-minutes may train fewer")
    parser.add_argument("--train-minutes", type=float, default=4.0,
                        help="fewer epochs than --epochs where they would not fit in about this many minutes "
                             "(judged by the first epoch's time on this machine); 0: all of them")
    parser.add_argument("--fresh", action="store_true", help="delete --out first")
    args = parser.parse_args()
    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    out = args.out
    train_data, test_data = out / "data" / "train", out / "data" / "test"
    run, tracks = out / "ray" / "demo", out / "tracks"  # Ray Train keeps the run in STORAGE/NAME
    demo = Demo()

    demo.run("Generate training clips (SoccerNet-Tracking layout; many short matches for kit variety)",
             ["synth", "--out", str(train_data), "--seqs", str(args.train_seqs), "--frames", str(args.train_frames),
              "--seed", "7"])
    demo.run("Generate unseen test clips (other seed: new kits, players, camera paths)",
             ["synth", "--out", str(test_data), "--seqs", str(args.test_seqs), "--frames", "100", "--seed", "1001",
              "--first-index", "101"])
    demo.run("Build the re-id crop store", ["crops", "--data", str(train_data), "--out", str(out / "crops"),
                                           "--config", "configs/train_cpu_small.yaml", "--json"])
    epochs = ["--set", f"train.epochs={args.epochs}"] if args.epochs else []
    epochs += ["--set", f"train.budget_minutes={args.train_minutes}"]
    demo.job("Train PRTReID (re-id + team + role) on Ray Train, 2 DDP workers", train_job.main,
             ["--config", "configs/train_cpu_small.yaml", *epochs,
              "--data", str((out / "crops").resolve()), "--storage", str((out / "ray").resolve()),
              "--name", "demo", "--num-workers", "2", "--cpus-per-worker", "0.9"])
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
    manifest = write_manifest(out, test_data)
    demo.job("Bulk tracking on Ray Data (manifest with a missing and a corrupt video)", track_job.main,
             ["--manifest", str(manifest), "--out", str((out / "bulk").resolve()), "--model",
              str((run / "model.pt").resolve()), "--detector", "oracle", "--actors", "2", "--cpus-per-actor", "0.5"])
    write_report(out, run, tracks, test_data, demo.times)
    print(f"\nDemo finished in {sum(demo.times.values()):.0f} s; report: {out / 'REPORT.md'}")


def write_report(out: Path, run: Path, tracks: Path, test_data: Path, times: dict[str, float]) -> None:
    """A Markdown summary of the run: re-id metrics, tracking metrics, stage times."""
    from prtreid.eval.tracking import evaluate_tracking

    history = json.loads((run / "history.json").read_text())
    final = history[-1]
    tracking = evaluate_tracking(test_data, tracks)
    lines = ["# PRTReID demo report", "",
             f"## Re-id model (held-out sequences of the training set, after epoch {len(history)})", "",
             "| mAP | rank-1 | team acc | role acc | role macro-F1 |", "|---|---|---|---|---|",
             "| " + " | ".join(f"{final.get(k, float('nan')):.3f}"
                              for k in ("mAP", "rank1", "team_acc", "role_acc", "role_macro_f1")) + " |",
             "", "## Tracking on unseen clips (oracle detections)", "",
             "| sequence | HOTA | DetA | AssA | MOTA | IDF1 | team acc | role acc | keepers' team acc |",
             "|---|---|---|---|---|---|---|---|---|"]
    keys = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "team_acc", "role_acc", "keeper_team_acc")
    for seq, m in sorted(tracking.items()):
        cells = [f"{m[k]:.3f}" if k in m else "-" for k in keys]
        lines.append(f"| {seq} | " + " | ".join(cells) + " |")
    lines += ["", "## Stage times", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in times.items()]
    overlays = sorted(p.name for p in out.glob("*.overlay.mp4"))
    lines += ["", f"Overlay video: {', '.join(overlays)}", ""]
    atomic_write_text(out / "REPORT.md", "\n".join(lines))


if __name__ == "__main__":
    main()
