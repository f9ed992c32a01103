"""What a bulk run processes: a manifest of inputs, or every input found below a prefix.

An input is a video file (by suffix, see :data:`prtreid.data.frames.VIDEO_SUFFIXES`) or a
SoccerNet sequence folder (one holding ``seqinfo.ini``), on local disk or in S3. Each becomes a
:class:`VideoEntry` with a result ``name`` (the key of its result files) and a ``meta`` mapping
carried into its summary.

Manifest forms (chosen by suffix; the manifest itself may live in S3):

* text (any other suffix): one URI per line; ``#`` starts a comment; blank lines are skipped;
* CSV (``.csv``): a header with a ``uri`` column and optional ``name``; every other column
  (``match_id``, ``season``, ...) goes into ``meta`` (empty cells are left out);
* Parquet (``.parquet``, ``.pq``): the same columns, with their Parquet types.

Relative paths in a manifest are taken from the manifest's own folder. A manifest that cannot be
read as described raises :class:`~prtreid.errors.FormatError` naming the file and the line (or
row). Entries are not checked for existence here: a missing input becomes a failure record of
the run, so one bad line does not stop a season.

Pure functions, no Ray: they run on the driver before the dataset is built.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from prtreid.data.frames import VIDEO_SUFFIXES
from prtreid.data.soccernet import SEQINFO
from prtreid.errors import ConfigError, FormatError
from prtreid.storage import check_no_credentials, redact_uri, split_uri

PARQUET_SUFFIXES = (".parquet", ".pq")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_COMMENT = re.compile(r"\s+#.*$")
MAX_NAME_BYTES = 200
"""Longest path component of a result name: 255-byte file names less the suffixes and temporary names."""


@dataclass(frozen=True)
class VideoEntry:
    """One input of a bulk run.

    Attributes:
        uri: a local path (absolute) or ``s3://bucket/key`` of a video file or sequence folder.
        name: the result name: results go to ``<name>.txt``, ``<name>.tracks.parquet``,
            ``<name>.summary.json`` (``/`` makes sub-folders).
        meta: manifest columns carried into the summary's ``meta``.
    """

    uri: str
    name: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, str]:
        """A flat row for a Ray dataset (``meta`` as JSON so every row has the same schema)."""
        return {"uri": self.uri, "name": self.name, "meta_json": json.dumps(self.meta, default=str, sort_keys=True)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> VideoEntry:
        """Inverse of :meth:`to_row`."""
        return cls(str(row["uri"]), str(row["name"]), json.loads(str(row.get("meta_json") or "{}")))


def default_name(uri: str) -> str:
    """The result name of an input: a video's file stem, or a sequence folder's name."""
    base = posixpath.basename(uri.rstrip("/"))
    stem, suffix = posixpath.splitext(base)
    return stem if suffix.lower() in VIDEO_SUFFIXES else base


def check_name(name: str) -> str | None:
    """Why ``name`` cannot key result files, or ``None`` when it can."""
    if not name or not name.strip():
        return "empty name"
    if name.startswith("/") or "\\" in name or any(ord(c) < 32 for c in name):
        return f"name {name!r} must be a relative key without backslashes or control characters"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return f"name {name!r} has an empty, '.' or '..' path component"
    if any(len(part.encode("utf-8")) > MAX_NAME_BYTES for part in name.split("/")):
        return f"name {name[:40]!r}... has a path component over {MAX_NAME_BYTES} bytes: give it a shorter 'name'"
    return None


def resolve_uri(raw: str, base: str | None) -> str:
    """An absolute local path or an ``s3://`` URI; relative paths are taken from ``base``.

    Raises:
        ConfigError: a URI scheme other than ``s3://`` and ``file://``, or ``s3:/`` with one slash.
    """
    raw = raw.strip()
    check_no_credentials(raw)
    match = _SCHEME.match(raw)
    if match and match.group(1).lower() not in ("s3", "file"):
        raise ConfigError(f"unsupported URI scheme {match.group(1)!r} in {redact_uri(raw)!r} "
                          "(local paths, file:// or s3://)")
    if raw.lower().startswith("s3://"):
        return "s3://" + raw[5:].rstrip("/")
    if raw.lower().startswith("s3:"):  # never meant as a local folder named "s3:"
        raise ConfigError(f"{raw!r}: an S3 URI needs two slashes (s3://bucket/key)")
    path = raw[len("file://"):] if raw.lower().startswith("file://") else raw
    if base is not None and not posixpath.isabs(path):
        return _join(base, path)
    return posixpath.normpath(path) if posixpath.isabs(path) else posixpath.abspath(path)


def read_manifest(uri: str) -> list[VideoEntry]:
    """The entries of a manifest file (text, CSV or Parquet; local or ``s3://``).

    Raises:
        FormatError: a malformed line or row, a missing ``uri`` column, or two entries with one name.
        FileNotFoundError: no manifest at ``uri``.
    """
    fs, path = split_uri(uri)
    try:
        with fs.open_input_stream(path) as fh:
            data = fh.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{uri}: no such manifest") from None
    base = _parent(uri)
    suffix = posixpath.splitext(path)[1].lower()
    if suffix in PARQUET_SUFFIXES:
        return parse_parquet_manifest(data, uri, base)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(uri, data[: exc.start].count(b"\n") + 1, f"not UTF-8 text ({exc.reason})") from None
    if suffix == ".csv":
        return parse_csv_manifest(text, uri, base)
    return parse_text_manifest(text, uri, base)


def parse_text_manifest(text: str, source: str = "<manifest>", base: str | None = None) -> list[VideoEntry]:
    """Entries of a text manifest: one URI per line, ``#`` comments, blank lines skipped."""
    items: list[tuple[int, VideoEntry]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        content = "" if line.lstrip().startswith("#") else _COMMENT.sub("", line).strip()
        if not content:
            continue
        if any(c.isspace() for c in content):
            raise FormatError(source, lineno, f"expected one URI per line, got {content!r} "
                                              "(use a CSV manifest for names, metadata or paths with spaces)")
        items.append((lineno, _entry(content, None, {}, source, lineno, base)))
    return _unique(items, source)


def parse_csv_manifest(text: str, source: str = "<manifest>", base: str | None = None) -> list[VideoEntry]:
    """Entries of a CSV manifest with a ``uri`` column (and optional ``name`` and metadata columns)."""
    reader = csv.DictReader(io.StringIO(text), restkey="\0extra")
    if reader.fieldnames is None or "uri" not in [f.strip() for f in reader.fieldnames]:
        raise FormatError(source, 1, f"a CSV manifest needs a 'uri' column (header: {reader.fieldnames})")
    header = [f.strip() for f in reader.fieldnames if f.strip()]  # spreadsheets end headers with blank cells
    if len(set(header)) < len(header):
        raise FormatError(source, 1, f"column names repeat in the header ({', '.join(header)})")
    items: list[tuple[int, VideoEntry]] = []
    for row in reader:
        lineno = reader.line_num
        if "\0extra" in row or any(v is None for v in row.values()):
            raise FormatError(source, lineno, f"expected {len(reader.fieldnames)} fields "
                                              f"({', '.join(reader.fieldnames)})")
        row = {k.strip(): v.strip() for k, v in row.items()}
        if not any(row.values()):
            continue
        meta = {k: v for k, v in row.items() if k not in ("uri", "name") and v != ""}
        items.append((lineno, _entry(row["uri"], row.get("name") or None, meta, source, lineno, base)))
    return _unique(items, source)


def parse_parquet_manifest(data: bytes, source: str = "<manifest>", base: str | None = None) -> list[VideoEntry]:
    """Entries of a Parquet manifest with a ``uri`` column; ``where`` in errors is ``row N`` (1-based)."""
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise FormatError(source, None, f"not a Parquet file ({exc})") from None
    if "uri" not in table.column_names:
        raise FormatError(source, None, f"a Parquet manifest needs a 'uri' column (columns: {table.column_names})")
    items: list[tuple[int, VideoEntry]] = []
    for i, row in enumerate(table.to_pylist(), 1):
        uri, name = row.pop("uri"), row.pop("name", None)
        if not isinstance(uri, str):
            raise FormatError(source, f"row {i}", f"'uri' must be a string, got {uri!r}")
        meta = {k: v for k, v in row.items() if v is not None}
        items.append((f"row {i}", _entry(uri, None if name is None else str(name), meta, source, f"row {i}", base)))
    return _unique(items, source)


def list_inputs(prefix: str) -> list[VideoEntry]:
    """Every video file and sequence folder below a local folder or ``s3://`` prefix, sorted.

    Names are paths relative to ``prefix`` (without a video's suffix), so results mirror the
    input tree and two ``1_720p.mkv`` of different matches do not collide; where two inputs of a
    folder would share a name (``half1.mp4`` and ``half1.mkv``), the videos keep their suffix. ``prefix`` may also
    be a single video or sequence folder (named after itself).

    Raises:
        FileNotFoundError: nothing at ``prefix``.
    """
    uri = resolve_uri(prefix, None)
    fs, root = split_uri(uri)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{prefix}: no such folder, prefix or file")
    if info.type == pafs.FileType.File:
        return [VideoEntry(uri, default_name(uri))]
    files = [i.path for i in fs.get_file_info(pafs.FileSelector(root, recursive=True)) if i.type == pafs.FileType.File]
    seq_dirs = sorted({posixpath.dirname(p) for p in files if posixpath.basename(p) == SEQINFO})
    if root in seq_dirs:
        return [VideoEntry(uri, default_name(uri))]
    videos = [p for p in files if posixpath.splitext(p)[1].lower() in VIDEO_SUFFIXES
              and not any(p.startswith(d + "/") for d in seq_dirs)]
    scheme = "s3://" if uri.startswith("s3://") else ""
    paths = seq_dirs + videos
    names = [_relative_name(p, root) for p in paths]
    clashes = {n for n in names if names.count(n) > 1}  # half1.mp4 beside half1.mkv, or SNMOT-1.mp4 beside SNMOT-1/
    entries = [VideoEntry(scheme + p, posixpath.relpath(p, root) if n in clashes else n) for p, n in zip(paths, names)]
    for entry in entries:
        if problem := check_name(entry.name):
            raise FormatError(entry.uri, None, f"{problem} (list this input in a CSV manifest with a 'name')")
    return _unique([(e.uri, e) for e in sorted(entries, key=lambda e: e.name)], prefix)


def load_entries(manifest: str | None = None, prefix: str | None = None) -> list[VideoEntry]:
    """Entries of a manifest or of a prefix listing (exactly one of the two).

    Raises:
        FormatError: besides the manifest's own errors, no input at all.
    """
    if (manifest is None) == (prefix is None):
        raise ValueError("give exactly one of a manifest and an input prefix")
    entries = read_manifest(manifest) if manifest is not None else list_inputs(prefix)  # type: ignore[arg-type]
    if not entries:
        what = "the manifest lists no input" if manifest is not None else "no video file or sequence folder below it"
        raise FormatError(str(manifest or prefix), None, what)
    return entries


def _entry(raw: str, name: str | None, meta: dict[str, Any], source: str, where: int | str,
           base: str | None) -> VideoEntry:
    if not raw or not raw.strip():
        raise FormatError(source, where, "empty 'uri'")
    try:
        uri = resolve_uri(raw, base)
    except ValueError as exc:
        raise FormatError(source, where, str(exc)) from None
    name = name if name is not None else default_name(uri)
    problem = check_name(name)
    if problem:
        raise FormatError(source, where, problem)
    return VideoEntry(uri, name, meta)


def _unique(items: Iterable[tuple[int | str, VideoEntry]], source: str) -> list[VideoEntry]:
    seen: dict[str, int | str] = {}
    out = []
    for where, entry in items:
        if entry.name in seen:
            first = seen[entry.name]
            at = f"line {first}" if isinstance(first, int) else first
            raise FormatError(source, where, f"result name {entry.name!r} is already used at {at}: "
                                             "give each entry its own 'name' (CSV or Parquet manifest)")
        seen[entry.name] = where
        out.append(entry)
    return out


def _relative_name(path: str, root: str) -> str:
    rel = posixpath.relpath(path, root)
    stem, suffix = posixpath.splitext(rel)
    return stem if suffix.lower() in VIDEO_SUFFIXES else rel


def _parent(uri: str) -> str:
    if uri.lower().startswith("s3://"):
        return "s3://" + posixpath.dirname(uri[5:].rstrip("/"))
    return posixpath.dirname(posixpath.abspath(uri[7:] if uri.startswith("file://") else uri))


def _join(base: str, path: str) -> str:
    if base.startswith("s3://"):
        return "s3://" + posixpath.normpath(posixpath.join(base[5:], path))
    return posixpath.normpath(posixpath.join(base, path))
