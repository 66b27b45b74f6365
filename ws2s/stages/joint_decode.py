"""Joint Decoding, the generation track's ensemble baseline.

Per strong_train utterance: pool the M best beams of every member (N × M texts, distinct
ones kept), let every member score every candidate teacher-forced (its own tokenizer, so
models with different vocabularies score the same text), and keep the candidate with the
highest λ-weighted sum of sequence probabilities, log Σ_i λ_i p_i(y). The strong model
then trains on it as a hard target.

The M-best lists are the first M of each weak model's beam search with `generation.weak_beams`
beams; for M below that, this is the top of a wider search, not a search with M beams
(Table 11 varies M without rerunning the weak models). The models whose lists are pooled
(generators) and those that score (judges) are the ensemble's members, or for Table 10
(Appendix G.1) two subsets of the weak models: a member may generate and not judge.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ws2s import schemas
from ws2s.config import JointDecodingConfig
from ws2s.data.slurp import PROMPTS, render_prompt
from ws2s.errors import Ws2sError
from ws2s.frames import align_by_id
from ws2s.io import read_parquet, write_parquet
from ws2s.objectives import preference_scores
from ws2s.train.generate import judge


def pooled_candidates(nbest_lists: list[list[str]], m: int) -> list[str]:
    """The distinct texts among each member's first m beams, in first-seen order."""
    return list(dict.fromkeys(text for nbest in nbest_lists for text in list(nbest)[:m]))


def joint_decode(cfg: JointDecodingConfig, split_dir: str | Path, hypothesis_files: list[str],
                 weak_model_dirs: list[str], out: str | Path) -> dict:
    """`hypothesis_files` are the generators' (their M-best lists are pooled), `weak_model_dirs`
    the judges' (each scores every candidate); both the members unless Table 10 splits them."""
    # strong_train (the training targets) and val (the no-gold protocol's model selection)
    strong_train = pd.concat([read_parquet(Path(split_dir) / f"{split}.parquet", ["id", "sentence"]).assign(split=split)
                              for split in ("strong_train", "val")], ignore_index=True)
    nbest = []
    for path in hypothesis_files:
        hyps = read_parquet(path, ["id", "split", "nbest"])
        hyps = align_by_id(hyps[hyps["split"].isin(["strong_train", "val"])], strong_train["id"], path)
        if len(hyps["nbest"].iloc[0]) < cfg.m:
            raise Ws2sError(f"{path}: {len(hyps['nbest'].iloc[0])}-best lists, but joint_decoding.m is {cfg.m}; "
                            "raise generation.weak_beams")
        nbest.append(hyps["nbest"].tolist())
    candidates = [pooled_candidates([member[u] for member in nbest], cfg.m) for u in range(len(strong_train))]

    # every (utterance, candidate) flattened, so each weak model scores all in one batched pass
    owner = np.repeat(np.arange(len(candidates)), [len(c) for c in candidates])
    prompts = [render_prompt(PROMPTS[cfg.prompt], strong_train["sentence"].iloc[u]) for u in owner]
    logps, lengths = judge(weak_model_dirs, prompts, [text for c in candidates for text in c])
    scores = preference_scores(logps, lengths, cfg.weights, "sequence_prob")
    bounds = np.cumsum([0] + [len(c) for c in candidates])
    rows = []
    for u, texts in enumerate(candidates):
        part = slice(bounds[u], bounds[u + 1])
        rows.append({"id": strong_train["id"].iloc[u], "split": strong_train["split"].iloc[u], "candidates": texts,
                     "member_logprobs": [lp[part].astype(np.float32) for lp in logps],
                     "scores": scores[part].astype(np.float32), "chosen": texts[int(np.argmax(scores[part]))]})
    write_parquet(pd.DataFrame(rows), out, schemas.JOINT_CANDIDATES)
    return {"utterances": len(rows), "mean_candidates": float(np.mean([len(c) for c in candidates]))}
