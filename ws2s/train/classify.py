"""Finetuning a two-way sequence classifier on (text, candidate) pairs, and predicting with it.

Used for the weak models of the classification track: Adam, cosine schedule without
warm-up, cross-entropy on ground truth (Burns et al. 2023; the paper's Appendix C).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from ws2s.config import WeakTrainConfig

NUM_CLASSES = 2


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; the returned generator drives data order."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


def load_classifier(model_path: str):
    """(model, tokenizer) with a freshly initialised 2-way head and a pad token."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    # Left truncation keeps the end of the text, where the question sits after its context.
    tokenizer.truncation_side = "left"
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=NUM_CLASSES, dtype=torch.float32
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _layer_stack(model: nn.Module) -> nn.ModuleList:
    """The transformer's list of blocks: the longest ModuleList in the model."""
    stacks = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    return max(stacks, key=len)


def freeze_for(model: nn.Module, train_layers: str | int) -> int:
    """Freeze the embeddings and all but the top `train_layers` blocks; return trainable count.

    `all` trains everything, as the paper does; an integer K keeps the embeddings and the
    bottom blocks fixed and trains the top K blocks, the final norm and the head (K = 0 is
    a linear probe), for CPU-sized runs.
    """
    if train_layers != "all":
        layers = _layer_stack(model)
        frozen = [layers[i] for i in range(len(layers) - int(train_layers))]
        frozen.append(model.get_input_embeddings())
        frozen += [m for name, m in model.named_modules() if name.endswith("embeddings")]
        for module in frozen:
            for param in module.parameters():
                param.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def encode(tokenizer, frame: pd.DataFrame, max_length: int) -> list[dict]:
    """Tokenise (text, candidate) pairs; only the text is ever truncated."""
    encoded = tokenizer(
        [f"{t}\n" for t in frame["text"]],
        [f"Answer: {c}" for c in frame["candidate"]],
        truncation="only_first",
        max_length=max_length,
    )
    return [{k: encoded[k][i] for k in encoded} for i in range(len(frame))]


def _batches(tokenizer, features: list[dict], order, batch_size: int):
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield idx, tokenizer.pad([features[i] for i in idx], return_tensors="pt")


@dataclass
class TrainResult:
    model: nn.Module
    trainable_params: int
    total_params: int
    losses: list[float]
    seconds: float


def train_classifier(model, tokenizer, train: pd.DataFrame, cfg: WeakTrainConfig) -> TrainResult:
    """Cross-entropy on gold labels; Adam with a cosine schedule and no warm-up."""
    from transformers import get_cosine_schedule_with_warmup

    generator = seed_everything(cfg.seed)
    trainable = freeze_for(model, cfg.train_layers)
    features = encode(tokenizer, train, cfg.max_length)
    labels = torch.tensor(train["label"].to_numpy(), dtype=torch.long)
    steps_per_epoch = math.ceil(len(features) / cfg.batch_size)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    schedule = get_cosine_schedule_with_warmup(optimizer, 0, steps_per_epoch * cfg.epochs)
    model.train()
    losses, start = [], time.time()
    with tqdm(total=steps_per_epoch * cfg.epochs, desc=f"train {cfg.model_name} seed {cfg.seed}", mininterval=5) as bar:
        for _ in range(cfg.epochs):
            order = torch.randperm(len(features), generator=generator).tolist()
            for idx, batch in _batches(tokenizer, features, order, cfg.batch_size):
                logits = model(**batch).logits
                loss = nn.functional.cross_entropy(logits, labels[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{loss.item():.3f}")
                bar.update()
    total = sum(p.numel() for p in model.parameters())
    return TrainResult(model, trainable, total, losses, time.time() - start)


@torch.no_grad()
def predict_probs(model, tokenizer, frame: pd.DataFrame, max_length: int, batch_size: int) -> np.ndarray:
    """Class probabilities, one row per example, in the frame's order."""
    model.eval()
    features = encode(tokenizer, frame, max_length)
    probs = np.zeros((len(features), NUM_CLASSES), dtype=np.float32)
    for idx, batch in _batches(tokenizer, features, list(range(len(features))), batch_size):
        probs[idx] = torch.softmax(model(**batch).logits.float(), dim=-1).numpy()
    return probs
