"""Causal LMs for slot filling: finetuning on (prompt, target) and batched beam generation.

Generation is batched with the KV cache (`generate`), never one example at a time. The
chosen hypothesis is then re-scored teacher-forced in one batched forward pass, which
gives each generated token's log-probability under the model (beam scores are sums
shaped by the length penalty, not per-token probabilities).
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ws2s.mapping import starts_from_decoding
from ws2s.train.classify import load_tokenizer


def load_causal(model_path: str):
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    # A tokenizer read from GGUF can name another EOS than the model generates with
    # (SmolLM2: <|im_start|> against <|im_end|>); training must append the token that ends
    # generation, or decoding never stops where the targets did.
    eos = model.generation_config.eos_token_id
    eos = eos if isinstance(eos, int) or eos is None else (tokenizer.eos_token_id if tokenizer.eos_token_id in eos else eos[0])
    if eos is not None and eos != tokenizer.eos_token_id:
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def encode_pairs(tokenizer, prompts: list[str], targets: list[str]) -> list[tuple[list[int], int]]:
    """Token ids of prompt + target + EOS, and where the target starts (the loss covers the target)."""
    encoded = []
    for prompt, target in zip(prompts, targets):
        prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        encoded.append((prompt_ids + target_ids, len(prompt_ids)))
    return encoded


def _left_padded(items: list[tuple[list[int], int]], pad_id: int):
    """Left-padded ids, attention mask, position ids and target ids (−100 off target), and K:
    every target ends at the last position, so K = longest target + 1 positions hold them all."""
    width = max(len(ids) for ids, _ in items)
    keep = max(len(ids) - start for ids, start in items) + 1
    ids = torch.full((len(items), width), pad_id)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    targets = torch.full((len(items), keep - 1), -100)
    for row, (seq, start) in enumerate(items):
        ids[row, width - len(seq):] = torch.tensor(seq)
        mask[row, width - len(seq):] = 1
        target = seq[start:]
        targets[row, keep - 1 - len(target):] = torch.tensor(target)
    # Positions count from each sequence's first real token, as generation does.
    positions = (mask.cumsum(dim=-1) - 1).clamp_min(0)
    return ids, mask, positions, targets, keep


def target_logits(model, tokenizer, items: list[tuple[list[int], int]], bottom: "FrozenBottom | None" = None,
                  rows: list[int] | None = None):
    """Logits at the positions that predict target tokens, and those tokens (−100 elsewhere).

    Sequences are left-padded so that every target ends at the last position; the model
    then computes its output layer for the last K positions only (`logits_to_keep`), K the
    longest target + 1. With a 262k vocabulary (Gemma 3) the output layer dominates a
    step, and the prompt's positions need none of it. With `bottom` (its cached states of
    sequences `rows`) only the blocks above the frozen ones run.
    """
    ids, mask, positions, targets, keep = _left_padded(items, tokenizer.pad_token_id)
    on = model.device  # the engine may have moved the model to a GPU
    inputs = {"attention_mask": mask.to(on), "position_ids": positions.to(on), "logits_to_keep": keep}
    if bottom is None:
        logits = model(input_ids=ids.to(on), **inputs).logits
    else:
        states = bottom.padded([bottom.states[r] for r in rows], ids.shape[1]).to(on, dtype=model.dtype)
        with blocks_only(model, slice(bottom.blocks, None)):
            logits = model(inputs_embeds=states, use_cache=False, **inputs).logits
    return logits[:, :-1], targets.to(on)


@contextmanager
def blocks_only(model, blocks: slice, final_norm: bool = True):
    """Let a decoder (Llama, Qwen, Gemma 3: `get_decoder().layers`, `.norm`) run a slice of its blocks."""
    base = model.get_decoder()
    all_blocks, norm = base.layers, base.norm
    base.layers = torch.nn.ModuleList(list(all_blocks)[blocks])
    if not final_norm:
        base.norm = torch.nn.Identity()
    try:
        yield
    finally:
        base.layers, base.norm = all_blocks, norm


@dataclass
class FrozenBottom:
    """Each training sequence's hidden states after the model's frozen bottom blocks.

    Those blocks never change, so every epoch would recompute the same values: computed
    once, a step runs the trainable top only. Training SmolLM2-135M's top 4 of 30 blocks,
    the frozen 26 took two thirds of a step's time. The states stay on the CPU, one
    [length, hidden] tensor a sequence; with every block trained there is nothing to cache.
    """
    blocks: int
    states: list[torch.Tensor]

    @classmethod
    def compute(cls, model, tokenizer, items: list[tuple[list[int], int]], blocks: int, batch_size: int):
        states = []
        with torch.no_grad(), blocks_only(model, slice(0, blocks), final_norm=False):
            for b in range(0, len(items), batch_size):
                batch = items[b:b + batch_size]
                ids, mask, positions, _, _ = _left_padded(batch, tokenizer.pad_token_id)
                on = model.device
                hidden = model.get_decoder()(input_ids=ids.to(on), attention_mask=mask.to(on),
                                          position_ids=positions.to(on), use_cache=False).last_hidden_state
                states += [hidden[row, ids.shape[1] - len(seq):].cpu() for row, (seq, _) in enumerate(batch)]
        return cls(blocks, states)

    @staticmethod
    def padded(states: list[torch.Tensor], width: int) -> torch.Tensor:
        """[B, width, hidden], left-padded with zeros (the attention mask hides them)."""
        out = torch.zeros((len(states), width, states[0].shape[-1]), dtype=states[0].dtype)
        for row, s in enumerate(states):
            out[row, width - len(s):] = s
        return out


def sequence_nll(model, tokenizer, items, batch_size: int) -> float:
    """Mean per-token negative log-likelihood of the targets."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for b in range(0, len(items), batch_size):
            logits, target = target_logits(model, tokenizer, items[b:b + batch_size])
            total += torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100,
                                                       reduction="sum").item()
            count += int((target != -100).sum())
    return total / max(count, 1)


