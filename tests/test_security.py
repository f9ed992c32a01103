"""Security review: names that would leave their folder, credentials echoed back, shared temporary folders."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

import pytest

from prtreid.errors import ConfigError, FormatError

SECRET = "wJalrXUtnFEMI/K7MDENG"


# --- run and study names become folders ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../escape", "a/../../b", "/abs/run", "..", ""])
def test_train_run_name_with_a_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    from prtreid.distributed import train
    from prtreid.train.config import ExperimentConfig

    def reached_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run started: Ray Train would keep it in STORAGE/" + name)

    monkeypatch.setattr(train, "TorchTrainer", reached_ray)
    with pytest.raises(ConfigError, match="run name"):
        train.train_distributed(ExperimentConfig(), str(tmp_path / "data"), str(tmp_path / "runs"), name)


@pytest.mark.parametrize("name", ["../../escape", "x/y", "..", "x\\y", "x\ny", "x\x00y", "  "])
def test_sweep_name_with_a_path_is_refused(name: str) -> None:
    from prtreid.distributed.tune import SweepConfig

    with pytest.raises(ConfigError, match="sweep.name"):
        SweepConfig(name=name)


# --- credentials -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [f"postgresql://user@127.0.0.1:9/optuna?password={SECRET}",
                                 f"mysql+pymysql://user@127.0.0.1:9/optuna?passwd={SECRET}",
                                 f"postgresql://user@127.0.0.1:9/optuna?sslpassword={SECRET}"])
def test_study_storage_with_a_password_parameter_is_refused_without_echo(url: str, tmp_path: Path) -> None:
    from prtreid.distributed import tune

    sweep = tune.SweepConfig(name="x", num_samples=1, study_storage=url)
    with pytest.raises(ConfigError, match="holds a password") as err:  # before any database or Ray is reached
        tune._run_sweep(None, None, None, str(tmp_path / "out"), sweep, False, None, {}, max_t=1)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("url", ["not a url", f"postgresql//user:{SECRET}@127.0.0.1:9/optuna"])
def test_study_storage_that_is_not_a_database_url_is_a_clear_error(url: str, tmp_path: Path) -> None:
    from prtreid.distributed import tune

    sweep = tune.SweepConfig(name="x", num_samples=1, study_storage=url)
    with pytest.raises(ConfigError, match="not a database URL") as err:
        tune._run_sweep(None, None, None, str(tmp_path / "out"), sweep, False, None, {}, max_t=1)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("uri", [f"s3://AKIAEXAMPLE:{SECRET}@bucket/out", f"https://user:{SECRET}@host/out"])
def test_storage_uri_with_credentials_is_refused_without_echo(uri: str) -> None:
    from prtreid.storage import Storage

    with pytest.raises(ConfigError) as err:
        Storage(uri)
    assert SECRET not in str(err.value) and "***@" in str(err.value)


def test_manifest_uri_with_credentials_is_not_echoed(tmp_path: Path) -> None:
    from prtreid.distributed.manifest import read_manifest

    manifest = tmp_path / "inputs.txt"
    manifest.write_text(f"https://user:{SECRET}@videos.example/match.mp4\n")
    with pytest.raises(FormatError) as err:
        read_manifest(str(manifest))
    assert SECRET not in str(err.value) and str(manifest) in str(err.value)


# --- sequence layouts that read outside the sequence folder -------------------------------------------------

def _seqinfo(folder: Path, **keys: str) -> Path:
    body = {"name": "SNMOT-001", "imDir": "img1", "frameRate": "25", "seqLength": "1", "imWidth": "8",
            "imHeight": "8", "imExt": ".jpg"} | keys
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "seqinfo.ini"
    path.write_text("[Sequence]\n" + "".join(f"{k}={v}\n" for k, v in body.items()))
    return path


@pytest.mark.parametrize("key,value", [("imDir", "../outside"), ("imDir", "/etc"), ("imDir", "img1/../../x"),
                                       ("imExt", ".jpg/../../../outside/000001.jpg"), ("imExt", ".")])
def test_seqinfo_image_folder_outside_the_sequence_is_refused(tmp_path: Path, key: str, value: str) -> None:
    from prtreid.data.frames import open_frames

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "000001.jpg").write_bytes(b"another user's picture")
    path = _seqinfo(tmp_path / "seqs" / "SNMOT-001", **{key: value})
    with pytest.raises(FormatError, match=key) as err:
        open_frames(path.parent)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("key,value", [("im_dir", "../../outside"), ("im_dir", "/etc"), ("im_ext", "/../x.jpg")])
def test_gamestate_image_folder_outside_the_sequence_is_refused(tmp_path: Path, key: str, value: str) -> None:
    from prtreid.data.gamestate import read_gamestate

    doc = {"info": {"name": "SNGS-001", key: value}, "annotations": [],
           "images": [{"image_id": "1", "file_name": "000001.jpg", "width": 8, "height": 8}]}
    path = tmp_path / "SNGS-001" / "Labels-GameState.json"
    path.parent.mkdir()
    path.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=f"info.{key}") as err:
        read_gamestate(path)
    assert str(path) in str(err.value)


# --- S3 keys of a staged sequence ------------------------------------------------------------------------------

def test_staged_prefix_with_a_dotdot_key_writes_nothing_outside(s3_bucket: str, tmp_path: Path) -> None:
    import boto3

    from prtreid.distributed.staging import staged

    bucket = s3_bucket[len("s3://"):]
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="seqs/SEQ/seqinfo.ini", Body=b"[Sequence]\n")
    s3.put_object(Bucket=bucket, Key="seqs/planted/evil.txt", Body=b"planted")
    s3.put_object(Bucket=bucket, Key="seqs/SEQ/img1/../../planted/evil.txt", Body=b"planted")
    root = tmp_path / "staging"
    with pytest.raises(FormatError, match="planted/evil.txt"):
        with staged(f"{s3_bucket}/seqs/SEQ", root):
            pass
    assert not [p for p in root.rglob("*") if p.name == "evil.txt"]


# --- shared temporary folders ----------------------------------------------------------------------------------

@pytest.fixture
def shared_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /tmp: the system temporary folder of this test."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    monkeypatch.delenv("PRTREID_STAGING_DIR", raising=False)
    return shared


def test_crop_cache_lock_planted_in_shared_tmp_is_not_followed(shared_tmp: Path, tmp_path: Path) -> None:
    from prtreid.data.crops import CropConfig
    from prtreid.distributed.train import local_store

    victim = tmp_path / "home" / ".bashrc"
    victim.parent.mkdir()
    victim.write_text("precious\n")
    data = tmp_path / "sequences"
    data.mkdir()
    crops = CropConfig()
    key = hashlib.sha1(json.dumps([str(data.resolve()), dataclasses.asdict(crops)], sort_keys=True,
                                  default=str).encode()).hexdigest()[:16]
    planted = shared_tmp / "prtreid-crops"  # what another local user made first, world-writable
    planted.mkdir(mode=0o777)
    os.chmod(planted, 0o777)
    (planted / f"{key}.lock").symlink_to(victim)
    with pytest.raises(Exception):  # noqa: B017 - no sequence to cut: only the victim file matters here
        local_store(data, crops)
    assert victim.read_text() == "precious\n"


def test_local_copy_of_an_s3_sweeps_study_is_kept_in_a_private_folder(shared_tmp: Path, s3_bucket: str) -> None:
    import stat

    from prtreid.distributed.study_file import study_file
    from prtreid.storage import Storage

    local = study_file(Storage(f"{s3_bucket}/sweeps/x"), "x", None)
    private = shared_tmp / f"prtreid-sweeps-{os.getuid()}"
    assert local.parent.parent == private and stat.S_IMODE(private.stat().st_mode) == 0o700


@pytest.mark.parametrize("kind", ["world-writable", "link"])
def test_private_temp_folder_made_first_by_someone_else_is_refused(shared_tmp: Path, tmp_path: Path,
                                                                   kind: str) -> None:
    from prtreid.scratch import staging_root

    planted = shared_tmp / f"prtreid-staging-{os.getuid()}"
    if kind == "link":
        (tmp_path / "elsewhere").mkdir()
        planted.symlink_to(tmp_path / "elsewhere")
    else:
        planted.mkdir()
        os.chmod(planted, 0o777)
    with pytest.raises(ConfigError, match="not a private folder"):
        staging_root()
