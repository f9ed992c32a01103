"""Which inputs of a bulk run still need work, and whether the results already there may be kept.

A result is complete when its ``<name>.summary.json`` exists (written last). A rerun keeps it only
where it was made from the same input with the same model and settings: its summary records the
input's URI (``source``) and a run key (:func:`run_key`, a digest of the model file, the detector
weights and every setting that changes results). A complete result of another input or of another
model or settings is never skipped silently, nor overwritten: the run is refused before any work,
so a season's outputs never mix two models, and two archives whose videos share a name
(``1_720p.mkv``) never take each other's results. A result without a run key (written before run
keys existed, or by ``prtreid track``) is kept, with a warning. Pure functions, no Ray.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from prtreid.detect.factory import yolo_weights
from prtreid.distributed.manifest import VideoEntry, resolve_uri
from prtreid.errors import ConfigError
from prtreid.pipeline.video import PipelineConfig
from prtreid.storage import Storage, split_uri

FAILURES = "failures"
SUMMARY_SUFFIX = ".summary.json"
_RUNTIME_ONLY = ("device", "amp", "batch_frames")  # where and how fast, not what: results are the same
_SHOWN = 3
log = logging.getLogger(__name__)


def failure_name(name: str) -> str:
    """Relative name of the failure record of result ``name``."""
    return f"{FAILURES}/{name}.json"


def local_path(uri: str | None) -> str | None:
    """``uri`` with ``~`` expanded where it is a local path (as the detector reads it)."""
    return uri if uri is None or uri.startswith("s3://") else os.path.expanduser(uri)


def file_digest(uri: str, chunk: int = 1 << 22) -> str:
    """SHA-256 of a local or ``s3://`` file, streamed."""
    fs, path = split_uri(uri)
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def run_key(pipeline: PipelineConfig, model_path: str | None) -> str:
    """A digest of what a video's results depend on: model and detector files, and the settings.

    Files count by content (a model copied elsewhere keeps its key); the device, AMP and batch
    sizes do not count.
    """
    settings = dataclasses.asdict(pipeline)
    for key in _RUNTIME_ONLY:
        settings.pop(key)
    for key in ("device", "batch", "half"):
        settings["detection"].pop(key)
    weights = local_path(yolo_weights(pipeline.detector))
    if weights and _is_file(weights):
        settings["detector"] = f"yolo:sha256={file_digest(weights)}"
    settings["model"] = file_digest(model_path) if model_path else None
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """The inputs of a run split by what they need.

    Attributes:
        todo: to track now.
        done: complete results of the same input, model and settings: kept.
        not_retried: inputs with a failure record that the run does not retry.
    """

    todo: list[VideoEntry]
    done: list[VideoEntry]
    not_retried: list[VideoEntry]


def plan(entries: Sequence[VideoEntry], out: Storage, key: str | None = None, retry_failed: bool = True) -> Plan:
    """Split ``entries`` by one listing of ``out``; ``key`` is this run's :func:`run_key`.

    Raises:
        ConfigError: complete results in ``out`` of another input, or of another run key.
    """
    names = set(out.list())
    complete = [e for e in entries if f"{e.name}{SUMMARY_SUFFIX}" in names]
    if key is not None:
        _refuse_foreign(complete, out, key)
    done = {e.name for e in complete}
    failed = {e.name for e in entries if failure_name(e.name) in names and e.name not in done}
    held = set() if retry_failed else failed
    return Plan([e for e in entries if e.name not in done | held],
                [e for e in entries if e.name in done], [e for e in entries if e.name in held])


def _refuse_foreign(complete: Sequence[VideoEntry], out: Storage, key: str) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:  # one small read per result: parallel for S3
        summaries = list(pool.map(lambda e: _summary(out, e.name), complete))
    other_input = [(e, s.get("source")) for e, s in zip(complete, summaries) if not _same_input(s.get("source"), e)]
    if other_input:
        shown = "; ".join(f"{e.name} holds {src!r}, not {e.uri!r}" for e, src in other_input[:_SHOWN])
        raise ConfigError(f"{out.uri}: {len(other_input)} result name(s) already hold results of another input "
                          f"({shown}): write to another --out, or give the inputs other names (a manifest's "
                          "'name' column)")
    unkeyed = [e.name for e, s in zip(complete, summaries) if "run_key" not in s]
    if unkeyed:
        log.warning("%s: %d result(s) predate run keys (%s...): kept without checking their model and settings",
                    out.uri, len(unkeyed), ", ".join(unkeyed[:_SHOWN]))
    other_key = [e.name for e, s in zip(complete, summaries) if s.get("run_key", key) != key]
    if other_key:
        raise ConfigError(f"{out.uri}: {len(other_key)} result(s) were made with another model, detector weights "
                          f"or settings ({', '.join(other_key[:_SHOWN])}{', ...' if len(other_key) > _SHOWN else ''}): "
                          "write to another --out, or delete those results to redo them")


def _same_input(source: Any, entry: VideoEntry) -> bool:
    """Whether a summary's ``source`` names ``entry``'s input, however either was written."""
    if not isinstance(source, str) or not source.strip():
        return False
    try:
        return resolve_uri(source, None) == entry.uri
    except ValueError:
        return False


def _summary(out: Storage, name: str) -> dict[str, Any]:
    try:
        summary = json.loads(out.read_bytes(f"{name}{SUMMARY_SUFFIX}"))
    except ValueError:  # unreadable: cannot show it was made by this run
        return {}
    return summary if isinstance(summary, dict) else {}


def _is_file(uri: str) -> bool:
    fs, path = split_uri(uri)
    return fs.get_file_info(path).type == pafs.FileType.File
