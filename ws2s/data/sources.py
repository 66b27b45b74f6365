"""Raw data sources: a hub id or a local copy, read into plain records.

A source is a dict from the config: `{source: WHERE, split: NAME}`. WHERE is a local file or
folder when it starts with `/`, `./`, `../` or `~`, and a Hugging Face hub id otherwise.
A configured source that cannot be read fails with the path or hub id and how to get
it; nothing ever falls back to other data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from ws2s.errors import Ws2sError
from ws2s.io import not_utf8, read_jsonl

_READERS = {
    ".parquet": pd.read_parquet,
    ".csv": pd.read_csv,
    ".jsonl": lambda p: pd.read_json(p, lines=True),
    ".json": pd.read_json,
}


# A folder's SHA256SUMS (the format of `sha256sum`) pins the files it lists.
CHECKSUMS = "SHA256SUMS"


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_pinned(path: Path, key: str) -> None:
    """A file listed in the SHA256SUMS beside it must still have that hash: an edited or
    truncated copy of pinned data is an error, never silently other splits."""
    sums = path.parent / CHECKSUMS
    if not sums.is_file():
        return
    pinned = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        pinned[name.strip().lstrip("*")] = digest.strip()
    expected = pinned.get(path.name)
    if expected is not None and _sha256(path) != expected:
        raise Ws2sError(f"{key}: {path} does not match the sha256 pinned for it in {sums}: the file was changed or "
                        f"truncated; restore the original (see data/README.md), or update its line if the change is meant")


def local_files(path: Path, key: str) -> list[Path]:
    """The data files a local source reads: the file, or a folder's supported files."""
    if not path.exists():
        raise Ws2sError(f"{key}: {path} does not exist; download the data set there or set {key} to its hub id")
    files = sorted(p for p in path.iterdir() if p.suffix in _READERS) if path.is_dir() else [path]
    if not files:
        raise Ws2sError(f"{key}: {path} holds no .parquet/.csv/.jsonl/.json file")
    for file in files:
        if file.suffix not in _READERS:
            raise Ws2sError(f"{key}: {file} has an unsupported extension (use {', '.join(_READERS)})")
    return files


def source_files(source: dict, key: str) -> list[Path]:
    """The local files a configured source `{source: WHERE}` reads; none for a hub id."""
    where = source["source"]
    return local_files(Path(where).expanduser(), f"{key}.source") if is_local(where) else []


def _read_local(path: Path, key: str) -> pd.DataFrame:
    frames, files = [], local_files(path, f"{key}.source")
    for file in files:
        verify_pinned(file, f"{key}.source")
        try:
            frames.append(_READERS[file.suffix](file))
        except UnicodeDecodeError:  # its offset is within the reader's chunk: find the byte in the file
            raise not_utf8(file.read_bytes(), f"{key}.source: {file}") or Ws2sError(
                f"{key}.source: {file}: not UTF-8 text") from None
        except ValueError as err:
            raise Ws2sError(f"{key}.source: {file} could not be parsed ({err})") from None
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs["origins"] = [(file, len(part)) for file, part in zip(files, frames)]
    return frame


def _read_hub(hub_id: str, split: str, key: str) -> pd.DataFrame:
    try:
        import datasets

        frame = datasets.load_dataset(hub_id, split=split).to_pandas()
        frame.attrs["hub"] = f"{hub_id} (split {split})"
        return frame
    except Exception as err:  # the hub client raises many types when offline
        raise Ws2sError(
            f"{key}.source: could not load '{hub_id}' (split {split}) from the Hugging Face hub "
            f"({type(err).__name__}); on an offline machine download it and set {key}.source to the local copy (a path starting with / or ./)"
        ) from None


def is_local(where: str) -> bool:
    return where.startswith(("/", "./", "../", "~"))


def read_table(source: dict, key: str, required_columns: list[str]) -> pd.DataFrame:
    """Read a configured source into a frame and check that it has `required_columns`."""
    where = source["source"]
    if is_local(where):
        frame = _read_local(Path(where).expanduser(), key)
    else:
        frame = _read_hub(where, source.get("split", "train"), key)
    missing = [c for c in required_columns if c not in frame.columns]
    if missing:
        raise Ws2sError(f"{key}: {where} lacks column(s) {', '.join(missing)}")
    return frame


def row_origin(frame: pd.DataFrame, position: int, key: str) -> str:
    """Where row `position` (from 0) of a `read_table` frame comes from, for an error: `KEY.source:
    FILE line N` for a JSON-lines file (blank lines counted, as an editor shows them), `FILE row N`
    (data rows from 1, a header not counted) for another file, `HUB_ID (split S) row N` for the hub."""
    start = 0
    for file, count in frame.attrs.get("origins", []):
        if position < start + count:
            index = position - start
            if file.suffix == ".jsonl":
                lines = [n for n, line in enumerate(file.read_bytes().splitlines(), 1) if line.strip()]
                return f"{key}.source: {file} line {lines[index] if index < len(lines) else '?'}"
            return f"{key}.source: {file} row {index + 1}"
        start += count
    return f"{key}.source: {frame.attrs.get('hub', '?')} row {position + 1}"


def read_jsonl_records(path: str | Path, key: str) -> list[tuple[int, dict]]:
    """Official SLURP-style jsonl: (line number, object) per record; a bad line is named by number."""
    path = Path(path)
    if not path.exists():
        raise Ws2sError(f"{key}: {path} does not exist; get the official SLURP jsonl files (dataset/slurp/)")
    verify_pinned(path, key)
    return read_jsonl(path, key)
