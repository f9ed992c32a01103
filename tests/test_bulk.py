"""Bulk tracking on Ray Data: manifests, S3 in and out, equality with local runs, reruns, a killed actor.

The Ray tests use the session's local Ray and moto_server. Every output bucket is versioned, so
the number of versions of a key counts how many times it was written.
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
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from prtreid.config import from_dict
from prtreid.data.frames import open_frames, write_video
from prtreid.data.synth import SynthConfig, generate_dataset
from prtreid.distributed.manifest import (VideoEntry, list_inputs, parse_csv_manifest, parse_parquet_manifest,
                                          parse_text_manifest)
from prtreid.errors import FormatError
from prtreid.model.prtreid import ModelConfig, PRTReID
from prtreid.pipeline.video import PipelineConfig, VideoPipeline, write_result
from prtreid.storage import Storage
from prtreid.train.checkpoint import model_meta, save_model

ORACLE = {"detector": "oracle", "device": "cpu"}
YOLO = {"detector": "yolo:yolov8n.yaml", "device": "cpu", "cmc": "none",  # untrained: plumbing, tiny scores
        "detection": {"imgsz": 160, "conf": 0.0, "max_det": 15, "device": "cpu"},
        "tracker": {"min_conf": 0.0, "birth_conf": 0.0}}
GOOD = {"SNMOT-001": "oracle", "SNMOT-002": "oracle", "clip-a": "yolo", "clip-b": "yolo"}


# ---------------------------------------------------------------- manifests (no Ray)

def test_text_manifest_resolves_paths_and_skips_comments() -> None:
    text = "# season 2024\n\nclips/a.mp4  # first\ns3://arch/x/SNMOT-007/\n/abs/b.MKV\nfile:///abs/c.mp4\n"
    entries = parse_text_manifest(text, "m.txt", base="/data")
    assert [(e.uri, e.name) for e in entries] == [
        ("/data/clips/a.mp4", "a"), ("s3://arch/x/SNMOT-007", "SNMOT-007"), ("/abs/b.MKV", "b"), ("/abs/c.mp4", "c")]


@pytest.mark.parametrize("text, line, words", [
    ("a.mp4\nb.mp4 c.mp4\n", 2, "one URI per line"),
    ("a.mp4\n# x\nhttp://host/v.mp4\n", 3, "unsupported URI scheme"),
    ("x/a.mp4\ny/a.mp4\n", 2, "already used at line 1"),
    ("a.mp4\n/\n", 2, "empty name"),
])
def test_text_manifest_errors_name_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(FormatError) as err:
        parse_text_manifest(text, "season.txt", base="/data")
    assert err.value.path == "season.txt" and err.value.where == line and words in str(err.value)


def test_csv_manifest_carries_metadata_and_checks_rows() -> None:
    text = "uri,name,match_id,season\ns3://b/v/1_720p.mkv,chelsea-burnley-1,17,2015\ns3://b/v/2.mkv,,18,\n"
    entries = parse_csv_manifest(text, "m.csv")
    assert entries == [VideoEntry("s3://b/v/1_720p.mkv", "chelsea-burnley-1", {"match_id": "17", "season": "2015"}),
                       VideoEntry("s3://b/v/2.mkv", "2", {"match_id": "18"})]
    assert VideoEntry.from_row(entries[0].to_row()) == entries[0]
    with pytest.raises(FormatError, match=r"m.csv:3: expected 2 fields"):
        parse_csv_manifest("uri,season\na.mp4,1\nb.mp4,2,3\n", "m.csv", base="/d")
    with pytest.raises(FormatError, match=r"m.csv:1: a CSV manifest needs a 'uri' column"):
        parse_csv_manifest("path\na.mp4\n", "m.csv")


def test_parquet_manifest_keeps_types_and_names_rows() -> None:
    buf = io.BytesIO()
    pq.write_table(pa.table({"uri": ["s3://b/a.mp4", "s3://b/c.mp4"], "match_id": [7, None]}), buf)
    entries = parse_parquet_manifest(buf.getvalue(), "m.parquet")
    assert entries == [VideoEntry("s3://b/a.mp4", "a", {"match_id": 7}), VideoEntry("s3://b/c.mp4", "c", {})]
    buf = io.BytesIO()
    pq.write_table(pa.table({"uri": ["s3://b/a.mp4", None]}), buf)
    with pytest.raises(FormatError, match=r"m.parquet \[row 2\]: 'uri' must be a string"):
        parse_parquet_manifest(buf.getvalue(), "m.parquet")


def test_listing_finds_videos_and_sequence_folders(tmp_path: Path) -> None:
    for rel in ("epl/2015/g1/1_720p.mkv", "epl/2015/g2/1_720p.mkv", "epl/notes.txt",
                "tracking/SNMOT-001/seqinfo.ini", "tracking/SNMOT-001/img1/x.mp4"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    entries = list_inputs(str(tmp_path))
    assert [e.name for e in entries] == ["epl/2015/g1/1_720p", "epl/2015/g2/1_720p", "tracking/SNMOT-001"]
    assert entries[2].uri == str(tmp_path / "tracking/SNMOT-001")
    assert [e.name for e in list_inputs(str(tmp_path / "tracking/SNMOT-001"))] == ["SNMOT-001"]
    with pytest.raises(FileNotFoundError):
        list_inputs(str(tmp_path / "nothing"))


# ---------------------------------------------------------------- driver-side pieces (no Ray)

def test_plan_skips_complete_results_and_optionally_failed_ones(tmp_path: Path) -> None:
    from prtreid.distributed.track import plan

    out = Storage(str(tmp_path))
    out.write_text("a.summary.json", "{}")
    out.write_text("b.txt", "partial: no completion marker")
    out.write_text("failures/c.json", "{}")
    entries = [VideoEntry(f"/in/{n}.mp4", n) for n in "abcd"]
    todo, skipped = plan(entries, out)
    assert [e.name for e in todo] == ["b", "c", "d"] and [e.name for e in skipped] == ["a"]
    todo, skipped = plan(entries, out, retry_failed=False)
    assert [e.name for e in todo] == ["b", "d"] and [e.name for e in skipped] == ["a", "c"]


def test_report_sums_stages_over_videos() -> None:
    from prtreid.distributed.report import BulkReport, VideoRecord

    records = [VideoRecord("a", "u", "done", frames=100, seconds_detect=2.0, seconds_embed=3.0, seconds_total=6.0),
               VideoRecord("b", "u", "done", frames=50, seconds_detect=1.0, seconds_embed=2.0, seconds_total=4.0),
               VideoRecord("c", "u", "failed", error="FrameError: x"), VideoRecord("d", "u", "skipped")]
    report = BulkReport.build(records, out="o", started=0.0, wall_seconds=5.0)
    assert report.counts == {"total": 4, "done": 2, "skipped": 1, "failed": 1}
    assert report.frames == 150 and report.fps == 30.0
    assert report.stage_seconds["detect"] == 3.0 and report.stage_fps["detect"] == 50.0
    assert report.stage_fps["embed"] == 30.0 and report.stage_fps["decode"] is None
    assert report.failures == [{"name": "c", "uri": "u", "status": "failed", "error": "FrameError: x"}]
    assert "2 done, 1 skipped, 1 failed of 4 inputs" in report.format()


def test_driver_checks_fail_early_and_clearly(tmp_path: Path) -> None:
    from prtreid.distributed.track import check_model

    with pytest.raises(FileNotFoundError, match="no such model file"):
        check_model(str(tmp_path / "model.pt"))


def test_yolo_weights_load_from_s3_and_a_missing_object_fails_early(s3_server: str, tmp_path: Path) -> None:
    from ultralytics import YOLO

    from prtreid.distributed.track import TrackActor, check_model

    YOLO("yolov8n.yaml").save(tmp_path / "person.pt")  # untrained network, saved as weights
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket="weights")
    Storage("s3://weights").write_bytes("det/person.pt", (tmp_path / "person.pt").read_bytes())
    check_model(None, "yolo:s3://weights/det/person.pt")
    with pytest.raises(FileNotFoundError, match="no such detector weights file"):
        check_model(None, "yolo:s3://weights/det/missing.pt")
    actor = TrackActor({"detector": "yolo:s3://weights/det/person.pt", "device": "cpu"}, None, str(tmp_path / "out"))
    assert actor.pipeline.cfg.detector.endswith("person.pt") and not actor.pipeline.cfg.detector.startswith("yolo:s3")
    assert not Path(actor.pipeline.cfg.detector.removeprefix("yolo:")).exists()  # the staged copy is gone


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
    assert report.failures[0]["error"].startswith("WorkerDied: the worker process died on each of 2 attempts")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "SNMOT-001.summary.json", "SNMOT-001.tracks.parquet", "SNMOT-001.txt", "SNMOT-002.json", "_report.json"]


@pytest.mark.slow
def test_job_entrypoint_on_local_folders(ray_session: dict, local_inputs: dict[str, Path], references: Path,
                                         tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    job = _load_job()
    argv = ["--input", str(local_inputs["SNMOT-001"].parent), "--out", str(tmp_path / "out"), "--detector", "oracle",
            "--model", str(local_inputs["model"]), "--device", "cpu", "--actors", "2", "--cpus-per-actor", "0.5",
            "--no-progress", "--fail-on-error"]
    assert job.main(argv) == 0  # SNMOT-003 (a third generated folder) is tracked too
    assert "3 done, 0 skipped, 0 failed of 3 inputs" in capsys.readouterr().out
    for name in ("SNMOT-001", "SNMOT-002"):
        assert_same_as_local(Storage(str(tmp_path / "out")), references, name)


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
