"""Season-wide tracking on Ray Data: thousands of archived videos in, tracks, teams and roles out.

The unit of work is one video (or one SoccerNet sequence folder). The dataset holds one small row
per input (its URI, result name and manifest metadata), one row per block, and flows through an
actor pool: each :class:`TrackActor` builds one :class:`~prtreid.pipeline.video.VideoPipeline`
(detector and re-id model load once per actor, on the actor's GPU share when it has one) and then,
per video, stages the input locally (:mod:`prtreid.distributed.staging`), streams its frames
through the pipeline and writes the results with :func:`~prtreid.pipeline.video.write_result`,
exactly what ``prtreid track`` does locally.

Why a whole video is one unit, never chunked, even for a 90-minute match: the tracker is
sequential and stateful (identities carry over every frame), and the per-match steps (team
clustering over all tracklets, role votes, gap interpolation) need the whole match. Chunks would
need identity stitching and a second clustering pass, and would still have to run in order.
Frames are streamed in small batches, so memory does not grow with the match; the parallelism of a
season run comes from many matches at once. The price: a lost worker redoes its current video.

Reliability:

* idempotent reruns: the driver lists the output once and skips every input whose
  ``<name>.summary.json`` (the completion marker, written last) exists; the actor checks again
  just before it starts (a retried task whose first attempt had finished writes nothing). A
  complete result of another input or another model or settings refuses the run
  (:mod:`prtreid.distributed.resume`);
* per-video failures (missing input, corrupt or truncated video, any exception) become records
  ``failures/<name>.json`` instead of stopping the run; a later success removes the record, and an
  unchanged failure is not rewritten;
* a killed actor process (OOM, lost node, SIGKILL) is restarted by Ray (``max_restarts``) and its
  video retried (``max_task_retries``); every write is atomic and keyed by the result name, so a
  video redone after a kill is written once, with no partial or duplicate files. A video that
  kills its worker on every retry is recorded as failed (``WorkerDied``) and the run goes on.

The driver returns a :class:`~prtreid.distributed.report.BulkReport` and writes it to
``_report.json`` beside the results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.fs as pafs
import ray
from ray.util.annotations import RayDeprecationWarning

from prtreid.config import from_dict
from prtreid.detect.base import DetectorConfig
from prtreid.detect.factory import make_detector, yolo_weights
from prtreid.detect.yolo import is_hub_name
from prtreid.distributed.manifest import VideoEntry, resolve_uri
from prtreid.distributed.report import BulkReport, VideoRecord
from prtreid.distributed.resume import SUMMARY_SUFFIX, failure_name, local_path, plan, run_key
from prtreid.distributed.staging import is_remote, staged
from prtreid.errors import ConfigError
from prtreid.pipeline.video import PipelineConfig, VideoPipeline, is_complete, write_result
from prtreid.scratch import clean_stale
from prtreid.storage import Storage, split_uri
from prtreid.train.checkpoint import load_model

log = logging.getLogger(__name__)

REPORT = "_report.json"


@dataclass(frozen=True)
class BulkConfig:
    """How a bulk run uses the cluster.

    Attributes:
        actors: actors in the pool (each loads the models once); with ``max_actors`` the pool
            autoscales between the two.
        max_actors: upper bound of an autoscaling pool (``None``: a fixed pool of ``actors``).
        cpus_per_actor, gpus_per_actor: Ray resources of one actor (fractions share a device).
        max_restarts: times Ray restarts a dead actor process (-1: without limit).
        max_task_retries: times a video whose actor died is retried (-1: without limit).
        retry_failed: rerun inputs that have a failure record (``False``: skip them too).
        progress: show Ray Data's progress bars.
    """

    actors: int = 1
    max_actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    max_restarts: int = -1
    max_task_retries: int = 2
    retry_failed: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.actors < 1 or (self.max_actors is not None and self.max_actors < self.actors):
            raise ConfigError("actors must be >= 1 and max_actors >= actors")
        if self.cpus_per_actor < 0 or self.gpus_per_actor < 0:
            raise ConfigError("cpus_per_actor and gpus_per_actor must be >= 0")


def load_pipeline(cfg: PipelineConfig, model_path: str | Path | None) -> VideoPipeline:
    """A :class:`VideoPipeline` whose PRTReID model and YOLO weights may be ``s3://`` files.

    Remote files are staged for the load, then removed (the models are in memory by then).
    """
    with contextlib.ExitStack() as stack:
        local_model = stack.enter_context(staged(str(model_path))) if model_path else None
        weights = yolo_weights(cfg.detector)
        if weights and is_remote(weights):
            cfg = dataclasses.replace(cfg, detector=f"yolo:{stack.enter_context(staged(weights))}")
        return VideoPipeline(cfg, local_model)


class TrackActor:
    """Ray Data actor: one pipeline (models loaded once), one video per call.

    Args:
        pipeline: ``dataclasses.asdict`` of a :class:`PipelineConfig` (rebuilt here).
        model_path: PRTReID model file, local or ``s3://`` (``None``: motion-only tracking).
        out: output folder or ``s3://`` prefix.
        key: the run's :func:`~prtreid.distributed.resume.run_key`, recorded in every summary.
    """

    def __init__(self, pipeline: dict[str, Any], model_path: str | None, out: str, key: str = "") -> None:
        clean_stale()
        cfg = from_dict(PipelineConfig, pipeline, "bulk pipeline config")
        self.detector = cfg.detector  # as given: summaries name the weights' URI, not their staged copy
        self.key = key
        self.pipeline = load_pipeline(cfg, model_path)
        self.out = Storage(out)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        """Track every row of ``batch`` (one with ``batch_size=1``); one record per row."""
        rows = [{k: v[i] for k, v in batch.items()} for i in range(len(batch["uri"]))]
        records = [self.process(VideoEntry.from_row(row)) for row in rows]
        return {key: [getattr(r, key) for r in records] for key in VideoRecord.columns()}

    def process(self, entry: VideoEntry) -> VideoRecord:
        """Track one input and store its results, or its failure record."""
        if is_complete(entry.name, self.out):  # a retry after the results were written
            self.out.delete(failure_name(entry.name))
            return VideoRecord(entry.name, entry.uri, "skipped")
        start = time.perf_counter()
        local = entry.uri
        try:
            with staged(entry.uri) as path:
                local = str(path)
                result = self.pipeline.run(path, name=entry.name, meta=entry.meta)
            result.summary |= {"source": entry.uri, "run_key": self.key}
            result.summary["config"]["detector"] = self.detector
            self.write(result)
        except Exception as exc:  # any per-video error becomes a record; the run goes on
            return self._failed(entry, exc, local, time.perf_counter() - start)
        self.out.delete(failure_name(entry.name))
        return VideoRecord.from_summary(entry.name, entry.uri, result.summary)

    def _failed(self, entry: VideoEntry, exc: Exception, local: str, seconds: float) -> VideoRecord:
        def scrub(text: str) -> str:  # name the input's URI, not its temporary copy
            return text.replace(local, entry.uri) if local != entry.uri else text

        record = VideoRecord(entry.name, entry.uri, "failed", error=scrub(f"{type(exc).__name__}: {exc}"),
                             seconds_total=seconds)
        log.warning("%s failed: %s", entry.uri, record.error)
        return write_failure(self.out, record, scrub("".join(traceback.format_exception(exc))))

    def write(self, result: Any) -> None:
        """Store one video's results (the summary, the completion marker, last)."""
        write_result(result, self.out)


