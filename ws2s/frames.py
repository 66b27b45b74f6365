"""Frame helpers every stage shares: the columns of its inputs, one join by id that checks
its ids, the class-probability rows and their check. No stage imports another: what two
stages share lives here or in a library module (`ws2s.train.classify`, `.generate`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ws2s import schemas
from ws2s.errors import Ws2sError

PAIR_COLUMNS = [f.name for f in schemas.UNLABELLED_PAIRS]
UTTERANCE_COLUMNS = [f.name for f in schemas.UTTERANCES]


def content_id(*parts: str) -> str:
    """A stable 16-hex-digit id of the given strings."""
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:16]


def gold_by_split(gold_files: list[str]) -> dict[str, str]:
    """The gold files a rule hands over (`{split}_gold.parquet`), by split."""
    return {Path(f).name.removesuffix("_gold.parquet"): f for f in gold_files}


def align_by_id(frame: pd.DataFrame, ids: pd.Series, what: str) -> pd.DataFrame:
    """`frame`'s rows in the order of `ids`, indexed by id; every id must be there exactly once."""
    indexed = frame.set_index("id")
    if not indexed.index.is_unique:
        duplicated = indexed.index[indexed.index.duplicated()]
        raise Ws2sError(f"{what}: id {duplicated[0]} appears more than once ({len(duplicated)} duplicates)")
    missing = ids[~ids.isin(indexed.index)]
    if len(missing):
        raise Ws2sError(f"{what}: no row for id {missing.iloc[0]} ({len(missing)} ids missing)")
    return indexed.loc[ids]


def aligned(frame: pd.DataFrame, ids: pd.Series, columns: list[str], what: str) -> np.ndarray:
    """`frame[columns]` in the order of `ids` (see `align_by_id`), as an array."""
    return align_by_id(frame, ids, what)[columns].to_numpy()


def probabilities(values: np.ndarray, ids: pd.Series, what: str) -> np.ndarray:
    """Class probabilities [B, K] checked: finite, in [0, 1], each row summing to 1."""
    values = values.astype(np.float64)
    bad = ~np.isfinite(values).all(axis=1) | (values < 0).any(axis=1) | (values > 1).any(axis=1) \
        | (np.abs(values.sum(axis=1) - 1) > 1e-3)
    if bad.any():
        row = int(np.argmax(bad))
        raise Ws2sError(f"{what}: id {ids.iloc[row]} has class probabilities {values[row].tolist()}, not finite ones "
                        f"in [0, 1] summing to 1 ({int(bad.sum())} such rows)")
    return values


def probs_frame(ids: pd.Series, split: str, probs: np.ndarray) -> pd.DataFrame:
    """Rows of the weak-label / prediction schema for one split."""
    return pd.DataFrame({
        "id": ids.to_numpy(),
        "split": split,
        "prob_0": probs[:, 0],
        "prob_1": probs[:, 1],
        "pred": probs.argmax(axis=1).astype(np.int8),
    })


def fewgold_ids(val_ids, size: int, seed: int, key: str = "classification.fewgold_val") -> np.ndarray:
    """The few-gold subset of val for one seed: `size` ids drawn without replacement, the same
    for every run of that seed (whatever order val's ids come in); `key` names the size's
    config key in the error."""
    ordered = np.sort(np.asarray(val_ids, dtype=object))
    if not 0 < size <= len(ordered):
        raise Ws2sError(f"{key}: {size} asked for, the validation split has {len(ordered)}")
    return ordered[np.random.default_rng(seed).permutation(len(ordered))[:size]]
