"""Benchmark: greedy decoding of a model whose output layer is frozen, as every CPU config's
strong and weak generators are, through ws2s's decoding loop against a bare `model.generate`.

Run on demand, after the embedded default has prepared the models:
    python tests/benchmarks/bench_decoding.py [--model results/models/qwen2.5-coder-0.5b]

`generate` hands the output layer a strided view of the last position; with the layer's
weight frozen, torch's matmul then copies the weight into a batched product at every step.
The loop in `ws2s.train.generate.generated_batches` makes that view contiguous. Same model
(bf16, top blocks trainable as `freeze_for` leaves them), prompts and token budget; reports
seconds a batch and whether the texts agree.
"""

from __future__ import annotations

import argparse
import time

import torch

from ws2s.data.slurp import PROMPTS, load_utterances, render_prompt
from ws2s.train.backbone import freeze_for
from ws2s.train.generate import _strip, decode, for_inference, load_causal


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="results/models/qwen2.5-coder-0.5b")
    parser.add_argument("--data", default="./data/slurp/test.jsonl")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_causal(args.model)
    freeze_for(model, 4)
    for_inference(model, bf16=True)
    prompts = [render_prompt(PROMPTS["short"], s)
               for s in load_utterances(args.data, "data")["sentence"].head(args.batch)]

    start = time.perf_counter()
    looped = decode(model, tokenizer, prompts, beams=1, max_new_tokens=args.max_new_tokens, batch_size=args.batch)
    loop_s = time.perf_counter() - start

    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**batch, do_sample=False, num_beams=1, max_new_tokens=args.max_new_tokens)
    bare_s = time.perf_counter() - start
    bare = [tokenizer.decode(_strip(tokenizer, row.tolist()), clean_up_tokenization_spaces=False)
            for row in out[:, batch["input_ids"].shape[1]:]]

    print(f"{args.model}, {args.batch} prompts, up to {args.max_new_tokens} new tokens, {args.threads} thread(s)")
    print(f"ws2s decoding loop: {loop_s:.1f} s; bare model.generate: {bare_s:.1f} s ({bare_s / loop_s:.1f}x); "
          f"same texts: {sum(a == b for a, b in zip(looped, bare))}/{len(prompts)}")


if __name__ == "__main__":
    main()
