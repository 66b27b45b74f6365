"""Parquet and JSON I/O that never leaves a half-written file behind.

Every writer goes to a temporary file in the destination folder and renames it into
place, so a killed job leaves either the old file or none, never a truncated one that
a later run could take for a result.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ws2s.errors import Ws2sError


@contextmanager
def atomic_path(path: str | Path):
    """A temporary path to write `path` through: renamed into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    # mkstemp makes the file private (0600); results should be as readable as any file.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def sigterm_exits():
    """SIGTERM raises SystemExit(143) while the block runs, so its cleanup (`finally`) runs too;
    by default SIGTERM ends a process at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(*_):
        raise SystemExit(128 + signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def staged_dir(out_dir: str | Path):
    """(build, scratch): folders to make the directory output `out_dir` in. Both live in the
    output's own staging folder `.NAME.tmp` beside it, which a previous, killed run may have
    left and which is emptied first; `build` is renamed into place when the block succeeds, and
    the staging folder is removed whether it succeeds, fails or is stopped by SIGTERM."""
    out_dir = Path(out_dir)
    staging = out_dir.parent / f".{out_dir.name}.tmp"
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    build, scratch = staging / "build", staging / "scratch"
    build.mkdir(parents=True)
    scratch.mkdir()
    try:
        with sigterm_exits():
            yield build, scratch
        if out_dir.exists():
            shutil.rmtree(out_dir)
        build.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_parquet(frame: pd.DataFrame, path: str | Path, schema: pa.Schema | None = None) -> None:
    """Write `frame` to `path` atomically, cast to `schema` when given."""
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), tmp)


def write_json(obj, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_parquet(path: str | Path, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Read a pipeline Parquet file; a missing, truncated or wrong-schema file is one clear error."""
    path = Path(path)
    if not path.exists():
        raise Ws2sError(f"{path}: file not found")
    try:
        frame = pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as err:
        raise Ws2sError(
            f"{path}: not a readable Parquet file ({err}); delete it and rerun the step that makes it"
        ) from None
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise Ws2sError(
                f"{path}: missing column(s) {', '.join(missing)}; has {', '.join(frame.columns)}"
            )
    return frame


def read_json(path: str | Path):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise Ws2sError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise Ws2sError(f"{path}: not valid JSON ({err})") from None


def run_record(path: str | Path) -> dict:
    """The metrics.json written beside `path` by the run that wrote it: what that run was
    (dataset, model or method and source, aux, seed), so that tables and figures read runs,
    never the names of their folders."""
    return read_json(Path(path).with_name("metrics.json"))


def not_utf8(raw: bytes, name: str) -> Ws2sError | None:
    """Where bytes stop being UTF-8 text, as an error naming `name`, the line and the byte's
    offset in the file (a decoder reading in chunks reports an offset within its chunk)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        return Ws2sError(f"{name} line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
                         "save it as UTF-8")
    return None


def read_jsonl(path: str | Path, where: str | None = None) -> list[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a JSON-lines file. A missing file, a line
    that is not a JSON object, text that is not UTF-8 or a file without records is one error
    naming the file (and `where`, the config key it came from) and the line."""
    path = Path(path)
    name = f"{where}: {path}" if where else str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise Ws2sError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise Ws2sError(f"{name}: a folder, not a JSON-lines file") from None
    error = not_utf8(raw, name)
    if error is not None:
        raise error
    records = []
    # as a text-mode file reads it: \r\n and \r end lines too
    for number, line in enumerate(io.StringIO(raw.decode("utf-8").removeprefix("\ufeff"), newline=None), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise Ws2sError(f"{name} line {number} is not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise Ws2sError(f"{name} line {number} is a JSON {type(record).__name__}, not an object")
        records.append((number, record))
    if not records:
        raise Ws2sError(f"{name}: no records (an empty file)")
    return records
