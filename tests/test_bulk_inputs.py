"""Bulk tracking inputs and bookkeeping: manifests, listing, planning, reports, early driver checks.

No Ray here; the S3 test uses the session's moto_server.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prtreid.data.synth import SynthConfig, generate_dataset
from prtreid.distributed.manifest import (VideoEntry, list_inputs, parse_csv_manifest, parse_parquet_manifest,
                                          parse_text_manifest, read_manifest)
from prtreid.errors import FormatError
from prtreid.storage import Storage


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


def test_a_manifest_that_is_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "season.txt").write_bytes("a.mp4\n/data/Atl\u00e9tico/1_720p.mkv\n".encode("latin-1"))
    with pytest.raises(FormatError, match="not UTF-8") as err:
        read_manifest(str(tmp_path / "season.txt"))
    assert err.value.path == str(tmp_path / "season.txt") and err.value.where == 2


def test_a_missing_manifest_is_named_with_its_scheme(s3_bucket: str, tmp_path: Path) -> None:
    for uri in (f"{s3_bucket}/manifests/none.txt", str(tmp_path / "none.csv")):
        with pytest.raises(FileNotFoundError, match=f"^{uri}: no such manifest$"):
            read_manifest(uri)


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


def test_listing_keeps_the_suffix_where_two_inputs_would_share_a_name(tmp_path: Path) -> None:
    for rel in ("m/half1.mp4", "m/half1.mkv", "m/half2.mp4", "m/SNMOT-1.mp4", "m/SNMOT-1/seqinfo.ini"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    names = [e.name for e in list_inputs(str(tmp_path))]
    assert names == ["m/SNMOT-1", "m/SNMOT-1.mp4", "m/half1.mkv", "m/half1.mp4", "m/half2"]
    (tmp_path / "m" / "half1.mp4.avi").write_text("x")  # its stem is half1.mp4 again
    with pytest.raises(FormatError, match="result name 'm/half1.mp4' is already used"):
        list_inputs(str(tmp_path))


def test_finished_files_get_the_usual_mode(tmp_path: Path) -> None:
    import os

    from prtreid.storage import atomic_write_text

    atomic_write_text(tmp_path / "a.json", "{}")
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


# ---------------------------------------------------------------- driver-side pieces (no Ray)

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
    [seq] = generate_dataset(tmp_path / "data", SynthConfig(seqs=1, frames=2, width=320, height=180, seed=3))
    record = actor.process(VideoEntry(str(seq), seq.name))
    assert record.status == "done", record.error
    summary = json.loads(Storage(tmp_path / "out").read_bytes(f"{seq.name}.summary.json"))
    assert summary["config"]["detector"] == "yolo:s3://weights/det/person.pt"  # the weights, not their copy
