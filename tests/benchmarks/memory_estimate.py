"""Memory per GPU of the paper's strong models under DeepSpeed ZeRO-2, ZeRO-3 and LoRA (issue 26).

An estimate, not a measurement: it computes, from each model's published architecture and
the settings of config.yaml, what one GPU holds while a strong stage trains (weights,
gradients, optimizer state, activations, the loss over the vocabulary, buffers) and which
cluster shapes that fits. Pure Python on the CPU; DeepSpeed's own estimators are called
for comparison when deepspeed imports.

    python tests/benchmarks/memory_estimate.py                      # the Markdown of docs/cluster-memory.md
    python tests/benchmarks/memory_estimate.py --config config.yaml --lora-rank 16 --no-deepspeed
    python tests/benchmarks/memory_estimate.py --update docs/cluster-memory.md   # rewrite its generated section

Every figure printed is computed here; the constants below are the inputs, each with its
source. Sizes are GiB (2^30 bytes).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GIB = 2 ** 30
BEGIN_MARK = "BEGIN output of tests/benchmarks/memory_estimate.py"
END_MARK = "END output of tests/benchmarks/memory_estimate.py"


# --------------------------------------------------------------------------------------------
# Architectures (published numbers)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Arch:
    name: str
    hub: str
    source: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int      # width of each of the gated MLP's gate / up projections
    qkv_bias: bool
    reference_params: int  # the causal LM's parameter count as reported elsewhere (a check of the formula)
    reference_source: str


# Qwen/Qwen2-7B, config.json on the Hugging Face hub: hidden_size 3584, num_hidden_layers 28,
# num_attention_heads 28, num_key_value_heads 4 (GQA, head_dim 128), intermediate_size 18944,
# vocab_size 152064, tie_word_embeddings false; q/k/v projections have biases, o_proj none
# (transformers' Qwen2Attention). This is what config.yaml's `qwen-7b` names.
QWEN2_7B = Arch("Qwen2-7B", "Qwen/Qwen2-7B", "Qwen/Qwen2-7B config.json; transformers Qwen2 modelling",
                vocab=152064, hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944,
                qkv_bias=True, reference_params=7_615_616_512,
                reference_source="the hub's safetensors / GGUF parameter count of Qwen2(.5)-7B (same architecture); "
                                 "Qwen2.5-7B model card: 7.61B, 6.53B non-embedding")
# Qwen/Qwen-7B (the paper's model; remote code): config.json hidden_size 4096, num_hidden_layers 32,
# num_attention_heads 32 (no GQA), intermediate_size 22016 -- modeling_qwen.py's QWenMLP uses
# intermediate_size // 2 = 11008 for each of w1, w2 (the SwiGLU pair) and c_proj 11008 -> 4096 --,
# vocab_size 151936, untied lm_head; the fused c_attn (4096 -> 3 x 4096) has a bias.
QWEN_7B = Arch("Qwen-7B", "Qwen/Qwen-7B", "Qwen/Qwen-7B config.json and modeling_qwen.py",
               vocab=151936, hidden=4096, layers=32, heads=32, kv_heads=32, intermediate=22016 // 2,
               qkv_bias=True, reference_params=7_721_324_544,
               reference_source="the count Qwen-7B reports when loaded with its remote code (7.72B)")
# meta-llama/Llama-2-7b-hf, config.json: hidden_size 4096, num_hidden_layers 32,
# num_attention_heads 32, num_key_value_heads 32, intermediate_size 11008, vocab_size 32000,
# untied lm_head, no biases.
LLAMA2_7B = Arch("Llama-2-7B", "meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-7b-hf config.json",
                 vocab=32000, hidden=4096, layers=32, heads=32, kv_heads=32, intermediate=11008,
                 qkv_bias=False, reference_params=6_738_415_616,
                 reference_source="LlamaForCausalLM's parameter count, 6.74B (Touvron et al. 2023: 7B)")
ARCHS = {a.hub: a for a in (QWEN2_7B, QWEN_7B, LLAMA2_7B)}


def head_dim(a: Arch) -> int:
    return a.hidden // a.heads


def kv_width(a: Arch) -> int:
    return a.kv_heads * head_dim(a)


def layer_params(a: Arch) -> int:
    h, kv, i = a.hidden, kv_width(a), a.intermediate
    attn = h * h + 2 * h * kv + h * h + ((h + 2 * kv) if a.qkv_bias else 0)
    mlp = 3 * h * i
    norms = 2 * h
    return attn + mlp + norms


def embedding_params(a: Arch) -> int:
    return a.vocab * a.hidden


def largest_module(a: Arch) -> int:
    """Parameters of the largest single module (its own, as DeepSpeed's estimator counts): the
    embedding, or an MLP projection."""
    return max(embedding_params(a), a.hidden * a.intermediate)


def causal_lm_params(a: Arch) -> int:
    """Embedding, blocks, final norm and an untied LM head."""
    return 2 * embedding_params(a) + a.layers * layer_params(a) + a.hidden


def seq_cls_params(a: Arch, num_labels: int) -> int:
    """AutoModelForSequenceClassification: the LM head replaced by a bias-free score layer."""
    return embedding_params(a) + a.layers * layer_params(a) + a.hidden + a.hidden * num_labels


# LoRA adapters (peft; the config's engine.lora, off by default): rank 16 on every linear
# layer of a block (q, k, v, o, gate, up, down: target_modules all-linear), lora_dropout 0,
# the score layer of a classifier fully trained (peft's modules_to_save). --lora-rank changes r.
LORA_RANK = 16


def lora_params(a: Arch, r: int) -> int:
    h, kv, i = a.hidden, kv_width(a), a.intermediate
    shapes = [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]  # q k v o gate up down
    return a.layers * sum(r * (n_in + n_out) for n_in, n_out in shapes)


# --------------------------------------------------------------------------------------------
# Precision and engine constants
# --------------------------------------------------------------------------------------------

# ZeRO paper (Rajbhandari et al. 2020, Sec. 3.1): mixed-precision Adam holds, per parameter,
# 2 bytes of 16-bit weights, 2 of 16-bit gradients and K = 12 of fp32 optimizer state
# (master weights, momentum, variance). bf16 takes fp16's place.
BYTES_WEIGHT, BYTES_GRAD, BYTES_OPTIM = 2, 2, 12
# DeepSpeed's bf16 path under ZeRO-1/2 (stage_1_and_2.py, step()) converts this rank's gradient
# partition to fp32 before the update: 4 bytes per parameter of the partition, after backward.
BYTES_GRAD_FP32_AT_STEP = 4
# The pipeline loads strong models in fp32 (ws2s.train.classify.load_classifier, generate.load_causal)
# on the host; DeepSpeed casts them to bf16 before moving them to the GPU (engine.py).
BYTES_HOST_LOAD = 4
# Usable memory of the cards (nvidia-smi's total): A100 40GB 40,960 MiB; H100 80GB HBM3
# 81,559 MiB (A100 80GB has 81,920: the H100 figure is the smaller).
CARD_GIB = {40: 40_960 / 1024, 80: 81_559 / 1024}
# An estimate "fits" under this share of the card (allocator fragmentation, reserved blocks);
# between it and 1 it is "tight".
FIT_FRACTION = 0.90
# CUDA context, cuBLAS workspace and NCCL buffers of one process (torch 2.x: 1-2 GiB).
RUNTIME_GIB = 1.5
# The cluster shapes of issue 26: name -> (GPUs in all, nodes, card GB); and 8x40 GB, the
# README's advice for 40 GB cards.
SHAPES = {"1x40 GB": (1, 1, 40), "1x80 GB": (1, 1, 80), "4x80 GB": (4, 1, 80), "2 nodes x 4x80 GB": (8, 2, 80),
          "8x40 GB": (8, 1, 40)}

# Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models",
# Sec. 4.1): a transformer layer stores s*b*h*(34 + 5*a*s/h) bytes of 16-bit activations without
# recomputation (dropout masks included); with full recomputation 2*s*b*h a layer (its input),
# plus one layer's full set while that layer is recomputed.
KORTHIKANTI_LINEAR, KORTHIKANTI_QUADRATIC, CHECKPOINT_PER_LAYER = 34, 5, 2
# Output side outside the blocks (all positions): the final RMSNorm keeps its fp32 input (4 bytes)
# and its bf16 output (2): 6*h bytes a token.
FINAL_NORM_BYTES_PER_HIDDEN = 6

# The loss over the vocabulary (generation). The output layer runs only on target positions
# (ws2s.train.generate.target_logits), at most max_new_tokens + EOS of each sequence. Bytes kept
# for backward per position and vocabulary entry, per member (read off ws2s/objectives.py):
#  - cross-entropy on soft labels (ceiling, single, Naive, Joint Decoding): bf16 logits 2,
#    fp32 log-softmax 4, fp32 soft labels 4;
#  - Bayesian EDL with the KL term over the full vocabulary (config.yaml: no kl_top_k): bf16
#    logits 2, fp32 logits 4 (softplus input), fp32 log alpha 4, fp32 labels 4, and in float64
#    alpha 8, labels 8 and the KL's saved slope 8;
#  - cDPO: bf16 logits 2, fp32 log-softmax 4.
LOSS_BYTES = {"ce": 2 + 4 + 4, "edl_kl": 2 + 4 + 4 + 4 + 8 + 8 + 8, "logprob": 2 + 4}
# Backward of one member's loss head: float64 and fp32 gradients of alpha / log alpha / logits.
LOSS_BACKWARD_TRANSIENT_BYTES = 8 + 8 + 4
# Tokens of the paper's SLURP prompt (55 slot types, README "GPU-hours": about 450 with the
# utterance in Llama-2's tokenizer; not measured here: the tokenizer is not offline).
PROMPT_TOKENS = {"paper": 450, "short": 40}


# --------------------------------------------------------------------------------------------
# Workloads: what a strong stage feeds one GPU
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    arch: Arch
    head: str               # seqcls | lm
    seq_len: int            # tokens per sequence (padded batch: the longest)
    batch: int              # global batch (examples); the engine splits it over GPUs, no accumulation
    seqs_per_example: int   # sequences one example puts through the model in one step
    target_positions: int   # lm: positions the output layer runs on per sequence
    loss: str | None        # key of LOSS_BYTES (lm)
    num_labels: int = 2

    def micro(self, gpus: int) -> int:
        """Examples per GPU a step: ws2s.train.engine splits batch_size over the world, accumulation 1."""
        return math.ceil(self.batch / gpus)

    def seqs(self, gpus: int) -> int:
        return self.micro(gpus) * self.seqs_per_example

    def params(self) -> int:
        return seq_cls_params(self.arch, self.num_labels) if self.head == "seqcls" else causal_lm_params(self.arch)


def read_config(path: Path) -> dict:
    """config.yaml with the schema's defaults (the project's own loader)."""
    sys.path.insert(0, str(ROOT))
    from ws2s.configfile import load
    return load(str(path))


def workloads(config: dict) -> list[Workload]:
    cls, gen = config["classification"], config["generation"]
    hub = lambda name: config["models"][name]["hub"]  # noqa: E731
    cls_arch, gen_arch = ARCHS[hub(cls["strong_model"])], ARCHS[hub(gen["strong_model"])]
    prompt = PROMPT_TOKENS[gen["prompt"]]
    target = gen["max_new_tokens"] + 1  # weak hypotheses are at most max_new_tokens, plus EOS
    members = max(len(m) for m in gen["ensembles"].values() if m)
    st = gen["strong_training"]
    cdpo = gen["cdpo"]
    cdpo_target = gen["decoding"]["max_new_tokens"] + 1
    out = [
        Workload("cls", f"{cls_arch.name} classification", cls_arch, "seqcls", cls["max_length"],
                 cls["strong_training"]["batch_size"], 1, 0, None),
        Workload("gen1", f"{gen_arch.name} generation: ceiling, single, Joint Decoding", gen_arch, "lm",
                 prompt + target, st["batch_size"], 1, target, "ce"),
        Workload("genN", f"{gen_arch.name} generation: Naive / Bayesian, ws{members}", gen_arch, "lm",
                 prompt + target, st["batch_size"], members, target,
                 "edl_kl" if "bayesian" in gen["methods"] else "ce"),
    ]
    if cdpo.get("enabled", False):
        out.append(Workload("cdpo", f"{gen_arch.name} cDPO (chosen + rejected)", gen_arch, "lm",
                            prompt + cdpo_target, cdpo["batch_size"], 2, cdpo_target, "logprob"))
    return out


# --------------------------------------------------------------------------------------------
# The estimate
# --------------------------------------------------------------------------------------------

ENGINES = ("ZeRO-2", "ZeRO-2 + offload", "ZeRO-3", "LoRA")


@dataclass(frozen=True)
class Estimate:
    workload: Workload
    engine: str
    gpus: int
    trainable: int
    weights: float
    grads: float
    optim: float
    act_off: float          # Korthikanti, no recomputation
    act_on: float           # full recomputation (gradient checkpointing of every block)
    act_off_arch: float     # architecture-adjusted (SDPA, SwiGLU, GQA, RMSNorm), no recomputation
    loss: float             # loss over the vocabulary, plus one member's backward transient
    buffers: float          # DeepSpeed buckets / ZeRO-3 gathered parameters, and the runtime
    step: float             # transient at the optimizer step (fp32 gradient partition)
    host_per_node: float    # host memory per node: each rank's fp32 load, or its offloaded state after

    def states(self) -> float:
        return self.weights + self.grads + self.optim

    def peak(self, checkpointing: bool, arch_activations: bool = False) -> float:
        if checkpointing:
            act = self.act_on
        else:
            act = self.act_off_arch if arch_activations else self.act_off
        return self.states() + self.buffers + max(act + self.loss, self.step)


def korthikanti_layer(s: int, b: int, a: Arch) -> float:
    return s * b * a.hidden * (KORTHIKANTI_LINEAR + KORTHIKANTI_QUADRATIC * a.heads * s / a.hidden)


def arch_layer(s: int, b: int, a: Arch, kv_repeated: bool = True) -> float:
    """Bytes a block of this architecture keeps, bf16, no dropout, SDPA (transformers' default;
    flash / memory-efficient kernels keep no s x s matrix): attention 2h (norm out, the q/k/v
    input) + 2h (Q) + 4h (K, V: transformers repeats GQA's heads before SDPA when a padding mask
    is present) + 2h (attention out, the o input); SwiGLU 2h (norm out) + 8i (gate, SiLU, up,
    product); two RMSNorms 2 x 6h (fp32 input, bf16 normalised)."""
    h, i = a.hidden, a.intermediate
    kv = h if kv_repeated else kv_width(a)
    per_token = (2 * h + 2 * h + 4 * kv + 2 * h) + (2 * h + 8 * i) + 2 * FINAL_NORM_BYTES_PER_HIDDEN * h
    return s * b * per_token


def lora_layer_extra(s: int, b: int, a: Arch, r: int) -> float:
    """Each adapter keeps its r-wide intermediate (bf16) for lora_B's gradient; its input is the
    frozen linear's input, kept anyway."""
    return s * b * 7 * 2 * r


