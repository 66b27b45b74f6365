"""Every multi-process path on two CPU processes (gloo): `ws2s launch --procs 2`, i.e. torchrun,
for the three strong stages under plain PyTorch (DistributedDataParallel) and DeepSpeed ZeRO-2,
ZeRO-3 on one stage, SIGTERM to the launcher, and LoRA (peft).

A run over two ranks must give the one-process run's losses (to 1e-5), statistics and
predictions, with the same global batch; only rank 0 writes. Batch sizes are chosen so that
ranks get uneven shares, and cDPO's last batch has fewer pairs than ranks. The tiny models
have no dropout: with dropout each rank draws its own masks, as in any data-parallel run.
"""

import json
import math
import os
import signal
import subprocess
import sys
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ROOT
from test_cdpo import cdpo_config, splits  # noqa: F401  (fixture)
from test_strong import MEMBERS, _cfg, setup  # noqa: F401  (fixture)
from test_strong_generation import pipeline  # noqa: F401  (fixture)
from ws2s.config import FewgoldConfig, StrongGenerationConfig, canonical
from ws2s.stages.generation_splits import write_fewgold

pytestmark = pytest.mark.deepspeed_jit  # DeepSpeed's first start on a machine JIT-builds an op (minutes)

ZERO = str(ROOT / "workflow/deepspeed/zero2.json")
ENGINES = {"plain": {"backend": "plain"},
           "zero2": {"backend": "deepspeed", "zero_stage": 2, "config": ZERO},
           "zero3": {"backend": "deepspeed", "zero_stage": 3, "config": ZERO}}
# what differs between two runs of the same thing: wall-clock times
TIMES = {"train_seconds", "seconds"}
# Sends SIGTERM to the `ws2s launch` process (the worker's grandparent, above torchrun) at a step.
SIGTERM_HOOK = """
import os, signal, time
if os.environ.get("WS2S_TEST_SIGTERM_LAUNCHER_AT_STEP"):
    import ws2s.train.engine as engine
    at, calls, original = int(os.environ["WS2S_TEST_SIGTERM_LAUNCHER_AT_STEP"]), [], engine._global

    def counting(*args, **kwargs):
        calls.append(1)
        if len(calls) == at and engine.rank() == 0:
            torchrun = os.getppid()
            launcher = int(open(f"/proc/{torchrun}/stat").read().rsplit(")", 1)[1].split()[1])
            os.kill(launcher, signal.SIGTERM)
            time.sleep(3)  # the signal comes back through torchrun before the run could end
        return original(*args, **kwargs)

    engine._global = counting
"""


