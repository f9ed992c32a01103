"""Search spaces and HPO sweeps: validation errors, the study's resume bookkeeping, and real Ray
Tune + Optuna sweeps on tiny generated data (a best config that trains, an exact resume, a tracker
sweep scored by HOTA, an S3 sweep folder)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from prtreid.config import from_dict
from prtreid.distributed import study as studies
from prtreid.errors import ConfigError
from prtreid.pipeline.video import PipelineConfig
from prtreid.search_space import load_space, parse_space
from prtreid.train.config import ExperimentConfig, experiment_from_dict, load_experiment

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ROOT / "search_spaces" / "losses.yaml"
TRACKER = ROOT / "search_spaces" / "tracker.yaml"


def test_shipped_spaces_load_and_their_defaults_are_the_hand_set_values() -> None:
    losses = load_space(LOSSES, ExperimentConfig)
    assert losses.apply(ExperimentConfig(), losses.defaults()) == ExperimentConfig()
    assert {"loss.team_weight", "loss.role_weight", "loss.reid_margin", "loss.team_margin", "train.lr",
            "train.weight_decay", "loss.focal_gamma", "loss.mask_weight"} <= set(losses.keys)
    tracker = load_space(TRACKER, PipelineConfig)
    assert tracker.apply(PipelineConfig(), tracker.defaults()) == PipelineConfig()


def test_loss_sweeps_may_weigh_the_team_accuracy_of_the_embedding_alone() -> None:
    from prtreid.distributed.trials import LOSS_METRICS, check_metrics

    check_metrics({"mAP": 0.5, "team_acc_embedding": 0.5}, ("team_acc_embedding",), LOSS_METRICS)
    with pytest.raises(ConfigError, match="report no metric 'team_acc_kitt'"):
        check_metrics({"team_acc_kitt": 1.0}, (), LOSS_METRICS)


def test_ddp_trials_leave_the_gpus_to_their_workers() -> None:
    spec = importlib.util.spec_from_file_location("tune_job", ROOT / "jobs" / "tune.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    common = ["losses", "--data", "d", "--space", str(LOSSES), "--out", "o", "--gpus-per-trial", "1"]
    ddp = job.sweep_config(job.parse_args(common + ["--workers-per-trial", "2"]))
    assert ddp.use_gpu and "gpu" not in ddp.trial_resources  # 2 GPUs for 2 workers, not 3
    single = job.sweep_config(job.parse_args(common))
    assert single.use_gpu and single.trial_resources == {"cpu": 1.0, "gpu": 1.0}


def test_a_study_url_with_a_password_is_refused(synth_data: Path, tmp_path: Path) -> None:
    from prtreid.distributed.tune import SweepConfig, tune_tracker

    space = parse_space({"tracker.n_init": {"type": "int", "low": 1, "high": 3}}, PipelineConfig)
    sweep = SweepConfig(name="x", num_samples=1, study_storage="postgresql://u:s3cret@127.0.0.1/db")
    with pytest.raises(ConfigError, match="holds a password") as error:
        tune_tracker(space, PipelineConfig(), synth_data, None, str(tmp_path / "o"), sweep)
    assert "s3cret" not in str(error.value)


def test_inputs_no_trial_could_read_are_refused_before_ray(synth_data: Path, s3_bucket: str, tmp_path: Path) -> None:
    from prtreid.distributed.tune import SweepConfig, tune_losses, tune_tracker

    sweep = SweepConfig(name="x", num_samples=1)
    losses = parse_space({"loss.team_margin": {"type": "float", "low": 0.1, "high": 0.3}}, ExperimentConfig)
    with pytest.raises(ConfigError, match="--data s3://b/crops: training data must be .* every node reads"):
        tune_losses(losses, ExperimentConfig(), "s3://b/crops", str(tmp_path / "o"), sweep)
    tracker = parse_space({"tracker.n_init": {"type": "int", "low": 1, "high": 3}}, PipelineConfig)
    with pytest.raises(FileNotFoundError, match=f"{s3_bucket}/models/none.pt: no such model file"):
        tune_tracker(tracker, PipelineConfig(), synth_data, f"{s3_bucket}/models/none.pt", str(tmp_path / "o"), sweep)
    with pytest.raises(FileNotFoundError, match="s3://no-such-bucket/o: no such bucket"):
        tune_tracker(tracker, PipelineConfig(), synth_data, None, "s3://no-such-bucket/o", sweep)
    assert not (tmp_path / "o").exists()


def test_sweep_settings_every_trial_would_fail_on_are_refused_before_ray(synth_data: Path, tmp_path: Path) -> None:
    from prtreid.distributed.tune import SweepConfig, tune_losses, tune_tracker

    tracker = parse_space({"tracker.n_init": {"type": "int", "low": 1, "high": 3}}, PipelineConfig)
    out = str(tmp_path / "o")
    for sweep, words in ((SweepConfig(objective={"HOTAA": 1.0}), "objective: the trials report no metric 'HOTAA'"),
                         (SweepConfig(pareto=("HOTA", "IDFF1")), "pareto: the trials report no metric 'IDFF1'"),
                         (SweepConfig(objective={"team_acc": 1.0}), "no metric 'team_acc'"),  # no model: no teams
                         (SweepConfig(pareto=("HOTA", "IDSW")), "IDSW is better lower")):
        with pytest.raises(ConfigError, match=words):
            tune_tracker(tracker, PipelineConfig(), synth_data, None, out, sweep)
    epochs = parse_space({"train.epochs": {"type": "int", "low": 1, "high": 3}}, ExperimentConfig)
    with pytest.raises(ConfigError, match="train.epochs cannot be searched: every trial trains train.epochs"):
        tune_losses(epochs, ExperimentConfig(), synth_data, out, SweepConfig())
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="grace_period: must be at least 1"):
        SweepConfig(grace_period=0)
    with pytest.raises(ConfigError, match="resources must be positive CPUs"):
        SweepConfig(trial_resources={"cpu": 0.0})
    with pytest.raises(ConfigError, match="resources must be positive CPUs"):
        SweepConfig(trial_resources={"cpu": 1.0, "gpu": -1.0})


def test_a_resume_keeps_the_study_it_names_searched_as_it_started(tmp_path: Path) -> None:
    db = studies.open_storage(studies.sqlite_url(tmp_path / "s.db"))
    study = studies.open_study(db, "s", ["maximize"], ["objective"])
    with pytest.raises(ConfigError, match="no study 'z' in here \\(it holds s\\): pass its --name"):
        studies.check_study_exists(db, "z", "here")
    with pytest.raises(ConfigError, match="exists with directions"):
        studies.open_study(db, "s", ["maximize", "maximize"], ["HOTA", "IDF1"])
    space = parse_space({"tracker.n_init": {"type": "int", "low": 1, "high": 3}}, PipelineConfig)
    study.tell(study.ask(space.distributions()), 0.5)
    studies.check_same_space(study, parse_space({"tracker.n_init": {"type": "int", "low": 1, "high": 5}},
                                                PipelineConfig))  # a wider range: Optuna takes it
    as_choices = parse_space({"tracker.n_init": {"type": "categorical", "choices": [1, 2]}}, PipelineConfig)
    with pytest.raises(ConfigError, match="tracker.n_init: .* searched it as IntDistribution"):
        studies.check_same_space(study, as_choices)
    setup = {"objective_weights": {"HOTA": 1.0}, "pareto": [], "base": studies.comparable(PipelineConfig())}
    studies.check_same_setup(study, setup)
    studies.check_same_setup(study, setup | {"base": studies.comparable(PipelineConfig(device="cpu"))})
    losses = {"objective_weights": {"mAP": 1.0}, "pareto": [], "base": studies.comparable(ExperimentConfig())}
    other = studies.open_study(db, "l", ["maximize"], ["objective"])
    studies.check_same_setup(other, losses)
    budget = load_experiment(None, ["train.budget_minutes=4", "train.eval_every=2"])  # trials override both
    studies.check_same_setup(other, losses | {"base": studies.comparable(budget)})
    with pytest.raises(ConfigError, match=r"another base config \(interpolate_gap: 10 then\)"):
        studies.check_same_setup(study, setup | {"base": studies.comparable(PipelineConfig(interpolate_gap=3))})
    with pytest.raises(ConfigError, match=r"another objective weights \(\{'HOTA': 1.0\}\)"):
        studies.check_same_setup(study, setup | {"objective_weights": {"HOTA": 2.0}})


def test_the_baseline_is_the_base_config_where_the_space_holds_it() -> None:
    space = parse_space({"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "default": 3e-4},
                         "train.epochs": {"type": "int", "low": 2, "high": 10, "step": 2, "default": 4},
                         "loss.team_margin": {"type": "float", "low": 0.1, "high": 0.3}}, ExperimentConfig)
    base = experiment_from_dict({"train": {"lr": 1e-3, "epochs": 5}, "loss": {"team_margin": 0.2}})
    # lr from the config; 5 epochs is off the space's grid: its default; the margin has no default
    assert space.baseline(base) == {"train.lr": 1e-3, "train.epochs": 4, "loss.team_margin": 0.2}
    assert space.baseline(ExperimentConfig()) == {"train.lr": 3.5e-4, "train.epochs": 10}  # margin 0.4: outside


def test_space_converts_to_optuna_and_applies_dotted_keys() -> None:
    space = parse_space({
        "tracker.ema_alpha": {"type": "float", "low": 0.5, "high": 0.99},
        "tracker.max_age": {"type": "int", "low": 10, "high": 300, "step": 10},
        "tracker.team_gating": {"type": "categorical", "choices": [True, False]},
    }, PipelineConfig)
    dists = space.distributions()
    assert dists["tracker.ema_alpha"] == FloatDistribution(0.5, 0.99)
    assert dists["tracker.max_age"] == IntDistribution(10, 300, step=10)
    assert dists["tracker.team_gating"] == CategoricalDistribution((True, False))
    cfg = space.apply(PipelineConfig(), {"tracker.ema_alpha": 0.61, "tracker.max_age": 40, "tracker.team_gating": False})
    assert (cfg.tracker.ema_alpha, cfg.tracker.max_age, cfg.tracker.team_gating) == (0.61, 40, False)
    assert cfg.cmc == PipelineConfig().cmc  # untouched fields keep their values
    loss = parse_space({"loss.team_weight": {"type": "float", "low": 0.01, "high": 1.0, "log": True}},
                       ExperimentConfig)
    assert loss.distributions()["loss.team_weight"] == FloatDistribution(0.01, 1.0, log=True)
    assert loss.apply(ExperimentConfig(), {"loss.team_weight": 0.3}).loss.team_weight == 0.3


@pytest.mark.parametrize(("spec", "message"), [
    ("loss.team_wieght: {type: float, low: 0.1, high: 1.0}", r"loss\.team_wieght: not a config field"),
    ("loss.team_weight: {type: float, low: -0.5, high: 1.0}", r"loss\.team_weight: low=-0\.5 is outside"),
    ("loss.team_weight: {type: float, low: 0.9, high: 0.1}", r"loss\.team_weight: low \(0\.9\) is above high"),
    ("loss.team_weight: {type: float, low: 0.0, high: 1.0, log: true}", r"loss\.team_weight: a log-scale"),
    ("loss.distance: {type: categorical, choices: [euclidean, manhattan]}",
     r"loss\.distance: choices\[1\]='manhattan' is outside"),
    ("train.amp: {type: categorical, choices: [yes, 0]}", r"train\.amp: choices\[1\]=0 is outside"),
    ("model.backbone: {type: float, low: 1, high: 2}", r"model\.backbone: type float does not fit"),
    ("train.epochs: {type: int, low: 1.5, high: 3}", r"train\.epochs: low: expected an integer"),
    ("loss: {type: float, low: 0.1, high: 1.0}", r"loss: is a config section"),
    ("train.lr: {type: float, low: 0.001, high: 0.01, default: 0.1}", r"train\.lr: default 0\.1 is outside"),
    ("train.lr: {type: float, low: 0.001, high: 0.01, lg: true}", r"train\.lr: unknown attribute 'lg'"),
    ("train.lr: {type: uniform, low: 0.001, high: 0.01}", r"train\.lr: type must be float, int or categorical"),
    ("train.epochs: {type: int, low: 2, high: 20, log: true, step: 2}", r"train\.epochs: step must be positive, "),
])
def test_bad_space_file_names_the_file_and_the_key(tmp_path: Path, spec: str, message: str) -> None:
    path = tmp_path / "bad_space.yaml"
    path.write_text(spec + "\n")
    with pytest.raises(ConfigError, match=r"bad_space\.yaml: " + message):
        load_space(path, ExperimentConfig)


def test_tune_job_rejects_a_bad_space_before_starting_ray(tmp_path: Path) -> None:
    path = tmp_path / "bad_space.yaml"
    path.write_text("loss.team_weight: {type: float, low: -1.0, high: 1.0}\n")
    proc = subprocess.run([sys.executable, str(ROOT / "jobs" / "tune.py"), "losses", "--space", str(path),
                           "--data", str(tmp_path), "--out", str(tmp_path / "sweep")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "bad_space.yaml: loss.team_weight: low=-1.0 is outside" in proc.stderr
    assert not (tmp_path / "sweep").exists()


def test_tune_job_refuses_a_folder_that_holds_a_study_before_starting_ray(tmp_path: Path) -> None:
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "study.db").write_bytes(b"")
    env = os.environ | {"RAY_ADDRESS": ""}  # it would start a private local Ray, whatever the session has
    proc = subprocess.run([sys.executable, str(ROOT / "jobs" / "tune.py"), "losses", "--space", str(LOSSES),
                           "--data", str(tmp_path), "--out", str(tmp_path / "sweep")],
                          capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "sweep/study.db: this sweep folder already holds a study" in proc.stderr
    assert "Traceback" not in proc.stderr and "Ray instance" not in proc.stderr


def test_study_bookkeeping_fails_and_requeues_interrupted_trials(tmp_path: Path) -> None:
    dists = {"x": FloatDistribution(0.0, 1.0)}
    study = studies.open_study(studies.open_storage(studies.sqlite_url(tmp_path / "s.db")), "s", ["maximize"],
                               ["objective"])
    assert studies.enqueue_baseline(study, {"x": 0.5}) and not studies.enqueue_baseline(study, {"x": 0.5})
    for value in (0.2, 0.9):
        trial = study.ask(dists)
        trial.set_user_attr("objective", value)
        study.tell(trial, value)
    stale = study.ask(dists)  # what a killed driver leaves: RUNNING forever
    assert [t.params["x"] for t in studies.counted_trials(study)][0] == 0.5
    assert len(studies.counted_trials(study)) == 2
    assert studies.recover_interrupted(study) == [stale.number]
    assert study.trials[stale.number].state == TrialState.FAIL
    retry = study.ask(dists)  # the enqueued point comes back first
    assert retry.params == stale.params and retry.user_attrs["retry_of"] == stale.number
    study.tell(retry, 0.4)
    assert [t.number for t in studies.counted_trials(study)] == [0, 1, 3]
    assert studies.best_trial(study).number == 1


# ---------------------------------------------------------------- real sweeps on a local Ray

@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """3 generated sequences x 20 frames cut into a crop store (one held out), and one more
    sequence for tracker validation."""
    from prtreid.data.crops import CropConfig, build_crops
    from prtreid.data.synth import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("tune_data")
    generate_dataset(root / "seqs", SynthConfig(seqs=3, frames=20, width=640, height=360, seed=5))
    build_crops(root / "seqs", root / "crops", CropConfig(eval_fraction=0.34, max_per_identity=8, store_height=64))
    generate_dataset(root / "val", SynthConfig(seqs=1, frames=20, width=640, height=360, seed=6, first_index=50))
    return {"seqs": root / "seqs", "crops": root / "crops", "val": root / "val"}


def base_experiment(epochs: int = 2) -> ExperimentConfig:
    return experiment_from_dict({
        "model": {"backbone": "resnet18", "image_size": [64, 32], "embed_dim": 32},
        "sampler": {"p_ids": 8, "k_instances": 2, "epoch": "identities"},
        "train": {"epochs": epochs, "lr": 1e-3, "warmup_epochs": 0.5, "device": "cpu", "batch_eval": 256},
    })


@pytest.fixture(scope="module")
def loss_sweep(ray_session, tiny, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A sweep stopped after 2 trials, a trial left running as by a killed driver, resumed to 4."""
    from prtreid.distributed.tune import SweepConfig, tune_losses

    out = tmp_path_factory.mktemp("loss_sweep")
    space = load_space(LOSSES, ExperimentConfig)
    sweep = SweepConfig(name="losses", num_samples=2, max_concurrent_trials=2, seed=3, verbose=0)
    first = tune_losses(space, base_experiment(), tiny["crops"], str(out), sweep)
    study = optuna.load_study(study_name="losses", storage=studies.sqlite_url(out / "study.db"))
    stale = study.ask(space.distributions())
    with pytest.raises(ConfigError, match="already holds a study"):  # under its own name or another
        tune_losses(space, base_experiment(), tiny["crops"], str(out), dataclasses.replace(sweep, num_samples=4))
    with pytest.raises(ConfigError, match="already holds a study"):
        tune_losses(space, base_experiment(), tiny["crops"], str(out), dataclasses.replace(sweep, name="other"))
    more = dataclasses.replace(sweep, num_samples=4)
    with pytest.raises(ConfigError, match=r"no study 'losess' .*\(it holds losses\)"):  # would write over the folder
        tune_losses(space, base_experiment(), tiny["crops"], str(out), dataclasses.replace(more, name="losess"),
                    resume=True)
    with pytest.raises(ConfigError, match="another objective weights"):  # scores would not compare
        tune_losses(space, base_experiment(), tiny["crops"], str(out), dataclasses.replace(more, objective={"mAP": 1}),
                    resume=True)
    with pytest.raises(ConfigError, match=r"another base config \(train.epochs: 2 then\)"):
        tune_losses(space, base_experiment(epochs=3), tiny["crops"], str(out), more, resume=True)
    final = tune_losses(space, base_experiment(), tiny["crops"], str(out), more, resume=True)
    return {"out": out, "space": space, "first": first, "final": final, "stale": stale.number,
            "stale_params": stale.params}


