"""What every model of both tracks shares: seeding, the tokenizer, and which blocks train."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; the returned generator drives data order."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


def load_tokenizer(model_path: str):
    """A model's tokenizer, padding with EOS where it has no pad token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _layer_stack(model: nn.Module) -> nn.ModuleList:
    """The transformer's list of blocks: the longest ModuleList in the model."""
    stacks = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    return max(stacks, key=len)


def frozen_blocks(model: nn.Module, train_layers: str | int) -> int:
    """How many bottom blocks `freeze_for` keeps fixed."""
    return 0 if train_layers == "all" else max(len(_layer_stack(model)) - int(train_layers), 0)


def freeze_for(model: nn.Module, train_layers: str | int) -> int:
    """Freeze the embeddings and all but the top `train_layers` blocks; return trainable count.

    `all` trains everything, as the paper does; an integer K keeps the embeddings and the
    bottom blocks fixed and trains the top K blocks, the final norm and (a classifier) the
    head, for CPU-sized runs. A causal LM keeps its output layer fixed too, tied to the input
    embeddings (SmolLM2, Gemma 3) or not (Qwen2.5's: 136M parameters).
    """
    if train_layers != "all":
        layers = _layer_stack(model)
        frozen = [layers[i] for i in range(frozen_blocks(model, train_layers))]
        frozen.append(model.get_input_embeddings())
        if getattr(model, "get_output_embeddings", None) and model.get_output_embeddings() is not None:
            frozen.append(model.get_output_embeddings())
        frozen += [m for name, m in model.named_modules() if name.endswith("embeddings")]
        for module in frozen:
            for param in module.parameters():
                param.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
