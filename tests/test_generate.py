import numpy as np
import pytest
import torch

from ws2s.mapping import words_with_log_probs
from ws2s.train.generate import encode_pairs, finetune, generate, load_causal, sequence_nll

PROMPTS = ['Slots of "wake me at five am": ', 'Slots of "play jazz": ', 'Slots of "what\'s the time": ']
TARGETS = ['{"time": "five am"}', '{"music_genre": "jazz"}', "{}"]


@pytest.mark.parametrize("train_layers", ["all", 1])
def test_finetune_lowers_validation_loss_and_keeps_the_best(tiny_llama, train_layers):
    """Every weight, or the top block on cached states of the frozen bottom one."""
    from ws2s.train.backbone import freeze_for

    model, tokenizer = load_causal(tiny_llama)
    freeze_for(model, train_layers)
    items = encode_pairs(tokenizer, PROMPTS * 4, TARGETS * 4)
    before = sequence_nll(model, tokenizer, items, 4)
    result = finetune(model, tokenizer, items, items, epochs=3, batch_size=4, lr=3e-3,
                      generator=torch.Generator().manual_seed(0), desc="t", train_layers=train_layers)
    after = sequence_nll(model, tokenizer, items, 4)
    assert after < before and len(result.val_losses) == 3
    assert after == pytest.approx(min(result.val_losses), rel=1e-5)  # the best epoch's weights are kept
    assert result.best_epoch == int(np.argmin(result.val_losses))


def test_labels_cover_only_the_target(tiny_llama):
    _, tokenizer = load_causal(tiny_llama)
    (ids, start), = encode_pairs(tokenizer, PROMPTS[:1], TARGETS[:1])
    assert tokenizer.decode(ids[start:-1]) == TARGETS[0] and ids[-1] == tokenizer.eos_token_id


def test_generation_gives_per_token_log_probs_that_add_up(tiny_llama):
    model, tokenizer = load_causal(tiny_llama)
    hyps = generate(model, tokenizer, PROMPTS, beams=3, max_new_tokens=8, batch_size=2)
    assert len(hyps) == 3
    for prompt, hyp in zip(PROMPTS, hyps):
        assert len(hyp.token_logprobs) == len(hyp.token_ids) == len(hyp.token_starts)
        assert len(hyp.nbest) == 3 and hyp.nbest[0] == hyp.text
        assert tokenizer.decode(hyp.token_ids, clean_up_tokenization_spaces=False) == hyp.text
        # the teacher-forced log-probs equal a forward pass of the prompt alone, token by token
        prompt_ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        full = torch.cat([prompt_ids, torch.tensor([hyp.token_ids], dtype=torch.long)], dim=1)
        with torch.no_grad():
            logp = torch.log_softmax(model(full).logits[0, :-1], -1)
        expected = logp[prompt_ids.shape[1] - 1:].gather(-1, full[0, prompt_ids.shape[1]:, None])[:, 0]
        np.testing.assert_allclose(hyp.token_logprobs, expected.numpy(), atol=1e-4)
        words, word_logp = words_with_log_probs(hyp.text, hyp.token_starts, hyp.token_logprobs)
        assert "".join(words) == hyp.text
        assert word_logp.sum() == pytest.approx(hyp.token_logprobs.sum(), abs=1e-5)


def test_batched_generation_equals_one_at_a_time(tiny_llama):
    model, tokenizer = load_causal(tiny_llama)
    batched = generate(model, tokenizer, PROMPTS, beams=2, max_new_tokens=6, batch_size=3)
    single = [generate(model, tokenizer, [p], beams=2, max_new_tokens=6, batch_size=1)[0] for p in PROMPTS]
    assert [h.text for h in batched] == [h.text for h in single]


def test_greedy_generation_gives_one_best_with_its_log_probability(tiny_llama):
    model, tokenizer = load_causal(tiny_llama)
    greedy = generate(model, tokenizer, PROMPTS, beams=1, max_new_tokens=8, batch_size=2)
    for hyp in greedy:
        assert hyp.nbest == [hyp.text] and hyp.nbest_scores == [pytest.approx(float(hyp.token_logprobs.sum()))]


def test_an_integer_train_layers_freezes_an_untied_output_layer_too(tokenizers, tmp_path):
    """Qwen2.5's output layer is stored apart from its embeddings: the CPU configs keep it fixed."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ws2s.train.backbone import freeze_for

    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                                         num_attention_heads=2, tie_word_embeddings=False))
    trainable = freeze_for(model, 1)
    assert not model.lm_head.weight.requires_grad and not model.get_input_embeddings().weight.requires_grad
    assert all(p.requires_grad for p in model.model.layers[2].parameters())
    assert not any(p.requires_grad for p in model.model.layers[1].parameters())
    assert trainable == sum(p.numel() for p in model.model.layers[2].parameters()) + model.model.norm.weight.numel()


def test_decoding_a_frozen_model_gives_the_same_text_and_leaves_no_hook(tiny_llama):
    """The decoding loop hands the output layer contiguous states (speed); it changes no output
    and is removed when the loop ends."""
    from ws2s.train.backbone import freeze_for
    from ws2s.train.generate import decode

    model, tokenizer = load_causal(tiny_llama)
    trainable = decode(model, tokenizer, PROMPTS, beams=1, max_new_tokens=8, batch_size=3)
    freeze_for(model, 1)
    assert not model.get_output_embeddings().weight.requires_grad
    assert decode(model, tokenizer, PROMPTS, beams=1, max_new_tokens=8, batch_size=3) == trainable
    assert not model.get_output_embeddings()._forward_pre_hooks
