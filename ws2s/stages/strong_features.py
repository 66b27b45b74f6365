"""Frozen features of the strong model, for the linear-probe setting (`train_layers: 0`):
computed once per data set and reused by every method and seed.

Two kinds, by `classification.strong_training.head`:
- `readout` (a causal LM): the pair as a yes/no question under the data set's prompt (in the
  model's chat template where it has one), the final hidden state at the last prompt
  position, and beside it the rows of the model's output layer for its answer tokens "no"
  and "yes". A two-way head made of those rows is the model's own zero-shot answer, which
  weak labels then elicit (Burns et al. 2023); the strong model starts from what it knows.
- `random`: what a freshly initialised sequence-classification head would see.

The finetuned readout arm (`head: readout`, `train_layers: K > 0`) trains the top K blocks,
so what it reads once is each question's hidden states after the frozen bottom blocks, at
every position (the top blocks attend to all of them). Every strong run of the data set
shares them: computed in each run, they cost each of the embedded default's 65 runs about
what the probe's features cost once (27 min on one core of an AVX2 EPYC).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from ws2s import schemas
from ws2s.frames import PAIR_COLUMNS
from ws2s.io import read_parquet, write_json, write_parquet
from ws2s.train.backbone import frozen_blocks, load_tokenizer
from ws2s.train.classify import (EVAL_BATCH_SIZE, encode, forward_all, head_name, load_classifier, token_forward,
                                 yes_no_items, yes_no_prompts)
from ws2s.train.engine import bf16_on, device
from ws2s.train.generate import FrozenBottom

SPLITS = ("strong_train", "val", "test")


@torch.no_grad()
def extract_features(model_path: str, frames: dict[str, pd.DataFrame], max_length: int) -> pd.DataFrame:
    """What the classification head would see, for every example of every split."""
    model, tokenizer = load_classifier(model_path)
    setattr(model, head_name(model), nn.Identity())
    model.eval()
    rows = []
    for split, frame in frames.items():
        forward = token_forward(model, tokenizer, encode(tokenizer, frame, max_length))
        feats = forward_all(forward, len(frame))
        rows.append(pd.DataFrame({"id": frame["id"].to_numpy(), "split": split, "features": list(feats)}))
    return pd.concat(rows, ignore_index=True)


@torch.no_grad()
def prompted_states(model_path: str, frames: dict[str, pd.DataFrame], template: str, max_length: int,
                    bf16: bool) -> tuple[pd.DataFrame, torch.Tensor]:
    """The final hidden state at each yes/no question's last position, and the readout rows [2, H].

    Every question starts with the same tokens (the chat template's system turn, the prompt's
    opening words): their keys and values are computed once and shared, and each batch runs
    only what follows, right-padded, its last real position read off."""
    import copy

    from transformers import AutoModelForCausalLM, DynamicCache

    tokenizer = load_tokenizer(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16 if bf16_on(bf16) else torch.float32)
    model.eval()
    decoder = model.get_decoder()
    prompts = {split: yes_no_prompts(tokenizer, frame, template, max_length) for split, frame in frames.items()}
    answer_ids = next(iter(prompts.values()))[1]
    ids = {split: [tokenizer(p, add_special_tokens=False)["input_ids"] for p in texts]
           for split, (texts, _) in prompts.items()}
    every = [row for rows in ids.values() for row in rows]
    shared = next((i for i in range(min(map(len, every)) - 1) if len({row[i] for row in every}) > 1),
                  min(map(len, every)) - 1)
    prefix = DynamicCache()
    decoder(input_ids=torch.tensor([every[0][:shared]]), past_key_values=prefix, use_cache=True) if shared else None
    rows = []
    for split, frame in frames.items():
        states = []
        for b in tqdm(range(0, len(frame), EVAL_BATCH_SIZE), desc=f"prompted states of {split}", mininterval=5):
            suffixes = [row[shared:] for row in ids[split][b:b + EVAL_BATCH_SIZE]]
            lengths = torch.tensor([len(s) for s in suffixes])
            batch = torch.full((len(suffixes), int(lengths.max())), tokenizer.pad_token_id)
            for r, suffix in enumerate(suffixes):
                batch[r, :len(suffix)] = torch.tensor(suffix)
            mask = torch.cat([torch.ones(len(suffixes), shared, dtype=torch.long),
                              (torch.arange(batch.shape[1]) < lengths[:, None]).long()], dim=1)
            cache = None
            if shared:
                cache = copy.deepcopy(prefix)
                cache.batch_repeat_interleave(len(suffixes))
            hidden = decoder(input_ids=batch, attention_mask=mask, past_key_values=cache, use_cache=shared > 0,
                             position_ids=shared + torch.arange(batch.shape[1]).expand_as(batch)).last_hidden_state
            states.append(hidden[torch.arange(len(suffixes)), lengths - 1].float())
        states = torch.cat(states) if states else torch.zeros(0)
        rows.append(pd.DataFrame({"id": frame["id"].to_numpy(), "split": split, "features": list(states.numpy())}))
    readout = model.get_output_embeddings().weight[answer_ids].float()
    return pd.concat(rows, ignore_index=True), readout


@torch.no_grad()
def bottom_states(model_path: str, frames: dict[str, pd.DataFrame], template: str, max_length: int,
                  train_layers: int) -> tuple[pd.DataFrame, dict]:
    """Each yes/no question's states after the blocks below the top `train_layers`, flattened
    [length x hidden] a row, and what a run checks them against. Computed as a run would
    (fp32, the same batches): a run reading them starts from the same numbers."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).to(device()).eval()
    blocks = frozen_blocks(model, train_layers)
    items, _ = yes_no_items(tokenizer, frames, template, max_length)
    rows = [pd.DataFrame({"id": frame["id"].to_numpy(), "split": split, "features": [
        s.reshape(-1).numpy() for s in FrozenBottom.compute(model, tokenizer, items[split], blocks, EVAL_BATCH_SIZE).states]})
        for split, frame in frames.items() if len(frame)]
    return pd.concat(rows, ignore_index=True), {"bottom_blocks": blocks, "hidden_size": model.config.hidden_size}


def write_features(model_path: str, prompt: str | None, split_dir: str | Path, max_length: int, head: str, bf16: bool,
                   out: str | Path, out_info: str | Path, train_layers: int = 0) -> None:
    """The features Parquet, and beside it the backbone's size for Table 1 (and the readout rows,
    or the frozen blocks' count); `prompt` is the data set's yes/no question (readout head only);
    `train_layers` > 0 (readout head): the finetuned arm's frozen-bottom states instead."""
    from transformers import AutoConfig, AutoModel

    split_dir = Path(split_dir)
    frames = {s: read_parquet(split_dir / f"{s}.parquet", PAIR_COLUMNS) for s in SPLITS}
    if head == "readout" and train_layers:
        features, info = bottom_states(model_path, frames, prompt, max_length, train_layers)
    elif head == "readout":
        features, readout = prompted_states(model_path, frames, prompt, max_length, bf16)
        info = {"readout": readout.tolist(), "hidden_size": readout.shape[1]}
    else:
        features = extract_features(model_path, frames, max_length)
        info = {"hidden_size": len(features["features"].iloc[0])}
    with torch.device("meta"):
        params = sum(p.numel() for p in AutoModel.from_config(AutoConfig.from_pretrained(model_path)).parameters())
    write_parquet(features, out, schemas.FEATURES)
    write_json({"params": params, **info}, out_info)