def check_model(model_path: str | Path | None, detector: str = "oracle",
                detection: DetectorConfig = DetectorConfig()) -> None:
    """Fail before any actor starts on model files that every actor would fail to load.

    Loads the PRTReID model and the detector's ``.pt`` weights once, on the CPU (a model yaml is
    the detector's to check).

    Raises:
        FileNotFoundError: no file at ``model_path`` or at the detector's weights.
        FormatError: ``model_path`` is not a PRTReID model file, or the weights not YOLO weights.
        ConfigError: the detector's class filter keeps no person.
    """
    weights = local_path(yolo_weights(detector))
    if weights and (is_remote(weights) or weights.lower().endswith(".pt")):
        if not is_hub_name(weights):  # released weights are downloaded by name, here first
            _require_file(weights, "detector weights")
        with staged(weights) as local:
            make_detector(f"yolo:{local}", None, dataclasses.replace(detection, device="cpu"))
    if model_path is not None:
        _require_file(str(model_path), "model")
        with staged(str(model_path)) as local:
            load_model(local, "cpu")


def _require_file(uri: str, what: str) -> None:
    fs, path = split_uri(uri)
    if fs.get_file_info(path).type != pafs.FileType.File:
        raise FileNotFoundError(f"{uri}: no such {what} file")


