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
    words = WORD.findall(text)
    # Ordered, non-overlapping matches whose lengths add up to the text's tile it.
    assert sum(map(len, words)) == len(text), "words must tile the text"
    return np.cumsum([0] + [len(w) for w in words[:-1]], dtype=np.int64) if words else np.zeros(0, np.int64)


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


def shared_starts(length: int, *starts: np.ndarray) -> np.ndarray:
    """The offsets in [0, length) that every one of `starts` contains: common boundaries."""
    shared = np.ones(length, dtype=bool)
    for offsets in starts:
        is_start = np.zeros(length, dtype=bool)
        is_start[offsets[offsets < length]] = True
        shared &= is_start
    return np.flatnonzero(shared)


def words_with_log_probs(text: str, token_starts: np.ndarray, token_logprobs: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Stage 1 for one tokenizer: the words of a hypothesis (merged where a token spans two)
    and each one's log-probability, the sum of its tokens'."""
    if not text:
        return [], np.zeros(0)
    groups = np.union1d(shared_starts(len(text), word_starts(text), token_starts), [0])
    which = np.searchsorted(groups, token_starts, side="right") - 1
    ends = list(groups[1:]) + [len(text)]
    return [text[a:b] for a, b in zip(groups, ends)], np.bincount(which, weights=token_logprobs, minlength=len(groups))


def split_over_pieces(group_logprob: np.ndarray, piece_groups: np.ndarray, confidence: np.ndarray,
                      weighting: str = "confidence") -> np.ndarray:
    """Eqn 7: each strong piece's log-probability, w_i · log P(group), weights summing to 1 per group.

    `confidence` is C_s per piece. "confidence" weights by e^{C_s} as Eqn 7 states;
    "inverse_confidence" by e^{−C_s}, as the authors' released code does.
    """
    # C_s is a probability, so e^{±C_s} needs no max-subtraction for stability.
    weights = np.exp(confidence if weighting == "confidence" else -confidence)
    totals = np.bincount(piece_groups, weights=weights, minlength=len(group_logprob))
    return weights / totals[piece_groups] * group_logprob[piece_groups]


def map_batch(texts: list[str], weak_starts: list[np.ndarray], weak_logprobs: list[np.ndarray],
              strong_starts: list[np.ndarray], strong_confidence: list[np.ndarray],
              weighting: str = "confidence") -> list[np.ndarray]:
    """Per hypothesis, each strong piece's target log-probability (Eqns 6-7).

    All hypotheses are laid end to end on one axis so that grouping, Eqn 6 and Eqn 7 are
    a handful of vectorised operations for the whole batch.
    """
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    base = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])  # +1 keeps a text's end apart from the next start
    total = int(base[-1] + lengths[-1] + 1) if len(texts) else 0

    def flat(starts_list):
        return np.concatenate([s + b for s, b in zip(starts_list, base)]) if starts_list else np.zeros(0, np.int64)

    weak_flat, strong_flat = flat(weak_starts), flat(strong_starts)
    opens = base[lengths > 0]  # every non-empty text opens a group
    groups = np.union1d(shared_starts(total, flat([word_starts(t) for t in texts]), weak_flat, strong_flat), opens)
    weak_group = np.searchsorted(groups, weak_flat, side="right") - 1
    strong_group = np.searchsorted(groups, strong_flat, side="right") - 1
    logp = np.bincount(weak_group, weights=np.concatenate(weak_logprobs), minlength=len(groups))
    pieces = split_over_pieces(logp, strong_group, np.concatenate(strong_confidence), weighting)
    return np.split(pieces, np.cumsum([len(s) for s in strong_starts])[:-1])


def map_hypothesis(text: str, weak_starts: np.ndarray, weak_logprobs: np.ndarray,
                   strong_starts: np.ndarray, strong_confidence: np.ndarray,
                   weighting: str = "confidence") -> np.ndarray:
    """One hypothesis's strong-piece target log-probabilities."""
    return map_batch([text], [weak_starts], [weak_logprobs], [strong_starts], [strong_confidence], weighting)[0]
