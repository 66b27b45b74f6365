"""Is a pipeline file what its writer writes? `ws2s verify [RESULTS]` asks it of every file under
results/, `ws2s inspect` of the one it shows.

Snakemake reruns a step whose output is missing or older than its inputs, never one whose
output is there but truncated or of another schema ("Nothing to be done"). Every writer goes
through a temporary file (`ws2s.io.atomic_path`), so such a file comes from elsewhere: a copy
cut short, a hand edit, another program. A Parquet file must be readable whole, its columns and
their types those of one kind in `ws2s.schemas`, every row with an id (and split), and class
probabilities finite and in [0, 1]; a JSON file must parse. What fails is listed with what to
delete; the workflow then makes it again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ws2s import schemas
from ws2s.errors import Ws2sError

KINDS = {
    "classification pairs": schemas.LABELLED_PAIRS,
    "classification pairs without gold": schemas.UNLABELLED_PAIRS,
    "gold labels": schemas.GOLD,
    "class probabilities": schemas.CLASS_PROBS,
    "strong predictions": schemas.STRONG_PREDICTIONS,
    "strong run curve": schemas.STRONG_CURVE,
    "strong generation run curve": schemas.STRONG_GENERATION_CURVE,
    "training curves": schemas.CURVES,
    "generation training curves": schemas.GENERATION_CURVES,
    "strong features": schemas.FEATURES,
    "SLURP utterances": schemas.UTTERANCES,
    "SLURP utterances without targets": schemas.UNLABELLED_UTTERANCES,
    "gold targets": schemas.GOLD_TARGETS,
    "weak generations": schemas.HYPOTHESES,
    "hypotheses in the strong tokenizer": schemas.MAPPED_HYPOTHESES,
    "Joint Decoding candidates": schemas.JOINT_CANDIDATES,
    "strong generations": schemas.GENERATIONS,
    "preference pairs": schemas.PREFERENCE_PAIRS,
}
LABEL_MODEL_KIND = "label-model soft labels"

REDO = "not what a ws2s step writes: delete it and rerun the workflow, which makes it again"


def _label_model_names() -> tuple[str, ...]:
    from ws2s.label_models import LABEL_MODELS

    return tuple(LABEL_MODELS)


def kind_of(path: Path) -> tuple[str, pa.Schema]:
    """The kind of a Parquet file, from its column names, and the schema its writer uses."""
    try:
        names = pq.read_schema(path).names
    except Exception as err:  # pyarrow raises several types for a non-Parquet file
        raise Ws2sError(f"{path}: not a readable Parquet file ({err}); delete it and rerun the step that makes it") \
            from None
    for kind, schema in KINDS.items():
        if names == schema.names:
            return kind, schema
    fixed = schemas.LABEL_MODEL_OUTPUTS.names
    if names[:len(fixed)] == fixed and set(names[len(fixed):]) <= set(_label_model_names()):
        return LABEL_MODEL_KIND, pa.schema([*schemas.LABEL_MODEL_OUTPUTS,
                                            *((m, pa.float32()) for m in names[len(fixed):])])
    raise Ws2sError(f"{path}: columns {names} match no ws2s file kind ({', '.join([*KINDS, LABEL_MODEL_KIND])})")


def _plain(kind: pa.DataType) -> pa.DataType:
    """large_string as string, large_list as list: the same values to every reader."""
    if pa.types.is_large_string(kind):
        return pa.string()
    if pa.types.is_large_list(kind) or pa.types.is_list(kind):
        return pa.list_(_plain(kind.value_type))
    return kind


def check_parquet(path: str | Path) -> tuple[str, pd.DataFrame]:
    """(kind, frame) of a pipeline Parquet file checked whole; anything its writer would not
    have written is one error naming the file, the column and the first bad row."""
    path = Path(path)
    if not path.is_file():
        raise Ws2sError(f"{path}: file not found")
    kind, expected = kind_of(path)
    actual = pq.read_schema(path)
    for field in expected:
        found = actual.field(field.name).type
        if _plain(found) != _plain(field.type):
            raise Ws2sError(f"{path}: column {field.name} holds {found}, a {kind} file {field.type}; {REDO}")
    try:
        frame = pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as err:
        raise Ws2sError(f"{path}: not a readable Parquet file ({err}); {REDO}") from None
    for column in ("id", "split"):
        if column in frame.columns and frame[column].isna().any():
            missing = frame[column].isna().to_numpy()
            raise Ws2sError(f"{path}: {int(missing.sum())} row(s) have no {column} (the first: row "
                            f"{int(missing.argmax()) + 1}); {REDO}")
    for column in ("prob_0", "prob_1"):
        if column in frame.columns:
            values = frame[column].to_numpy(dtype=np.float64)
            bad = ~(np.isfinite(values) & (values >= 0) & (values <= 1))
            if bad.any():
                first = int(bad.argmax())
                raise Ws2sError(f"{path}: {int(bad.sum())} row(s) have a {column} that is not a probability (the first: "
                                f"id {frame['id'].iloc[first]}, {values[first]}); {REDO}")
    return kind, frame


def check_json(path: str | Path) -> None:
    path = Path(path)
    try:
        json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise Ws2sError(f"{path}: not UTF-8 text (byte at offset {err.start}); {REDO}") from None
    except json.JSONDecodeError as err:
        raise Ws2sError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); {REDO}") from None


# Directory outputs: a bad file inside one is fixed by deleting the whole folder.
def _output_of(path: Path, root: Path) -> Path:
    parts = path.relative_to(root).parts
    if parts[0] == "models" and len(parts) > 2:
        return root / parts[0] / parts[1]
    for i, part in enumerate(parts[:-1]):
        if part == "model":
            return root.joinpath(*parts[:i + 1])
    return path


def _temporary(path: Path) -> bool:
    """A staging folder `.NAME.tmp` (`ws2s.io.staged_dir`) or a file `.NAME.XXXXXXXX.SUFFIX`
    (`ws2s.io.atomic_path`); not Snakemake's `.snakemake_timestamp` in a directory output."""
    if path.is_dir():
        return re.fullmatch(r"\..+\.tmp", path.name) is not None
    return re.fullmatch(r"\..+\.[a-z0-9_]{8}\.[A-Za-z0-9]+", path.name) is not None


def verify(root: str | Path) -> tuple[int, list[tuple[Path, str]]]:
    """(files checked, [(what to delete, why)]) for every Parquet and JSON file under `root`,
    and every temporary file or staging folder a killed step left there; other hidden files,
    logs, benchmarks, tables and figures are not checked."""
    root = Path(root)
    if not root.is_dir():
        raise Ws2sError(f"{root}: no such folder (give the workflow's results folder)")
    checked, bad, seen = 0, [], set()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).parts
        hidden = next((i for i, part in enumerate(relative) if part.startswith(".")), None)
        if hidden is not None:
            leftover = root.joinpath(*relative[:hidden + 1])
            if leftover not in seen and _temporary(leftover):
                bad.append((leftover, f"{leftover}: a temporary {'folder' if leftover.is_dir() else 'file'} a step "
                                      "left when it was killed (or one a running step is writing now)"))
            seen.add(leftover)
            continue
        if not path.is_file() or path.suffix not in (".parquet", ".json"):
            continue
        checked += 1
        try:
            check_parquet(path) if path.suffix == ".parquet" else check_json(path)
        except Ws2sError as err:
            output = _output_of(path, root)
            if output not in seen:
                seen.add(output)
                bad.append((output, str(err).removesuffix(f"; {REDO}")))
    return checked, bad