def launch(tmp_path, procs: int, argv: list[str], sigterm_at: int = 0) -> subprocess.CompletedProcess:
    """`ws2s launch --procs N -- ARGV` as a job runs it (one thread a process)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["WS2S_THREADS"] = str(procs)
    if sigterm_at:
        hook = tmp_path / "hook"
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(SIGTERM_HOOK)
        env["PYTHONPATH"] = os.pathsep.join([str(hook), env.get("PYTHONPATH", "")])
        env["WS2S_TEST_SIGTERM_LAUNCHER_AT_STEP"] = str(sigterm_at)
    ws2s = [sys.executable, "-m", "ws2s.cli"]
    return subprocess.run([*ws2s, "launch", "--procs", str(procs), "--", *argv], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=900)


def ok(run: subprocess.CompletedProcess) -> None:
    assert run.returncode == 0, run.stderr[-4000:]


def same_metrics(got: dict, want: dict, loose=()) -> None:
    """Equal to 1e-5 wherever a number is (keys in `loose`: to 10%), equal elsewhere."""
    assert set(got) == set(want)
    for key in set(want) - TIMES:
        a, b = got[key], want[key]
        if isinstance(b, float) or (isinstance(b, list) and b and isinstance(b[0], float)):
            tolerance = dict(rel=0.1) if key in loose else dict(abs=1e-5, rel=1e-5)
            assert np.asarray(a, dtype=float) == pytest.approx(np.asarray(b, dtype=float), nan_ok=True,
                                                               **tolerance), key
        else:
            assert a == b, key


# ---- the three strong stages ------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bert_no_dropout(tiny_bert, tmp_path_factory) -> str:
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    out = tmp_path_factory.mktemp("bert_no_dropout")
    config = AutoConfig.from_pretrained(tiny_bert, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                        classifier_dropout=0.0)
    AutoModel.from_pretrained(tiny_bert, config=config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(out)
    return str(out)


def classify_argv(setup, model, out, train_layers, engine) -> list[str]:  # noqa: F811
    # batch 5 over 32 pairs: ranks take 3 and 2 of a batch; no aux (its class-balanced
    # threshold is a quantile over each rank's share, see the README)
    cfg = replace(_cfg("bayesian", MEMBERS, train_layers=train_layers), batch_size=5,
                  model_spec={"path": model}, engine=engine)
    return ["strong-classify", "--params", canonical(asdict(cfg)), "--models-root", str(out),
            "--split-dir", str(setup["split_dir"]), "--weak-labels", *[str(setup["labels"][m]) for m in MEMBERS],
            f"--features={setup['features']}", "--out-predictions", str(out / "predictions.parquet"),
            "--out-metrics", str(out / "metrics.json"), "--out-curve", str(out / "curve.parquet")]


def generate_argv(pipeline, model, out, engine, lora=None) -> list[str]:  # noqa: F811
    _, splits, weak = pipeline
    loss = {"kind": "edl", "aux": True, "balanced_threshold": False, "gamma_max": 0.2, "warmup_frac": 0.25,
            "kl_weight": 1e-4, "centre_logits": True, "kl_top_k": 16, "kl_clamp": 2e5}
    # batch 3 over 6 utterances: ranks take 2 and 1; the top block trains on cached bottom states
    cfg = StrongGenerationConfig(model_name="tiny", model_spec={"path": model}, seed=0, prompt="short",
                                 method="bayesian", target="mapped", source="ws2", members=["w0", "w1"], weighting="dynamic",
                                 weights=[0.5, 0.5], loss=loss, soft_labels={"kind": "full", "min_prob": 1e-4},
                                 batch_size=3, lr=1e-3, train_layers=1, decoding={"beams": 1, "max_new_tokens": 6},
                                 engine={**engine, **({"lora": lora} if lora else {})}, epochs=2)
    # every evaluation point decodes 2 val utterances on every rank (ZeRO-3: with partitioned weights)
    write_fewgold(FewgoldConfig(size=2, seed=0), splits / "val_gold.parquet", out / "fewgold.parquet")
    return ["strong-generate", "--params", canonical(asdict(cfg)), "--models-root", str(out),
            "--split-dir", str(splits), "--mapped", *[str(weak[s] / "mapped.parquet") for s in (0, 1)],
            f"--fewgold={out / 'fewgold.parquet'}", "--out-generations", str(out / "generations.parquet"),
            "--out-curve", str(out / "curve.parquet"), "--out-metrics", str(out / "metrics.json"),
            "--out-model", str(out / "model")]


def cdpo_argv(splits, model, out, engine) -> list[str]:  # noqa: F811
    # batch 2 over at most 5 pairs: the last batch has one pair, so rank 1 takes a weightless one
    cfg = cdpo_config(engine=engine, batch_size=2)
    return ["cdpo", "--params", canonical(asdict(cfg)), "--start-model", model, "--split-dir", str(splits),
            "--out-pairs", str(out / "pairs.parquet"), "--out-metrics", str(out / "metrics.json"),
            "--weak-models", model, model]


def stage_argv(stage, fixtures, out, engine):
    setup_, pipeline_, splits_, bert, llama = fixtures
    if stage == "classify_full":
        return classify_argv(setup_, bert, out, "all", engine)
    if stage == "classify_probe":
        return classify_argv(setup_, bert, out, 0, engine)
    if stage == "generate":
        return generate_argv(pipeline_, llama, out, engine)
    return cdpo_argv(splits_, llama, out, engine)


OUTPUTS = {"classify_full": "predictions.parquet", "classify_probe": "predictions.parquet",
           "generate": "generations.parquet", "cdpo": "pairs.parquet"}
# Statistics of the generation loss are means over target positions, λ-weighted per member: two
# ranks' means, weighted by their share of utterances, come within a few per cent of the whole
# batch's (losses, which are means over utterances, are exact).
LOOSE = {"generate": {"mean_logit", "mean_nll", "mean_kl", "kl_nll_ratio", "mean_log_strength"}}


@pytest.fixture(scope="module")
def fixtures(setup, pipeline, splits, tiny_bert_no_dropout, tiny_llama):  # noqa: F811
    return setup, pipeline, splits, tiny_bert_no_dropout, tiny_llama


@pytest.fixture(scope="module")
def one_process(fixtures, tmp_path_factory):
    """Each stage's world-size-1 run (plain PyTorch), the reference of every test here."""
    runs = {}
    for stage in OUTPUTS:
        out = tmp_path_factory.mktemp(f"one_{stage}")
        ok(launch(out, 1, stage_argv(stage, fixtures, out, ENGINES["plain"])))
        runs[stage] = out
    return runs


def same_outputs(stage, got, want) -> None:
    same_metrics(json.loads((got / "metrics.json").read_text()), json.loads((want / "metrics.json").read_text()),
                 LOOSE.get(stage, ()))
    for name in (OUTPUTS[stage], "curve.parquet") if stage != "cdpo" else (OUTPUTS[stage],):
        a, b = pd.read_parquet(got / name), pd.read_parquet(want / name)
        pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("engine", ["plain", "zero2"])
