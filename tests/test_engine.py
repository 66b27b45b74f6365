"""The shared training loop: plain path, SIGTERM and resume, DeepSpeed on the CPU, ports."""

import json
import math
import os
import signal
import socket
import subprocess
import sys

import pytest
import torch
from torch import nn

from conftest import ROOT
from ws2s.train import engine
from ws2s.train.engine import EngineConfig, train_loop

N, BATCH, EPOCHS, LR = 20, 4, 3, 5e-2


def _problem(seed=0):
    """A tiny regression: a model with dropout (so the RNG state matters), data, targets."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.2), nn.Tanh(), nn.Linear(8, 1))
    x, y = torch.randn(N, 6), torch.randn(N, 1)
    return model, x, y


def _loss(model, x, y, hook=None):
    def loss_for_batch(idx, step_frac):
        if hook:
            hook(idx)
        return ((model(x[idx]) - y[idx]) ** 2).mean() * (1 + step_frac)

    return loss_for_batch


def _train(model, x, y, checkpoint_dir=None, hook=None, every=0, **kw):
    return train_loop([model], _loss(model, x, y, hook), N, epochs=EPOCHS, batch_size=BATCH, lr=LR,
                      generator=torch.Generator().manual_seed(1), checkpoint_dir=checkpoint_dir,
                      checkpoint_every=every, desc="test", **kw)


def test_plain_loop_is_adam_cosine_randperm_and_step_frac():
    """The loop `fit` had: Adam, cosine without warm-up, one randperm per epoch, step/total."""
    from transformers import get_cosine_schedule_with_warmup

    model, x, y = _problem()
    ref, _, _ = _problem()
    result = _train(model, x, y)

    generator, total, losses = torch.Generator().manual_seed(1), math.ceil(N / BATCH) * EPOCHS, []
    opt = torch.optim.Adam(ref.parameters(), lr=LR)
    schedule = get_cosine_schedule_with_warmup(opt, 0, total)
    _problem()  # the global RNG (dropout) as the loop found it
    ref.train()
    step = 0
    for _ in range(EPOCHS):
        order = torch.randperm(N, generator=generator).tolist()
        for begin in range(0, N, BATCH):
            idx = order[begin:begin + BATCH]
            loss = ((ref(x[idx]) - y[idx]) ** 2).mean() * (1 + step / total)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            losses.append(loss.item())
            step += 1
    assert result.losses == losses
    for a, b in zip(model.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_sigterm_saves_exits_nonzero_and_the_rerun_matches_an_uninterrupted_run(tmp_path):
    model, x, y = _problem()
    uninterrupted = _train(model, x, y).losses

    calls = []

    def kill_at_step_7(idx):
        calls.append(idx)
        if len(calls) == 7:
            os.kill(os.getpid(), signal.SIGTERM)

    ckpt = tmp_path / ".resume-metrics"
    model, x, y = _problem()
    with pytest.raises(SystemExit) as exit_info:
        _train(model, x, y, ckpt, hook=kill_at_step_7)
    assert exit_info.value.code == 128 + signal.SIGTERM
    assert (ckpt / "state.pt").is_file()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is the loop's only

    model, x, y = _problem()  # a fresh process: the same init, then the checkpoint
    calls.clear()
    resumed = _train(model, x, y, ckpt, hook=lambda idx: calls.append(idx))
    assert len(calls) == len(uninterrupted) - 7  # finished steps are skipped, not replayed
    assert resumed.losses == uninterrupted
    assert not ckpt.exists()  # a finished run leaves no checkpoint


def test_point_ends_are_even_and_end_the_epoch():
    assert engine.point_ends(5, 4) == [2, 3, 4, 5]
    assert engine.point_ends(8, 4) == [2, 4, 6, 8]
    assert engine.point_ends(2, 4) == [1, 2]  # never two points after one step
    assert engine.point_ends(7, 1) == [7]


def test_evaluation_points_within_epochs_survive_a_sigterm_and_resume(tmp_path):
    """Four points an epoch, at the steps `point_ends` names; a run killed at a step that ends
    a point resumes with every point the uninterrupted run has, none twice."""
    def run(checkpoint_dir=None, hook=None):
        model, x, y = _problem()
        steps = []
        result = _train(model, x, y, checkpoint_dir, hook=lambda idx: (steps.append(idx), hook and hook(idx)),
                        on_point=lambda point: (point, len(steps), float(model(x).sum())), points_per_epoch=4)
        return result.points

    uninterrupted = run()
    assert [(p, s) for p, s, _ in uninterrupted] == [(e * 4 + k, e * 5 + end) for e in range(EPOCHS)
                                                     for k, end in enumerate([2, 3, 4, 5])]
    calls = []

    def kill_at_step_7(idx):  # step 7 ends the fifth point (epoch 1, after its second step)
        calls.append(idx)
        if len(calls) == 7:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SystemExit):
        run(tmp_path / "ckpt", kill_at_step_7)
    resumed = run(tmp_path / "ckpt")
    assert [(p, v) for p, _, v in resumed] == [(p, v) for p, _, v in uninterrupted]


def test_periodic_checkpoints_and_a_checkpoint_of_another_run_is_not_resumed(tmp_path):
    ckpt = tmp_path / "ckpt"
    model, x, y = _problem()
    saved = []

    def stop_after_step_5(idx):
        saved.append((ckpt / "state.pt").exists())
        if len(saved) == 6:
            raise KeyboardInterrupt  # a crash without SIGTERM: only the periodic checkpoint is there

    with pytest.raises(KeyboardInterrupt):
        _train(model, x, y, ckpt, hook=stop_after_step_5, every=2)
    assert saved == [False, False, True, True, True, True]
    assert torch.load(ckpt / "state.pt", weights_only=False)["client"]["step"] == 4

    model, x, y = _problem()
    other = train_loop([model], _loss(model, x, y), N, epochs=EPOCHS, batch_size=BATCH, lr=LR * 2,
                       generator=torch.Generator().manual_seed(1), checkpoint_dir=ckpt, desc="other")
    model, x, y = _problem()
    assert other.losses == train_loop([model], _loss(model, x, y), N, epochs=EPOCHS, batch_size=BATCH, lr=LR * 2,
                                      generator=torch.Generator().manual_seed(1), desc="fresh").losses


def test_checkpoints_by_time(tmp_path):
    ckpt, seen = tmp_path / "ckpt", []
    model, x, y = _problem()
    hook = lambda idx: seen.append((ckpt / "state.pt").exists())  # noqa: E731
    train_loop([model], _loss(model, x, y, hook), N, epochs=1, batch_size=BATCH, lr=LR,
               generator=torch.Generator().manual_seed(1), checkpoint_dir=ckpt, checkpoint_minutes=1e-9)
    assert seen == [False, True, True, True, True]  # saved after every step but the last
    assert not ckpt.exists()


def test_free_ports_differ_from_ports_in_use(monkeypatch):
    held = []
    for _ in range(5):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        held.append(sock)
    try:
        taken = {s.getsockname()[1] for s in held}
        ports = {engine.free_port() for _ in range(20)}
        assert not ports & taken
    finally:
        for sock in held:
            sock.close()
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    engine.ensure_process_group_env()
    assert os.environ["WORLD_SIZE"] == "1" and int(os.environ["MASTER_PORT"]) > 0
    monkeypatch.setenv("MASTER_PORT", "29123")  # torchrun's choice is kept
    engine.ensure_process_group_env()
    assert os.environ["MASTER_PORT"] == "29123"


def test_two_single_process_jobs_on_one_node_get_different_ports():
    code = "from ws2s.train import engine; engine.ensure_process_group_env(); import os; print(os.environ['MASTER_PORT'])"
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_PORT", "RANK", "WORLD_SIZE")}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    ports = [int(p.communicate()[0]) for p in procs]
    assert ports[0] != ports[1]


def test_multi_gpu_launch_is_torchrun_standalone(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    command = engine.launch_command(["strong-classify", "--params", "{}"], 4, gpus=4)
    assert command[:3] == ["torchrun", "--standalone", "--nproc-per-node=4"]
    assert command[3:] == ["-m", "ws2s.cli", "strong-classify", "--params", "{}"]
    with pytest.raises(Exception, match="8 GPUs requested but 4 visible"):
        engine.launch_command(["x"], 8, gpus=8)


def test_several_nodes_launch_one_torchrun_a_node_through_srun(monkeypatch):
    """c10d rendezvous on the job's first host, a port from the job id; one task a node where
    the job has the nodes, else (the tests' one-node cluster) the tasks share its hosts."""
    asked = []

    def scontrol(argv, **_kwargs):
        asked.append(argv)
        hosts = {"gpu-[a-b]": "gpu-a\ngpu-b\n", "gpu-a": "gpu-a\n"}
        out = f"JobId=1234 NodeList={nodelist[0]} NumNodes=2" if argv[:3] == ["scontrol", "show", "job"] \
            else hosts[argv[-1]]
        return subprocess.CompletedProcess(argv, 0, stdout=out)

    nodelist = ["gpu-[a-b]"]
    monkeypatch.setattr(engine.subprocess, "run", scontrol)
    monkeypatch.setenv("SLURM_JOB_ID", "1234")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu-[a-b]")
    command = engine.launch_command(["cdpo"], 4, nodes=2, gpus=0)
    assert command[:command.index("torchrun")] == ["srun", "--overlap", "--kill-on-bad-exit=1", "--ntasks=2",
                                                   "--nodes=2", "--ntasks-per-node=1"]
    assert command[command.index("torchrun"):] == [
        "torchrun", "--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d",
        f"--rdzv-endpoint=gpu-a:{29500 + 1234}", "--rdzv-id=ws2s-1234", "-m", "ws2s.cli", "cdpo"]
    # inside Snakemake's job step: no SLURM_JOB_NODELIST, scontrol says where the job runs
    monkeypatch.delenv("SLURM_JOB_NODELIST")
    assert engine.launch_command(["cdpo"], 4, nodes=2, gpus=0) == command
    assert asked[-2][:4] == ["scontrol", "show", "job", "-o"]
    nodelist[0] = "gpu-a"  # one host (the tests' cluster): the two tasks share it
    assert "--nodes=2" not in engine.launch_command(["cdpo"], 1, nodes=2)
    monkeypatch.delenv("SLURM_JOB_ID")
    with pytest.raises(Exception, match="inside a SLURM job"):
        engine.launch_command(["cdpo"], 1, nodes=2)


def test_deepspeed_config_from_template_and_engine_values():
    cfg = EngineConfig(backend="deepspeed", zero_stage=1, bf16=False, offload=True,
                       config=str(ROOT / "workflow/deepspeed/zero2.json"))
    ds = cfg.deepspeed_config(micro_batch=4)
    assert ds["zero_optimization"]["stage"] == 1 and ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert ds["bf16"] == {"enabled": False} and ds["train_micro_batch_size_per_gpu"] == 4
    assert ds["zero_optimization"]["overlap_comm"] is True  # the template's own settings stay


DEEPSPEED_SCRIPT = """
import json, os, signal, sys
from pathlib import Path
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from ws2s.train.engine import EngineConfig, train_loop

def run(engine, checkpoint_dir=None, sigterm_at=0):
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32))
    ids = torch.randint(0, 64, (12, 10), generator=torch.Generator().manual_seed(3))
    calls = []

    def loss(idx, frac):
        calls.append(1)
        if len(calls) == sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return model(input_ids=ids[idx], labels=ids[idx]).loss

    return train_loop([model], loss, 12, epochs=2, batch_size=4, lr=1e-3, generator=torch.Generator().manual_seed(1),
                      optimizer="adamw", schedule="linear", engine=engine, checkpoint_dir=checkpoint_dir,
                      desc=engine.backend).losses

ds = EngineConfig(backend="deepspeed", zero_stage=2, bf16=False, config=sys.argv[1])
ckpt = Path(sys.argv[2])
out = {"plain": run(EngineConfig()), "deepspeed": run(ds)}
try:
    run(ds, ckpt, sigterm_at=4)
except SystemExit as exit:
    out["killed"] = [exit.code, sorted(p.name for p in ckpt.iterdir())]
out["resumed"] = run(ds, ckpt)
out["left"] = ckpt.exists()
print(json.dumps(out))
"""


@pytest.mark.deepspeed_jit
def test_deepspeed_zero2_on_the_cpu_matches_the_plain_loop(tmp_path):
    """ZeRO-2, gloo, one process, fp32: the same losses as plain PyTorch to 1e-5, also
    when killed by SIGTERM after step 4 of 6 and resumed from DeepSpeed's checkpoint.

    THE ONLY TEST THAT STARTS DEEPSPEED: its first run JIT-builds DeepSpeed's shm
    communication op (minutes; cached in ~/.cache/torch_extensions afterwards).
    """
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_PORT", "LOCAL_RANK")}
    run = subprocess.run([sys.executable, "-c", DEEPSPEED_SCRIPT, str(ROOT / "workflow/deepspeed/zero2.json"),
                          str(tmp_path / "ckpt")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    losses = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(losses["deepspeed"]) == len(losses["plain"]) == 6
    assert losses["deepspeed"] == pytest.approx(losses["plain"], abs=1e-5)
    assert losses["plain"][-1] != losses["plain"][0]  # it trained
    code, saved = losses["killed"]
    assert code == 128 + signal.SIGTERM and {"latest", "run.json", "step4"} <= set(saved)
    assert losses["resumed"] == pytest.approx(losses["plain"], abs=1e-5) and not losses["left"]


def test_the_kept_best_weights_survive_a_rerun_of_the_same_run_only(tmp_path):
    """LowestLoss with `keep`: each new best is saved; a tracker of the same run (key) starts
    from it, so a later worse point does not replace it; another run's file is not read."""
    model = nn.Linear(2, 1)
    keep = tmp_path / ".resume-metrics" / "nogold.pt"
    first = engine.LowestLoss(model, keep, key="run A")
    with torch.no_grad():
        model.weight.fill_(1.0)
    first.update(0, 0.5)
    with torch.no_grad():
        model.weight.fill_(2.0)
    first.update(1, 0.7)  # worse: not kept
    again = engine.LowestLoss(model, keep, key="run A")
    assert again.epoch == 0 and again.loss == 0.5
    again.update(2, 0.6)  # worse than the kept point 0, though the first this process saw
    again.restore()
    assert again.epoch == 0 and torch.equal(model.weight, torch.ones(1, 2))
    other = engine.LowestLoss(model, keep, key="run B")
    assert other.epoch is None and other.loss == math.inf
    # training went back to point 0 (its checkpoint was discarded): the kept best is not
    # compared with the replay, which stands on its own
    replay = engine.LowestLoss(model, keep, key="run A")
    with torch.no_grad():
        model.weight.fill_(3.0)
    replay.update(0, 0.9)
    replay.restore()
    assert replay.epoch == 0 and replay.loss == 0.9 and torch.equal(model.weight, torch.full((1, 2), 3.0))