@dataclass
class FinetuneResult:
    best_epoch: int
    val_losses: list[float]
    seconds: float


def finetune(model, tokenizer, train_items, val_items, *, epochs: int, batch_size: int, lr: float,
             generator: torch.Generator, desc: str) -> FinetuneResult:
    """AdamW with a linear schedule; keeps the weights of the epoch with the lowest validation loss."""
    from transformers import get_linear_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    steps = math.ceil(len(train_items) / batch_size) * epochs
    schedule = get_linear_schedule_with_warmup(optimizer, 0, steps)
    best, best_state, val_losses, start = math.inf, None, [], time.time()
    with tqdm(total=steps, desc=desc, mininterval=5) as bar:
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(train_items), generator=generator).tolist()
            for b in range(0, len(order), batch_size):
                logits, target = target_logits(model, tokenizer, [train_items[i] for i in order[b:b + batch_size]])
                loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.set_postfix(loss=f"{loss.item():.3f}")
                bar.update()
            val_losses.append(sequence_nll(model, tokenizer, val_items, batch_size))
            if val_losses[-1] < best:
                best, best_state = val_losses[-1], copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return FinetuneResult(int(np.argmin(val_losses)), val_losses, time.time() - start)


@dataclass
class Hypothesis:
    text: str
    token_ids: list[int]
    token_starts: np.ndarray
    token_logprobs: np.ndarray
    nbest: list[str]
    nbest_scores: list[float]


