"""Bulk reruns and early driver checks: which results a rerun keeps, refuses or retries; bad models,
outputs and settings refused before any work. No Ray except the GPU check."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from prtreid.distributed.manifest import VideoEntry, check_name, load_entries, parse_csv_manifest, resolve_uri
from prtreid.distributed.report import VideoRecord
from prtreid.distributed.resume import plan, run_key
from prtreid.errors import ConfigError, FormatError
from prtreid.model.prtreid import ModelConfig, PRTReID
from prtreid.pipeline.video import PipelineConfig
from prtreid.storage import Storage
from prtreid.train.checkpoint import load_model, model_meta, save_model

ROLES = ("player", "goalkeeper", "referee", "other")


def tiny_model(path: Path, seed: int) -> Path:
    """A small untrained PRTReID model file; ``seed`` sets its weights."""
    torch.manual_seed(seed)
    cfg = ModelConfig(image_size=(64, 32), embed_dim=32, team_dim=8)
    save_model(path, PRTReID.from_config(cfg, num_roles=len(ROLES)), model_meta(cfg, len(ROLES), 0, ROLES))
    return path


def finished(out: Storage, name: str, source: str, key: str) -> None:
    """A complete result as an actor writes it (the summary last)."""
    out.write_text(f"{name}.txt", "")
    out.write_text(f"{name}.summary.json", json.dumps({"name": name, "source": source, "run_key": key}))


def test_plan_keeps_results_of_this_run_and_retries_or_holds_failures(tmp_path: Path) -> None:
    out = Storage(str(tmp_path))
    finished(out, "a", "/in/a.mp4", "k1")
    out.write_text("b.txt", "partial: no completion marker")
    out.write_text("failures/c.json", "{}")
    entries = [VideoEntry(f"/in/{n}.mp4", n) for n in "abcd"]
    work = plan(entries, out, "k1")
    assert [e.name for e in work.todo] == ["b", "c", "d"] and [e.name for e in work.done] == ["a"]
    assert work.not_retried == []
    work = plan(entries, out, "k1", retry_failed=False)
    assert [e.name for e in work.todo] == ["b", "d"] and [e.name for e in work.not_retried] == ["c"]


def test_plan_refuses_results_of_another_input_or_another_run(tmp_path: Path) -> None:
    out = Storage(str(tmp_path))
    finished(out, "1_720p", "/archive/2023/match-1/1_720p.mkv", "k1")
    with pytest.raises(ConfigError, match=r"1 result name\(s\) already hold results of another input .*"
                                          r"'/archive/2023/match-1/1_720p.mkv', not '/archive/2024/m/1_720p.mkv'"):
        plan([VideoEntry("/archive/2024/m/1_720p.mkv", "1_720p")], out, "k1")
    with pytest.raises(ConfigError, match=r"1 result\(s\) were made with another model.*\(1_720p\)"):
        plan([VideoEntry("/archive/2023/match-1/1_720p.mkv", "1_720p")], out, "k2")
    out.write_text("old.summary.json", "{not json")  # unreadable: not taken for this run's
    with pytest.raises(ConfigError, match="another input"):
        plan([VideoEntry("/in/old.mp4", "old")], out, "k1")


def test_plan_keeps_results_of_the_same_input_written_otherwise_or_before_run_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    out = Storage(str(tmp_path / "out"))
    monkeypatch.chdir(tmp_path)
    finished(out, "a", "data/a/", "k1")  # as `prtreid track` recorded a relative input, with a slash
    out.write_text("b.summary.json", json.dumps({"name": "b", "source": str(tmp_path / "data/b")}))  # no run key
    entries = [VideoEntry(str(tmp_path / "data" / n), n) for n in "ab"]
    assert [e.name for e in plan(entries, out, "k1").done] == ["a", "b"]
    assert "1 result(s) predate run keys (b...): kept without checking" in caplog.text


def test_run_key_follows_model_content_and_settings_not_device_or_location(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "a.pt", seed=0)
    copy = tmp_path / "elsewhere" / "a.pt"
    copy.parent.mkdir()
    shutil.copy(model, copy)
    base = PipelineConfig(device="cpu")
    key = run_key(base, str(model))
    assert run_key(base, str(copy)) == key
    assert run_key(PipelineConfig(device="cuda", batch_frames=32), str(model)) == key
    assert run_key(base, str(tiny_model(tmp_path / "b.pt", seed=1))) != key
    assert run_key(PipelineConfig(device="cpu", interpolate_gap=0), str(model)) != key
    assert run_key(base, None) != key


def test_input_lists_that_cannot_key_results_are_refused(tmp_path: Path) -> None:
    assert "over 200 bytes" in check_name("L" * 201)
    assert check_name("season/" + "L" * 200) is None
    with pytest.raises(ConfigError, match="two slashes"):
        resolve_uri("s3:/season/x", None)
    with pytest.raises(FormatError, match="m.csv:1: column names repeat"):
        parse_csv_manifest("uri,uri\na.mp4,b.mp4\n", "m.csv")
    [entry] = parse_csv_manifest("uri,name,,\n/in/a.mp4,first,,\n", "m.csv")  # a spreadsheet's blank cells
    assert (entry.uri, entry.name, entry.meta) == ("/in/a.mp4", "first", {})
    (tmp_path / "m.txt").write_text("# nothing yet\n")
    with pytest.raises(FormatError, match="lists no input"):
        load_entries(manifest=str(tmp_path / "m.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="no video file or sequence folder below it"):
        load_entries(prefix=str(tmp_path / "empty"))


def test_unwritable_output_is_refused_at_once_without_retries(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "afile").write_text("")
    caplog.set_level(logging.WARNING)
    with pytest.raises(ConfigError, match=r"afile/out: cannot write there \(NotADirectoryError"):
        Storage(str(tmp_path / "afile" / "out")).check_writable()
    assert "retry" not in caplog.text
    Storage(str(tmp_path / "out")).check_writable()
    assert list((tmp_path / "out").iterdir()) == []  # the probe is gone


def test_a_failure_record_that_cannot_be_written_is_reported_not_raised(tmp_path: Path) -> None:
    from prtreid.distributed.track import write_failure

    (tmp_path / "failures").write_text("a file where the records' folder goes")
    record = write_failure(Storage(str(tmp_path)), VideoRecord("x", "/in/x.mp4", "failed", error="FrameError: bad"))
    assert record.error.startswith("FrameError: bad (and its failure record: ") and record.status == "failed"


def test_models_that_cannot_load_are_refused_on_the_driver(tmp_path: Path) -> None:
    from prtreid.distributed.track import check_model

    with pytest.raises(FileNotFoundError, match="no such model file"):
        check_model(str(tmp_path / "model.pt"))
    (tmp_path / "junk.pt").write_text("not a model\n")
    with pytest.raises(FormatError, match=r"junk.pt: not a prtreid model file or checkpoint \("):
        check_model(str(tmp_path / "junk.pt"))
    torch.save({"meta": {"model_config": {}}}, tmp_path / "partial.pt")
    with pytest.raises(FormatError, match="partial.pt: not a prtreid model file or checkpoint$"):
        load_model(tmp_path / "partial.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt: no such detector weights file"):
        check_model(None, f"yolo:{tmp_path}/nope.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "junk.pt").read_bytes() * 3)  # say, an upload cut short
    with pytest.raises(FormatError, match=r"cut.pt: not YOLO weights ultralytics can load \("):
        check_model(None, f"yolo:{tmp_path}/cut.pt")
    check_model(str(tiny_model(tmp_path / "ok.pt", seed=0)), "yolo:yolov8n.yaml")


def test_detector_weights_under_the_home_folder_are_checked_where_the_detector_reads_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ultralytics import YOLO

    from prtreid.distributed.track import check_model

    monkeypatch.setenv("HOME", str(tmp_path))
    YOLO("yolov8n.yaml").save(tmp_path / "best.pt")  # untrained network, saved as weights
    check_model(None, "yolo:~/best.pt")
    assert run_key(PipelineConfig(detector="yolo:~/best.pt"), None) == run_key(
        PipelineConfig(detector=f"yolo:{tmp_path}/best.pt"), None)



def test_released_detector_weights_are_left_to_the_detector_to_download(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from prtreid.distributed import track

    made: list[str] = []
    monkeypatch.chdir(tmp_path)  # no yolov8n.pt on disk: ultralytics would download it by name
    monkeypatch.delenv("YOLO_OFFLINE", raising=False)
    monkeypatch.setattr(track, "make_detector", lambda spec, *args: made.append(spec))
    track.check_model(None, "yolo:yolov8n.pt")  # not refused as a missing file
    assert made == ["yolo:yolov8n.pt"]

def test_a_request_must_fit_one_node_not_the_cluster_sum() -> None:
    from prtreid.distributed.runtime import most_per_node

    gpu_nodes = [{"CPU": 8.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 1.0}]
    assert most_per_node({"GPU": 2.0}, gpu_nodes) == {"GPU": 1.0}  # 2 GPUs in all, never on one node
    assert most_per_node({"CPU": 4.0, "GPU": 1.0}, gpu_nodes) is None
    split = [{"CPU": 1.0, "GPU": 1.0}, {"CPU": 16.0}]  # each amount exists, never together
    assert most_per_node({"CPU": 4.0, "GPU": 1.0}, split) == {"CPU": 16.0, "GPU": 1.0}
    assert most_per_node({"CPU": 1.0}, []) == {"CPU": 0.0}


def test_resource_requests_a_private_ray_cannot_place_are_refused(ray_session: dict,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    from prtreid.distributed.runtime import check_fits
    from prtreid.distributed.track import BulkConfig

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match=r"an actor asks for 1 CPU, 0.5 GPU on one node; no Ray node has that "
                                          r"\(the most one node has: 2 CPU, 0 GPU\): a local Ray"):
        check_fits({"CPU": 1, "GPU": 0.5}, True, "an actor")
    with pytest.raises(ConfigError, match=r"asks for 3 CPU on one node; .*\(the most one node has: 2 CPU\)"):
        check_fits({"cpu": 3}, True, "a trial")
    check_fits({"CPU": 1, "GPU": 0.5}, False, "an actor")
    assert "it waits until a node that has them joins" in caplog.text
    check_fits({"CPU": 2, "GPU": 0}, True, "an actor")
    with pytest.raises(ConfigError, match="actors must be >= 1"):
        BulkConfig(actors=0)
