"""Classification data sets: a registry from config name to a loader of multiple-choice
questions, and the yes/no prompt that asks a causal LM about one pair."""

from __future__ import annotations

import json
import re
from typing import Callable

import numpy as np
import pandas as pd

from ws2s.data.binary import Question, make_splits
from ws2s.data.sources import read_table, row_origin
from ws2s.errors import Ws2sError

QuestionLoader = Callable[[dict, str], list[Question]]
CLASSIFICATION_DATASETS: dict[str, QuestionLoader] = {}


def register(name: str):
    def wrap(fn: QuestionLoader) -> QuestionLoader:
        CLASSIFICATION_DATASETS[name] = fn
        return fn
    return wrap


def _text(value) -> str:
    return "" if pd.isna(value) else str(value).strip()


@register("sciq")
def load_sciq(source: dict, key: str) -> list[Question]:
    """SciQ (allenai/sciq): `question`, `correct_answer`, `distractor1..3`, `support`.

    The support paragraph is prepended only when the source sets `use_support: true`;
    Burns et al. classify from the question and candidate alone.
    """
    frame = read_table(source, key, ["question", "correct_answer", "distractor1", "distractor2", "distractor3"])
    with_support = source.get("use_support", False)
    return [
        Question(
            text=(f"{_text(row.support)}\nQ: {_text(row.question)}" if with_support and _text(row.support)
                  else f"Q: {_text(row.question)}"),
            correct=_text(row.correct_answer),
            distractors=tuple(_text(getattr(row, f"distractor{i}")) for i in (1, 2, 3)),
        )
        for row in frame.itertuples(index=False)
    ]


def _option_index(value, n_options: int, where: str) -> int:
    """A gold answer index in 0..n_options − 1; anything else (an unlabelled split's -1, a
    7, a blank, an `x`) is an error naming the row and its value, never an answer picked by
    wrap-around. A CSV column holding one `x` is read as text: its other rows' "1" are fine."""
    value = value.item() if isinstance(value, np.generic) else value
    index = None
    if isinstance(value, str):
        index = int(value) if re.fullmatch(r"\s*-?\d+\s*", value) else None
    elif not isinstance(value, bool):
        try:
            index = int(value)
        except (TypeError, ValueError, OverflowError):
            index = None
        if index is not None and index != value:
            index = None
    if index is None or not 0 <= index < n_options:
        raise Ws2sError(f"{where}: 'label' must be an answer index in 0..{n_options - 1}; got {value!r} "
                        "(an unlabelled split carries -1)")
    return index


@register("cosmosqa")
def load_cosmosqa(source: dict, key: str) -> list[Question]:
    """Cosmos QA (`id,context,question,answer0..3,label`): the labelled answer is correct."""
    answers = [f"answer{i}" for i in range(4)]
    frame = read_table(source, key, ["context", "question", *answers, "label"])
    questions = []
    for position, row in enumerate(frame.itertuples(index=False)):
        options = [_text(getattr(row, a)) for a in answers]
        label = _option_index(row.label, len(options), row_origin(frame, position, key))
        questions.append(Question(
            text=f"{_text(row.context)}\nQ: {_text(row.question)}",
            correct=options[label],
            distractors=tuple(o for i, o in enumerate(options) if i != label),
        ))
    return questions


@register("slurp_intent")
def load_slurp_intent(source: dict, key: str) -> list[Question]:
    """SLURP utterances (`sentence`, `intent`; the official jsonl, a file or a folder of them)
    as "utterance + candidate intent -> correct?": every other intent is a distractor.

    Not a data set of the paper: its short texts and wide accuracy range (near chance to
    about 80% for a 135M probe) make the weak-strong gap measurable on a CPU, where Cosmos
    QA's long contexts leave every small model within a few points of chance.
    """
    frame = read_table(source, key, ["sentence", "intent"])
    for column, what in (("sentence", "the utterance"), ("intent", "its intent, which names the correct candidate")):
        blank = frame[column].map(lambda v: not isinstance(v, str) or not v.strip()).to_numpy()
        if blank.any():
            position = int(blank.argmax())
            value = frame[column].iloc[position]
            shown = "no such field" if value is None or (isinstance(value, float) and np.isnan(value)) \
                else json.dumps(value, default=str)
            raise Ws2sError(f"{row_origin(frame, position, key)}: '{column}' must be a non-empty string ({what}); "
                            f"got {shown} ({int(blank.sum())} such record(s))")
    intents = sorted(set(frame["intent"].map(_text)))
    readable = {intent: intent.replace("_", " ") for intent in intents}
    return [
        Question(text=_text(row.sentence), correct=readable[_text(row.intent)],
                 distractors=tuple(readable[i] for i in intents if i != _text(row.intent)))
        for row in frame.itertuples(index=False)
    ]


# Each pair as a yes/no question for a causal-LM strong model (`strong_training.head: readout`):
# its answer, read off the model's output layer, is the strong model's own zero-shot label.
YES_NO_PROMPTS = {
    "sciq": "{text}\nProposed answer: {candidate}\nIs the proposed answer correct? Answer only yes or no.",
    "cosmosqa": "{text}\nProposed answer: {candidate}\nIs the proposed answer correct? Answer only yes or no.",
    "slurp_intent": 'A voice assistant heard: "{text}" Is the user\'s intent "{candidate}"? Answer only yes or no.',
}

__all__ = ["CLASSIFICATION_DATASETS", "YES_NO_PROMPTS", "Question", "make_splits"]
