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
from ws2s.data.slurp import PROMPTS, parse_slots, render_prompt, slot_agreement, slu_scores
from ws2s.errors import Ws2sError
from ws2s.frames import UTTERANCE_COLUMNS, align_by_id, gold_by_split
from ws2s.io import read_parquet, write_json, write_parquet
from ws2s.models import save_checkpoint
from ws2s.objectives import LossConfig, dirichlet_log_strength, member_sum, position_uncertainty, utterance_weights
from ws2s.train.backbone import add_lora, folded, freeze_for, frozen_blocks, seed_everything
from ws2s.train.engine import LowestLoss, autocast, checkpoint_dir_for, device, is_main_process
from ws2s.train.strong import (evaluation_points, nogold_point, point_epochs, run_key, run_record, train_strong,
                               validation_loss, validation_objective)
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


class Points:
    """A run's evaluation points (0: the start model): the validation loss against its own
    targets on all of val, and, with a few-gold file, its decoding of those val utterances,
    their gold SLU-F1 and its agreement with each teacher there. The weights of the lowest
    loss (the no-gold protocol) and of the best few-gold SLU-F1 (the few-gold protocol) are
    kept for their test scores, in memory and beside the checkpoint; the picks come from the
    checkpointed records, so a resumed run picks, and scores, as a whole one does."""

    def __init__(self, cfg: StrongGenerationConfig, model, tokenizer, data: dict, fewgold: pd.DataFrame | None,
                 teachers: dict[str, list[str]], out_metrics: str | Path, key: str):
        self.cfg, self.model, self.tokenizer, self.data = cfg, model, tokenizer, data
        self.fewgold, self.teachers = fewgold, teachers
        # kept beside the run's checkpoint, under its key, so a resumed run has them too
        keep = checkpoint_dir_for(out_metrics)
        self.nogold, self.best_fewgold = (LowestLoss(model, keep / f"{name}.pt", key) for name in ("nogold", "fewgold"))
        self.val_cfg = validation_objective(cfg.loss)

    def record(self, point: int | None) -> dict:
        """The record of training point `point` (from 0; None: the start model, which no protocol picks)."""
        val = self.data["val"]
        loss = validation_loss(lambda idx: val.loss(self.model, self.tokenizer, idx, 1.0, self.val_cfg,
                                                    self.cfg.soft_labels)[0], len(val.members[0]), GENERATION_BATCH_SIZE)
        if point is not None:
            self.nogold.update(point, loss)
        if self.fewgold is None:
            return {"val_loss": loss}
        texts = decode(self.model, self.tokenizer, [render_prompt(PROMPTS[self.cfg.prompt], s)
                                                    for s in self.fewgold["sentence"]],
                       beams=self.cfg.decoding.beams, max_new_tokens=self.cfg.decoding.max_new_tokens,
                       batch_size=GENERATION_BATCH_SIZE, desc="few-gold utterances")
        score = slu_scores(self.fewgold, texts)["slu_f1"]
        if point is not None:
            self.best_fewgold.update(point, -score)  # the first of equal scores, as the pick
        return {"val_loss": loss, "texts": texts, "fewgold_slu_f1": score,
                "teacher_agreement": [slot_agreement(texts, t) for t in self.teachers.values()]}

    def test_score(self, point: int, last: int, last_score: float, test: pd.DataFrame, done: dict) -> float:
        """Test SLU-F1 at training point `point`: the last one's, or the weights kept for it decoded
        again (once a point; NaN when a resume lost them)."""
        if point == last:
            return last_score
        if point not in done:
            kept = next((k for k in (self.nogold, self.best_fewgold) if k.epoch == point), None)
            if kept is None:
                return math.nan
            kept.restore()
            done[point] = slu_scores(test, decode_utterances(self.cfg, self.model, self.tokenizer,
                                                             test["sentence"])[0])["slu_f1"]
        return done[point]


def fewgold_utterances(fewgold_file: str, val: pd.DataFrame) -> pd.DataFrame:
    """The few-gold utterances (id, gold_entities, sentence), in the file's order; each one of val's."""
    gold = read_parquet(fewgold_file, ["id", "gold_entities"])
    stray = sorted(set(gold["id"]) - set(val["id"]))
    if stray:
        raise Ws2sError(f"{fewgold_file}: ids {stray[:3]} are not in the validation split; the few-gold file and the "
                        "splits disagree (rerun generation_fewgold)")
    return gold.merge(val[["id", "sentence"]], on="id", how="left")


def teacher_texts(cfg: StrongGenerationConfig, mapped_files: list[str], joint_file: str | None,
                  ids: pd.Series) -> dict[str, list[str]]:
    """What each teacher of the run said on `ids`: each member's hypothesis, or Joint Decoding's pick."""
    if cfg.target == "mapped":
        return {m: align_by_id(read_parquet(p, ["id", "text"]), ids, p)["text"].tolist()
                for m, p in zip(cfg.members, mapped_files, strict=True)}
    if cfg.target == "joint":
        return {cfg.source: align_by_id(read_parquet(joint_file, ["id", "chosen"]), ids, joint_file)["chosen"].tolist()}
    return {}


