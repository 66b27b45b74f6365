"""Classification data sets: one registry entry per data set with everything about it (its
loader of multiple-choice questions, the yes/no prompt that asks a causal LM about one pair,
its title and its table), and the generic loader of a user's own file (`data.NAME.format`).

The track is binary ("text + candidate -> correct?", Burns et al. 2023): a K-way data set
enters it as questions whose candidates are its classes, as SLURP intents do.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ws2s.data.binary import Question, make_splits
from ws2s.data.sources import read_table, row_origin
from ws2s.errors import Ws2sError

QuestionLoader = Callable[[dict, str], list[Question]]

# Each pair as a yes/no question for a causal-LM strong model (`strong_training.head: readout`):
# its answer, read off the model's output layer, is the strong model's own zero-shot label.
MULTIPLE_CHOICE_PROMPT = "{text}\nProposed answer: {candidate}\nIs the proposed answer correct? Answer only yes or no."
CLASSES_PROMPT = 'Text: "{text}" Is its label "{candidate}"? Answer only yes or no.'


@dataclass(frozen=True)
class ClassificationDataset:
    """Everything about one data set: what reads it, how the strong model is asked, how it is named."""

    loader: QuestionLoader
    prompt: str  # with {text} and {candidate}
    title: str  # in tables and figures
    table: str  # its Weak(S)-to-Strong table: results/tables/TABLE.csv
    paper_table: str | None = None  # the paper's table it reproduces, if any


CLASSIFICATION_DATASETS: dict[str, ClassificationDataset] = {}


def register(name: str, *, title: str, table: str, prompt: str = MULTIPLE_CHOICE_PROMPT,
             paper_table: str | None = None):
    """Register a built-in data set's loader under its config name (`data.NAME`)."""
    def wrap(fn: QuestionLoader) -> QuestionLoader:
        CLASSIFICATION_DATASETS[name] = ClassificationDataset(fn, prompt, title, table, paper_table)
        return fn
    return wrap


def _text(value) -> str:
    return "" if pd.isna(value) else str(value).strip()


@register("sciq", title="SciQ", table="table2", paper_table="Table 2")
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


def _option_index(value, n_options: int, where: str, what: str = "an answer index",
                  hint: str = " (an unlabelled split carries -1)") -> int:
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
        raise Ws2sError(f"{where}: 'label' must be {what} in 0..{n_options - 1}; got {value!r}{hint}")
    return index


@register("cosmosqa", title="Cosmos QA", table="table7", paper_table="Table 7")
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


@register("slurp_intent", title="SLURP intents", table="table_slurp_intent",
          prompt='A voice assistant heard: "{text}" Is the user\'s intent "{candidate}"? Answer only yes or no.')
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




# ---- a user's own data set, from a file -------------------------------------------------------

FILE_FORMATS = {
    # format -> (columns it needs, default prompt)
    "pairs": (("text", "candidate", "label"), MULTIPLE_CHOICE_PROMPT),
    "classes": (("text", "label"), CLASSES_PROMPT),
}


