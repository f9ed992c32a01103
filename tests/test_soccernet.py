"""SoccerNet-Tracking and Game State readers/writers: round trips, every label form, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prtreid.data.crops import CropConfig, build_crops
from prtreid.data.gamestate import read_gamestate
from prtreid.data.soccernet import (
    find_sequences,
    format_mot,
    format_track_label,
    load_sequence,
    parse_track_label,
    read_gameinfo,
    read_mot,
    read_seqinfo,
    read_sequence,
    write_sequence,
)
from prtreid.data.types import MotTable, SeqInfo, Sequence, TrackInfo
from prtreid.errors import FormatError

GAMEINFO = """[Sequence]
name=SNMOT-060
gameID=1
actionPosition=74917
actionClass=Kick-off
visibility=visible
clipStart=74417
clipStop=104417
num_tracklets=9
trackletID_1= player team left;10
trackletID_2= goalkeeper team right;X
trackletID_3= goalkeepers team left;y
trackletID_4= referee;main
trackletID_5= referee;side top
trackletID_6= referee;side bottom
trackletID_7= ball;1
trackletID_8= other;coach
trackletID_9= player team right;7
"""

SEQINFO = """[Sequence]
name=SNMOT-060
imDir=img1
frameRate=25
seqLength=750
imWidth=1920
imHeight=1080
imExt=.jpg
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("player team left;10", ("player", "left", "10", None)),
        ("goalkeeper team right;X", ("goalkeeper", "right", "X", None)),
        ("goalkeepers team left;y", ("goalkeeper", "left", "y", None)),
        ("referee;main", ("referee", None, None, "main")),
        ("referee;side top", ("referee", None, None, "side top")),
        ("referee;side bottom", ("referee", None, None, "side bottom")),
        ("ball;1", ("ball", None, None, "1")),
        ("other;coach", ("other", None, None, "coach")),
        (" player team right;", ("player", "right", None, None)),
    ],
)
def test_every_label_form(label: str, expected: tuple) -> None:
    assert parse_track_label(label) == expected


@pytest.mark.parametrize("label", ["coach;1", "player team middle;3", "player team;3", "player left;3", ";1"])
def test_bad_labels_are_refused(label: str) -> None:
    with pytest.raises(ValueError):
        parse_track_label(label)


def test_gameinfo_reads_every_track_and_keeps_game_keys(tmp_path: Path) -> None:
    tracks, game = read_gameinfo(_write(tmp_path / "gameinfo.ini", GAMEINFO))
    assert len(tracks) == 9
    assert tracks[1] == TrackInfo(1, "player", "left", "10")
    assert tracks[1].jersey_number == 10
    assert tracks[2].jersey_number is None
    assert tracks[3].role == "goalkeeper" and tracks[3].team == "left"
    assert tracks[5].detail == "side top"
    assert tracks[7].role == "ball"
    assert tracks[8].role == "other" and tracks[8].team is None
    assert game["gameID"] == "1" and game["actionClass"] == "Kick-off"


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (GAMEINFO.replace("ball;1", "balloon;1"), 16, "unknown role"),
        (GAMEINFO.replace("trackletID_4=", "trackletID_x="), 13, "not an integer"),
        (GAMEINFO.replace("clipStop=104417", "clipStop 104417"), 8, "key=value"),
        (GAMEINFO + "trackletID_1= player team left;4\n", 19, "duplicate"),
    ],
)
def test_malformed_gameinfo_names_file_and_line(tmp_path: Path, text: str, line: int, needle: str) -> None:
    path = _write(tmp_path / "gameinfo.ini", text)
    with pytest.raises(FormatError) as err:
        read_gameinfo(path)
    assert f"{path}:{line}:" in str(err.value)
    assert needle in str(err.value)
    assert err.value.where == line