@pytest.mark.slow
def test_resumed_sweep_has_exactly_the_requested_trials_none_repeated(loss_sweep) -> None:
    assert loss_sweep["first"]["trials"] == 2
    assert loss_sweep["final"]["trials"] == 4
    study = optuna.load_study(study_name="losses", storage=studies.sqlite_url(loss_sweep["out"] / "study.db"))
    counted = studies.counted_trials(study)
    assert len(counted) == 4 and loss_sweep["stale"] not in [t.number for t in counted]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in counted)
    params = [tuple(sorted(t.params.items())) for t in counted]
    assert len(set(params)) == 4
    baseline = load_space(LOSSES, ExperimentConfig).baseline(base_experiment())
    assert counted[0].user_attrs.get("baseline") and counted[0].params == baseline
    assert baseline["train.lr"] == 1e-3  # the base config's own value, not the space's default
    retried = [t for t in counted if t.user_attrs.get("retry_of") == loss_sweep["stale"]]
    assert len(retried) == 1 and retried[0].params == loss_sweep["stale_params"]
    for t in counted:
        assert 0.0 <= t.user_attrs["objective"] <= 1.0
        assert t.user_attrs["objective"] == pytest.approx(
            0.5 * t.user_attrs["mAP"] + 0.25 * t.user_attrs["team_acc"] + 0.25 * t.user_attrs["role_acc"])
        assert t.user_attrs["epoch"] == (2 if t.state == TrialState.COMPLETE else 1)


