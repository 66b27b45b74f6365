"""Causal LMs for slot filling: finetuning on (prompt, target) and batched beam generation.

Generation is batched with the KV cache (`generate`), never one example at a time. The
chosen hypothesis is then re-scored teacher-forced in one batched forward pass, which
gives each generated token's log-probability under the model (beam scores are sums
shaped by the length penalty, not per-token probabilities).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from ws2s.config import SoftLabelConfig
from ws2s.mapping import starts_from_decoding
from ws2s.objectives import LossConfig, aux_targets, example_loss, soft_targets
from ws2s.train.backbone import frozen_blocks, load_tokenizer
from ws2s.train.engine import (PLAIN, EngineConfig, LowestLoss, autocast, bf16_on, device, is_main_process,
                               train_loop)

# Batch size of generation, teacher-forced scoring and frozen-state caching: changes speed only.
GENERATION_BATCH_SIZE = 16
# A training sequence: token ids of prompt + target + EOS, where the target starts, and the
# target log-probability of each target position (None: one-hot targets).
Sequence = tuple[list[int], int, np.ndarray | None]


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


def for_inference(model, bf16: bool):
    """The model on this process's device, in eval mode, its weights cast to bf16 where the run
    uses bf16: decoding then multiplies bf16 matrices (on a CPU with AMX, 2.2 times as fast
    as fp32 for Qwen2.5-0.5B). Save a checkpoint before: the cast is in place."""
    model.to(device(), dtype=torch.bfloat16 if bf16_on(bf16) else None)
    model.eval()
    return model


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


def output_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """The output layer on final hidden states (and Gemma 2's soft cap, where a config sets one)."""
    logits = model.get_output_embeddings()(hidden)
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def target_logits(model, tokenizer, items: list[tuple[list[int], int]], bottom: "FrozenBottom | None" = None,
                  rows: list[int] | None = None):
    """Logits [P, V] at the P positions that predict target tokens, those tokens [P], and which
    positions of the right-aligned [B, K − 1] layout they are (a mask, row-major order).

    Sequences are left-padded so that every target ends at the last position; the output
    layer runs on the real target positions only: with a 151k or 262k vocabulary (Qwen2.5,
    Gemma 3) it dominates a step, and neither the prompt nor the padding needs it. With
    `bottom` (its cached states of sequences `rows`) only the blocks above the frozen ones run.
    """
    hidden, targets, keep = final_states(model, tokenizer, items, bottom, rows)
    targets = targets.to(hidden.device)
    real = targets != -100
    return output_logits(model, hidden[:, -keep:-1][real]), targets[real], real


def final_states(model, tokenizer, items: list[tuple[list[int], int]], bottom: "FrozenBottom | None" = None,
                 rows: list[int] | None = None):
    """The final hidden states [B, width, H] of left-padded `items` (the last position of each
    sequence is the last column), their right-aligned target ids and K (`_left_padded`); with
    `bottom`, from its cached states of sequences `rows` through the blocks above them."""
    ids, mask, positions, targets, keep = _left_padded(items, tokenizer.pad_token_id)
    on = model.device  # the engine may have moved the model to a GPU
    inputs = {"attention_mask": mask.to(on), "position_ids": positions.to(on), "use_cache": False}
    if bottom is None:
        return model.get_decoder()(input_ids=ids.to(on), **inputs).last_hidden_state, targets, keep
    states = bottom.padded([bottom.states[r] for r in rows], ids.shape[1]).to(on, dtype=model.dtype)
    with blocks_only(model, slice(bottom.blocks, None)):
        return model.get_decoder()(inputs_embeds=states, **inputs).last_hidden_state, targets, keep


def sequence_losses(model, tokenizer, sequences: list[Sequence], step_frac: float, cfg: LossConfig,
                    soft_cfg: SoftLabelConfig, bottom: FrozenBottom | None = None, rows: list[int] | None = None):
    """Each sequence's mean per-position loss [B], from one forward pass (`bottom`: its cached
    frozen-block states of these sequences, `rows` their indices there), and the loss's
    statistics. The auxiliary term's targets are the strong model's own argmax at each
    position (a class-balanced threshold has no meaning over a vocabulary)."""
    z, target, real = target_logits(model, tokenizer, [(ids, start) for ids, start, _ in sequences], bottom, rows)
    logprobs = None
    if all(lp is not None for _, _, lp in sequences):
        # targets are right-aligned (left padding), so are their log-probs; EOS gets 0 (P = 1)
        logprobs = torch.zeros(real.shape, dtype=torch.float64, device=z.device)
        for row, (_, _, lp) in enumerate(sequences):
            logprobs[row, real.shape[1] - len(lp) - 1:real.shape[1] - 1] = torch.as_tensor(lp)
        logprobs = logprobs[real]
    targets = aux_targets(z, soft_targets(z, target, logprobs, soft_cfg.kind, soft_cfg.min_prob), step_frac, cfg)
    per_position, stats = example_loss(z, targets, step_frac, cfg)
    totals = torch.zeros(len(sequences), dtype=per_position.dtype, device=z.device).index_add(
        0, real.nonzero()[:, 0], per_position)
    return totals / real.sum(dim=-1).clamp_min(1), stats


def per_sequence(values: torch.Tensor, real: torch.Tensor) -> list[torch.Tensor]:
    """Flat per-position values split back into one tensor per sequence."""
    return list(torch.split(values, real.sum(dim=-1).tolist()))


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
            # one bar a log: every rank computes its states, rank 0 shows its progress (as the engine's loop)
            for b in tqdm(range(0, len(items), batch_size), desc=f"states of the {blocks} frozen blocks", mininterval=5,
                          disable=not is_main_process()):
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


def sequence_nll(model, tokenizer, items, batch_size: int, bottom: "FrozenBottom | None" = None) -> float:
    """Mean per-token negative log-likelihood of the targets."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for b in range(0, len(items), batch_size):
            rows = list(range(b, min(b + batch_size, len(items))))
            logits, target, _ = target_logits(model, tokenizer, [items[r] for r in rows], bottom, rows)
            total += torch.nn.functional.cross_entropy(logits.float(), target, reduction="sum").item()
            count += len(target)
    return total / max(count, 1)


@dataclass
class FinetuneResult:
    best_epoch: int
    val_losses: list[float]
    seconds: float


def finetune(model, tokenizer, train_items, val_items, *, epochs: int, batch_size: int, lr: float,
             generator: torch.Generator, desc: str, train_layers: str | int = "all",
             engine: EngineConfig = PLAIN) -> FinetuneResult:
    """Cross-entropy on the targets with AdamW and a linear schedule (the engine's one training
    loop); keeps the weights of the epoch with the lowest validation loss. With an integer
    `train_layers` the frozen bottom blocks' states of every sequence are computed once."""
    blocks = frozen_blocks(model, train_layers)
    model.to(device())
    with torch.no_grad(), autocast(engine.bf16):
        bottoms = [FrozenBottom.compute(model, tokenizer, items, blocks, batch_size) if blocks else None
                   for items in (train_items, val_items)]
    best = LowestLoss(model)

    def loss_for_batch(indices: list[int], step_frac: float) -> torch.Tensor:
        logits, target, _ = target_logits(model, tokenizer, [train_items[i] for i in indices], bottoms[0], indices)
        return torch.nn.functional.cross_entropy(logits.float(), target)

    result = train_loop([model], loss_for_batch, len(train_items), epochs=epochs, batch_size=batch_size, lr=lr,
                        generator=generator, optimizer="adamw", schedule="linear", engine=engine, desc=desc,
                        on_point=lambda epoch: best.update(
                            epoch, sequence_nll(model, tokenizer, val_items, batch_size, bottoms[1])))
    best.restore()
    return FinetuneResult(best.epoch, result.points, result.seconds)


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
    """Beam search (greedy with one beam), batched with the KV cache; the best hypothesis with
    per-token log-probs, and the M-best (with one beam: the hypothesis and its log-probability)."""
    results: list[Hypothesis] = []
    for batch, out in generated_batches(model, tokenizer, prompts, batch_size=batch_size, desc=desc, num_beams=beams,
                                        num_return_sequences=beams, do_sample=False, max_new_tokens=max_new_tokens,
                                        output_scores=beams > 1, early_stopping=beams > 1):
        width = batch["input_ids"].shape[1]
        new_tokens = out.sequences[:, width:].view(-1, beams, out.sequences.shape[1] - width)
        chosen = [_strip(tokenizer, row[0].tolist()) for row in new_tokens]
        logprobs = token_logprobs(model, tokenizer, batch, chosen)
        scores = out.sequences_scores.view(-1, beams).tolist() if beams > 1 else [[float(lp.sum())] for lp in logprobs]
        for i, ids in enumerate(chosen):
            text = tokenizer.decode(ids, clean_up_tokenization_spaces=False)
            starts = starts_from_decoding(lambda k: tokenizer.decode(ids[:k], clean_up_tokenization_spaces=False), len(ids))
            nbest = [tokenizer.decode(_strip(tokenizer, row.tolist()), clean_up_tokenization_spaces=False) for row in new_tokens[i]]
            results.append(Hypothesis(text, ids, starts, logprobs[i], nbest, scores[i]))
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
    texts: list[str] = []
    values: list[torch.Tensor] = []
    for batch, out in generated_batches(model, tokenizer, prompts, batch_size=batch_size, desc=desc,
                                        output_logits=position_stat is not None, **search):
        rows = [_strip(tokenizer, row.tolist()) for row in out.sequences[:, batch["input_ids"].shape[1]:]]
        texts += [tokenizer.decode(ids, clean_up_tokenization_spaces=False) for ids in rows]
        if position_stat is not None:
            steps = torch.stack(out.logits, dim=1)  # [B, steps, V]
            values += [position_stat(steps[i, :min(len(ids) + 1, steps.shape[1])].float()).cpu()
                       for i, ids in enumerate(rows)]
    return (texts, torch.cat(values)) if position_stat is not None else texts


def generated_batches(model, tokenizer, prompts: list[str], *, batch_size: int, desc: str, **search):
    """The one decoding loop: `model.generate(**search)` over left-padded batches of `prompts`,
    batched with the KV cache; yields each (batch, output). The tokenizer pads left until the
    loop ends, also for what the caller computes on a batch."""
    model.eval()
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    # `generate` hands the output layer a strided [B, 1, H] view of the last position. With a
    # frozen output layer (requires_grad off, as `freeze_for` leaves it) torch's matmul does not
    # fold that into one matrix product but copies the weight into a batched one, each step:
    # decoding Qwen2.5 (152k-token output layer) on one core took 4 times as long.
    readout = model.get_output_embeddings().register_forward_pre_hook(
        lambda _, args: tuple(a.contiguous() for a in args))
    # While ZeRO-3 holds the weights partitioned (emptied here; the engine makes them whole
    # after training), every forward gathers them from all ranks: a rank whose sequences
    # ended must go on stepping while another's have not, or the collectives hang.
    synced = dist.is_initialized() and dist.get_world_size() > 1 and any(
        hasattr(p, "ds_id") and p.numel() == 0 for p in model.parameters())
    try:
        for b in tqdm(range(0, len(prompts), batch_size), desc=desc, mininterval=5):
            batch = tokenizer(prompts[b:b + batch_size], return_tensors="pt", padding=True).to(model.device)
            with torch.no_grad():
                out = model.generate(**batch, **search, return_dict_in_generate=True, synced_gpus=synced)
            yield batch, out
    finally:
        readout.remove()
        tokenizer.padding_side = padding_side


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
        logits, target, real = target_logits(model, tokenizer, items)
    picked = torch.log_softmax(logits.float(), dim=-1).gather(-1, target[:, None])[:, 0]
    return [values.cpu().numpy() for values in per_sequence(picked, real)]


# ---- teacher-forced scoring of whole completions (Joint Decoding's and cDPO's judges) ------

# Batch size of teacher-forced scoring: changes speed only.
SCORING_BATCH_SIZE = 16


def completion_logprobs(model, tokenizer, items: list[tuple[list[int], int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per item, the sum of its target tokens' log-probabilities [B] (with the graph) and their count [B].

    Items are `encode_pairs` output; `target_logits` left-pads them and aligns the targets,
    so padding never enters a sum and each row is the same at any batch size.
    """
    logits, target, real = target_logits(model, tokenizer, items)
    picked = torch.log_softmax(logits.float(), dim=-1).gather(-1, target[:, None])[:, 0]
    totals = torch.zeros(len(items), dtype=picked.dtype, device=picked.device).index_add(0, real.nonzero()[:, 0], picked)
    return totals, real.sum(dim=-1)


def sequence_logprobs(model, tokenizer, prompts: list[str], completions: list[str],
                      batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """log p(completion + EOS | prompt) per example (float64) and its token count, no gradients.

    The completion text is tokenised by this model's own tokenizer, so models with
    different vocabularies score the same text.
    """
    items = encode_pairs(tokenizer, prompts, completions)
    sums, counts = [], []
    model.eval()
    with torch.no_grad():
        for b in range(0, len(items), batch_size):
            total, count = completion_logprobs(model, tokenizer, items[b:b + batch_size])
            sums.append(total.double().cpu().numpy())
            counts.append(count.cpu().numpy())
    if not items:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(sums), np.concatenate(counts).astype(np.int64)


def judge(weak_model_dirs: list[str], prompts: list[str], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every weak model's log p(text + EOS | prompt) and token count, [n_weak, n_texts]; one model in memory at a time."""
    logps, lengths = [], []
    for path in weak_model_dirs:
        model, tokenizer = load_causal(path)
        model.to(device())
        logp, count = sequence_logprobs(model, tokenizer, prompts, texts, SCORING_BATCH_SIZE)
        logps.append(logp)
        lengths.append(count)
        del model
        gc.collect()
    return np.stack(logps), np.stack(lengths)
