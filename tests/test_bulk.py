"""Bulk tracking on Ray Data: S3 in and out, equality with local runs, reruns, a killed actor.

The Ray tests use the session's local Ray and moto_server. Every output bucket is versioned, so
the number of versions of a key counts how many times it was written. Manifests and planning are in
`test_bulk_inputs.py`.
"""

from __future__ import annotations

import io
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pyarrow.fs as pafs
import pytest

from prtreid.config import from_dict
from prtreid.data.frames import open_frames, write_video
from prtreid.data.synth import SynthConfig, generate_dataset
from prtreid.distributed.manifest import VideoEntry
from prtreid.model.prtreid import ModelConfig, PRTReID
from prtreid.pipeline.video import PipelineConfig, VideoPipeline, write_result
from prtreid.storage import Storage
from prtreid.train.checkpoint import model_meta, save_model

from ray_fixtures import own_lines

ORACLE = {"detector": "oracle", "device": "cpu"}
YOLO = {"detector": "yolo:yolov8n.yaml", "device": "cpu", "cmc": "none",  # untrained: plumbing, tiny scores
        "detection": {"imgsz": 160, "conf": 0.0, "max_det": 15, "device": "cpu"},
        "tracker": {"min_conf": 0.0, "birth_conf": 0.0}}
GOOD = {"SNMOT-001": "oracle", "SNMOT-002": "oracle", "clip-a": "yolo", "clip-b": "yolo"}


# ---------------------------------------------------------------- bulk runs on Ray with S3