def generate(model, tokenizer, prompts: list[str], *, beams: int, max_new_tokens: int, batch_size: int,
             desc: str = "generate") -> list[Hypothesis]:
    """Beam search, batched with the KV cache; the best hypothesis with per-token log-probs, and the M-best."""
    model.eval()
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    results: list[Hypothesis] = []
    for b in tqdm(range(0, len(prompts), batch_size), desc=desc, mininterval=5):
        batch = tokenizer(prompts[b:b + batch_size], return_tensors="pt", padding=True).to(model.device)
        with torch.no_grad():
            out = model.generate(**batch, num_beams=beams, num_return_sequences=beams, do_sample=False,
                                 max_new_tokens=max_new_tokens, output_scores=True, return_dict_in_generate=True,
                                 early_stopping=True)
        width = batch["input_ids"].shape[1]
        new_tokens = out.sequences[:, width:].view(-1, beams, out.sequences.shape[1] - width)
        scores = out.sequences_scores.view(-1, beams)
        chosen = [_strip(tokenizer, row[0].tolist()) for row in new_tokens]
        logprobs = token_logprobs(model, tokenizer, batch, chosen)
        for i, ids in enumerate(chosen):
            text = tokenizer.decode(ids, clean_up_tokenization_spaces=False)
            starts = starts_from_decoding(lambda k: tokenizer.decode(ids[:k], clean_up_tokenization_spaces=False), len(ids))
            nbest = [tokenizer.decode(_strip(tokenizer, row.tolist()), clean_up_tokenization_spaces=False) for row in new_tokens[i]]
            results.append(Hypothesis(text, ids, starts, logprobs[i], nbest, scores[i].tolist()))
    tokenizer.padding_side = padding_side
    return results


def decode(model, tokenizer, prompts: list[str], *, beams: int, max_new_tokens: int, batch_size: int,
           desc: str = "decode", position_stat=None):
    """The best hypothesis's text per prompt: greedy (beams 1) or beam search, batched with the KV cache.

    With `position_stat` (greedy only), also `position_stat(logits)` [P] at every generated
    position up to and including the EOS, all prompts' positions concatenated: (texts, values)."""
    if position_stat is not None and beams != 1:
        raise ValueError("position statistics are taken on greedy decoding only")
    return decode_texts(model, tokenizer, prompts, batch_size=batch_size, desc=desc, position_stat=position_stat,
                        num_beams=beams, do_sample=False, max_new_tokens=max_new_tokens, early_stopping=beams > 1)


def decode_texts(model, tokenizer, prompts: list[str], *, batch_size: int, desc: str, position_stat=None,
                 **search):
    """`model.generate(**search)` over left-padded batches: each returned sequence's text
    (up to EOS), prompt by prompt, `num_return_sequences` of them per prompt; with
    `position_stat`, also its values at each generated position (see `decode`)."""
    model.eval()
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    texts: list[str] = []
    values: list[torch.Tensor] = []
    try:
        for b in tqdm(range(0, len(prompts), batch_size), desc=desc, mininterval=5):
            batch = tokenizer(prompts[b:b + batch_size], return_tensors="pt", padding=True).to(model.device)
            with torch.no_grad():
                out = model.generate(**batch, **search, return_dict_in_generate=True,
                                     output_logits=position_stat is not None)
            rows = [_strip(tokenizer, row.tolist()) for row in out.sequences[:, batch["input_ids"].shape[1]:]]
            texts += [tokenizer.decode(ids, clean_up_tokenization_spaces=False) for ids in rows]
            if position_stat is not None:
                steps = torch.stack(out.logits, dim=1)  # [B, steps, V]
                values += [position_stat(steps[i, :min(len(ids) + 1, steps.shape[1])].float()).cpu()
                           for i, ids in enumerate(rows)]
    finally:
        tokenizer.padding_side = padding_side
    return (texts, torch.cat(values)) if position_stat is not None else texts


def _strip(tokenizer, ids: list[int]) -> list[int]:
    """Generated ids up to the first EOS or pad."""
    stops = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    for i, token in enumerate(ids):
        if token in stops:
            return ids[:i]
    return ids


def token_logprobs(model, tokenizer, prompt_batch, continuations: list[list[int]]) -> list[np.ndarray]:
    """log p(token_t | prompt, tokens_<t) of each continuation, teacher-forced, one batched pass."""
    prompts = [ids[mask.bool()].tolist() for ids, mask in zip(prompt_batch["input_ids"], prompt_batch["attention_mask"])]
    items = [(p + c, len(p)) for p, c in zip(prompts, continuations)]
    with torch.no_grad():
        logits, target = target_logits(model, tokenizer, items)
    picked = torch.log_softmax(logits.float(), dim=-1).gather(-1, target.clamp_min(0)[..., None])[..., 0]
    return [picked[row][target[row] != -100].cpu().numpy() for row in range(len(items))]