def test_seqinfo_errors_name_the_key_or_line(tmp_path: Path) -> None:
    assert read_seqinfo(_write(tmp_path / "a.ini", SEQINFO)).im_width == 1920
    with pytest.raises(FormatError, match=r"b\.ini:6: imWidth='wide'"):
        read_seqinfo(_write(tmp_path / "b.ini", SEQINFO.replace("1920", "wide")))
    with pytest.raises(FormatError, match=r"c\.ini \[seqLength\]: missing"):
        read_seqinfo(_write(tmp_path / "c.ini", SEQINFO.replace("seqLength=750\n", "")))
    with pytest.raises(FormatError, match="no \\[Sequence\\] section"):
        read_seqinfo(_write(tmp_path / "d.ini", ""))
    with pytest.raises(FormatError, match=r"e\.ini:6: imWidth='0' must be a positive number"):
        read_seqinfo(_write(tmp_path / "e.ini", SEQINFO.replace("1920", "0")))
    with pytest.raises(FormatError, match=r"f\.ini:\d+: frameRate='nan'"):
        read_seqinfo(_write(tmp_path / "f.ini", SEQINFO.replace("frameRate=25", "frameRate=nan")))
    for name in ("../../escaped", "a/b", "..", "  "):  # results and crops are files named after it
        with pytest.raises(FormatError, match=r"g\.ini:2: sequence name (is empty|.* must be one file or folder)"):
            read_seqinfo(_write(tmp_path / "g.ini", SEQINFO.replace("SNMOT-060", name)))


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ("1,2,3", "at least 6"),
        ("1,2,a,4,5,6,1,-1,-1,-1", "non-numeric"),
        ("0,2,3,4,5,6,1,-1,-1,-1", "positive integer"),
        ("1.5,2,3,4,5,6,1,-1,-1,-1", "positive integer"),
        ("1,2,3,4,-5,6,1,-1,-1,-1", "negative"),
        ("1,2,3,4,5,nan,1,-1,-1,-1", "non-finite"),
    ],
)
def test_malformed_mot_names_file_and_line(tmp_path: Path, row: str, needle: str) -> None:
    path = _write(tmp_path / "gt.txt", "1,1,10,20,30,40,1,-1,-1,-1\n\n" + row + "\n")
    with pytest.raises(FormatError) as err:
        read_mot(path)
    assert f"{path}:3:" in str(err.value) and needle in str(err.value)


def test_mot_accepts_short_rows_and_spaces(tmp_path: Path) -> None:
    table = read_mot(_write(tmp_path / "r.txt", "2, 5, 1.5, 2, 3, 4\n1,3,0,0,10,10,0.25,-1,-1,-1\n"))
    assert table.frame.tolist() == [2, 1] and table.conf.tolist() == [1.0, 0.25]
    assert table.box[0].tolist() == [1.5, 2, 3, 4]


def _sequence() -> Sequence:
    rng = np.random.default_rng(0)
    n = 40
    gt = MotTable(
        frame=np.repeat(np.arange(1, 11), 4),
        track_id=np.tile(np.arange(1, 5), 10),
        box=np.round(rng.uniform(0, 500, (n, 4)), 2),
        conf=np.ones(n),
    )
    det = MotTable(gt.frame.copy(), np.full(n, -1), gt.box + 1.25, np.round(rng.uniform(0.1, 1, n), 2))
    tracks = {
        1: TrackInfo(1, "player", "left", "9"),
        2: TrackInfo(2, "goalkeeper", "right", "X"),
        3: TrackInfo(3, "referee", detail="side top"),
        4: TrackInfo(4, "ball", detail="1"),
    }
    info = SeqInfo("SNMOT-900", seq_length=10, im_width=960, im_height=540)
    return Sequence(info, tracks, gt, det, game={"gameID": "3", "clipStart": "0"})


def test_sequence_round_trip(tmp_path: Path) -> None:
    seq = _sequence()
    write_sequence(seq, tmp_path / "SNMOT-900")
    back = read_sequence(tmp_path / "SNMOT-900")
    assert back.info == seq.info and back.tracks == seq.tracks
    assert back.game["gameID"] == "3" and back.game["num_tracklets"] == "4"
    for a, b in ((back.gt, seq.gt.sorted()), (back.det, seq.det.sorted())):
        np.testing.assert_array_equal(a.frame, b.frame)
        np.testing.assert_allclose(a.box, b.box)
        np.testing.assert_allclose(a.conf, b.conf)
    assert find_sequences(tmp_path) == [tmp_path / "SNMOT-900"]
    assert load_sequence(tmp_path / "SNMOT-900").frame_path(3).name == "000003.jpg"