@pytest.fixture(scope="module")
def local_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """2 sequence folders, 2 videos, 1 corrupt video (all generated) and a small untrained model."""
    root = tmp_path_factory.mktemp("bulk-inputs")
    seqs = generate_dataset(root / "seqs", SynthConfig(seqs=3, frames=20, width=480, height=270, seed=5))
    videos = root / "videos"
    write_video(videos / "clip-a.mp4", (img for _, img in open_frames(seqs[2])), fps=25)
    write_video(videos / "clip-b.mp4", (img for i, img in open_frames(seqs[0]) if i <= 12), fps=25)
    data = (videos / "clip-a.mp4").read_bytes()
    (videos / "corrupt.mp4").write_bytes(data[: len(data) // 2])  # truncated: the index (moov) is lost
    cfg = ModelConfig(image_size=(64, 32), embed_dim=32, team_dim=8)
    roles = ("player", "goalkeeper", "referee", "other")
    save_model(root / "model.pt", PRTReID.from_config(cfg, num_roles=len(roles)), model_meta(cfg, len(roles), 0, roles))
    return {"SNMOT-001": seqs[0], "SNMOT-002": seqs[1], "clip-a": videos / "clip-a.mp4",
            "clip-b": videos / "clip-b.mp4", "videos": videos, "model": root / "model.pt", "root": root}


@pytest.fixture(scope="module")
def references(local_inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Local ``VideoPipeline.run`` + ``write_result`` of every good input (1 torch thread, like the actors)."""
    import torch

    out = tmp_path_factory.mktemp("bulk-reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for kind, names in (("oracle", ["SNMOT-001", "SNMOT-002"]), ("yolo", ["clip-a", "clip-b"])):
            pipeline = VideoPipeline(from_dict(PipelineConfig, ORACLE if kind == "oracle" else YOLO),
                                     local_inputs["model"])
            for name in names:
                write_result(pipeline.run(local_inputs[name]), Storage(str(out)))
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def s3_inputs(s3_server: str, local_inputs: dict[str, Path]) -> str:
    """The inputs, the model and a CSV manifest uploaded to a bucket; returns ``s3://BUCKET``."""
    bucket = f"inputs-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    s3 = Storage(f"s3://{bucket}").fs
    local = pafs.LocalFileSystem()
    for src, dst in ((local_inputs["SNMOT-001"], "seqs/SNMOT-001"), (local_inputs["SNMOT-002"], "seqs/SNMOT-002"),
                     (local_inputs["videos"], "videos"), (local_inputs["model"], "models/model.pt")):
        pafs.copy_files(str(src), f"{bucket}/{dst}", source_filesystem=local, destination_filesystem=s3)
    manifest = ("uri,match_id,season\n../seqs/SNMOT-001,101,2024\n../seqs/SNMOT-002/,102,2024\n"
                "../videos/missing.mp4,103,2024\n")
    Storage(f"s3://{bucket}/manifests").write_text("season.csv", manifest)
    return f"s3://{bucket}"


def versioned_bucket(endpoint: str) -> str:
    """A new bucket with versioning on (every write of a key adds a version)."""
    name = f"out-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def versions(endpoint: str, bucket: str) -> dict[str, list[tuple[str, str]]]:
    """``key -> [(version id, etag), ...]`` of every object version in the bucket."""
    client = boto3.client("s3", endpoint_url=endpoint)
    out: dict[str, list[tuple[str, str]]] = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            out.setdefault(v["Key"], []).append((v["VersionId"], v["ETag"]))
    return {k: sorted(v) for k, v in out.items()}


def bulk_config(**kw: Any) -> Any:
    from prtreid.distributed.track import BulkConfig

    return BulkConfig(actors=2, cpus_per_actor=0.5, progress=False, **kw)


def run_both(s3_inputs: str, out: str, actor_cls: Any = None) -> list[Any]:
    """The oracle run (manifest) and the YOLO run (prefix listing) into ``out``."""
    from prtreid.distributed.manifest import load_entries
    from prtreid.distributed.track import TrackActor, track_bulk

    cls = actor_cls or TrackActor
    model = f"{s3_inputs}/models/model.pt"
    return [
        track_bulk(load_entries(manifest=f"{s3_inputs}/manifests/season.csv"), out,
                   from_dict(PipelineConfig, ORACLE), model, bulk_config(), cls),
        track_bulk(load_entries(prefix=f"{s3_inputs}/videos"), out, from_dict(PipelineConfig, YOLO), model,
                   bulk_config(), cls),
    ]


@pytest.fixture(scope="module")
def first_run(ray_session: dict, s3_server: str, s3_inputs: str) -> Iterator[tuple[str, list[Any]]]:
    """Both runs into a fresh versioned bucket; yields (bucket, reports)."""
    bucket = versioned_bucket(s3_server)
    yield bucket, run_both(s3_inputs, f"s3://{bucket}/season")


def assert_same_as_local(out: Storage, references: Path, name: str) -> None:
    """Byte-identical MOT text and equal tracks table to the local run."""
    assert out.read_bytes(f"{name}.txt") == (references / f"{name}.txt").read_bytes(), name
    bulk = pd.read_parquet(io.BytesIO(out.read_bytes(f"{name}.tracks.parquet")))
    pd.testing.assert_frame_equal(bulk, pd.read_parquet(references / f"{name}.tracks.parquet"))
    assert len(bulk) > 0


@pytest.mark.slow
def test_bulk_results_equal_local_runs_and_failures_are_recorded(first_run: tuple[str, list[Any]],
                                                                 references: Path, s3_inputs: str) -> None:
    bucket, (oracle, yolo) = first_run
    out = Storage(f"s3://{bucket}/season")
    for name in GOOD:
        assert_same_as_local(out, references, name)
    assert oracle.counts == {"total": 3, "done": 2, "skipped": 0, "failed": 1}
    assert yolo.counts == {"total": 3, "done": 2, "skipped": 0, "failed": 1}
    summary = pd.read_json(io.BytesIO(out.read_bytes("SNMOT-002.summary.json")), typ="series")
    assert summary["meta"] == {"match_id": "102", "season": "2024"}
    assert summary["source"] == f"{s3_inputs}/seqs/SNMOT-002"
    assert summary["roles"]  # the model ran on the actors (role votes)
    failures = {f["name"]: f for f in oracle.failures + yolo.failures}
    missing = f"{s3_inputs}/videos/missing.mp4"
    assert failures["missing"]["error"] == f"FileNotFoundError: {missing}: no such object or prefix"
    assert failures["corrupt"]["error"].startswith(f"FrameError: {s3_inputs}/videos/corrupt.mp4: cannot open video")
    record = pd.read_json(io.BytesIO(out.read_bytes("failures/corrupt.json")), typ="series")
    assert record["status"] == "failed" and "Traceback" in record["traceback"] and "/tmp/" not in record["error"]
    assert yolo.frames == 20 + 12 and oracle.frames == 40 and oracle.stage_seconds["embed"] > 0
    assert sorted(out.list()) == sorted([f"{n}{s}" for n in GOOD for s in (".txt", ".tracks.parquet", ".summary.json")]
                                        + ["_report.json", "failures/corrupt.json", "failures/missing.json"])


@pytest.mark.slow
def test_rerun_writes_nothing_new(first_run: tuple[str, list[Any]], s3_server: str, s3_inputs: str) -> None:
    bucket, _ = first_run
    before = versions(s3_server, bucket)
    oracle, yolo = run_both(s3_inputs, f"s3://{bucket}/season")
    after = versions(s3_server, bucket)
    report = "season/_report.json"
    assert {k: v for k, v in after.items() if k != report} == {k: v for k, v in before.items() if k != report}
    assert all(len(v) == 1 for k, v in after.items() if k != report)
    assert (oracle.counts["skipped"], oracle.counts["failed"]) == (2, 1)  # failures are retried, not rewritten
    assert (yolo.counts["skipped"], yolo.counts["failed"]) == (2, 1)


def killing_actor(marker: Path) -> type:
    """A TrackActor whose process SIGKILLs itself once, after writing the first of a video's files."""
    from prtreid.distributed.track import TrackActor

    class KillOnce(TrackActor):
        def write(self, result: Any) -> None:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return super().write(result)
            self.out.write_text(f"{result.name}.txt", result.mot_text())  # a partial result...
            os.kill(os.getpid(), signal.SIGKILL)  # ...and the process is gone

    return KillOnce


@pytest.mark.slow
def test_killed_actor_redoes_its_video_and_every_result_exists_once(
        ray_session: dict, s3_server: str, s3_inputs: str, references: Path, tmp_path: Path) -> None:
    from prtreid.distributed.manifest import load_entries
    from prtreid.distributed.track import track_bulk

    bucket = versioned_bucket(s3_server)
    marker = tmp_path / "killed"
    report = track_bulk(load_entries(manifest=f"{s3_inputs}/manifests/season.csv"), f"s3://{bucket}/k",
                        from_dict(PipelineConfig, ORACLE), f"{s3_inputs}/models/model.pt", bulk_config(),
                        killing_actor(marker))
    assert marker.exists() and report.counts == {"total": 3, "done": 2, "skipped": 0, "failed": 1}
    out = Storage(f"s3://{bucket}/k")
    for name in ("SNMOT-001", "SNMOT-002"):
        assert_same_as_local(out, references, name)
    written = versions(s3_server, bucket)
    assert sorted(written) == sorted(["k/_report.json", "k/failures/missing.json"] + [
        f"k/{n}{s}" for n in ("SNMOT-001", "SNMOT-002") for s in (".txt", ".tracks.parquet", ".summary.json")])
    assert sorted(len(written[f"k/{n}.txt"]) for n in ("SNMOT-001", "SNMOT-002")) == [1, 2]  # one redone
    assert all(len(v) == 1 for k, v in written.items() if not k.endswith(".txt"))
    etags = written["k/SNMOT-001.txt"] if len(written["k/SNMOT-001.txt"]) == 2 else written["k/SNMOT-002.txt"]
    assert etags[0][1] == etags[1][1]  # the redo wrote the same bytes


def poisoned_actor(poison: str) -> type:
    """A TrackActor whose process dies on every attempt at the input named ``poison``."""
    from prtreid.distributed.track import TrackActor

    class Poisoned(TrackActor):
        def process(self, entry: Any) -> Any:
            if entry.name == poison:
                os.kill(os.getpid(), signal.SIGKILL)
            return super().process(entry)

    return Poisoned


@pytest.mark.slow
def test_input_that_kills_every_attempt_is_recorded_and_the_run_goes_on(
        ray_session: dict, local_inputs: dict[str, Path], tmp_path: Path) -> None:
    from prtreid.distributed.track import track_bulk

    entries = [VideoEntry(str(local_inputs[n]), n) for n in ("SNMOT-001", "SNMOT-002")]
    report = track_bulk(entries, str(tmp_path), from_dict(PipelineConfig, ORACLE), None,
                        bulk_config(max_task_retries=1), poisoned_actor("SNMOT-002"))
    assert report.counts == {"total": 2, "done": 1, "skipped": 0, "failed": 1}
    assert report.failures[0]["error"].startswith("WorkerDied: no result came back from each of 2 attempts")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "SNMOT-001.summary.json", "SNMOT-001.tracks.parquet", "SNMOT-001.txt", "SNMOT-002.json", "_report.json"]


@pytest.mark.slow
def test_job_entrypoint_on_local_folders(ray_session: dict, local_inputs: dict[str, Path], references: Path,
                                         tmp_path: Path, capsys: pytest.CaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    job = _load_job()
    monkeypatch.chdir(tmp_path)  # relative paths are the driver's: Ray's actors work elsewhere
    model = os.path.relpath(local_inputs["model"], tmp_path)
    argv = ["--input", str(local_inputs["SNMOT-001"].parent), "--out", "out", "--detector", "oracle",
            "--model", model, "--device", "cpu", "--actors", "2", "--cpus-per-actor", "0.5",
            "--no-progress", "--fail-on-error"]
    assert job.main(argv) == 0  # SNMOT-003 (a third generated folder) is tracked too
    assert "3 done, 0 skipped, 0 failed of 3 inputs" in capsys.readouterr().out
    for name in ("SNMOT-001", "SNMOT-002"):
        assert_same_as_local(Storage(str(tmp_path / "out")), references, name)
    assert job.main(argv) == 0 and "0 done, 3 skipped, 0 failed of 3 inputs" in capsys.readouterr().out
    cfg = ModelConfig(image_size=(64, 32), embed_dim=32, team_dim=8)  # the same network, other weights
    roles = ("player", "goalkeeper", "referee", "other")
    save_model(tmp_path / "other.pt", PRTReID.from_config(cfg, num_roles=len(roles)),
               model_meta(cfg, len(roles), 0, roles))
    assert job.main([*argv[:7], "other.pt", *argv[8:]]) == 2  # old results are neither kept nor overwritten
    assert "track: error: " in (err := capsys.readouterr().err) and "3 result(s) were made with another model" in err
    (tmp_path / "lost.txt").write_text(f"{tmp_path}/lost.mp4\n")
    assert job.main(["--manifest", "lost.txt", "--out", "lost", "--no-progress"]) == 1  # nothing came out
    assert "0 done, 0 skipped, 1 failed of 1 inputs" in capsys.readouterr().out
    assert job.main(["--manifest", "lost.txt", "--out", "lost", "--no-progress", "--no-retry-failed"]) == 1
    assert "0 done, 0 skipped, 1 failed of 1 inputs" in capsys.readouterr().out  # held back, still a failure


def test_job_reports_a_malformed_manifest_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = tmp_path / "season.txt"
    manifest.write_text(f"{tmp_path}/a.mp4\n{tmp_path}/my video.mp4\n")
    assert _load_job().main(["--manifest", str(manifest), "--out", str(tmp_path / "out")]) == 2
    err = own_lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith(f"track: error: {manifest}:2: "), err


def test_rayjob_manifest_runs_the_track_job() -> None:
    import yaml

    root = Path(__file__).resolve().parents[1]
    job = yaml.safe_load((root / "cluster/kuberay/rayjob-track.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    cluster = root / "cluster/kuberay/raycluster.yaml"
    if cluster.exists():
        name = yaml.safe_load(cluster.read_text())["metadata"]["name"]
        assert job["spec"]["clusterSelector"]["ray.io/cluster"] == name
    words = job["spec"]["entrypoint"].split()
    assert words[:2] == ["python", "/home/ray/prtreid/jobs/track.py"]
    args = _load_job().parse_args(words[2:])
    assert args.out.startswith("s3://") and args.manifest.startswith("s3://") and args.gpus_per_actor > 0
    assert isinstance(yaml.safe_load(job["spec"]["runtimeEnvYAML"]), dict)


def _load_job() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "jobs" / "track.py"
    spec = importlib.util.spec_from_file_location("jobs_track", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
