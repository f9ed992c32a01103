"""The Optuna side of a sweep: the study that persists it, resume bookkeeping, and its report.

The study (SQLite by default, any Optuna database URL for a shared one) is the sweep's single
source of truth: every trial's parameters, state, objective value(s) and metrics (user attributes)
are in it, across interruptions and resumes. Ray Tune only runs trials (see
:mod:`prtreid.distributed.tune`). Nothing here imports Ray.

Resume rules (:func:`recover_interrupted`, :func:`counted_trials`): a trial left ``RUNNING`` by a
killed driver is marked ``FAIL``, listed in the study's ``interrupted_trials`` user attribute and its
parameters are enqueued again, so the point is evaluated once the sweep goes on and nothing is
lost; every other finished trial (complete, pruned by ASHA, or failed by an error) counts towards
the requested number of trials and is never repeated.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import sqlite3
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from prtreid.config import to_plain
from prtreid.errors import ConfigError
from prtreid.search_space import SearchSpace
from prtreid.storage import Storage

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted_trials"
RESULTS = "results.csv"
PARETO = "pareto.csv"
BEST_CONFIG = "best_config.yaml"
PLOTS = "plots"


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{Path(path).resolve()}"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage object (what ``OptunaSearch`` takes) from a database URL."""
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def open_study(storage: optuna.storages.BaseStorage, name: str, directions: Sequence[str],
               metric_names: Sequence[str]) -> optuna.Study:
    """Create the study ``name``, or load it if it exists (the directions must then agree).

    ``directions`` are ``"maximize"`` / ``"minimize"``, one per objective.
    """
    study = optuna.create_study(storage=storage, study_name=name, directions=list(directions),
                                load_if_exists=True)
    if [d.name.lower() for d in study.directions] != list(directions):
        raise ConfigError(f"study {name!r} exists with directions {study.directions}, not {list(directions)}")
    if study.metric_names is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(metric_names))
    return study


def sqlite_snapshot(path: str | Path) -> bytes:
    """A consistent copy of a SQLite database (SQLite's online backup), as bytes."""
    with tempfile.TemporaryDirectory(prefix="prtreid-study-") as tmp:
        copy = Path(tmp) / "copy.db"
        source, target = sqlite3.connect(str(path)), sqlite3.connect(str(copy))
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        return copy.read_bytes()


def tpe_sampler(seed: int, study: optuna.Study, startup_trials: int = 10) -> optuna.samplers.TPESampler:
    """A seeded TPE sampler; the seed is offset by the study's size so a resumed sweep does not
    draw the random start-up points of its first run again."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # multivariate TPE
        return optuna.samplers.TPESampler(seed=seed + len(study.trials), n_startup_trials=startup_trials,
                                          multivariate=True)


def interrupted_numbers(study: optuna.Study) -> set[int]:
    """Numbers of the trials that a killed run left behind (failed by :func:`recover_interrupted`)."""
    return set(study.user_attrs.get(INTERRUPTED, []))


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Fail every ``RUNNING`` trial and enqueue its parameters again; returns their numbers.

    Only call this when no other driver works on the study (a resume after a crash).
    """
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not stale:
        return []
    numbers = [t.number for t in stale]
    study.set_user_attr(INTERRUPTED, sorted(interrupted_numbers(study) | set(numbers)))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
    log.info("re-enqueued %d interrupted trial(s): %s", len(numbers), numbers)
    return numbers


def counted_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The finished trials that count towards the sweep's size (interrupted ones excluded)."""
    skip = interrupted_numbers(study)
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [t for t in study.get_trials(deepcopy=False, states=finished) if t.number not in skip]


def enqueue_baseline(study: optuna.Study, point: dict[str, Any]) -> bool:
    """Enqueue ``point`` as the first trial of a new study; returns whether it was enqueued."""
    if study.trials or not point:
        return False
    study.enqueue_trial(point, user_attrs={"baseline": True})
    return True


def best_trial(study: optuna.Study, key: str = "objective") -> FrozenTrial | None:
    """The complete trial with the highest ``key`` user attribute (the composite objective).

    Trials stopped early by ASHA are ``PRUNED`` and left out, so the best config was trained for
    the full number of epochs. For a multi-objective study the choice is made on the Pareto front.
    """
    pool = study.best_trials if len(study.directions) > 1 else study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE,))
    scored = [t for t in pool if _finite(t.user_attrs.get(key))]
    return max(scored, key=lambda t: (t.user_attrs[key], -t.number)) if scored else None