def estimate(w: Workload, engine: str, gpus: int, zero: dict, lora_rank: int, nodes: int = 1) -> Estimate:
    a, s, b = w.arch, w.seq_len, w.seqs(gpus)
    psi = w.params()
    bucket = lambda key, n: BYTES_WEIGHT * min(int(zero.get(key, 5e8)), n)  # noqa: E731
    if engine == "LoRA":
        score = a.hidden * w.num_labels if w.head == "seqcls" else 0  # a classifier's head trains whole
        trainable = lora_params(a, lora_rank) + score
        weights = BYTES_WEIGHT * (psi - score) + BYTES_WEIGHT * trainable  # frozen base + adapters, bf16
        grads = BYTES_GRAD * trainable
        optim = BYTES_OPTIM * trainable
        buffers = bucket("reduce_bucket_size", trainable) + bucket("allgather_bucket_size", trainable)
        step = BYTES_GRAD_FP32_AT_STEP * trainable
        offloaded = 0.0
    else:
        trainable = psi
        shard = psi / gpus
        if engine == "ZeRO-3":
            largest = largest_module(a)
            weights = BYTES_WEIGHT * shard
            # stage-3 working set: the module being computed and the one prefetched, gathered in
            # bf16 (DeepSpeed's estimator: 4 bytes x the largest layer)
            buffers = 2 * BYTES_WEIGHT * largest + bucket("reduce_bucket_size", psi)
        else:
            weights = BYTES_WEIGHT * psi
            buffers = bucket("reduce_bucket_size", psi) + bucket("allgather_bucket_size", psi)
        if engine == "ZeRO-2 + offload":
            # optimizer state, fp32 master weights and fp32 gradient partitions live on the host
            grads, optim, step = 0.0, 0.0, 0.0
            offloaded = (BYTES_OPTIM + BYTES_GRAD_FP32_AT_STEP) * shard
        else:
            grads, optim = BYTES_GRAD * shard, BYTES_OPTIM * shard
            step = BYTES_GRAD_FP32_AT_STEP * shard
            offloaded = 0.0
    buffers += RUNTIME_GIB * GIB

    extra = lora_layer_extra(s, b, a, lora_rank) if engine == "LoRA" else 0.0
    final = FINAL_NORM_BYTES_PER_HIDDEN * a.hidden * s * b
    act_off = a.layers * (korthikanti_layer(s, b, a) + extra) + final
    act_off_arch = a.layers * (arch_layer(s, b, a) + extra) + final
    act_on = a.layers * CHECKPOINT_PER_LAYER * s * b * a.hidden + korthikanti_layer(s, b, a) + extra + final

    if w.head == "lm":
        positions = w.micro(gpus) * w.target_positions  # per member / per sequence group
        per_member = positions * a.vocab
        loss = per_member * (LOSS_BYTES[w.loss] * w.seqs_per_example + LOSS_BACKWARD_TRANSIENT_BYTES)
    else:
        loss = s * b * w.num_labels * 2.0  # the score layer on every position, bf16; pooled after

    gpus_per_node = gpus // nodes
    # the fp32 copy is cast to bf16 and moved to the GPU before DeepSpeed builds the optimizer
    host = gpus_per_node * max(BYTES_HOST_LOAD * psi, offloaded)
    return Estimate(w, engine, gpus, trainable, weights / GIB, grads / GIB, optim / GIB, act_off / GIB,
                    act_on / GIB, act_off_arch / GIB, loss / GIB, buffers / GIB, step / GIB, host / GIB)


