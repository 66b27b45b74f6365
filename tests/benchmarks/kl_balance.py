"""How large the token-level KL term is against the NLL, on the validation split.

Run on demand, after the embedded default's mappings exist:
    python tests/benchmarks/kl_balance.py [--config workflow/configs/small.yaml] [--seed 0]

The paper sets the KL term's coefficient "to balance the KL penalty with the magnitude of the
NLL" (Section 4.1). This measures both terms with the strong model as every strong run
starts from it, on the weak models' mapped hypotheses of the validation split (Stage 3
soft labels, as Bayesian Multi-Weak trains on them), for the config's evidence settings
and for the authors' raw exp evidence, and prints the λ_EDL at which λ·KL equals the NLL.
No gold label is read.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import pandas as pd
import torch

from ws2s.config import StrongGenerationConfig
from ws2s.configfile import load
from ws2s.models import resolve
from ws2s.objectives import LossConfig, edl_terms, soft_targets
from ws2s.stages.strong_generate import build_sequences
from ws2s.train.generate import load_causal, target_logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="+", default=["config.yaml", "workflow/configs/small.yaml"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--utterances", type=int, default=64)
    args = parser.parse_args()
    config = load(*args.config)
    gen = config["generation"]
    ensemble = next(iter(gen["ensembles"]))
    members = gen["ensembles"][ensemble]
    strong = gen["strong_model"]
    model, tokenizer = load_causal(resolve(strong, config["models"][strong], "results/models"))
    model.eval()
    val = pd.read_parquet("results/generation/splits/val.parquet").head(args.utterances)
    cfg = StrongGenerationConfig(model_name=strong, model_spec={}, seed=args.seed, prompt=gen["prompt"],
                                 method="bayesian", target="mapped", source=ensemble, members=members, weighting="average",
                                 weights=[1 / len(members)] * len(members), loss={"kind": "edl"}, soft_labels=gen["soft_labels"],
                                 epochs=1, batch_size=8, lr=1.0, train_layers="all", decoding={}, engine={})
    mapped = [f"results/generation/mapped/{m}/seed{args.seed}.parquet" for m in members]
    sequences, _ = build_sequences(cfg, tokenizer, val, mapped, None, None)
    settings = {"the config's": LossConfig(kind="edl", **gen["edl"]),
                "raw exp evidence, full vocabulary (the authors')": LossConfig(kind="edl", activation="exp")}
    print(f"{strong} on {len(val)} validation utterances x {len(members)} members' hypotheses\n")
    print("| evidence | mean logit | mean NLL (nats/token) | mean KL (nats/token) | λ_EDL with λ·KL = NLL |")
    print("| --- | --- | --- | --- | --- |")
    for name, loss in settings.items():
        nll, kl, logit = [], [], []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            for member in sequences:
                for b in range(0, len(member), 8):
                    batch = member[b:b + 8]
                    z, target, real = target_logits(model, tokenizer, [(ids, start) for ids, start, _ in batch])
                    logprobs = torch.zeros(real.shape, dtype=torch.float64)
                    for row, (_, _, lp) in enumerate(batch):
                        logprobs[row, real.shape[1] - len(lp) - 1:real.shape[1] - 1] = torch.as_tensor(lp)
                    y = soft_targets(z, target, logprobs[real], gen["soft_labels"]["kind"], gen["soft_labels"]["min_prob"])
                    terms = edl_terms(z.float(), y, replace(loss, kl_weight=1.0))
                    nll.append(terms.nll.double()), kl.append(terms.kl.double()), logit.append(z.float().mean(-1))
        nll, kl = torch.cat(nll).mean().item(), torch.cat(kl).mean().item()
        print(f"| {name} | {torch.cat(logit).mean().item():.2f} | {nll:.3f} | {kl:.4g} | {nll / kl:.2g} |")


if __name__ == "__main__":
    main()
