"""Benchmark: one strong training step with each loss, against plain cross-entropy.

Run on demand (not part of the test suite):
    python tests/benchmarks/bench_strong_step.py [--steps 5] [--batch 8] [--tokens 64] [--targets 16]

Two settings on SmolLM2-135M's architecture (random init: this measures speed), same batch,
same optimiser; only the loss differs. Prints Markdown tables of median step times.

- classification: a two-way head, the loss over 5 weak models' labels (Eqns 1, 2, 4, 5);
- token level: the causal LM over its 49,152-token vocabulary, the loss at the last
  `--targets` positions of each sequence (a slot-filling answer) against Stage 3 soft
  labels (dense over the vocabulary), as one member of the generation track's strong
  stage computes it: cross-entropy, and the evidential loss with the KL term on.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ws2s.objectives import LossConfig, aux_targets, example_loss, weak_ensemble_loss

SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                    rope_theta=100000.0, tie_word_embeddings=True, pad_token_id=0)

CLASSIFICATION = {
    "cross-entropy, one weak model (Eqn 1)": (LossConfig(kind="ce"), 1),
    "Naive Multi-Weak, 5 weak models (Eqn 2)": (LossConfig(kind="ce"), 5),
    "Naive Multi-Weak + aux": (LossConfig(kind="ce", aux=True), 5),
    "Bayesian Multi-Weak, 5 weak models (Eqn 4)": (LossConfig(kind="edl"), 5),
    "Bayesian Multi-Weak + aux (Eqn 5)": (LossConfig(kind="edl", aux=True), 5),
}

# the generation track's settings (workflow/configs/small.yaml and config.yaml)
GEN_AUX = dict(aux=True, gamma_max=0.2, warmup_frac=0.25, balanced_threshold=False)
CPU_EDL = dict(kind="edl", kl_weight=1e-5, kl_clamp=2e5, centre_logits=True, kl_top_k=64)
TOKEN_LEVEL = {
    "cross-entropy (Eqn 1, one member)": LossConfig(kind="ce"),
    "cross-entropy + aux": LossConfig(kind="ce", **GEN_AUX),
    "EDL + aux, the CPU configs (centred, KL over the top 64 and a pooled rest)": LossConfig(**CPU_EDL, **GEN_AUX),
    "EDL + aux, exact Eqn 4 over the full vocabulary (centred)":
        LossConfig(kind="edl", kl_weight=1e-4, kl_clamp=2e5, centre_logits=True, **GEN_AUX),
    "EDL + aux, the authors' soft-label KL over the full vocabulary":
        LossConfig(kind="edl", kl_weight=1e-4, kl_clamp=2e5, kl_target="soft_label", **GEN_AUX),
}


def median_steps(cases: dict, step, steps: int) -> dict[str, float]:
    for case in cases.values():  # warm-up
        step(case)
    times: dict[str, list[float]] = {}
    for _ in range(steps):  # interleave the cases so drift hits them alike
        for name, case in cases.items():
            times.setdefault(name, []).append(step(case))
    return {name: statistics.median(values) for name, values in times.items()}


def table(medians: dict[str, float], alone: dict[str, float]) -> None:
    base = next(iter(medians.values()))
    print("| loss | median step (s) | vs cross-entropy | the loss alone (ms) | loss alone / step |")
    print("| --- | --- | --- | --- | --- |")
    for name, median in medians.items():
        print(f"| {name} | {median:.3f} | {median / base:.3f}× | {1000 * alone[name]:.1f} | "
              f"{100 * alone[name] / median:.1f}% |")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def classification(args) -> None:
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    model = LlamaForSequenceClassification(LlamaConfig(**SMOLLM2_135M, num_labels=2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)
    ids = torch.randint(1, 49152, (args.batch, args.tokens))
    weak = torch.softmax(torch.randn(args.batch, 5, 2), dim=-1)

    def step(case) -> float:
        cfg, n_weak = case

        def run():
            loss, _ = weak_ensemble_loss(model(input_ids=ids).logits, weak[:, :n_weak], torch.ones(n_weak) / n_weak,
                                         0.5, cfg)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return timed(run)

    def loss_only(case, repeats: int = 200) -> float:
        cfg, n_weak = case
        logits = torch.randn(args.batch, 2, requires_grad=True)
        return timed(lambda: [weak_ensemble_loss(logits, weak[:, :n_weak], torch.ones(n_weak) / n_weak, 0.5, cfg)[0]
                              .backward() for _ in range(repeats)]) / repeats

    print(f"## Classification: two-way head, batch {args.batch} x {args.tokens} tokens\n")
    table(median_steps(CLASSIFICATION, step, args.steps), {n: loss_only(c) for n, c in CLASSIFICATION.items()})


def token_level(args) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)
    ids = torch.randint(1, 49152, (args.batch, args.tokens))
    # Stage 3 soft labels: P(target) at the hypothesis token, the rest spread over the vocabulary
    targets = torch.randint(1, 49152, (args.batch * args.targets,))
    rest = torch.softmax(torch.randn(args.batch * args.targets, 49152) * 2, dim=-1)
    p_target = torch.rand(args.batch * args.targets, 1) * 0.5 + 0.5
    labels = rest * (1 - p_target) / (1 - rest.gather(-1, targets[:, None]))
    labels.scatter_(-1, targets[:, None], p_target)

    def loss_of(logits, cfg):
        loss, _ = example_loss(logits, aux_targets(logits, labels, 0.5, cfg), 0.5, cfg)
        return loss.mean()

    def step(cfg) -> float:
        def run():
            logits = model(input_ids=ids, logits_to_keep=args.targets).logits.reshape(-1, 49152)
            loss = loss_of(logits, cfg)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return timed(run)

    def loss_only(cfg, repeats: int = 3) -> float:
        logits = (torch.randn(args.batch * args.targets, 49152) * 2.5).requires_grad_(True)
        return timed(lambda: [loss_of(logits, cfg).backward() for _ in range(repeats)]) / repeats

    print(f"\n## Token level: causal LM, batch {args.batch} x {args.tokens} tokens, the loss at the last "
          f"{args.targets} positions over 49,152 tokens\n")
    table(median_steps(TOKEN_LEVEL, step, args.steps), {n: loss_only(c) for n, c in TOKEN_LEVEL.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--targets", type=int, default=16)
    parser.add_argument("--only", choices=["classification", "token"], default=None)
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}, {args.steps} steps each (medians)\n")
    if args.only != "token":
        classification(args)
    if args.only != "classification":
        token_level(args)


if __name__ == "__main__":
    main()
