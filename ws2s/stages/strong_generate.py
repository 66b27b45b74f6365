"""The strong stage of the generation track: every Weak(S)-to-Strong method on SLURP.

| method        | sequences per utterance                       | targets per position  | loss                  |
| ------------- | --------------------------------------------- | --------------------- | --------------------- |
| ceiling       | the gold target (the only reader of it)       | one-hot               | cross-entropy         |
| single        | one weak model's hypothesis                   | Stage 3 soft labels   | cross-entropy (Eqn 1) |
| naive         | each member's hypothesis, weights λ_i         | Stage 3 soft labels   | Σ λ_i CE (Eqn 11)     |
| jointdecoding | the pooled beam the ensemble scores highest   | one-hot               | cross-entropy         |
| bayesian      | each member's hypothesis, weights λ_i         | Stage 3 soft labels   | Σ λ_i EDL (Eqns 4-5)  |

A loss is taken per target position over the vocabulary, averaged over a sequence's
positions (EOS included, its target one-hot: no weak model scored the end of its text),
then weighted by λ and averaged over utterances. The auxiliary term's targets are the
strong model's own argmax at each position (Burns et al.; a class-balanced threshold has
no meaning over a vocabulary).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ws2s import schemas
from ws2s.config import SoftLabelConfig, StrongGenerationConfig
from ws2s.data.slurp import PROMPTS, parse_slots, render_prompt, slu_scores
from ws2s.errors import Ws2sError
from ws2s.frames import UTTERANCE_COLUMNS, align_by_id, gold_by_split
from ws2s.io import read_parquet, write_json, write_parquet
from ws2s.models import save_checkpoint
from ws2s.objectives import LossConfig, dirichlet_log_strength, member_sum, position_uncertainty, utterance_weights
from ws2s.train.backbone import add_lora, folded, freeze_for, frozen_blocks, seed_everything
from ws2s.train.engine import LowestLoss, autocast, device, is_main_process
from ws2s.train.strong import nogold_point, run_record, train_strong, validation_loss, validation_objective
from ws2s.train.generate import (GENERATION_BATCH_SIZE, FrozenBottom, Sequence, decode, for_inference, load_causal,
                                 sequence_losses)

# ---- the training data of each method ----------------------------------------------------


def build_sequences(cfg: StrongGenerationConfig, tokenizer, frame: pd.DataFrame, mapped_files: list[str],
                    joint_file: str | None, gold_file: str | None) -> tuple[list[list[Sequence]], np.ndarray]:
    """Per member (or the one target of a gold or Joint Decoding run), each utterance's sequence;
    and λ [B, N]. What a run learns from is its target kind (design.METHODS), not its method's name."""
    ids = frame["id"]
    prompts = [tokenizer(render_prompt(PROMPTS[cfg.prompt], s), add_special_tokens=True)["input_ids"]
               for s in frame["sentence"]]
    eos = [tokenizer.eos_token_id]

    def from_texts(texts):
        targets = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [(p + t + eos, len(p), None) for p, t in zip(prompts, targets)]

    if cfg.target == "gold":
        gold = align_by_id(read_parquet(gold_file, ["id", "target"]), ids, gold_file)
        return [from_texts(gold["target"])], np.ones((len(ids), 1))
    if cfg.target == "joint":
        joint = align_by_id(read_parquet(joint_file, ["id", "chosen"]), ids, joint_file)
        return [from_texts(joint["chosen"])], np.ones((len(ids), 1))
    if cfg.target != "mapped":
        raise Ws2sError(f"--params: target {cfg.target!r} is not a generation target (gold, mapped, joint)")
    members, confidence = [], []
    for path in mapped_files:
        mapped = align_by_id(read_parquet(path, [f.name for f in schemas.MAPPED_HYPOTHESES]), ids, path)
        members.append([(p + list(t) + eos, len(p), np.asarray(lp, dtype=np.float64))
                        for p, t, lp in zip(prompts, mapped["strong_token_ids"], mapped["target_logprobs"])])
        confidence.append(mapped["weak_mean_logprob"].to_numpy(dtype=np.float64))
    return members, utterance_weights(cfg.weighting, cfg.weights, np.stack(confidence, axis=1))


class TrainingData:
    """One split's sequences of every member, their λ, and their frozen-bottom states."""

    def __init__(self, cfg: StrongGenerationConfig, model, tokenizer, frame: pd.DataFrame, mapped_files: list[str],
                 joint_file: str | None, gold_file: str | None, blocks: int):
        self.members, weights = build_sequences(cfg, tokenizer, frame, mapped_files, joint_file, gold_file)
        self.weights = torch.as_tensor(weights, dtype=torch.float32, device=device())
        self.bottoms = [FrozenBottom.compute(model, tokenizer, [(ids, start) for ids, start, _ in member], blocks,
                                             GENERATION_BATCH_SIZE) if blocks else None for member in self.members]

    def loss(self, model, tokenizer, indices: list[int], step_frac: float, cfg: LossConfig, soft_cfg: SoftLabelConfig):
        """Σ_i λ_i (each member's sequence loss), the batch mean, and its statistics."""
        per_member = [sequence_losses(model, tokenizer, [member[i] for i in indices], step_frac, cfg, soft_cfg,
                                      bottom, indices)
                      for member, bottom in zip(self.members, self.bottoms)]
        return member_sum(per_member, self.weights[indices])


# ---- one strong run ----------------------------------------------------------------------


