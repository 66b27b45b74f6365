"""Parquet and JSON I/O that never leaves a half-written file behind.

Every writer goes to a temporary file in the destination folder and renames it into
place, so a killed job leaves either the old file or none, never a truncated one that
a later run could take for a result.
"""

from __future__ import annotations

import json
import os
import tempfile
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
