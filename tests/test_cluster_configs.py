"""The cluster manifests parse, carry the keys their tools require, and run a valid job command."""

from __future__ import annotations

import importlib.util
import json
import runpy
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ray_fixtures import own_lines

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((CLUSTER / name).read_text())
    assert isinstance(data, dict), name
    return data


def job_parser():
    """The argument parser of jobs/train.py, loaded without running the job."""
    return runpy.run_path(str(ROOT / "jobs" / "train.py"), run_name="jobs_train")["build_parser"]()


def check_job_command(command: str) -> None:
    """``python .../jobs/train.py ARGS``: ARGS parse with the job's own parser, files exist."""
    words = shlex.split(command)
    assert words[0] == "python" and words[1].endswith("jobs/train.py"), words[:2]
    args = job_parser().parse_args(words[2:])
    assert args.storage.startswith("s3://") and args.gpu and args.max_failures > 0
    assert (ROOT / "configs" / Path(args.config).name).exists(), args.config


def test_aws_launcher_config_matches_rays_schema() -> None:
    config = load("aws.yaml")
    ray_dir = Path(importlib.util.find_spec("ray").submodule_search_locations[0])
    schema = json.loads((ray_dir / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    assert config["provider"]["type"] == "aws" and config["head_node_type"] in config["available_node_types"]
    workers = [n for n in config["available_node_types"].values() if n.get("min_workers") is not None]
    assert workers and all(n["node_config"]["InstanceType"].startswith(("g", "p")) for n in workers)
    for node in config["available_node_types"].values():
        assert node["node_config"]["IamInstanceProfile"], "S3 access comes from an instance profile"
    assert any("pip install" in c and "constraints.txt" in c for c in config["setup_commands"])
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])


def test_aws_config_rejects_a_missing_key() -> None:
    config = load("aws.yaml")
    del config["provider"]
    ray_dir = Path(importlib.util.find_spec("ray").submodule_search_locations[0])
    schema = json.loads((ray_dir / "autoscaler" / "ray-schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError, match="provider"):
        jsonschema.validate(config, schema)


def test_raycluster_manifest() -> None:
    cluster = load("kuberay/raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    spec = cluster["spec"]
    head = spec["headGroupSpec"]
    assert "rayStartParams" in head and head["template"]["spec"]["containers"][0]["image"]
    groups = spec["workerGroupSpecs"]
    assert groups and all({"groupName", "rayStartParams", "template"} <= set(g) for g in groups)
    for group in groups:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) >= 1
    assert spec["rayVersion"] == _pinned("ray")


def test_rayjob_runs_the_training_job_on_the_cluster() -> None:
    job = load("kuberay/rayjob-train.yaml")
    cluster = load("kuberay/raycluster.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    check_job_command(job["spec"]["entrypoint"])
    assert isinstance(yaml.safe_load(job["spec"]["runtimeEnvYAML"]), dict)


@pytest.mark.parametrize("name", ["rayjob-train.yaml", "rayjob-track.yaml"])
def test_rayjobs_on_the_shared_cluster_never_retry(name: str) -> None:
    spec = load(f"kuberay/{name}")["spec"]
    # KubeRay retries a RayJob by deleting its cluster: with clusterSelector, the shared one (kuberay#4516)
    assert spec["clusterSelector"] and spec.get("backoffLimit", 0) == 0


def test_aws_header_job_command_is_valid() -> None:
    comments = [line[1:].strip() for line in (CLUSTER / "aws.yaml").read_text().splitlines()
                if line.startswith("#")]
    start = next(i for i, line in enumerate(comments) if line.startswith("ray job submit"))
    command = []
    for line in comments[start + 1:]:
        command.append(line.rstrip("\\"))
        if not line.endswith("\\"):
            break
    check_job_command(" ".join(command))


def _pinned(package: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{package} is not pinned in constraints.txt")


def test_train_job_reports_bad_settings_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: two\n")
    main = runpy.run_path(str(ROOT / "jobs" / "train.py"), run_name="jobs_train")["main"]
    argv = ["--config", str(bad), "--data", str(tmp_path), "--storage", str(tmp_path / "runs"), "--name", "x"]
    assert main(argv) == 2  # refused before Ray starts
    err = own_lines(capsys.readouterr().err)
    assert err == [f"train: error: {bad}: train.epochs: expected int, got 'two'"]