def strong_model(cfg: StrongGenerationConfig, model_path: str):
    """The strong model, its trained top blocks (LoRA on them where set), on the device; its
    tokenizer; and how many bottom blocks stay frozen (their states are cached)."""
    model, tokenizer = load_causal(model_path)
    freeze_for(model, cfg.train_layers)
    blocks = frozen_blocks(model, cfg.train_layers)
    if cfg.engine.lora.rank:  # on the trained blocks only: the cached bottom states stay the model's
        model = add_lora(model, cfg.engine.lora, cfg.train_layers)
    return model.to(device()), tokenizer, blocks


def decode_utterances(cfg: StrongGenerationConfig, model, tokenizer, sentences, uncertain: bool = False):
    """The decoded texts; with `uncertain`, also the Dirichlet's strength at every generated
    position, summarised (an evidential model's per-token certainty)."""
    prompts = [render_prompt(PROMPTS[cfg.prompt], s) for s in sentences]
    decoded = decode(model, tokenizer, prompts, beams=cfg.decoding.beams, max_new_tokens=cfg.decoding.max_new_tokens,
                     batch_size=GENERATION_BATCH_SIZE,
                     position_stat=(lambda logits: dirichlet_log_strength(logits, cfg.loss)) if uncertain else None)
    if not uncertain:
        return decoded, {}
    return decoded[0], position_uncertainty(decoded[1], model.get_output_embeddings().weight.shape[0])


def run_strong_generation(cfg: StrongGenerationConfig, model_path: str, split_dir: str | Path,
                          mapped_files: list[str], joint_file: str | None, gold_files: list[str],
                          out_generations: str | Path, out_metrics: str | Path, out_model: str | Path | None,
                          score_test: bool = True) -> dict:
    """One strong run (ws2s.train.strong): trained on its targets, validated after every epoch
    against them, the weights of the lowest validation loss kept in memory for the no-gold
    protocol's test score. `score_test` False (the settings search) decodes no test utterance."""
    split_dir = Path(split_dir)
    # strong_train.parquet and val.parquet have sentences only: the gold targets are handed to
    # the ceiling alone.
    frames = {split: read_parquet(split_dir / f"{split}.parquet", ["id", "sentence"]) for split in ("strong_train", "val")}
    test = read_parquet(split_dir / "test.parquet", UTTERANCE_COLUMNS)
    gold = gold_by_split(gold_files)
    generator = seed_everything(cfg.seed)
    model, tokenizer, blocks = strong_model(cfg, model_path)
    with torch.no_grad(), autocast(cfg.engine.bf16):
        data = {split: TrainingData(cfg, model, tokenizer, frame, mapped_files, joint_file, gold.get(split), blocks)
                for split, frame in frames.items() if len(frame)}
    best, val_cfg, n_val = LowestLoss(model), validation_objective(cfg.loss), len(frames["val"])

    def validate(epoch: int) -> float:
        return best.update(epoch, validation_loss(
            lambda idx: data["val"].loss(model, tokenizer, idx, 1.0, val_cfg, cfg.soft_labels)[0],
            n_val, GENERATION_BATCH_SIZE))

    result = train_strong(cfg, [model], lambda indices, step_frac: data["strong_train"].loss(
                              model, tokenizer, indices, step_frac, cfg.loss, cfg.soft_labels),
                          len(frames["strong_train"]), out_metrics, generator=generator, optimizer="adamw",
                          schedule="linear", desc=f"{cfg.method} seed {cfg.seed}",
                          on_point=validate if "val" in data else None)
    if not is_main_process():
        return {}
    if out_model:
        plain, state = folded(model)
        save_checkpoint(plain, tokenizer, Path(out_model), state)  # in full precision, before decoding casts it
    for_inference(model, cfg.engine.bf16)
    uncertain = cfg.loss.kind == "edl" and cfg.decoding.beams == 1
    texts, uncertainty = decode_utterances(cfg, model, tokenizer, test["sentence"], uncertain) if score_test else ([], {})
    metrics = {"dataset": "slurp", **run_record(cfg, result, cfg.loss, sum(p.numel() for p in model.parameters()), 5),
               "weighting": cfg.weighting, "soft_labels": cfg.soft_labels.kind, **uncertainty,
               **(slu_scores(test, texts) if score_test else {})}
    if "val" in data:
        if cfg.target == "gold":  # gold validation: what the paper's protocol tunes the ceiling on
            val = align_by_id(read_parquet(gold["val"], ["id", "gold_entities"]), frames["val"]["id"], gold["val"])
            metrics["val_slu_f1"] = slu_scores(val.reset_index(), decode_utterances(
                cfg, model, tokenizer, frames["val"]["sentence"])[0])["slu_f1"]
        # from the checkpointed record of every epoch's loss, so a resumed run selects as a whole one does
        selected = nogold_point(result.points, str(out_metrics))
        metrics.update(val_losses=result.points, selected_epoch=selected + 1)
        if score_test:
            metrics["slu_f1_nogold"] = nogold_score(cfg, model, tokenizer, test, best, selected, metrics["slu_f1"])
    if score_test:
        generations = pd.DataFrame({"id": test["id"].to_numpy(), "text": texts,
                                    "valid_json": [parse_slots(t) is not None for t in texts]})
        write_parquet(generations, out_generations, schemas.GENERATIONS)
    write_json(metrics, out_metrics)
    return metrics


def nogold_score(cfg: StrongGenerationConfig, model, tokenizer, test: pd.DataFrame, best: LowestLoss, selected: int,
                 last_score: float) -> float:
    """The no-gold protocol's test SLU-F1: the last epoch's where it selected the last, else
    the selected epoch's weights decoded again (NaN when a resume lost them)."""
    if selected + 1 == cfg.epochs:
        return last_score
    if best.epoch != selected:  # that epoch ended before a resume: its weights were not checkpointed
        return math.nan
    best.restore()
    return slu_scores(test, decode_utterances(cfg, model, tokenizer, test["sentence"])[0])["slu_f1"]