def test_linked_sequence_folders_are_found_once(tmp_path: Path) -> None:
    write_sequence(_sequence(), tmp_path / "store" / "SNMOT-900")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "SNMOT-900").symlink_to(tmp_path / "store" / "SNMOT-900", target_is_directory=True)
    (linked / "loop").symlink_to(linked, target_is_directory=True)
    assert find_sequences(linked) == [linked / "SNMOT-900"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_sequences(empty) == []
    with pytest.raises(FileNotFoundError, match="no sequence folders"):
        build_crops(empty, tmp_path / "crops", CropConfig())


def test_gt_beyond_sequence_length_is_refused(tmp_path: Path) -> None:
    seq = _sequence()
    seq.info = SeqInfo("SNMOT-900", seq_length=5, im_width=960, im_height=540)
    write_sequence(seq, tmp_path)
    with pytest.raises(FormatError, match="beyond seqLength=5"):
        read_sequence(tmp_path)


def _gamestate_doc() -> dict:
    images = [{"image_id": f"10600000{i:02d}", "file_name": f"{i:06d}.jpg", "width": 1920, "height": 1080}
              for i in range(1, 4)]
    anns = [
        {"id": "p1", "image_id": "1060000001", "supercategory": "pitch", "lines": {}},
        {"id": "c1", "image_id": "1060000001", "supercategory": "camera", "parameters": {}},
    ]
    for i in range(1, 4):
        anns.append({"image_id": f"10600000{i:02d}", "track_id": 1, "supercategory": "object",
                     "attributes": {"role": "player", "team": "left", "jersey": "10" if i > 1 else None},
                     "bbox_image": {"x": 10.0 * i, "y": 20, "x_center": 0, "y_center": 0, "w": 30, "h": 80}})
        anns.append({"image_id": f"10600000{i:02d}", "track_id": 2, "supercategory": "object",
                     "attributes": {"role": "referee", "team": None, "jersey": None},
                     "bbox_image": {"x": 500, "y": 20, "x_center": 0, "y_center": 0, "w": 30, "h": 80}})
    return {"info": {"name": "SNGS-021", "frame_rate": 25, "seq_length": 3, "im_dir": "img1"},
            "images": images, "annotations": anns, "categories": []}


def test_gamestate_reads_into_the_same_objects(tmp_path: Path) -> None:
    path = tmp_path / "SNGS-021" / "Labels-GameState.json"
    _write(path, json.dumps(_gamestate_doc()))
    seq = read_gamestate(path)
    assert seq.info.name == "SNGS-021" and (seq.info.im_width, seq.info.im_height) == (1920, 1080)
    assert seq.tracks[1] == TrackInfo(1, "player", "left", "10")
    assert seq.tracks[2].role == "referee" and seq.tracks[2].team is None
    assert len(seq.gt) == 6 and seq.gt.frame.tolist() == [1, 1, 2, 2, 3, 3]
    assert seq.gt.box[2].tolist() == [20, 20, 30, 80]
    assert find_sequences(tmp_path) == [path.parent]
    assert load_sequence(path.parent).tracks == seq.tracks


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.pop("images"), "[images]: missing key 'images'"),
        (lambda d: d["annotations"][3]["bbox_image"].pop("w"), "[annotations[3].bbox_image]: missing key 'w'"),
        (lambda d: d["annotations"][2]["attributes"].update(role="coach"), "[annotations[2].attributes.role]"),
        (lambda d: d["annotations"][4].update(image_id="nope"), "[annotations[4].image_id]"),
        (lambda d: d["annotations"][4].update(track_id="abc"), "[annotations[4].track_id]: expected a number"),
        (lambda d: d["annotations"][4].update(track_id=3.7), "[annotations[4].track_id]: expected a positive whole"),
        (lambda d: d["annotations"][4].update(attributes=["player"]), "[annotations[4].attributes]: expected an obj"),
        (lambda d: d["images"][1].update(width=None), "[images[1].width]: expected a number, got None"),
        (lambda d: d["images"][0].update(file_name="000000.jpg"), "[images[0].file_name]: expected a positive"),
        (lambda d: d["info"].update(seq_length="n/a"), "[info.seq_length]: expected a number"),
        (lambda d: d["info"].update(frame_rate="25fps"), "[info.frame_rate]: expected a number"),
        (lambda d: d["info"].update(name="../../x"), "[info.name]: sequence name '../../x' must be one file or"),
    ],
)
def test_malformed_gamestate_names_the_key(tmp_path: Path, mutate, needle: str) -> None:
    doc = _gamestate_doc()
    mutate(doc)
    path = _write(tmp_path / "Labels-GameState.json", json.dumps(doc))
    with pytest.raises(FormatError) as err:
        read_gamestate(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "Labels-GameState.json", '{\n  "info": {},\n  "images": [,]\n}')
    with pytest.raises(FormatError, match=r"Labels-GameState\.json:3: invalid JSON"):
        read_gamestate(path)


