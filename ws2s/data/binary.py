"""Multiple-choice questions -> balanced binary "text + candidate answer -> correct?" pairs.

As in Burns et al. (2023) and the paper: every question yields one pair with its correct
answer (label 1) and one with a distractor drawn by a seeded generator (label 0), so each
split is exactly 50/50. Splits are disjoint by question. Ids are content hashes, so the
same question and candidate get the same id whatever the seed or split sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ws2s.data.leakage import normalised
from ws2s.errors import Ws2sError
from ws2s.frames import content_id

# val comes last, so adding a validation split leaves the other three as they were.
SPLITS = ("weak_train", "strong_train", "test", "val")


@dataclass(frozen=True)
class Question:
    text: str  # everything the candidate answers: context and question
    correct: str
    distractors: tuple[str, ...]


def question_pairs(dataset: str, question: Question, rng: np.random.Generator) -> list[dict]:
    """The two labelled pairs of one question: its correct answer and one distractor."""
    qid = content_id(dataset, question.text)
    distractors = [d for d in question.distractors if d != question.correct]
    if not distractors:
        raise Ws2sError(f"{dataset}: question {qid} has no distractor distinct from its answer")
    distractor = distractors[int(rng.integers(len(distractors)))]
    return [
        {"id": content_id(dataset, question.text, cand), "question_id": qid,
         "text": question.text, "candidate": cand, "label": label}
        for cand, label in ((question.correct, 1), (distractor, 0))
    ]


def make_splits(dataset: str, questions: list[Question], sizes: dict[str, int], seed: int) -> dict[str, pd.DataFrame]:
    """Balanced binary splits of `sizes[split]` pairs each, disjoint by question.

    Questions with identical text are merged first (they would share a question id and
    could otherwise land in two splits); the smallest (answer, distractors) is kept, so the
    result does not depend on the source's row order. So are texts that differ only in case
    or whitespace.
    """
    sizes = {"val": 0, **sizes}
    for split in SPLITS:
        if sizes[split] % 2:
            raise Ws2sError(f"classification.split_sizes.{split}: {sizes[split]} is odd; each question gives two pairs")
    unique: dict[str, Question] = {}
    for q in questions:
        kept = unique.get(q.text)
        if kept is None or (q.correct, q.distractors) < (kept.correct, kept.distractors):
            unique[q.text] = q
    # Texts equal once lower-cased and whitespace-collapsed are one question too (the smallest
    # text kept): otherwise two splits could hold it. Where none differ so, nothing changes.
    kept_text: dict[str, str] = {}
    for text in sorted(unique):
        kept_text.setdefault(normalised(text), text)
    unique = {text: unique[text] for text in kept_text.values()}
    needed = sum(sizes[s] // 2 for s in SPLITS)
    if needed > len(unique):
        raise Ws2sError(
            f"classification.split_sizes: {dataset} has {len(unique)} distinct questions, the splits need {needed} "
            f"({', '.join(f'{s}={sizes[s]}' for s in SPLITS)} pairs, two per question)"
        )
    rng = np.random.default_rng(seed)
    ordered = [unique[t] for t in sorted(unique)]
    order = rng.permutation(len(ordered))
    splits, start = {}, 0
    for split in SPLITS:
        count = sizes[split] // 2
        rows = [pair for i in order[start:start + count] for pair in question_pairs(dataset, ordered[i], rng)]
        start += count
        frame = pd.DataFrame(rows, columns=["id", "question_id", "text", "candidate", "label"])
        # Shuffle pairs so a batch never sees a question's two pairs side by side by construction.
        splits[split] = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    return splits