def write_failure(out: Storage, record: VideoRecord, trace: str = "") -> VideoRecord:
    """Write ``failures/<name>.json`` (with the traceback) unless an identical record is already there.

    Returns ``record``, its error extended where the record itself cannot be written (the run goes on).
    """
    text = json.dumps(record.failure_json() | {"traceback": trace}, indent=2, sort_keys=True)
    key = failure_name(record.name)
    try:
        if not (out.exists(key) and out.read_bytes(key).decode("utf-8") == text):
            out.write_text(key, text)
    except OSError as exc:
        log.warning("%s: cannot write its failure record: %s", record.name, exc)
        return dataclasses.replace(record, error=f"{record.error} (and its failure record: {exc})")
    return record


def track_bulk(entries: Sequence[VideoEntry], out: str, pipeline: PipelineConfig, model_path: str | Path | None = None,
               bulk: BulkConfig = BulkConfig(), actor_cls: type[TrackActor] = TrackActor) -> BulkReport:
    """Track every entry on the current Ray cluster; results and ``_report.json`` go to ``out``.

    Args:
        entries: the inputs (see :mod:`prtreid.distributed.manifest`).
        out: output folder or ``s3://bucket/prefix``.
        pipeline: the per-video pipeline settings (the same as ``prtreid track``).
        model_path: PRTReID model file, local (visible on every node) or ``s3://``.
        bulk: actors, resources, retries.
        actor_cls: :class:`TrackActor` or a subclass (instrumentation, fault injection).

    Ray must be initialised (see :func:`prtreid.distributed.runtime.connect`). Relative local paths
    are taken from this process's working directory (actors work in another one).
    """
    out = resolve_uri(str(out), None)
    model_path = resolve_uri(str(model_path), None) if model_path else None
    storage = Storage(out)
    storage.check_writable()
    check_model(model_path, pipeline.detector, pipeline.detection)
    start = time.time()
    key = run_key(pipeline, model_path)
    work = plan(entries, storage, key, bulk.retry_failed)
    log.info("%d inputs: %d to track, %d already done, %d failed before and not retried",
             len(entries), len(work.todo), len(work.done), len(work.not_retried))
    records = [VideoRecord(e.name, e.uri, "skipped") for e in work.done]
    records += [VideoRecord(e.name, e.uri, "failed", error=f"not retried: an earlier run failed here (see "
                                                           f"{storage.url(failure_name(e.name))})")
                for e in work.not_retried]
    if work.todo:
        records += _run_dataset(work.todo, out, pipeline, model_path, key, bulk, actor_cls)
    records += _lost(work.todo, records, storage, bulk)
    report = BulkReport.build(records, out=out, started=start, wall_seconds=time.time() - start,
                              settings={"bulk": dataclasses.asdict(bulk), "detector": pipeline.detector,
                                        "model": str(model_path) if model_path else None, "run_key": key})
    storage.write_text(REPORT, json.dumps(report.to_dict(), indent=2, default=str))
    return report