labels = st.builds(
    TrackInfo,
    track_id=st.integers(1, 10_000),
    role=st.sampled_from(["player", "goalkeeper"]),
    team=st.sampled_from(["left", "right", None]),
    jersey=st.one_of(st.none(), st.from_regex(r"[0-9]{1,2}|[Xxy]", fullmatch=True)),
) | st.builds(
    TrackInfo,
    track_id=st.integers(1, 10_000),
    role=st.sampled_from(["referee", "ball", "other"]),
    detail=st.one_of(st.none(), st.from_regex(r"[a-z0-9]+( [a-z0-9]+)?", fullmatch=True)),
)


@given(labels)
def test_label_format_parse_round_trip(track: TrackInfo) -> None:
    role, team, jersey, detail = parse_track_label(format_track_label(track))
    assert TrackInfo(track.track_id, role, team, jersey, detail) == track


@given(st.text(max_size=40))
def test_label_parser_only_raises_value_error(text: str) -> None:
    try:
        parse_track_label(text)
    except ValueError:
        pass


finite = st.floats(0, 5000, allow_nan=False).map(lambda v: round(v, 2))


@settings(max_examples=50)
@given(st.lists(st.tuples(st.integers(1, 3000), st.integers(-1, 500), finite, finite, finite, finite,
                          st.floats(0, 1).map(lambda v: round(v, 2))), max_size=30))
def test_mot_format_parse_round_trip(tmp_path_factory, rows) -> None:
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    table = MotTable(arr[:, 0].astype(int), arr[:, 1].astype(int), arr[:, 2:6], arr[:, 6])
    path = tmp_path_factory.mktemp("mot") / "x.txt"
    path.write_text(format_mot(table))
    back, want = read_mot(path), table.sorted()
    np.testing.assert_array_equal(back.frame, want.frame)
    np.testing.assert_array_equal(back.track_id, want.track_id)
    np.testing.assert_allclose(back.box, want.box, atol=1e-9)
    np.testing.assert_allclose(back.conf, want.conf, atol=1e-9)


@settings(max_examples=60)
@given(st.text(alphabet=st.sampled_from(list("0123456789,.-e \nab")), max_size=80))
def test_mot_parser_raises_only_format_errors(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "gt.txt"
    path.write_text(text)
    try:
        read_mot(path)
    except FormatError as exc:
        assert str(path) in str(exc)


def test_find_sequences_skips_clips_still_being_written(tmp_path: Path) -> None:
    write_sequence(Sequence(SeqInfo("SNMOT-001", 3, 128, 72)), tmp_path / "SNMOT-001")
    write_sequence(Sequence(SeqInfo("SNMOT-002", 3, 128, 72)), tmp_path / ".SNMOT-002.4242.0123abcd.tmp")
    write_sequence(Sequence(SeqInfo("SNMOT-003", 3, 128, 72)), tmp_path / ".hidden" / "SNMOT-003")
    write_sequence(Sequence(SeqInfo("SNMOT-004", 3, 128, 72)), tmp_path / "SNMOT-004.tmp")  # a name, not hidden
    assert find_sequences(tmp_path) == [tmp_path / ".hidden" / "SNMOT-003", tmp_path / "SNMOT-001",
                                        tmp_path / "SNMOT-004.tmp"]
