"""The training loop on tiny generated data: it learns, checkpoints round-trip, runs resume."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
import yaml

from prtreid.cli import main as cli
from prtreid.config import to_plain
from prtreid.data.crops import read_crop_index
from prtreid.train.budget import cpu_bf16_native, epochs_within, saved_epochs
from prtreid.train.checkpoint import load_checkpoint, load_model
from prtreid.train.config import ExperimentConfig, TrainConfig, experiment_from_dict, load_experiment
from prtreid.train.evaluate import evaluate_store
from prtreid.train.loop import autocast_dtype, check_resumable, fit, lr_lambda, reschedule
from prtreid.errors import ConfigError


def tiny_config(epochs: int = 4) -> ExperimentConfig:
    return experiment_from_dict({
        "model": {"backbone": "resnet18", "image_size": [96, 48], "embed_dim": 128},
        "sampler": {"p_ids": 6, "k_instances": 3, "matches_per_batch": 2},
        "train": {"epochs": epochs, "lr": 1e-3, "warmup_epochs": 0.5, "device": "cpu", "batch_eval": 128},
    })


def plumbing_config(epochs: int) -> ExperimentConfig:
    """:func:`tiny_config` at 64x32, for tests of how training runs rather than what it learns."""
    cfg = tiny_config(epochs)
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, image_size=(64, 32)))


@pytest.fixture(scope="module")
def trained(crop_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("run")
    return out, fit(tiny_config(), crop_store, out)


def test_training_beats_the_untrained_model(trained, crop_store: Path) -> None:
    out, history = trained
    torch.manual_seed(0)
    untrained, meta = load_model(out / "model.pt")
    untrained.load_state_dict(type(untrained).from_config(
        tiny_config().model, meta["num_roles"], meta["num_ids"]).state_dict())
    before = evaluate_store(untrained, crop_store, torch.device("cpu"), image_size=(96, 48),
                            role_names=tuple(meta["role_names"]))
    after = history[-1]
    assert after["mAP"] > before["mAP"] + 0.1, (before["mAP"], after["mAP"])
    # clearly above chance (about 0.5 for two clusters); on these 2 held-out clips, 4 epochs give 0.79-0.98
    # over seeds and thread counts and an untrained model 0.65-0.84, so learning is judged by mAP above
    assert after["team_acc"] > 0.7
    per_sequence = before["team_acc_per_sequence"]
    index = read_crop_index(crop_store)
    assert set(per_sequence) <= set(index.loc[index["split"] == "query", "sequence"])
    assert per_sequence and min(per_sequence.values()) <= before["team_acc"] <= max(per_sequence.values())
    assert history[-1]["loss/total"] < history[0]["loss/total"]
    for term in ("loss/role", "loss/team"):  # each head learns, not only the re-id embedding
        assert history[-1][term] < 0.8 * history[0][term], (term, history[0][term], history[-1][term])
    # the role head alone, per crop: 0.74 untrained here (about the share of players), 0.91 after 4 epochs
    assert after["role_acc_crop"] > before["role_acc_crop"] + 0.05, (before["role_acc_crop"], after["role_acc_crop"])


def test_model_file_round_trips_bit_exact(trained) -> None:
    out, _ = trained
    model, meta = load_model(out / "model.pt")
    again, _ = load_model(out / "checkpoint.pt")
    x = torch.randn(2, 3, 96, 48)
    a, b = model(x), again(x)
    assert torch.equal(a.embeddings["foreground"], b.embeddings["foreground"])
    assert meta["role_names"] == ["player", "goalkeeper", "referee", "other"]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 3 and len(state["history"]) == 4


def test_resume_continues_after_the_last_epoch(trained, crop_store: Path, tmp_path: Path) -> None:
    out, history = trained
    for name in ("checkpoint.pt",):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    more = fit(tiny_config(epochs=5), crop_store, tmp_path)
    assert [h["epoch"] for h in more] == [1, 2, 3, 4, 5]
    assert more[:4] == load_checkpoint(out / "checkpoint.pt")["history"]
    # epoch 5 starts from epoch 4's weights, not from the seeded initial ones
    fresh, meta = load_model(out / "model.pt")
    torch.manual_seed(tiny_config().train.seed)
    initial = type(fresh).from_config(tiny_config().model, meta["num_roles"], meta["num_ids"]).state_dict()
    ended, resumed = fresh.state_dict(), load_model(tmp_path / "model.pt")[0].state_dict()
    weights = [k for k, v in ended.items() if v.is_floating_point() and "running" not in k]

    def distance(a: dict, b: dict) -> float:
        return float(sum((a[k] - b[k]).pow(2).sum() for k in weights) ** 0.5)

    assert distance(resumed, ended) < 0.1 * distance(resumed, initial)


def test_a_checkpoint_of_other_settings_is_not_resumed(trained, crop_store: Path, tmp_path: Path) -> None:
    out, _ = trained
    (tmp_path / "checkpoint.pt").write_bytes((out / "checkpoint.pt").read_bytes())
    other = tiny_config()
    other = dataclasses.replace(other, loss=dataclasses.replace(other.loss, team_weight=0.5))
    with pytest.raises(ConfigError, match=r"checkpoint\.pt: holds a run with other settings .*loss\.team_weight"):
        fit(other, crop_store, tmp_path)


def test_train_refuses_other_settings_before_it_rebuilds_the_run_crops(trained, synth_data: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    out, _ = trained
    (tmp_path / "checkpoint.pt").write_bytes((out / "checkpoint.pt").read_bytes())
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(to_plain(dataclasses.asdict(tiny_config()))))
    argv = ["train", "--data", str(synth_data), "--out", str(tmp_path), "--config", str(config)]
    assert cli([*argv, "--set", "crops.max_per_identity=3"]) == 2
    assert re.search(r"checkpoint\.pt: holds a run .*crops\.max_per_identity: \d+ -> 3", capsys.readouterr().err)
    assert not (tmp_path / "crops").exists()  # refused before the store was cut


def test_a_budget_cut_scales_the_step_milestones() -> None:
    from prtreid.train.loop import _with_epochs

    cfg = experiment_from_dict({"train": {"epochs": 12, "schedule": "step", "milestones": [8, 11]}})
    assert _with_epochs(cfg, 3).train.milestones == (2, 3)  # the LR still drops within the 3 epochs kept
    assert _with_epochs(cfg, 12) == cfg
    two = experiment_from_dict({"train": {"epochs": 10, "schedule": "step", "milestones": [3, 5]}})
    assert _with_epochs(two, 5).train.milestones == (2, 2)  # both decays kept, at one epoch
    assert lr_lambda(_with_epochs(two, 5).train, 1)(4) == pytest.approx(0.01)


def test_lr_schedule_warms_up_then_decays() -> None:
    f = lr_lambda(TrainConfig(epochs=10, warmup_epochs=1, warmup_factor=0.1), iters_per_epoch=10)
    assert f(0) == pytest.approx(0.1) and f(10) == pytest.approx(1.0)
    assert f(55) < f(20) and f(99) == pytest.approx(0.01, abs=0.01)
    short = lr_lambda(TrainConfig(epochs=3, warmup_epochs=5), iters_per_epoch=10)  # warm-up longer than the run
    assert short(15) == pytest.approx(1.0) and short(30) == pytest.approx(0.01)
    step = lr_lambda(TrainConfig(epochs=10, warmup_epochs=0, schedule="step", milestones=(5, 8)), 10)
    assert (step(10), step(50), step(80)) == (1.0, pytest.approx(0.1), pytest.approx(0.01))


def test_budget_stretches_the_schedule_over_the_epochs_it_keeps() -> None:
    cfg = TrainConfig(epochs=12, warmup_epochs=1, lr=1e-3)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, 10))
    lrs = []
    for epoch in range(3):
        if epoch == 1:  # the first epoch was timed: 3 epochs fit
            reschedule(scheduler, dataclasses.replace(cfg, epochs=3), 10)
        for _ in range(10):
            optimizer.step()
            scheduler.step()
            lrs.append(scheduler.get_last_lr()[0])
    assert lrs[9] == pytest.approx(cfg.lr)  # warm-up over, as without a budget
    assert all(a > b for a, b in zip(lrs[10:], lrs[11:]))  # one cosine over the two epochs left
    assert lrs[-1] == pytest.approx(cfg.lr * cfg.min_lr_factor)  # ending at its floor, not 1/6 of the way down


def test_reschedule_changes_the_rate_before_the_next_step() -> None:
    cfg = TrainConfig(epochs=10, warmup_epochs=0, schedule="step", milestones=(2,), lr=1.0)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, 10))
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 1.0
    reschedule(scheduler, dataclasses.replace(cfg, epochs=2, milestones=(1,)), 10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)  # epoch 2 runs after the cut schedule's decay


def test_autocast_dtype_per_device() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(TrainConfig(), cpu) is None
    assert autocast_dtype(TrainConfig(cpu_amp=True), cpu) == (torch.bfloat16 if cpu_bf16_native() else None)
    assert autocast_dtype(TrainConfig(), cuda) == torch.float16
    assert autocast_dtype(TrainConfig(amp_dtype="bfloat16"), cuda) == torch.bfloat16
    assert autocast_dtype(TrainConfig(amp=False, cpu_amp=True), cuda) is None


@pytest.mark.skipif(not cpu_bf16_native(), reason="this CPU has no AVX512-BF16 or AMX-BF16: cpu_amp trains in float32")
def test_bfloat16_cpu_training_learns(crop_store: Path, tmp_path: Path) -> None:
    cfg = plumbing_config(epochs=2)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, cpu_amp=True))
    conv_dtypes: set[torch.dtype] = set()  # the dtypes the training steps' convolutions computed in

    def record(module: torch.nn.Module, _args, output) -> None:
        if isinstance(module, torch.nn.Conv2d) and module.training:
            conv_dtypes.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        history = fit(cfg, crop_store, tmp_path)
    finally:
        handle.remove()
    assert conv_dtypes == {torch.bfloat16}
    first, last = history[0], history[-1]
    assert last["loss/total"] < first["loss/total"]
    assert all(torch.isfinite(torch.tensor(v)) for k, v in last.items() if k.startswith("loss/"))


def test_experiment_config_errors_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  epochs: 3\n  lr_typo: 0.1\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml: unknown key train\.lr_typo"):
        load_experiment(path)
    path.write_text("loss:\n  team_weight: heavy\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml: loss\.team_weight: expected float"):
        load_experiment(path)
    cfg = load_experiment(None, ["train.epochs=2", "model.backbone=resnet18"])
    assert cfg.train.epochs == 2
    assert experiment_from_dict(dataclasses.asdict(cfg)) == cfg
    assert load_experiment(None, ["train.lr=1e-4"]).train.lr == 1e-4  # PyYAML reads 1e-4 as a string
    cfg = load_experiment(None, ["sampler.role_minimums.referee=2"])  # one entry; the others stay
    assert cfg.sampler.role_minimums == {"goalkeeper": 1, "referee": 2, "other": 1}
    path.write_text("train:\n  epochs: 3\n")
    assert load_experiment(path, ["train.lr=0.01"]).train == TrainConfig(epochs=3, lr=0.01)
    with pytest.raises(ConfigError, match=r"exp\.yaml with --set overrides: .*model\.no_such_key"):
        load_experiment(path, ["model.no_such_key=1"])


def test_epochs_within_the_budget() -> None:
    assert epochs_within(10.0, 50.0, 12) == 12  # all 12 fit in 10 min
    assert epochs_within(2.0, 50.0, 12) == 2  # 120 s affords 2.4 epochs
    assert epochs_within(0.1, 50.0, 12) == 1  # never fewer than one
    with pytest.raises(ConfigError, match="budget_minutes"):
        TrainConfig(budget_minutes=-1)


@pytest.mark.parametrize(("section", "key", "value"), [
    ("train", "eval_every", 0), ("train", "batch_eval", 0), ("train", "warmup_factor", -1.0),
    ("train", "min_lr_factor", 0.0), ("train", "gamma", -0.1), ("sampler", "p_ids", 0),
    ("sampler", "k_instances", 0), ("loss", "role_weight", -1.0)])
def test_settings_that_would_fail_or_invert_training_are_refused(section: str, key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"{key}: must be"):
        experiment_from_dict({section: {key: value}})


def test_negative_whole_loss_weights_are_refused_in_code_too() -> None:
    from prtreid.model.losses import LossConfig

    with pytest.raises(ConfigError, match="team_weight: must be non-negative"):
        LossConfig(team_weight=-2)  # an int: from YAML it would have been made a float first


def test_budgeted_run_trains_what_fits_and_resumes_with_it(crop_store: Path, tmp_path: Path) -> None:
    cfg = plumbing_config(epochs=3)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, schedule="step", milestones=(2,)))
    tight = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, budget_minutes=1e-4))
    history = fit(tight, crop_store, tmp_path)
    assert [h["epoch"] for h in history] == [1] and "mAP" in history[0]  # the last epoch is evaluated
    assert saved_epochs(load_checkpoint(tmp_path / "checkpoint.pt")) == 1
    assert (tmp_path / "model.pt").exists()
    roomy = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, budget_minutes=60.0))
    check_resumable(tmp_path, roomy)  # the cut's milestones (1,) are the run's, as fit sees them
    assert fit(roomy, crop_store, tmp_path) == history  # the finished run keeps its schedule