def run_strong_generation(cfg: StrongGenerationConfig, model_path: str, split_dir: str | Path,
                          mapped_files: list[str], joint_file: str | None, gold_files: list[str],
                          fewgold_file: str | None, out_generations: str | Path, out_curve: str | Path | None,
                          out_metrics: str | Path, out_model: str | Path | None, score_test: bool = True) -> dict:
    """One strong run (ws2s.train.strong): trained on its targets, scored at every evaluation
    point on val (`Points`), the no-gold and few-gold protocols' weights kept for their test
    scores. `score_test` False (the settings search) decodes no test utterance."""
    split_dir = Path(split_dir)
    # strong_train.parquet and val.parquet have sentences only: the gold targets are handed to
    # the ceiling alone, the few-gold subset's to every run.
    frames = {split: read_parquet(split_dir / f"{split}.parquet", ["id", "sentence"]) for split in ("strong_train", "val")}
    test = read_parquet(split_dir / "test.parquet", UTTERANCE_COLUMNS)
    gold = gold_by_split(gold_files)
    generator = seed_everything(cfg.seed)
    model, tokenizer, blocks = strong_model(cfg, model_path)
    with torch.no_grad(), autocast(cfg.engine.bf16):
        data = {split: TrainingData(cfg, model, tokenizer, frame, mapped_files, joint_file, gold.get(split), blocks)
                for split, frame in frames.items() if len(frame)}
    fewgold = fewgold_utterances(fewgold_file, frames["val"]) if fewgold_file and "val" in data else None
    key = run_key(cfg, model_path, [*frames.values(), *mapped_files, joint_file, *gold_files, fewgold_file])
    points = Points(cfg, model, tokenizer, data, fewgold,
                    teacher_texts(cfg, mapped_files, joint_file, fewgold["id"]) if fewgold is not None else {},
                    out_metrics, key)
    if "val" in data:  # the start model's record (train_loop puts the model back in training mode)
        with torch.no_grad(), autocast(cfg.engine.bf16):
            start = points.record(None)
    progress = point_epochs(cfg.epochs, len(frames["strong_train"]), cfg.batch_size)
    result = train_strong(cfg, [model], lambda indices, step_frac: data["strong_train"].loss(
                              model, tokenizer, indices, step_frac, cfg.loss, cfg.soft_labels),
                          len(frames["strong_train"]), out_metrics, generator=generator, optimizer="adamw",
                          schedule="linear", desc=f"{cfg.method} seed {cfg.seed}", key=key,
                          on_point=points.record if "val" in data else None,
                          points_per_epoch=evaluation_points(cfg.epochs))
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
            metrics["val_slu_f1"] = gold_val_slu_f1(cfg, model, tokenizer, gold["val"], frames["val"])
        metrics.update(point_metrics(points, start, result.points, progress, str(out_metrics),
                                     test if score_test else None, metrics.get("slu_f1")))
    if out_curve:  # empty without a few-gold file: nothing was decoded on val
        write_parquet(curve_frame([start, *result.points] if fewgold is not None else [], [0.0, *progress], fewgold),
                      out_curve, schemas.STRONG_GENERATION_CURVE)
    if score_test:
        write_generations(test["id"], texts, out_generations)
    write_json(metrics, out_metrics)
    return metrics


def gold_val_slu_f1(cfg: StrongGenerationConfig, model, tokenizer, gold_file: str, val: pd.DataFrame) -> float:
    """SLU-F1 of the model's decoding of all of val against its gold file."""
    gold = align_by_id(read_parquet(gold_file, ["id", "gold_entities"]), val["id"], gold_file)
    return slu_scores(gold.reset_index(), decode_utterances(cfg, model, tokenizer, val["sentence"])[0])["slu_f1"]


def write_generations(ids: pd.Series, texts: list[str], out: str | Path) -> None:
    generations = pd.DataFrame({"id": ids.to_numpy(), "text": texts,
                                "valid_json": [parse_slots(t) is not None for t in texts]})
    write_parquet(generations, out, schemas.GENERATIONS)


def point_metrics(points: Points, start: dict, records: list[dict], progress: list[float], where: str,
                  test: pd.DataFrame | None, last_score: float | None) -> dict:
    """What metrics.json says of the evaluation points: the training points' validation losses
    and progress, the few-gold SLU-F1 and teacher agreement from the start model on, the
    no-gold and few-gold picks (as training progress, in epochs) and, with `test`, their test SLU-F1."""
    val_losses = [record["val_loss"] for record in records]
    picked = {"nogold": nogold_point(val_losses, where)}
    out = {"val_losses": val_losses, "point_epochs": progress, "selected_epoch": progress[picked["nogold"]]}
    if "fewgold_slu_f1" in start:
        scores = [record["fewgold_slu_f1"] for record in records]
        picked["fewgold"] = int(np.argmax(scores))
        out.update(fewgold_epoch=progress[picked["fewgold"]], fewgold_utterances=len(points.fewgold),
                   teachers=list(points.teachers),
                   teacher_fewgold_slu_f1=[slu_scores(points.fewgold, t)["slu_f1"] for t in points.teachers.values()],
                   fewgold_slu_f1=[start["fewgold_slu_f1"], *scores],
                   teacher_agreement=[r["teacher_agreement"] for r in (start, *records)])
    if test is not None:
        done: dict[int, float] = {}
        for protocol, point in picked.items():
            out[f"slu_f1_{protocol}"] = points.test_score(point, len(records) - 1, last_score, test, done)
    return out


def curve_frame(records: list[dict], progress: list[float], fewgold: pd.DataFrame | None) -> pd.DataFrame:
    """The STRONG_GENERATION_CURVE rows: per point, its decoding of each few-gold utterance."""
    rows = [{"point": point, "epochs": epochs, "val_loss": record["val_loss"], "id": i, "text": t}
            for point, (record, epochs) in enumerate(zip(records, progress))
            for i, t in zip(fewgold["id"], record["texts"])]
    return pd.DataFrame(rows, columns=schemas.STRONG_GENERATION_CURVE.names)