def results_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value(s), parameters, metrics, times."""
    df = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs",
                                       "datetime_start", "duration"))
    df.columns = [c.removeprefix("user_attrs_") for c in df.columns]
    skip = interrupted_numbers(study)
    df["interrupted"] = df["number"].isin(skip)
    return df


def config_yaml(cfg: Any, header: str = "") -> str:
    """A config dataclass as YAML that :func:`prtreid.config.from_dict` reads back unchanged."""
    text = yaml.safe_dump(to_plain(dataclasses.asdict(cfg)), sort_keys=False)
    return "".join(f"# {line}\n" for line in header.splitlines()) + text


def write_report(study: optuna.Study, out: Storage, best_config: Callable[[FrozenTrial], Any],
                 plots: bool = True) -> dict[str, Any]:
    """Write ``results.csv``, ``best_config.yaml`` (+ ``pareto.csv``) and plots into the sweep folder.

    Args:
        study: the sweep's study.
        out: the sweep folder.
        best_config: builds the full config of a trial (base config + the trial's parameters).
        plots: draw the PNG plots.

    Returns:
        A summary: trial counts, best trial number, value and parameters, files written.
    """
    table = results_table(study)
    out.write_text(RESULTS, table.to_csv(index=False))
    files = [RESULTS]
    best = best_trial(study)
    if best is not None:
        header = (f"best trial {best.number} of study {study.study_name}: objective "
                  f"{best.user_attrs['objective']:.4f}\nparameters: {best.params}")
        out.write_text(BEST_CONFIG, config_yaml(best_config(best), header))
        files.append(BEST_CONFIG)
    if len(study.directions) > 1:
        front = table[table["number"].isin([t.number for t in study.best_trials])]
        out.write_text(PARETO, front.to_csv(index=False))
        files.append(PARETO)
    if plots:
        files += write_plots(study, out)
    states = table["state"].value_counts().to_dict() if len(table) else {}
    return {"study": study.study_name, "trials": len(counted_trials(study)), "states": states,
            "best_trial": None if best is None else best.number,
            "best_objective": None if best is None else best.user_attrs["objective"],
            "best_params": None if best is None else best.params, "files": files}


def write_plots(study: optuna.Study, out: Storage) -> list[str]:
    """Optimisation history, parameter importances, parallel coordinates (and the Pareto front of a
    multi-objective study) as PNG files in ``plots/``; a plot that cannot be drawn is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    multi = len(study.directions) > 1
    target = (lambda t: t.user_attrs.get("objective", math.nan)) if multi else None
    kwargs = {"target": target, "target_name": "objective"} if multi else {}
    plots: dict[str, Callable[[], Any]] = {
        "history": lambda: ovm.plot_optimization_history(study, **kwargs),
        "importances": lambda: ovm.plot_param_importances(study, **kwargs),
        "parallel_coordinates": lambda: ovm.plot_parallel_coordinate(study, **kwargs),
    }
    if multi and len(study.directions) in (2, 3):
        plots["pareto_front"] = lambda: ovm.plot_pareto_front(study, target_names=study.metric_names)
    written = []
    for name, draw in plots.items():
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ax = draw()
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            log.warning("plot %s skipped: %s", name, exc)
            continue
        for w in caught:
            if not issubclass(w.category, optuna.exceptions.ExperimentalWarning):
                log.debug("plot %s: %s", name, w.message)
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        if name == "parallel_coordinates":  # one axis per parameter: give each room
            fig.set_size_inches(max(8.0, 1.3 * len(_param_names(study)) + 3.0), 6.0)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        out.write_bytes(f"{PLOTS}/{name}.png", buf.getvalue())
        written.append(f"{PLOTS}/{name}.png")
    return written


def _param_names(study: optuna.Study) -> set[str]:
    return {name for t in study.get_trials(deepcopy=False) for name in t.params}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


RUNTIME_KEYS = {"train.device", "train.num_workers", "train.batch_eval", "train.budget_minutes", "train.eval_every",
                "device", "amp", "batch_frames", "detection.device", "detection.batch", "detection.half"}
"""Base settings a resumed sweep may change: where and how fast trials run, and what a losses sweep's
trials override (they train ``train.epochs`` and evaluate every epoch)."""


def check_same_space(study: optuna.Study, space: SearchSpace) -> None:
    """A resumed study must be searched over the same parameters, of the same kinds, it started with."""
    first = next((t for t in study.get_trials(deepcopy=False) if t.distributions), None)
    if first is None:
        return
    if set(first.distributions) != set(space.keys):
        raise ConfigError(f"{space.source}: the parameters differ from those of study {study.study_name!r} "
                          f"({', '.join(sorted(first.distributions))})")
    for key, dist in space.distributions().items():
        try:
            optuna.distributions.check_distribution_compatibility(first.distributions[key], dist)
        except ValueError as exc:
            raise ConfigError(f"{space.source}: {key}: {exc} (study {study.study_name!r} searched it as "
                              f"{first.distributions[key]})") from None


def check_study_exists(db: optuna.storages.BaseStorage, name: str, where: str) -> None:
    """A resume names a study of the database (a misspelt name would start a new one over the folder's results).

    Raises:
        ConfigError: ``where`` (the database, for the message) holds other studies and not ``name``.
    """
    names = optuna.get_all_study_names(storage=db)
    if names and name not in names:
        raise ConfigError(f"resume: no study {name!r} in {where} (it holds {', '.join(sorted(names))}): "
                          "pass its --name")


def check_same_setup(study: optuna.Study, setup: dict[str, Any]) -> None:
    """Record the objective and base config of a new study; refuse a resume under others.

    Raises:
        ConfigError: naming what differs (for the base config, its first differing keys).
    """
    for key, value in setup.items():
        before = study.user_attrs.get(key)
        if before is None:
            study.set_user_attr(key, value)
        elif before != value:
            if key == "base":
                keys = sorted(k for k in before.keys() | value.keys() if before.get(k) != value.get(k))
                what = "base config (" + ", ".join(f"{k}: {before.get(k)!r} then" for k in keys[:5]) + ")"
            else:
                what = f"{key.replace('_', ' ')} ({before!r})"
            raise ConfigError(f"sweep {study.study_name!r} was started with another {what}: resume it with the "
                              "same --objective, --pareto, --config and --set, or start another sweep")


def comparable(base: Any) -> dict[str, Any]:
    """A base config as flat ``{dotted key: value}`` (JSON types), without :data:`RUNTIME_KEYS`."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif f"{prefix}{key}" not in RUNTIME_KEYS:
                flat[f"{prefix}{key}"] = value

    walk(json.loads(json.dumps(dataclasses.asdict(base), default=str)), "")
    return flat
