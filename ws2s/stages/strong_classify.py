"""The strong stage of the classification track: every Weak(S)-to-Strong method.

| method      | targets                                       | loss                     |
| ----------- | --------------------------------------------- | ------------------------ |
| ceiling     | strong_train gold (the only reader of it)     | cross-entropy            |
| single      | one weak model's soft labels                  | cross-entropy (Eqn 1)    |
| naive       | every member's soft labels, weights λ_i       | Σ λ_i CE (Eqn 2)         |
| flyingsquid, majorityvote, dawidskene, glad, mace, snorkel | a label model's posterior over the members' hard votes (`ws2s.stages.label_models`) | cross-entropy |
| bayesian    | every member's soft labels, weights λ_i       | Σ λ_i EDL (Eqns 3-5)     |

Each may add the auxiliary confidence term. With `train_layers: 0` the strong model is a
linear probe on cached frozen features (`ws2s.stages.strong_features`), the CPU-sized setting;
otherwise the whole model (or its top blocks) trains as in the paper. Either way the
config's `engine` picks plain PyTorch or DeepSpeed, and a run killed by SIGTERM resumes
from its checkpoint (`ws2s.train.engine`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ws2s import schemas
from ws2s.config import StrongTrainConfig
from ws2s.errors import Ws2sError
from ws2s.frames import PAIR_COLUMNS, aligned, gold_by_split, probabilities, probs_frame
from ws2s.io import read_json, read_parquet, write_json, write_parquet
from ws2s.metrics.classification import accuracy, expected_calibration_error
from ws2s.objectives import dirichlet_log_strength
from ws2s.train.backbone import add_lora, freeze_for, seed_everything
from ws2s.train.classify import (EVAL_BATCH_SIZE, NUM_CLASSES, encode, ensemble_objective, forward_all, head_name,
                                 load_classifier, one_hot_targets, predict_probs, token_forward, yes_no_items)
from ws2s.train.engine import device, is_main_process
from ws2s.train.strong import (evaluation_points, nogold_point, point_epochs, run_key, run_record, train_strong,
                               validation_loss, validation_objective)


def weak_targets(cfg: StrongTrainConfig, ids: pd.Series, weak_label_files: list[str], split: str) -> torch.Tensor:
    """[B, N, K] soft targets of the method on `split`: its members' weak labels, or (a label
    model's method) that model's posterior from the label-model file."""
    if cfg.target == "label_model":
        if len(weak_label_files) != 1:
            raise Ws2sError(f"method {cfg.method} reads one label-model file; got {len(weak_label_files)}")
        path, = weak_label_files
        frame = read_parquet(path, ["id", "split", cfg.method])
        p1 = aligned(frame[frame["split"] == split], ids, [cfg.method], path)[:, 0]
        both = probabilities(np.stack([1.0 - p1, p1], axis=1), ids, path)
        return torch.tensor(both, dtype=torch.float32)[:, None]
    frames = [read_parquet(f, [c.name for c in schemas.CLASS_PROBS]) for f in weak_label_files]
    probs = [probabilities(aligned(f[f["split"] == split], ids, ["prob_0", "prob_1"], path), ids, path)
             for f, path in zip(frames, weak_label_files)]
    return torch.tensor(np.stack(probs, axis=1), dtype=torch.float32)


def gold_targets(ids: pd.Series, gold_file: str) -> torch.Tensor:
    gold = read_parquet(gold_file, ["id", "label"])
    return one_hot_targets(aligned(gold, ids, ["label"], gold_file)[:, 0])


def split_targets(cfg: StrongTrainConfig, split: str, ids: pd.Series, weak_label_files: list[str],
                  gold_files: list[str]) -> torch.Tensor:
    """What a run learns from on `split`, by its target kind (design.METHODS): gold (the
    ceiling, the only reader of it), or the method's targets from its members' weak labels."""
    if cfg.target == "gold":
        return gold_targets(ids, gold_by_split(gold_files)[split])
    if cfg.target in ("weak_labels", "label_model"):
        return weak_targets(cfg, ids, weak_label_files, split)
    raise Ws2sError(f"--params: target {cfg.target!r} is not a classification target (gold, weak_labels, label_model)")


def _feature_matrix(features: pd.DataFrame, ids: pd.Series, split: str, path: str) -> torch.Tensor:
    part = features[features["split"] == split]
    return torch.tensor(np.stack(aligned(part, ids, ["features"], path)[:, 0]), dtype=torch.float32)


def readout_head(readout: list, train_x: torch.Tensor) -> nn.Linear:
    """A two-way head that is the language model's own answer: the output layer's rows for
    "no" and "yes", with a bias that centres each class's logit on the unlabelled strong_train
    pairs (the zero-shot answer's bias toward one word is not knowledge of the task)."""
    weight = torch.tensor(readout, dtype=torch.float32)
    head = nn.Linear(weight.shape[1], NUM_CLASSES)
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(-(train_x @ weight.T).mean(dim=0))
    return head


# ---- the strong model: a probe on cached features, or the model itself ------------------


def probe(cfg: StrongTrainConfig, features_file: str, frames: dict[str, pd.DataFrame]):
    """(modules, forward per split, parameter count, the features the run key covers) of a
    linear probe on the strong model's cached features (`train_layers: 0`)."""
    features = read_parquet(features_file, ["id", "split", "features"])
    info = read_json(Path(features_file).with_suffix(".json"))
    x = {split: _feature_matrix(features, frame["id"], split, features_file)
         for split, frame in frames.items() if len(frame)}
    head = readout_head(info["readout"], x["strong_train"]) if cfg.head == "readout" else \
        nn.Linear(x["strong_train"].shape[1], NUM_CLASSES)
    forward = {split: (lambda idx, m=m: head(m[idx].to(head.weight.device))) for split, m in x.items()}
    return [head], forward, info["params"] + sum(p.numel() for p in head.parameters()), x["strong_train"]


def finetuned(cfg: StrongTrainConfig, model_path: str, frames: dict[str, pd.DataFrame], features_file: str | None):
    """The same for the strong model finetuned whole, or its top blocks (with LoRA where set)."""
    if cfg.head == "readout":
        return readout_finetuned(cfg, model_path, frames, features_file)
    model, tokenizer = load_classifier(model_path)
    freeze_for(model, cfg.train_layers)
    if cfg.engine.lora.rank:  # the new head trains whole beside the adapters
        model = add_lora(model, cfg.engine.lora, cfg.train_layers, keep=[head_name(model)])
    model.to(device())  # the start model's curve point runs before the training loop
    forward = {split: token_forward(model, tokenizer, encode(tokenizer, frame, cfg.max_length))
               for split, frame in frames.items() if len(frame)}
    return [model], forward, sum(p.numel() for p in model.parameters()), None


def read_bottoms(features_file: str | None, frames: dict[str, pd.DataFrame], items: dict, blocks: int) -> dict:
    """Each split's frozen-bottom states (strong_features' file of the finetuned readout arm), in
    the order of its frame, checked against the questions this run asks and the blocks it freezes."""
    from ws2s.train.generate import FrozenBottom

    info = read_json(Path(features_file).with_suffix(".json")) if features_file else {}
    if info.get("bottom_blocks") != blocks:
        held = "none was given" if not features_file else f"{features_file} holds the states after " \
            f"{info['bottom_blocks']}" if "bottom_blocks" in info else f"{features_file} holds a probe's features"
        raise Ws2sError(f"the finetuned readout arm freezes {blocks} blocks (classification.strong_training."
                        f"train_layers) and reads their states from strong_features' file; {held}")
    features = read_parquet(features_file, ["id", "split", "features"])
    bottoms = {}
    for split, frame in frames.items():
        if not len(frame):
            continue
        flat = aligned(features[features["split"] == split], frame["id"], ["features"], features_file)[:, 0]
        states = [torch.tensor(np.asarray(f, dtype=np.float32)).view(-1, info["hidden_size"]) for f in flat]
        stale = next((i for i, (s, (_, n)) in enumerate(zip(states, items[split])) if len(s) != n), None)
        if stale is not None:
            raise Ws2sError(f"{features_file}: id {frame['id'].iloc[stale]} ({split}) has states of "
                            f"{len(states[stale])} tokens, its question {items[split][stale][1]}: computed for "
                            "another prompt or max_length; rerun strong_features")
        bottoms[split] = FrozenBottom(blocks, states)
    return bottoms


def readout_finetuned(cfg: StrongTrainConfig, model_path: str, frames: dict[str, pd.DataFrame],
                      features_file: str | None):
    """The readout head on a finetuned causal LM: each pair as the yes/no question the probe
    reads (`ws2s.train.classify.yes_no_prompts`), the frozen bottom blocks' states read from
    strong_features' file (computed once per data set, as the probe's features are), the top
    `train_layers` blocks (LoRA on them where set) and the head trained. The head starts as the
    probe's, the model's own "no"/"yes" rows centred on strong_train, so a run starts from the
    probe's zero-shot answer."""
    from transformers import AutoModelForCausalLM

    from ws2s.train.backbone import frozen_blocks, load_tokenizer
    from ws2s.train.generate import final_states

    tokenizer = load_tokenizer(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    freeze_for(model, cfg.train_layers)
    blocks = frozen_blocks(model, cfg.train_layers)
    items, answers = yes_no_items(tokenizer, frames, cfg.prompt, cfg.max_length)
    bottoms = read_bottoms(features_file, frames, items, blocks) if blocks else {s: None for s, f in frames.items() if len(f)}
    readout = model.get_output_embeddings().weight[answers].detach().float().tolist()
    if cfg.engine.lora.rank:  # on the trained blocks only: the cached bottom states stay the model's
        model = add_lora(model, cfg.engine.lora, cfg.train_layers)
    model.to(device()).eval()

    def last_state(split: str):
        return lambda idx: final_states(model, tokenizer, [items[split][i] for i in idx], bottoms[split], idx)[0][:, -1]

    with torch.no_grad():
        start = torch.tensor(forward_all(last_state("strong_train"), len(items["strong_train"])))
    head = readout_head(readout, start).to(device())
    forward = {split: (lambda idx, states=last_state(split): head(states(idx).float())) for split in bottoms}
    return [model, head], forward, sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in head.parameters()), \
        features_file


# ---- one strong run --------------------------------------------------------------------


def run_strong_classification(cfg: StrongTrainConfig, model_path: str | None, split_dir: str | Path,
                              weak_label_files: list[str], gold_files: list[str], features_file: str | None,
                              out_predictions: str | Path, out_metrics: str | Path,
                              out_curve: str | Path | None = None) -> dict:
    """One strong run (ws2s.train.strong): trained on its targets, validated at every
    evaluation point against them with that point's validation and test predictions kept:
    both protocols' test scores come from one run, and its curve (`out_curve`, from the start
    model on) is what the curves stage reads gold validation scores and the other protocols' picks from."""
    split_dir = Path(split_dir)
    # strong_train.parquet and val.parquet have no label column: the strong stage cannot read
    # their gold from there; only the ceiling is handed their gold files.
    frames = {split: read_parquet(split_dir / f"{split}.parquet", PAIR_COLUMNS) for split in ("strong_train", "val")}
    frames["test"] = test = read_parquet(split_dir / "test.parquet", PAIR_COLUMNS + ["label"])
    targets = split_targets(cfg, "strong_train", frames["strong_train"]["id"], weak_label_files, gold_files)
    n_val = len(frames["val"])
    val_targets = split_targets(cfg, "val", frames["val"]["id"], weak_label_files, gold_files) if n_val else None
    weights = torch.tensor(cfg.weights, dtype=torch.float32)
    generator = seed_everything(cfg.seed)
    modules, forward, params, features = (probe(cfg, features_file, frames) if cfg.train_layers == 0
                                          else finetuned(cfg, model_path, frames, features_file))
    val_loss = ensemble_objective(forward.get("val"), val_targets, weights, validation_objective(cfg.loss))

    def evaluate(_point: int | None = None) -> dict:
        return {"val_loss": validation_loss(lambda idx: val_loss(idx, 1.0)[0], n_val, EVAL_BATCH_SIZE),
                "val_probs": predict_probs(forward["val"], modules, n_val, cfg.loss)[:, 1],
                "test_probs": predict_probs(forward["test"], modules, len(test), cfg.loss)}

    for m in modules:  # the start model, scored as every point is: without dropout, on the run's device
        m.eval()
    with torch.no_grad():
        start = evaluate() if n_val else None
    result = train_strong(cfg, modules, ensemble_objective(forward["strong_train"], targets, weights, cfg.loss),
                          len(targets), out_metrics, generator=generator, optimizer="adam", schedule="cosine",
                          desc=f"{cfg.method} seed {cfg.seed}", key=run_key(cfg, model_path, [targets, features]),
                          on_point=evaluate if n_val else None, points_per_epoch=evaluation_points(cfg.epochs))
    if not is_main_process():
        return {}
    predictions, test_probs = test_predictions(cfg, forward["test"], modules, test)
    labels = test["label"].to_numpy()
    metrics = {"dataset": cfg.dataset, **run_record(cfg, result, cfg.loss, params, last_steps=10),
               "test_accuracy": accuracy(test_probs, labels), "test_ece": expected_calibration_error(test_probs, labels)}
    if n_val:
        progress = point_epochs(cfg.epochs, len(targets), cfg.batch_size)
        selected = nogold_point([record["val_loss"] for record in result.points], str(out_metrics))
        best_probs = result.points[selected]["test_probs"]
        metrics.update(val_losses=[record["val_loss"] for record in result.points], point_epochs=progress,
                       selected_epoch=progress[selected], test_accuracy_nogold=accuracy(best_probs, labels),
                       test_ece_nogold=expected_calibration_error(best_probs, labels))
        if val_gold := gold_by_split(gold_files).get("val"):  # the ceiling's (what the paper's protocol tunes on)
            labels_val = aligned(read_parquet(val_gold, ["id", "label"]), frames["val"]["id"], ["label"], val_gold)
            metrics["val_accuracy"] = accuracy(predict_probs(forward["val"], modules, n_val, cfg.loss), labels_val[:, 0])
    if out_curve:  # without a validation split, an empty curve: there is nothing to select on
        records = [start, *result.points] if n_val else []
        write_parquet(curve_frame(records, [0.0, *metrics.get("point_epochs", [])], frames["val"]["id"], test["id"]),
                      out_curve, schemas.STRONG_CURVE)
    write_parquet(predictions, out_predictions, schemas.STRONG_PREDICTIONS)
    write_json(metrics, out_metrics)
    return metrics


def curve_frame(records: list[dict], progress: list[float], val_ids: pd.Series, test_ids: pd.Series) -> pd.DataFrame:
    """A run's curve as the STRONG_CURVE schema: per evaluation point (0: the start model), its
    progress in epochs, validation loss against the run's own targets, and P(class 1) on val and test."""
    parts = [pd.DataFrame({"point": point, "epochs": epochs, "val_loss": record["val_loss"], "split": split,
                           "id": ids.to_numpy(), "prob_1": prob_1})
             for point, (record, epochs) in enumerate(zip(records, progress, strict=True))
             for split, ids, prob_1 in (("val", val_ids, record["val_probs"]),
                                        ("test", test_ids, record["test_probs"][:, 1]))]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({f.name: [] for f in schemas.STRONG_CURVE})


def test_predictions(cfg: StrongTrainConfig, forward, modules, test: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The test predictions frame (with the Dirichlet strength and vacuity after EDL) and the probabilities."""
    test_probs = predict_probs(forward, modules, len(test), cfg.loss)
    predictions = probs_frame(test["id"], "test", test_probs)
    if cfg.loss.kind == "edl":
        strength = np.exp(forward_all(forward, len(test), lambda logits: dirichlet_log_strength(logits, cfg.loss))
                          .astype(np.float64))
        predictions["strength"], predictions["vacuity"] = strength, NUM_CLASSES / strength
    else:
        predictions["strength"] = predictions["vacuity"] = np.nan
    return predictions, test_probs
