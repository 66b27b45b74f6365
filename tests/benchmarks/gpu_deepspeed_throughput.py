"""GPU check: DeepSpeed ZeRO-2 bf16 training throughput of a ~1B Llama (random init).

Run on one GPU (needs deepspeed and transformers):
    python tests/benchmarks/gpu_deepspeed_throughput.py [--micro-batch 4] [--seq 2048] [--steps 10] [--out FILE]

Random init: this measures speed only. Reports tokens per second and model FLOPs
utilisation (MFU) against the GPU's dense bf16 peak, with the FLOPs per token counted as
6·N (weights) + 12·L·d·T (attention scores and values), as in the PaLM paper's appendix.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

# TinyLlama-1.1B's shape (one of the paper's weak models), Llama architecture.
LLAMA_1B = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=4096)
# Dense bf16 peak, TFLOP/s (SXM parts).
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": os.environ.get("MASTER_PORT", "29511")}.items():
        os.environ.setdefault(key, value)
    import deepspeed
    from transformers import LlamaConfig, LlamaForCausalLM

    deepspeed.init_distributed(dist_backend="nccl")
    torch.manual_seed(0)
    config = LlamaConfig(**LLAMA_1B, attn_implementation="sdpa")
    model = LlamaForCausalLM(config)
    n_params = sum(p.numel() for p in model.parameters())
    ds_config = {
        "train_micro_batch_size_per_gpu": args.micro_batch,
        "gradient_accumulation_steps": 1,
        "bf16": {"enabled": True},
        "zero_optimization": {"stage": 2, "overlap_comm": True, "contiguous_gradients": True},
        "zero_allow_untested_optimizer": True,
        "gradient_clipping": 1.0,
        "steps_per_print": 10**9,
    }
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)
    device = engine.device
    ids = torch.randint(0, LLAMA_1B["vocab_size"], (args.micro_batch, args.seq), device=device)

    losses = []
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        loss = engine(input_ids=ids, labels=ids).loss
        engine.backward(loss)
        engine.step()
        losses.append(loss.item())
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start

    tokens_per_s = args.micro_batch * args.seq * args.steps / seconds
    flops_per_token = 6 * n_params + 12 * LLAMA_1B["num_hidden_layers"] * LLAMA_1B["hidden_size"] * args.seq
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), float("nan"))
    result = {
        "gpu": name,
        "torch": torch.__version__,
        "deepspeed": deepspeed.__version__,
        "params_billion": round(n_params / 1e9, 3),
        "zero_stage": 2,
        "dtype": "bf16",
        "micro_batch": args.micro_batch,
        "seq_len": args.seq,
        "steps_timed": args.steps,
        "seconds_per_step": round(seconds / args.steps, 4),
        "tokens_per_second": round(tokens_per_s),
        "model_tflops_per_second": round(flops_per_token * tokens_per_s / 1e12, 1),
        "mfu_percent": round(100 * flops_per_token * tokens_per_s / 1e12 / peak, 1),
        "peak_bf16_tflops_assumed": peak,
        "max_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
        "losses_finite": all(map(lambda x: x == x and abs(x) != float("inf"), losses)),
        "first_loss": round(losses[0], 3),
        "last_loss": round(losses[-1], 3),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
