"""Two-way classifiers over (text, candidate) pairs: loading, one training loop, prediction.

The weak stage (gold labels) and the strong stage (weak soft labels, any loss) share
`fit`: Adam with a cosine schedule and no warm-up (Burns et al. 2023; the paper's
Appendix C), the loss given as `weak_ensemble_loss` with the method's config, run by
`ws2s.train.engine.train_loop` (plain PyTorch or DeepSpeed, resumable).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from ws2s.objectives import LossConfig, predict, weak_ensemble_loss
from ws2s.train.backbone import load_tokenizer
from ws2s.train.engine import FitResult, train_loop

NUM_CLASSES = 2
# Inference batch size: changes speed only, so it is not a config value that names outputs.
EVAL_BATCH_SIZE = 64

Forward = Callable[[Sequence[int]], torch.Tensor]  # example indices -> logits [B, K]


def load_classifier(model_path: str):
    """(model, tokenizer) with a freshly initialised 2-way head and a pad token."""
    from transformers import AutoModelForSequenceClassification

    tokenizer = load_tokenizer(model_path)
    tokenizer.padding_side = "right"
    # Left truncation keeps the end of the text, where the question sits after its context.
    tokenizer.truncation_side = "left"
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=NUM_CLASSES, dtype=torch.float32
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def head_name(model: nn.Module) -> str:
    """Name of the classification head: the Linear layer that outputs the class logits."""
    heads = [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == NUM_CLASSES]
    return heads[-1]


def encode(tokenizer, frame: pd.DataFrame, max_length: int) -> list[dict]:
    """Tokenise (text, candidate) pairs; only the text is ever truncated."""
    encoded = tokenizer(
        [f"{t}\n" for t in frame["text"]],
        [f"Answer: {c}" for c in frame["candidate"]],
        truncation="only_first",
        max_length=max_length,
    )
    return [{k: encoded[k][i] for k in encoded} for i in range(len(frame))]


def token_forward(model: nn.Module, tokenizer, features: list[dict]) -> Forward:
    """Logits of the full model on the given examples, padded per batch."""
    def forward(idx: Sequence[int]) -> torch.Tensor:
        batch = tokenizer.pad([features[i] for i in idx], return_tensors="pt")
        return model(**batch.to(next(model.parameters()).device)).logits

    return forward


def ensemble_objective(forward: Forward, targets: torch.Tensor, weights: torch.Tensor, loss_cfg: LossConfig):
    """`loss_for_batch(indices, step_frac)`: `weak_ensemble_loss` of those examples' logits
    against their targets [B, N, K] under the members' weights, with its statistics."""

    def loss_for_batch(idx: list[int], step_frac: float):
        logits = forward(idx)
        return weak_ensemble_loss(logits, targets[idx].to(logits.device), weights.to(logits.device), step_frac,
                                  loss_cfg)

    return loss_for_batch


def fit(forward: Forward, modules: Sequence[nn.Module], targets: torch.Tensor, weights: torch.Tensor,
        loss_cfg: LossConfig, *, epochs: int, batch_size: int, lr: float, generator: torch.Generator,
        desc: str) -> FitResult:
    """Minimise `weak_ensemble_loss` over `targets` [B, N, K] with Adam and a cosine schedule
    (the weak models; a strong run trains through ws2s.train.strong with the same objective)."""
    return train_loop(modules, ensemble_objective(forward, targets, weights, loss_cfg), len(targets), epochs=epochs,
                      batch_size=batch_size, lr=lr, generator=generator, optimizer="adam", schedule="cosine", desc=desc)


@torch.no_grad()
def forward_all(forward: Forward, n: int, transform=lambda out: out, desc: str | None = None) -> np.ndarray:
    """`transform(forward(batch))` for all n examples in order, EVAL_BATCH_SIZE at a time (a
    progress bar in the log where `desc` names the pass)."""
    starts = tqdm(range(0, n, EVAL_BATCH_SIZE), desc=desc, mininterval=5, disable=desc is None)
    return np.concatenate([transform(forward(list(range(b, min(b + EVAL_BATCH_SIZE, n))))).float().cpu().numpy()
                           for b in starts])


def predict_probs(forward: Forward, modules: Sequence[nn.Module], n: int, loss_cfg: LossConfig,
                  desc: str | None = None) -> np.ndarray:
    """Class probabilities [n, K] in example order (softmax, or α/α_0 after EDL)."""
    for m in modules:
        m.eval()
    # in full precision whether or not a training loop's autocast is on: both protocols' test
    # scores of the same weights then agree
    with torch.autocast(next(modules[0].parameters()).device.type, enabled=False):
        return forward_all(forward, n, lambda logits: predict(logits, loss_cfg), desc).astype(np.float32)


def one_hot_targets(labels: np.ndarray) -> torch.Tensor:
    """Gold labels as [B, 1, K] soft targets: one 'weak model' that is always right."""
    return torch.nn.functional.one_hot(torch.tensor(np.asarray(labels), dtype=torch.long), NUM_CLASSES).float()[:, None]


ANSWERS = ("no", "yes")  # class 0, class 1


def yes_no_prompts(tokenizer, frame: pd.DataFrame, template: str, max_length: int) -> tuple[list[str], list[int]]:
    """Each pair as the data set's yes/no question (its text cut to its last `max_length` tokens),
    in the model's chat template where it has one; and the token ids of the answers no, yes."""
    def cut(text: str) -> str:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= max_length else tokenizer.decode(ids[-max_length:])

    questions = [template.format(text=cut(t), candidate=c) for t, c in zip(frame["text"], frame["candidate"])]
    if tokenizer.chat_template:
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                 add_generation_prompt=True) for q in questions]
        answers = list(ANSWERS)
    else:
        prompts, answers = [f"{q}\nAnswer:" for q in questions], [f" {a}" for a in ANSWERS]
    return prompts, [tokenizer(a, add_special_tokens=False)["input_ids"][0] for a in answers]


def yes_no_items(tokenizer, frames: dict[str, pd.DataFrame], template: str,
                 max_length: int) -> tuple[dict[str, list[tuple[list[int], int]]], list[int]]:
    """Each split's yes/no questions (`yes_no_prompts`) as token-id items (ids, length) for the
    frozen-bottom states (`ws2s.train.generate.FrozenBottom`), and the answers' token ids."""
    items, answers = {}, []
    for split, frame in frames.items():
        prompts, answers = yes_no_prompts(tokenizer, frame, template, max_length)
        items[split] = [(ids, len(ids)) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    return items, answers