def verdict(e: Estimate, card_gb: int, arch_activations: bool = False) -> tuple[str, str]:
    """(short verdict, binding term)."""
    cap = CARD_GIB[card_gb]
    off, on = e.peak(False, arch_activations), e.peak(True)
    if off <= FIT_FRACTION * cap:
        return "yes", ""
    if off <= cap:
        return "tight", f"{off:.0f} of {cap:.0f} GiB"
    act_off = e.act_off_arch if arch_activations else e.act_off
    if on <= FIT_FRACTION * cap:
        return "ckpt", f"activations {act_off:.0f} GiB without"
    if on <= cap:
        return "ckpt, tight", f"{on:.0f} of {cap:.0f} GiB with checkpointing"
    fixed = e.states() + e.buffers
    if fixed > FIT_FRACTION * cap:
        biggest = max((e.weights, "weights"), (e.optim, "optimizer"), (e.grads, "gradients"))
        return "no", f"model states {e.states():.0f} GiB, {biggest[1]} {biggest[0]:.0f}"
    return "no", f"{on:.0f} GiB with checkpointing"


# --------------------------------------------------------------------------------------------
# DeepSpeed's own estimators (model states only)
# --------------------------------------------------------------------------------------------

def deepspeed_estimators():
    """(zero2, zero3) functions of deepspeed, or None where it does not import."""
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import logging
            logging.disable(logging.WARNING)
            from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
            from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs
            import deepspeed
            logging.disable(logging.NOTSET)
        return estimate_zero2_model_states_mem_needs, estimate_zero3_model_states_mem_needs, deepspeed.__version__
    except Exception as exc:  # noqa: BLE001 -- the comparison is optional
        print(f"<!-- deepspeed estimators unavailable: {exc!r} -->")
        return None