def prompt_problem(prompt: str) -> str | None:
    """Why a yes/no prompt cannot be filled with a pair, or None: it must name {text} and
    {candidate} and no other field (literal braces doubled, as in str.format)."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None}
    except ValueError as err:
        return f"not a format string ({err}); write literal braces as {{{{ and }}}}"
    if missing := {"text", "candidate"} - fields:
        return f"lacks {', '.join('{' + m + '}' for m in sorted(missing))}"
    if other := fields - {"text", "candidate"}:
        return f"has field(s) {', '.join('{' + o + '}' for o in sorted(other))}; only {{text}} and {{candidate}} are filled"
    return None


def _row(frame: pd.DataFrame, position: int, key: str) -> str:
    """`FILE row N` (or `line N`) of a row, for naming a second row in an error."""
    return row_origin(frame, position, key).removeprefix(f"{key}.source: ")


def _nonblank(frame: pd.DataFrame, column: str, key: str) -> list[str]:
    values = []
    for position, value in enumerate(frame[column]):
        text = _text(value)
        if not text:
            raise Ws2sError(f"{row_origin(frame, position, key)}: '{column}' is empty")
        values.append(text)
    return values


def _unique_ids(frame: pd.DataFrame, key: str) -> None:
    """An `id` column, where the file has one, names each row once."""
    if "id" not in frame.columns:
        return
    first: dict[str, int] = {}
    for position, value in enumerate(frame["id"]):
        if _text(value) in first:
            raise Ws2sError(f"{row_origin(frame, position, key)}: duplicate id {_text(value)!r} "
                            f"(first at {_row(frame, first[_text(value)], key)})")
        first[_text(value)] = position


def load_file(source: dict, key: str) -> list[Question]:
    """A user's file (CSV, JSON lines or Parquet) as questions, by `source['format']`:
    - pairs: `text, candidate, label` with label 1 for a correct candidate and 0 for a wrong
      one; a text's rows are one question, with exactly one correct candidate and at least one
      wrong one;
    - classes: `text, label`, the label a class name; each text is a question whose candidates
      are the classes (`source['classes']`, or every label the file holds).
    An optional `id` column must be unique. Every problem names the file and row."""
    columns, _ = FILE_FORMATS[source["format"]]
    frame = read_table(source, key, list(columns))
    _unique_ids(frame, key)
    texts = _nonblank(frame, "text", key)
    if source["format"] == "classes":
        return _class_questions(frame, texts, source.get("classes"), key)
    return _pair_questions(frame, texts, key)


def _pair_questions(frame: pd.DataFrame, texts: list[str], key: str) -> list[Question]:
    candidates = _nonblank(frame, "candidate", key)
    labels = [_option_index(v, 2, row_origin(frame, i, key), "a correctness label", " (1: correct, 0: wrong)")
              for i, v in enumerate(frame["label"])]
    rows: dict[str, list[int]] = {}
    seen: dict[tuple[str, str], int] = {}
    for position, pair in enumerate(zip(texts, candidates)):
        if pair in seen:
            raise Ws2sError(f"{row_origin(frame, position, key)}: the same text and candidate as "
                            f"{_row(frame, seen[pair], key)}; give each pair once")
        seen[pair] = position
        rows.setdefault(pair[0], []).append(position)
    questions = []
    for text, positions in rows.items():
        correct = [p for p in positions if labels[p] == 1]
        if len(correct) != 1 or len(correct) == len(positions):
            problem = (f"{len(correct)} correct candidates ({', '.join(_row(frame, p, key) for p in correct)}); "
                       "one is needed" if len(correct) > 1 else "no correct candidate (label 1)" if not correct
                       else "no wrong candidate (label 0)")
            raise Ws2sError(f"{row_origin(frame, positions[0], key)}: its text has {problem}")
        questions.append(Question(text, candidates[correct[0]],
                                  tuple(candidates[p] for p in positions if labels[p] == 0)))
    return questions


def _class_questions(frame: pd.DataFrame, texts: list[str], classes: list[str] | None, key: str) -> list[Question]:
    labels = _nonblank(frame, "label", key)
    known = list(classes) if classes else sorted(set(labels))
    if len(known) < 2:
        raise Ws2sError(f"{key}: {len(known)} class(es) ({', '.join(known)}); a classification needs two or more")
    label_of: dict[str, int] = {}
    for position, (text, label) in enumerate(zip(texts, labels)):
        if label not in known:
            raise Ws2sError(f"{row_origin(frame, position, key)}: label {label!r} is not among {key}.classes "
                            f"({', '.join(known)})")
        first = label_of.setdefault(text, position)
        if labels[first] != label:
            raise Ws2sError(f"{row_origin(frame, position, key)}: its text is labelled {label!r} here and "
                            f"{labels[first]!r} at {_row(frame, first, key)}")
    return [Question(text, labels[p], tuple(c for c in known if c != labels[p])) for text, p in label_of.items()]


def dataset_of(name: str, source: dict) -> ClassificationDataset:
    """The registry entry of `data.NAME`: a built-in data set's, or one made from the config of
    a user's file (`format` set), with its prompt, title and table `table_NAME`."""
    if "format" not in source:
        return CLASSIFICATION_DATASETS[name]
    return ClassificationDataset(load_file, source.get("prompt") or FILE_FORMATS[source["format"]][1],
                                 source.get("title") or name, f"table_{name}")


__all__ = ["CLASSIFICATION_DATASETS", "ClassificationDataset", "Question", "dataset_of", "make_splits"]
