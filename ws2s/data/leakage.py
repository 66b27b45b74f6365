"""Leakage between splits: nothing a model trains on is also what it is evaluated on.

A training split (weak_train, strong_train) and a held-out one (val, test, or the whole file
the test split is drawn from) must share no id and no text once both are lower-cased and
their whitespace collapsed. The split makers pass over repeated texts when they draw, so a
leak left here means the configured files overlap (e.g. `data.slurp.train` pointing at the
test file): an error naming both sources and the first shared item.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ws2s.errors import Ws2sError


def normalised(text) -> str:
    """A text as leakage compares it: lower-cased, whitespace runs collapsed to one space."""
    return " ".join(str(text).lower().split())


@dataclass(frozen=True)
class Part:
    """A split (or a whole file) and where its rows come from, e.g. "data.slurp.test: ./data/slurp/test.jsonl"."""

    name: str
    frame: pd.DataFrame
    origin: str


def check_disjoint(training: list[Part], held_out: list[Part], text: str, ids: tuple[str, ...] = ("id",)) -> None:
    """Every training part against every held-out part: an id column's value or the normalised
    `text` they share is one error naming both parts, their sources and the first shared item."""
    for part in training:
        if part.frame.empty:
            continue
        texts = part.frame[text].map(normalised)
        for other in held_out:
            if other.frame.empty:
                continue
            shared = pd.Series(False, index=part.frame.index)
            why = pd.Series("", index=part.frame.index)
            for column in reversed(ids):  # the first column's reason wins where several apply
                hit = part.frame[column].isin(set(other.frame[column]))
                shared |= hit
                why[hit] = f"the same {column}"
            hit = texts.isin(set(other.frame[text].map(normalised)))
            why[hit & ~shared] = "the same text, lower-cased and whitespace collapsed"
            shared |= hit
            if shared.any():
                first = shared.to_numpy().argmax()
                row = part.frame.iloc[first]
                item = ", ".join(f"{c} {row[c]}" for c in ids)
                sample = str(row[text])
                sample = sample if len(sample) <= 80 else sample[:77] + "..."
                raise Ws2sError(
                    f"leakage between splits: {part.name} ({part.origin}) and {other.name} ({other.origin}) share "
                    f"{int(shared.sum())} item(s), the first {item}, {sample!r} ({why.iloc[first]}); training and "
                    "evaluation data must be disjoint")