# --------------------------------------------------------------------------------------------
# Calibration: the one measurement on a GPU (README, "DeepSpeed on one H100", commit d3bed70)
# --------------------------------------------------------------------------------------------

# tests/benchmarks/gpu_deepspeed_throughput.py: TinyLlama-1.1B's shape (its LLAMA_1B), random
# init, ZeRO-2 bf16 with DeepSpeed's default buckets, one H100, sequence 2048, no padding mask
# (SDPA without repeated KV heads), HF's causal-LM loss over every position;
# torch.cuda.max_memory_allocated (no CUDA context) measured per micro-batch, GiB.
TINYLLAMA = Arch("TinyLlama-1.1B shape", "(random init)", "gpu_deepspeed_throughput.py LLAMA_1B",
                 vocab=32000, hidden=2048, layers=22, heads=32, kv_heads=4, intermediate=5632,
                 qkv_bias=False, reference_params=1_100_048_384, reference_source="transformers count")
MEASURED_H100 = {"seq": 2048, "peak_gib": {4: 32.1, 8: 49.8}}
# HF's causal-LM loss over all positions: fp32 log-softmax kept (4 bytes an entry), and in
# backward its fp32 gradient in and out (8).
HF_CAUSAL_LOSS_BYTES = 4 + 8


def print_calibration() -> None:
    a, s = TINYLLAMA, MEASURED_H100["seq"]
    psi = causal_lm_params(a)
    default_buckets = 2 * BYTES_WEIGHT * int(5e8)
    print("| micro-batch | measured peak (GiB) | estimate, architecture-adjusted | estimate, Korthikanti |")
    print("| --- | --- | --- | --- |")
    for micro, measured in MEASURED_H100["peak_gib"].items():
        fixed = (BYTES_WEIGHT + BYTES_GRAD + BYTES_OPTIM) * psi + default_buckets
        final = FINAL_NORM_BYTES_PER_HIDDEN * a.hidden * s * micro
        loss = HF_CAUSAL_LOSS_BYTES * s * micro * a.vocab
        arch = a.layers * arch_layer(s, micro, a, kv_repeated=False) + final + loss
        kort = a.layers * korthikanti_layer(s, micro, a) + final + loss
        step = BYTES_GRAD_FP32_AT_STEP * psi
        est_arch, est_kort = (fixed + max(arch, step)) / GIB, (fixed + max(kort, step)) / GIB
        print(f"| {micro} | {measured} | {est_arch:.1f} ({100 * (est_arch / measured - 1):+.0f}%) "
              f"| {est_kort:.1f} ({100 * (est_kort / measured - 1):+.0f}%) |")


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

