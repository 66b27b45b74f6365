"""Benchmark: one strong training step with each loss, against plain cross-entropy.

Run on demand (not part of the test suite):
    python tests/benchmarks/bench_strong_step.py [--steps 5] [--batch 8] [--tokens 64]

Same model (SmolLM2-135M's architecture, random init: this measures speed), same batch,
same optimiser; only the loss differs. Prints a Markdown table of median step times.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ws2s.losses import LossConfig, weak_ensemble_loss

SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                    rope_theta=100000.0, tie_word_embeddings=True, pad_token_id=0)

CASES = {
    "cross-entropy, one weak model (Eqn 1)": (LossConfig(kind="ce"), 1),
    "Naive Multi-Weak, 5 weak models (Eqn 2)": (LossConfig(kind="ce"), 5),
    "Naive Multi-Weak + aux": (LossConfig(kind="ce", aux=True), 5),
    "Bayesian Multi-Weak, 5 weak models (Eqn 4)": (LossConfig(kind="edl"), 5),
    "Bayesian Multi-Weak + aux (Eqn 5)": (LossConfig(kind="edl", aux=True), 5),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    model = LlamaForSequenceClassification(LlamaConfig(**SMOLLM2_135M, num_labels=2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)
    ids = torch.randint(1, 49152, (args.batch, args.tokens))
    weak = torch.softmax(torch.randn(args.batch, 5, 2), dim=-1)

    def step(cfg: LossConfig, n_weak: int) -> float:
        start = time.perf_counter()
        loss = weak_ensemble_loss(model(input_ids=ids).logits, weak[:, :n_weak], torch.ones(n_weak) / n_weak, 0.5, cfg)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    def loss_only(cfg: LossConfig, n_weak: int, repeats: int = 200) -> float:
        """The loss's own forward and backward on fixed logits, per call."""
        logits = torch.randn(args.batch, 2, requires_grad=True)
        start = time.perf_counter()
        for _ in range(repeats):
            weak_ensemble_loss(logits, weak[:, :n_weak], torch.ones(n_weak) / n_weak, 0.5, cfg).backward()
        return (time.perf_counter() - start) / repeats

    for case in CASES.values():  # warm-up
        step(*case)
    medians = {}
    for _ in range(args.steps):  # interleave the cases so drift hits them alike
        for name, case in CASES.items():
            medians.setdefault(name, []).append(step(*case))
    base = statistics.median(medians["cross-entropy, one weak model (Eqn 1)"])
    print(f"torch threads {torch.get_num_threads()}, batch {args.batch} x {args.tokens} tokens, {args.steps} steps each\n")
    print("| loss | median step (s) | vs cross-entropy | the loss alone (ms) | loss alone / step |")
    print("| --- | --- | --- | --- | --- |")
    for name, times in medians.items():
        median = statistics.median(times)
        alone = loss_only(*CASES[name])
        print(f"| {name} | {median:.3f} | {100 * (median / base - 1):+.1f}% | {1000 * alone:.2f} | {100 * alone / median:.3f}% |")


if __name__ == "__main__":
    main()
