"""Word-level cross-tokenizer mapping (Section 4.1, Figure 2, Eqns 6-7).

Words are the unit shared by two tokenizers. A *word* is a run of letters/digits/
underscores (with inner apostrophes, "o'clock", "don't") or one other non-space
character (JSON syntax `{ } " : ,` and punctuation are words of their own), together with
the whitespace before it; trailing whitespace is a word too. Words therefore tile the
text exactly.

Two tokenizers may split a word differently, or one token may span two words (byte-level
BPE merges `":`; SentencePiece attaches the space). A *group* is the smallest run of
words whose boundaries are token boundaries of both tokenizers: the coarsest common
segmentation. Each group is covered exactly by whole weak tokens and by whole strong
tokens, so

- Stage 1 (Eqn 6): log P(group) = Σ log-probs of the weak tokens in it;
- Stage 2 (Eqn 7): log P(s_i) = w_i · log P(group) over its strong pieces, with
  w_i = e^{C_s(s_i)} / Σ_j e^{C_s(s_j)}, C_s the strong model's confidence (the maximum of
  its output distribution) at that piece; Σ_i log P(s_i) = log P(group).
"""

from __future__ import annotations

import re

import numpy as np

WORD = re.compile(r"\s*(?:\w+(?:'\w+)*|[^\w\s])|\s+$")


def word_starts(text: str) -> np.ndarray:
    """Start offsets of the words of `text` (they tile it: each word ends where the next starts)."""
    starts, position = [], 0
    for match in WORD.finditer(text):
        assert match.start() == position, "words must tile the text"
        starts.append(match.start())
        position = match.end()
    assert position == len(text)
    return np.asarray(starts, dtype=np.int64)


def starts_from_offsets(offsets: list[tuple[int, int]]) -> np.ndarray:
    """Token start offsets from a fast tokenizer's offset mapping, made a tiling.

    A token's span runs from its start to the next token's start, so characters a
    tokenizer leaves out of every span (a SentencePiece space) belong to the token
    after them; the first token starts at 0.
    """
    starts = np.asarray([start for start, _ in offsets], dtype=np.int64)
    if len(starts):
        starts[0] = 0
        starts = np.maximum.accumulate(starts)
    return starts


def starts_from_decoding(decode_prefix, n_tokens: int) -> np.ndarray:
    """Token start offsets of generated ids: the length of the decoded prefix before each.

    `decode_prefix(k)` decodes the first k ids. A piece that is part of a multi-byte
    character decodes to nothing until the character completes, so it gets a zero-width
    span and its log-probability joins the group of the character.
    """
    lengths = [len(decode_prefix(k)) for k in range(n_tokens)]
    return np.maximum.accumulate(np.asarray(lengths, dtype=np.int64)) if lengths else np.zeros(0, np.int64)


def group_starts(text_length: int, *token_starts: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Boundaries shared by the words and every tokenizer: start offsets of the groups."""
    common = words
    for starts in token_starts:
        common = np.intersect1d(common, starts, assume_unique=False)
    common = np.union1d(common, [0]) if text_length else common
    return common[common < text_length]


def group_index(starts: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The group each token belongs to (by its start offset)."""
    return np.searchsorted(groups, starts, side="right") - 1


def group_log_probs(token_logprobs: np.ndarray, token_groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Eqn 6: log P(group) = Σ of its tokens' log-probabilities."""
    return np.bincount(token_groups, weights=token_logprobs, minlength=n_groups)


def split_over_pieces(group_logprob: np.ndarray, piece_groups: np.ndarray, confidence: np.ndarray,
                      weighting: str = "confidence") -> np.ndarray:
    """Eqn 7: each strong piece's log-probability, w_i · log P(group), weights summing to 1 per group.

    `confidence` is C_s per piece. "confidence" weights by e^{C_s} as Eqn 7 states;
    "inverse_confidence" by e^{−C_s}, as the authors' released code does.
    """
    scores = confidence if weighting == "confidence" else -confidence
    # Subtract each group's max before exponentiating (softmax within groups).
    group_max = np.full(len(group_logprob), -np.inf)
    np.maximum.at(group_max, piece_groups, scores)
    weights = np.exp(scores - group_max[piece_groups])
    totals = np.bincount(piece_groups, weights=weights, minlength=len(group_logprob))
    return weights / totals[piece_groups] * group_logprob[piece_groups]


def map_hypothesis(text: str, weak_starts: np.ndarray, weak_logprobs: np.ndarray,
                   strong_starts: np.ndarray, strong_confidence: np.ndarray,
                   weighting: str = "confidence") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per strong piece of `text`: its target log-probability, group index; and the group starts."""
    groups = group_starts(len(text), weak_starts, strong_starts, words=word_starts(text))
    weak_groups = group_index(weak_starts, groups)
    strong_groups = group_index(strong_starts, groups)
    logp_groups = group_log_probs(weak_logprobs, weak_groups, len(groups))
    return split_over_pieces(logp_groups, strong_groups, strong_confidence, weighting), strong_groups, groups
