"""What every model of both tracks shares: seeding, the tokenizer, and which blocks train."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ws2s.errors import Ws2sError


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


def add_lora(model: nn.Module, lora, train_layers: str | int, keep: Sequence[str] = ()) -> nn.Module:
    """`model` with peft's LoRA adapters (`lora`: ws2s.config.LoraConfig) on the linear layers of
    the blocks `train_layers` trains (every block with `all`), all of the named ones with
    `all-linear`; every other weight frozen but the modules in `keep` (a classifier's head).
    The reference of cDPO is this model with its adapters switched off (`disable_adapter`)."""
    from peft import LoraConfig, get_peft_model

    stack = _layer_stack(model)
    trained = {id(m) for block in list(stack)[frozen_blocks(model, train_layers):] for m in block.modules()}
    wanted = lora.target_modules
    targets = [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and id(m) in trained
               and (wanted == "all-linear" or name.rsplit(".", 1)[-1] in wanted)]
    if not targets:
        raise Ws2sError(f"engine.lora.target_modules: no linear layer named {wanted} in the trained blocks")
    return get_peft_model(model, LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                            target_modules=targets, modules_to_save=list(keep) or None))


def folded(model: nn.Module) -> tuple[nn.Module, dict | None]:
    """The plain model under a LoRA model and its weights with the adapters folded in (peft's own
    per-layer delta; nothing changes in place), so the checkpoint loads without peft; a model
    without adapters as it is (None: its own state dict)."""
    if not hasattr(model, "get_base_model"):
        return model, None
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    state = {}
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer):
            layer = module.get_base_layer()
            state[f"{name}.weight"] = layer.weight.detach() + module.get_delta_weight(module.active_adapters[0])
            if getattr(layer, "bias", None) is not None:
                state[f"{name}.bias"] = layer.bias.detach()
    for key, value in base.state_dict().items():
        if ".lora_" not in key and ".base_layer." not in key:
            state.setdefault(key, value)
    return base, state
