"""Training throughput on Ray Train: samples/s with 1 and 2 workers, and the time spent on data.

Each row trains the same experiment on the same generated crops; throughput counts the training
samples of all workers per second of epoch time (data loading + steps, evaluation excluded) over
the epochs after the first (warm-up). ``data wait`` is the share of that time a worker waited for
its next batch. A local ``fit`` without Ray, on as many threads as one Ray worker, is the peer row;
the local rows are float32 and bfloat16 autocast on CPU (Ray rows: float32), float32, float16 AMP
and bfloat16 AMP on a GPU (Ray rows: float16 AMP).
``wall`` is the whole call, Ray start-up of the worker group included.

    python benchmarks/train_throughput.py                       # CPU: local fit, Ray 1 and 2 workers
    python benchmarks/train_throughput.py --gpu --workers 1     # samples/s per GPU, with AMP
    python benchmarks/train_throughput.py --gpu --workers       # local rows only (no Ray needed)
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from prtreid.data.crops import INDEX_FILE, build_crops
from prtreid.data.synth import SynthConfig, generate_dataset
from prtreid.train.config import ExperimentConfig, load_experiment
from prtreid.train.budget import cpu_bf16_native
from prtreid.train.loop import Runtime, fit


LOCAL_CPU = {None: "local fit (no Ray), 1 thread, float32",
             "bfloat16": "local fit (no Ray), 1 thread, bfloat16 autocast"}
LOCAL_GPU = {None: "local fit (no Ray), float32", "float16": "local fit (no Ray), float16 AMP",
             "bfloat16": "local fit (no Ray), bfloat16 AMP"}


def experiment(args: argparse.Namespace, amp: str | None = "float16") -> ExperimentConfig:
    """The benchmark's experiment (``amp``: autocast dtype, None for float32; CPU: bfloat16 only);
    evaluation only after the last epoch."""
    height, width = args.size
    amp_dtype = amp or "float16"
    return load_experiment(None, [
        f"model.backbone={args.backbone}", f"model.image_size=[{height}, {width}]", "model.embed_dim=128",
        f"crops.store_height={2 * height}", f"crops.max_per_identity={args.per_id}", "crops.eval_fraction=0.25",
        f"sampler.p_ids={args.p}", f"sampler.k_instances={args.k}", f"train.epochs={args.epochs}",
        f"train.eval_every={args.epochs + 1}", f"train.num_workers={args.loader_workers}",
        f"train.amp={str(args.gpu and amp is not None).lower()}", f"train.amp_dtype={amp_dtype}",
        f"train.cpu_amp={str(not args.gpu and amp == 'bfloat16').lower()}",
        f"train.device={'cuda' if args.gpu else 'cpu'}"])


def prepare_store(args: argparse.Namespace, cfg: ExperimentConfig) -> Path:
    """The crop store to train on: ``--data`` if it is one, else cut from generated clips."""
    if args.data and (args.data / INDEX_FILE).exists():
        return args.data
    data = args.data or args.work / "data"
    if not args.data and not any(data.glob("*/seqinfo.ini")):
        generate_dataset(data, SynthConfig(seqs=args.seqs, frames=args.frames, width=640, height=360, seed=3))
    store = args.work / "crops"
    if not (store / INDEX_FILE).exists():
        build_crops(data, store, cfg.crops)
    return store


def throughput(history: list[dict[str, Any]], workers: int) -> dict[str, float]:
    """Samples/s of all workers and the data-wait share, from rank 0's epochs after the first."""
    epochs = history[1:] or history
    seconds = sum(h["time/data"] + h["time/step"] for h in epochs)
    samples = workers * sum(h["samples"] for h in epochs)  # every rank draws the same number
    return {"samples_per_s": samples / seconds, "data_wait": sum(h["time/data"] for h in epochs) / seconds}