def g(x: float) -> str:
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def print_inputs(ws: list[Workload], lora_rank: int, zero: dict, config_path: Path) -> None:
    print(f"Inputs (from `{config_path.relative_to(ROOT) if config_path.is_relative_to(ROOT) else config_path}` "
          f"and the constants of `tests/benchmarks/memory_estimate.py`):\n")
    print("| model | hub id | layers | hidden | heads (KV) | MLP width | vocab | parameters (causal LM) | check "
          f"| LoRA r={lora_rank} adapters |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for a in (QWEN2_7B, QWEN_7B, LLAMA2_7B):
        n = causal_lm_params(a)
        ok = "= reported" if n == a.reference_params else f"reported: {a.reference_params:,}"
        print(f"| {a.name} | `{a.hub}` | {a.layers} | {a.hidden} | {a.heads} ({a.kv_heads}) | {a.intermediate} "
              f"| {a.vocab:,} | {n:,} | {ok} | {lora_params(a, lora_rank) / 1e6:.1f} M |")
    print()
    print("| workload | trained parameters | tokens a sequence | global batch | sequences a GPU (1 / 4 / 8 GPUs) |")
    print("| --- | --- | --- | --- | --- |")
    for w in ws:
        print(f"| {w.label} | {w.params():,} | {w.seq_len} | {w.batch} x {w.seqs_per_example} "
              f"| {w.seqs(1)} / {w.seqs(4)} / {w.seqs(8)} |")
    print(f"\nDeepSpeed buckets (`{zero['_path']}`): reduce {int(zero.get('reduce_bucket_size', 5e8)):,}, "
          f"allgather {int(zero.get('allgather_bucket_size', 5e8)):,} elements.\n")


def print_memory_table(ests: list[Estimate]) -> None:
    print("| workload | engine | GPUs | seqs/GPU | weights | grads | optimizer | activations: no ckpt / ckpt "
          "(arch-adjusted no ckpt) | loss head | buffers + runtime | peak, no ckpt | peak, ckpt |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for e in ests:
        w = e.workload
        print(f"| {w.label} | {e.engine} | {e.gpus} | {w.seqs(e.gpus)} | {g(e.weights)} | {g(e.grads)} "
              f"| {g(e.optim)} | {g(e.act_off)} / {g(e.act_on)} ({g(e.act_off_arch)}) | {g(e.loss)} "
              f"| {g(e.buffers)} | **{g(e.peak(False))}** | **{g(e.peak(True))}** |")


def print_fit_table(ws: list[Workload], zero: dict, lora_rank: int) -> list[str]:
    notes = []
    names = list(SHAPES)
    print("| workload | engine | " + " | ".join(names) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in names) + " |")
    for w in ws:
        for engine in ENGINES:
            cells = []
            for shape in names:
                gpus, nodes, card = SHAPES[shape]
                e = estimate(w, engine, gpus, zero, lora_rank, nodes)
                v, why = verdict(e, card)
                v_arch, _ = verdict(e, card, arch_activations=True)
                mark = ""
                if v_arch != v:
                    mark = f" [{v_arch}]"
                    notes.append(f"{w.label}, {engine}, {shape}: {v} with Korthikanti's activations, "
                                 f"{v_arch} with the architecture-adjusted ones")
                cells.append(f"{v}{mark}" + (f" ({why})" if why else ""))
            print(f"| {w.label} | {engine} | " + " | ".join(cells) + " |")
    return notes


def print_deepspeed_comparison(ws: list[Workload], zero: dict, lora_rank: int, ds) -> None:
    z2, z3, version = ds
    print(f"| model (parameters) | GPUs (nodes x per node) | ZeRO-2: this script / DeepSpeed {version} "
          "| ZeRO-2 + offload, GPU: this / DeepSpeed | host per node: this / DeepSpeed "
          "| ZeRO-3: this / DeepSpeed |")
    print("| --- | --- | --- | --- | --- | --- |")
    seen = set()
    for w in ws:
        if w.params() in seen:
            continue
        seen.add(w.params())
        psi = w.params()
        largest = largest_module(w.arch)
        for shape in ("1x80 GB", "4x80 GB", "2 nodes x 4x80 GB"):
            gpus, nodes, _ = SHAPES[shape]
            per_node = gpus // nodes
            mine = {eng: estimate(w, eng, gpus, zero, lora_rank, nodes) for eng in ENGINES}
            _, ds2 = z2(psi, num_gpus_per_node=per_node, num_nodes=nodes, cpu_offload=False)
            ds2o_cpu, ds2o = z2(psi, num_gpus_per_node=per_node, num_nodes=nodes, cpu_offload=True)
            _, ds3, _ = z3(psi, largest, num_gpus_per_node=per_node, num_nodes=nodes, cpu_offload=False,
                           cpu_offload_params=False, zero_init=True)
            z3_mine = mine["ZeRO-3"].states() + 2 * BYTES_WEIGHT * largest / GIB
            print(f"| {w.arch.name}{' (classifier)' if w.head == 'seqcls' else ''} ({psi / 1e9:.2f} B) "
                  f"| {gpus} ({nodes} x {per_node}) "
                  f"| {g(mine['ZeRO-2'].states())} / {g(ds2 / GIB)} "
                  f"| {g(mine['ZeRO-2 + offload'].states())} / {g(ds2o / GIB)} "
                  f"| {g(mine['ZeRO-2 + offload'].host_per_node)} / {g(ds2o_cpu / GIB)} "
                  f"| {g(z3_mine)} / {g(ds3 / GIB)} |")


def print_probe(config: dict) -> None:
    cls = config["classification"]
    a = ARCHS[config["models"][cls["strong_model"]]["hub"]]
    weights = BYTES_WEIGHT * causal_lm_params(a) / GIB
    # inference: no activation is kept; the largest transient is about one layer's set
    work = korthikanti_layer(cls["max_length"], cls["strong_training"]["batch_size"], a) / GIB
    print(f"The linear-probe / readout setting (`train_layers: 0`) trains no backbone weight: "
          f"`strong_features` runs {a.name} forward only (bf16 weights {weights:.1f} GiB, plus about "
          f"{work:.1f} GiB of one layer's transient activations for a batch of "
          f"{cls['strong_training']['batch_size']} x {cls['max_length']} tokens), and the probe "
          f"({a.hidden} x 2 weights) trains on cached features: one GPU of 40 GB, any engine.")


def print_current(config: dict, ws: list[Workload], zero: dict, lora_rank: int) -> None:
    """What config.yaml asks for now: its engine on resources.strong's GPUs."""
    eng_cfg, res = config["engine"], config["resources"]["strong"]
    gpus, nodes = res["gpu"], res.get("nodes", 1)
    engine = {2: "ZeRO-2", 3: "ZeRO-3"}.get(eng_cfg.get("zero_stage"), None)
    if eng_cfg.get("backend") != "deepspeed" or engine is None or gpus < 1:
        return
    if engine == "ZeRO-2" and eng_cfg.get("offload"):
        engine = "ZeRO-2 + offload"
    card = 80
    print(f"config.yaml as it stands ({engine}, {gpus} GPU(s) a strong job, no gradient checkpointing), "
          f"on {card} GB cards:\n")
    for w in ws:
        e = estimate(w, engine, gpus, zero, lora_rank, nodes)
        v, why = verdict(e, card)
        print(f"- {w.label}: peak {e.peak(False):.1f} GiB of {CARD_GIB[card]:.1f} "
              f"({e.peak(True):.1f} with checkpointing): {v}{f' ({why})' if why else ''}")
    mem = res["mem_mb"] * 1e6 / GIB
    host = max(estimate(w, engine, gpus, zero, lora_rank, nodes).host_per_node for w in ws)
    print(f"- host memory a node: {host:.0f} GiB at most ({gpus // nodes} ranks, each loading its fp32 copy, "
          f"or holding offloaded state), against resources.strong.mem_mb = {mem:.0f} GiB")


def print_logits_note(ws: list[Workload]) -> None:
    """What the output layer would cost over every position (b*s*V in fp32), which the pipeline avoids."""
    print("The output layer over every position (b x s x V logits in fp32, the usual causal-LM loss) "
          "against what the pipeline computes, at 4 GPUs:\n")
    for w in ws:
        b = w.seqs(4)
        full = b * w.seq_len * w.arch.vocab * 4 / GIB
        if w.head == "seqcls":
            print(f"- {w.label}: a sequence-classification head ({w.num_labels} logits a position) instead of "
                  f"the {w.arch.vocab:,}-token LM head: {full:.2f} GiB avoided")
        else:
            mine = estimate(w, "ZeRO-2", 4, {}, LORA_RANK).loss
            print(f"- {w.label}: fp32 logits over all {w.seq_len} positions would take {full:.2f} GiB alone; "
                  f"the pipeline's whole loss head (the {w.target_positions} target positions, its fp32 / "
                  f"float64 terms and backward) takes {mine:.2f} GiB")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "config.yaml"))
    parser.add_argument("--lora-rank", type=int, default=LORA_RANK)
    parser.add_argument("--no-deepspeed", action="store_true", help="skip DeepSpeed's estimators")
    parser.add_argument("--update", metavar="MARKDOWN", help="replace the generated section of this file "
                        "(between its BEGIN / END output markers) instead of printing")
    args = parser.parse_args(argv)
    if args.update:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            main([a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--update", args.update)])
        path = Path(args.update)
        text = path.read_text()
        begin, end = f"<!-- {BEGIN_MARK} -->", f"<!-- {END_MARK} -->"
        if text.count(begin) != 1 or text.count(end) != 1:
            sys.exit(f"{path}: needs one '{begin}' and one '{end}'")
        head, rest = text.split(begin)
        _, tail = rest.split(end)
        path.write_text(f"{head}{begin}\n\n{buffer.getvalue().rstrip()}\n\n{end}{tail}")
        return

    config_path = Path(args.config).resolve()
    config = read_config(config_path)
    ds_path = ROOT / config["engine"]["config"]
    zero = dict(json.loads(ds_path.read_text()).get("zero_optimization", {}))
    zero["_path"] = config["engine"]["config"]
    ws = workloads(config)

    print_inputs(ws, args.lora_rank, zero, config_path)
    print("### Memory per GPU (GiB)\n")
    ests = [estimate(w, eng, gpus, zero, args.lora_rank, nodes)
            for w in ws for eng in ENGINES for gpus, nodes in ((1, 1), (4, 1), (8, 2))]
    print_memory_table(ests)
    print("\n### Which cluster shape fits\n")
    paper_qwen = replace(ws[0], key="cls-paper", label=f"{QWEN_7B.name} classification (the paper's)",
                         arch=QWEN_7B)
    notes = print_fit_table(ws + [paper_qwen], zero, args.lora_rank)
    print("\nyes: peak without gradient checkpointing (the pipeline's setting) under "
          f"{FIT_FRACTION:.0%} of the card; tight: under 100%; ckpt: only with gradient checkpointing; "
          "no: not even with it (binding term in brackets). [x]: the verdict with the "
          "architecture-adjusted activations, where it differs.")
    if notes:
        print("\n" + "\n".join(f"- {n}" for n in notes))
    print()
    print_current(config, ws, zero, args.lora_rank)
    print()
    print_logits_note(ws)
    print()
    print_probe(config)
    print("\n### Calibration against the one GPU measurement (1.1B Llama shape, ZeRO-2, 1 H100, sequence "
          f"{MEASURED_H100['seq']})\n")
    print_calibration()
    if not args.no_deepspeed:
        ds = deepspeed_estimators()
        if ds:
            print("\n### Model states against DeepSpeed's estimators (GiB per GPU; host GiB per node)\n")
            print_deepspeed_comparison(ws, zero, args.lora_rank, ds)


if __name__ == "__main__":
    main()