@pytest.mark.slow
def test_sweep_writes_results_plots_and_a_best_config_that_trains(loss_sweep, tiny, tmp_path: Path) -> None:
    import pandas as pd

    from prtreid.train.loop import Runtime, fit

    out, final = loss_sweep["out"], loss_sweep["final"]
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 5 and table["interrupted"].sum() == 1  # 4 counted + the interrupted one
    complete = table[table["state"] == "COMPLETE"]
    assert final["best_trial"] == int(complete.loc[complete["objective"].idxmax(), "number"])
    for name in ("history", "importances", "parallel_coordinates"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cfg = load_experiment(out / "best_config.yaml")
    assert cfg == loss_sweep["space"].apply(base_experiment(), final["best_params"])
    assert cfg.loss.team_weight == pytest.approx(final["best_params"]["loss.team_weight"])
    cfg = load_experiment(out / "best_config.yaml", ["train.epochs=1"])
    history = fit(cfg, tiny["crops"], tmp_path, Runtime(progress=False))
    assert len(history) == 1 and 0.0 < history[0]["mAP"] <= 1.0 and (tmp_path / "model.pt").exists()


@pytest.mark.slow
def test_tracker_sweep_scores_hota_and_writes_a_pipeline_config(ray_session, tiny, tmp_path: Path) -> None:
    from prtreid.distributed.tune import SweepConfig, tune_tracker
    from prtreid.train.loop import Runtime, fit

    model_dir = tmp_path / "model"
    fit(base_experiment(epochs=1), tiny["crops"], model_dir, Runtime(progress=False))
    space = parse_space({"tracker.ema_alpha": {"type": "float", "low": 0.5, "high": 0.95},
                         "tracker.n_init": {"type": "int", "low": 1, "high": 3, "default": 3}}, PipelineConfig,
                        source="inline")
    base = dataclasses.replace(PipelineConfig(), device="cpu", cmc="none")
    summary = tune_tracker(space, base, tiny["val"], model_dir / "model.pt", str(tmp_path / "sweep"),
                           SweepConfig(name="tracker", num_samples=2, max_concurrent_trials=2, seed=1, verbose=0))
    study = optuna.load_study(study_name="tracker", storage=studies.sqlite_url(tmp_path / "sweep" / "study.db"))
    assert summary["trials"] == 2 and all(t.state == TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        assert 0.3 < t.user_attrs["HOTA"] <= 1.0 and t.value == t.user_attrs["HOTA"]
    data = yaml.safe_load((tmp_path / "sweep" / "best_config.yaml").read_text())
    best = from_dict(PipelineConfig, data, "best_config.yaml")
    assert best == space.apply(base, summary["best_params"])


@pytest.mark.slow
def test_sweep_folder_on_s3_with_a_pareto_search(ray_session, tiny, s3_bucket: str, tmp_path: Path) -> None:
    from prtreid.distributed.tune import SweepConfig, tune_tracker
    from prtreid.storage import Storage

    space = parse_space({"tracker.n_init": {"type": "int", "low": 1, "high": 3}}, PipelineConfig)
    base = dataclasses.replace(PipelineConfig(), device="cpu", cmc="none")
    sweep = SweepConfig(name="pareto", num_samples=2, max_concurrent_trials=2, pareto=("HOTA", "IDF1"),
                        baseline=False, verbose=0)
    summary = tune_tracker(space, base, tiny["val"], None, f"{s3_bucket}/sweeps/p", sweep, work_dir=tmp_path)
    files = Storage(f"{s3_bucket}/sweeps/p").list()
    for name in ("results.csv", "pareto.csv", "best_config.yaml", "summary.json", "study.db",
                 "plots/pareto_front.png"):
        assert name in files, files
    assert any(f.startswith("ray/") for f in files)
    study = optuna.load_study(study_name="pareto", storage=studies.sqlite_url(tmp_path / "study.db"))
    assert summary["trials"] == 2 and len(study.directions) == 2
    assert all(len(t.values) == 2 for t in study.trials)
    with pytest.raises(ConfigError, match="already holds a study"):  # a new sweep never overwrites it
        tune_tracker(space, base, tiny["val"], None, f"{s3_bucket}/sweeps/p", sweep, work_dir=tmp_path / "new")
    # another machine resumes from the study copy in S3
    again = tune_tracker(space, base, tiny["val"], None, f"{s3_bucket}/sweeps/p",
                         dataclasses.replace(sweep, num_samples=3), resume=True, work_dir=tmp_path / "other")
    study = optuna.load_study(study_name="pareto", storage=studies.sqlite_url(tmp_path / "other" / "study.db"))
    assert again["trials"] == 3 and [t.number for t in study.trials] == [0, 1, 2]
    table = Storage(f"{s3_bucket}/sweeps/p").read_bytes("results.csv").decode()
    assert len(table.strip().splitlines()) == 1 + 3


@pytest.mark.slow
def test_trials_can_train_with_a_torch_trainer_of_two_workers(ray_session, tiny, tmp_path: Path) -> None:
    import json

    from prtreid.data.reid_dataset import ReidDataset
    from prtreid.data.sampler import MatchBatchSampler
    from prtreid.distributed.tune import SweepConfig, tune_losses

    cfg = base_experiment(epochs=1)
    space = parse_space({"loss.team_weight": {"type": "float", "low": 0.05, "high": 0.5, "log": True}},
                        ExperimentConfig)
    sweep = SweepConfig(name="ddp", num_samples=1, workers_per_trial=2, resources_per_worker={"CPU": 0.9}, verbose=0)
    summary = tune_losses(space, cfg, tiny["crops"], str(tmp_path), sweep)
    assert summary["trials"] == 1 and summary["best_trial"] == 0
    (result,) = [json.loads(line) for line in next(tmp_path.glob("ray/ddp-*/trial_*/result.json")).read_text().splitlines()]
    train = ReidDataset(tiny["crops"], "train", image_size=cfg.model.image_size, role_names=cfg.crops.roles)
    shard = MatchBatchSampler.from_dataset(train, cfg.sampler, rank=0, world_size=2)
    whole = MatchBatchSampler.from_dataset(train, cfg.sampler, rank=0, world_size=1)
    assert len(shard) < len(whole)
    assert result["samples"] == len(shard) * cfg.sampler.p_ids * cfg.sampler.k_instances  # rank 0's half
    assert result["objective"] == pytest.approx(0.5 * result["mAP"] + 0.25 * result["team_acc"] + 0.25 * result["role_acc"])
    assert not any((tmp_path / "ray" / "_train_runs").iterdir())  # in-trial checkpoints are cleaned up