@pytest.mark.parametrize("stage", list(OUTPUTS))
def test_two_ranks_give_the_one_process_run(stage, engine, fixtures, one_process, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    run = launch(tmp_path, 2, stage_argv(stage, fixtures, out, ENGINES[engine]))
    ok(run)
    same_outputs(stage, out, one_process[stage])
    # rank 0 alone writes: one metrics line printed, no checkpoint left behind
    assert sum(line.startswith("{") and len(line) > 2 for line in run.stdout.splitlines()) == 1
    assert not list(out.glob(".resume-*"))
    metrics = json.loads((out / "metrics.json").read_text())
    if stage != "cdpo":
        assert len(metrics["train_losses"]) == 2 and metrics["train_losses"][0] != metrics["train_losses"][1]


def test_zero3_gathers_the_weights_for_validation_decoding_and_saving(fixtures, one_process, tmp_path):
    """ZeRO-3 partitions the weights over the ranks; the stage validates every epoch, decodes
    the test utterances and saves the model with them whole: the one-process results."""
    out = tmp_path / "run"
    out.mkdir()
    ok(launch(tmp_path, 2, stage_argv("generate", fixtures, out, ENGINES["zero3"])))
    same_outputs("generate", out, one_process["generate"])
    from safetensors.torch import load_file

    saved, reference = (load_file(d / "model" / "model.safetensors") for d in (out, one_process["generate"]))
    assert saved.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(saved[name], tensor, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("engine", ["plain", "zero2"])
def test_sigterm_to_the_launcher_saves_on_both_ranks_and_the_rerun_resumes(engine, fixtures, one_process, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    argv = stage_argv("classify_full", fixtures, out, ENGINES[engine])
    killed = launch(tmp_path, 2, argv, sigterm_at=3)
    assert killed.returncode == 128 + signal.SIGTERM, killed.stderr[-3000:]
    assert killed.stderr.count("SIGTERM; stopped after step 3/") == 2  # both ranks
    checkpoint = out / ".resume-metrics"
    assert sorted(p.name for p in out.iterdir()) == [".resume-metrics"]  # no output Snakemake could take
    assert {"rng-rank0.pt", "rng-rank1.pt", "run.json"} <= {p.name for p in checkpoint.iterdir()}
    if engine == "zero2":  # each rank's shard of the optimizer state
        assert len(list(checkpoint.glob("step3/*optim_states.pt"))) == 2
    resumed = launch(tmp_path, 2, argv)
    ok(resumed)
    assert "resuming at step 3/" in resumed.stderr
    same_outputs("classify_full", out, one_process["classify_full"])


# ---- LoRA ---------------------------------------------------------------------------------


def test_lora_trains_only_the_adapters_of_the_trained_blocks(tiny_llama):
    from ws2s.config import LoraConfig
    from ws2s.train.backbone import add_lora, freeze_for
    from ws2s.train.generate import load_causal

    model, _ = load_causal(tiny_llama)
    freeze_for(model, 1)
    model = add_lora(model, LoraConfig(rank=4), 1)
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trained and all(".lora_" in name and ".layers.1." in name for name in trained)
    # all seven linear layers of the top block, A and B each
    assert len(trained) == 14


def test_lora_folded_checkpoint_gives_the_adapted_logits(tiny_llama, tmp_path):
    """The saved checkpoint (adapters folded in, peft's own delta) loads without peft and gives
    the adapted model's logits; switching the adapters off gives the start model's."""
    from ws2s.config import LoraConfig
    from ws2s.models import save_checkpoint
    from ws2s.train.backbone import add_lora, folded
    from ws2s.train.generate import load_causal

    model, tokenizer = load_causal(tiny_llama)
    start = model(torch.tensor([[5, 6, 7, 8]])).logits.detach()
    model = add_lora(model, LoraConfig(rank=4, alpha=8), "all")
    with torch.no_grad():  # B starts at zero: give the adapters something to say
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    ids = torch.tensor([[5, 6, 7, 8]])
    adapted = model(ids).logits.detach()
    assert not torch.allclose(adapted, start, atol=1e-3)
    with model.disable_adapter():
        torch.testing.assert_close(model(ids).logits.detach(), start)
    plain, state = folded(model)
    save_checkpoint(plain, tokenizer, tmp_path / "folded", state)
    reloaded, _ = load_causal(str(tmp_path / "folded"))
    assert not any("lora" in name for name, _ in reloaded.named_parameters())
    torch.testing.assert_close(reloaded(ids).logits.detach(), adapted, atol=1e-5, rtol=1e-5)


def test_a_lora_run_over_two_ranks_resumes_after_sigterm(fixtures, tmp_path):
    """LoRA on the generation stage's trained block: two ranks equal one process, and a run
    stopped by SIGTERM resumes to the same result."""
    _, pipeline_, _, _, llama = fixtures
    lora = {"rank": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    one, two = tmp_path / "one", tmp_path / "two"
    for out in (one, two):
        out.mkdir()
    ok(launch(tmp_path, 1, generate_argv(pipeline_, llama, one, ENGINES["plain"], lora)))
    argv = generate_argv(pipeline_, llama, two, ENGINES["plain"], lora)
    killed = launch(tmp_path, 2, argv, sigterm_at=2)
    assert killed.returncode == 128 + signal.SIGTERM, killed.stderr[-3000:]
    ok(launch(tmp_path, 2, argv))
    same_outputs("generate", two, one)
    metrics = json.loads((one / "metrics.json").read_text())
    assert math.isfinite(metrics["final_train_loss"])