def run_local(cfg: ExperimentConfig, store: Path, threads: int) -> dict[str, float]:
    """The peer: ``fit`` in this process, no Ray."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-local-") as out:
            history = fit(cfg, store, out, Runtime(progress=False))
        return throughput(history, 1) | {"wall": time.perf_counter() - start}
    finally:
        torch.set_num_threads(previous)


def run_ray(cfg: ExperimentConfig, store: Path, workers: int, args: argparse.Namespace) -> dict[str, float]:
    """Ray Train with ``workers`` DDP workers, in a fresh run folder."""
    from prtreid.distributed.train import train_distributed

    resources = None if args.gpu else {"CPU": args.cpus_per_worker}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as storage:
        summary = train_distributed(cfg, str(store), storage, f"throughput-{workers}", num_workers=workers,
                                    use_gpu=args.gpu, resources_per_worker=resources, max_failures=0)
    return throughput(summary.history, workers) | {"wall": time.perf_counter() - start}


def print_table(rows: dict[str, dict[str, float]], cfg: ExperimentConfig, args: argparse.Namespace,
                store: Path) -> None:
    """Markdown table and the 2-worker / 1-worker ratio."""
    unit = "GPU" if args.gpu else "worker"
    device = torch.cuda.get_device_name() if args.gpu else "CPU, 1 thread per worker"
    print(f"\n{cfg.model.backbone} at {cfg.model.image_size[0]}x{cfg.model.image_size[1]}, batch "
          f"{args.p}x{args.k}, {args.epochs} epochs (first excluded), store {store}, "
          f"{device}, {args.loader_workers} loader processes, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[1]:.1f} (5 min)\n")
    print(f"| run | samples/s | samples/s per {unit} | data wait | wall s |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        per = r["samples_per_s"] / r["workers"]
        print(f"| {name} | {r['samples_per_s']:.1f} | {per:.1f} | {100 * r['data_wait']:.1f}% | {r['wall']:.1f} |")
    one, two = rows.get("Ray Train, 1 worker"), rows.get("Ray Train, 2 workers")
    if one and two:
        print(f"\nsamples/s ratio 2 workers / 1 worker: {two['samples_per_s'] / one['samples_per_s']:.2f}")
    local_names = LOCAL_GPU if args.gpu else LOCAL_CPU
    local = rows.get(local_names["float16" if args.gpu else None])
    if one and local:
        print(f"samples/s ratio Ray 1 worker / local fit: {one['samples_per_s'] / local['samples_per_s']:.2f}")
    fp32 = rows.get(local_names[None])
    for amp, name in local_names.items():
        if fp32 and amp is not None and name in rows:
            print(f"samples/s ratio {amp} autocast / float32: {rows[name]['samples_per_s'] / fp32['samples_per_s']:.2f}")


def main() -> None:
    """Parse arguments, train every configuration, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("runs/throughput"))
    parser.add_argument("--data", type=Path, help="crop store or sequences (default: generated)")
    parser.add_argument("--seqs", type=int, default=4)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--per-id", type=int, default=12, help="crops kept per identity")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 64), metavar=("H", "W"))
    parser.add_argument("--p", type=int, default=8, help="identities per batch")
    parser.add_argument("--k", type=int, default=4, help="crops per identity in a batch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="Ray Train runs (none: no Ray)")
    parser.add_argument("--cpus-per-worker", type=float, default=0.9)
    parser.add_argument("--loader-workers", type=int, default=0, help="DataLoader processes per worker")
    parser.add_argument("--gpu", action="store_true", help="one GPU per worker, AMP on")
    parser.add_argument("--no-local", action="store_true", help="skip the local fit peer row")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.gpu and not torch.cuda.is_available():
        raise SystemExit("--gpu: no CUDA device here")

    cfg = experiment(args)
    store = prepare_store(args, cfg)
    rows: dict[str, dict[str, float]] = {}
    if not args.no_local:
        for amp, name in (LOCAL_GPU if args.gpu else LOCAL_CPU).items():
            if amp == "bfloat16" and not args.gpu and not cpu_bf16_native():
                print("no bfloat16 row: this CPU has no AVX512-BF16 or AMX-BF16, so cpu_amp trains in float32")
                continue
            rows[name] = run_local(experiment(args, amp), store, threads=1) | {"workers": 1}
    if not args.workers:
        print_table(rows, cfg, args, store)
        return
    from prtreid.distributed.runtime import connect, stop_ray

    connect(num_cpus=None)
    try:
        for n in args.workers:
            rows[f"Ray Train, {n} worker{'s' if n > 1 else ''}"] = run_ray(cfg, store, n, args) | {"workers": n}
    finally:
        stop_ray()
    print_table(rows, cfg, args, store)


if __name__ == "__main__":
    main()