def _run_dataset(todo: Sequence[VideoEntry], out: str, pipeline: PipelineConfig, model_path: str | Path | None,
                 key: str, bulk: BulkConfig, actor_cls: type[TrackActor]) -> list[VideoRecord]:
    ds = ray.data.from_items([e.to_row() for e in todo], override_num_blocks=len(todo))  # one video per block
    low = min(bulk.actors, len(todo))  # no actor (and model load) without a video for it
    high = min(bulk.max_actors or bulk.actors, len(todo))
    if low == high:
        compute = ray.data.ActorPoolStrategy(size=low, max_tasks_in_flight_per_actor=1)
    else:
        compute = ray.data.ActorPoolStrategy(min_size=low, max_size=high, max_tasks_in_flight_per_actor=1)
    with warnings.catch_warnings():
        # Ray 2.60 deprecates **ray_remote_args but has no named parameter for the retry settings yet
        warnings.simplefilter("ignore", RayDeprecationWarning)
        ds = ds.map_batches(
            actor_cls, batch_size=1, compute=compute,
            fn_constructor_kwargs={"pipeline": dataclasses.asdict(pipeline),
                                   "model_path": str(model_path) if model_path else None, "out": out, "key": key},
            num_cpus=bulk.cpus_per_actor, num_gpus=bulk.gpus_per_actor or None,
            max_restarts=bulk.max_restarts, max_task_retries=bulk.max_task_retries,
        )
    ds.context.max_errored_blocks = -1  # a video that kills every retry is recorded, not fatal
    ds.context.enable_progress_bars = bulk.progress
    records = []
    for row in ds.iter_rows():
        record = VideoRecord.from_row(row)
        log.info("%s: %s%s", record.name, record.status, f" ({record.error})" if record.error else "")
        records.append(record)
    return records


def _lost(todo: Sequence[VideoEntry], records: Sequence[VideoRecord], out: Storage,
          bulk: BulkConfig) -> list[VideoRecord]:
    """Records of inputs for which no row came back: the worker died on every attempt (or storage failed)."""
    seen = {r.name for r in records}
    lost = []
    for entry in todo:
        if entry.name in seen:
            continue
        if is_complete(entry.name, out):  # written before the worker died on its way back
            summary = json.loads(out.read_bytes(f"{entry.name}{SUMMARY_SUFFIX}"))
            out.delete(failure_name(entry.name))
            lost.append(VideoRecord.from_summary(entry.name, entry.uri, summary))
            continue
        attempts = "every attempt" if bulk.max_task_retries < 0 else f"each of {bulk.max_task_retries + 1} attempts"
        record = VideoRecord(entry.name, entry.uri, "failed",
                             error=f"WorkerDied: no result came back from {attempts} at this input (the "
                                   "worker process died, or writing its result failed)")
        lost.append(write_failure(out, record))
    return lost


def run_bulk(out: str, pipeline: PipelineConfig, *, manifest: str | None = None, prefix: str | None = None,
             model_path: str | Path | None = None, bulk: BulkConfig = BulkConfig(),
             address: str | None = None) -> BulkReport:
    """What ``jobs/track.py`` does: join (or start) Ray, read the inputs, track them all.

    Args:
        out: output folder or ``s3://bucket/prefix``.
        pipeline: per-video pipeline settings.
        manifest: a manifest file (text, CSV or Parquet; local or ``s3://``), or else
        prefix: a folder or ``s3://`` prefix whose videos and sequence folders are all tracked.
        model_path, bulk: see :func:`track_bulk`.
        address: a Ray cluster to join (default: ``RAY_ADDRESS``, else a local Ray is started).
    """
    from prtreid.distributed.manifest import load_entries
    from prtreid.distributed.runtime import check_fits, connect

    entries = load_entries(manifest, prefix)
    check_fits({"CPU": bulk.cpus_per_actor, "GPU": bulk.gpus_per_actor}, connect(address)["local"],
               "an actor (--cpus-per-actor, --gpus-per-actor)")
    return track_bulk(entries, out, pipeline, model_path, bulk)
