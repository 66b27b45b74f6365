"""One training loop for every stage: plain PyTorch or DeepSpeed, resumable, preemption-safe.

`train_loop` owns what all stages share: the data order (one `torch.randperm` of the
stage's generator per epoch), the optimizer and its schedule, the backend, checkpoints
and SIGTERM. A stage hands it its modules and a `loss_for_batch(indices, step_frac)`.

Checkpoints (weights, optimizer, schedule, RNG, step, losses) go to a folder that no
rule declares as an output, so Snakemake never takes it for a result nor deletes it
when a job fails. On SIGTERM (SLURM's preemption or time-out signal) the loop saves at
the next step boundary and exits non-zero; the rerun replays the data order, skips the
finished steps and ends exactly where an uninterrupted run would. A finished run removes
its checkpoint. Stages write their outputs atomically after the loop, so a killed job
leaves nothing Snakemake could take as complete.

Processes: one, or one per GPU (`torchrun`, through `ws2s launch`; on several nodes one
`torchrun` a node through `srun`). Over several ranks the plain backend is torch's
DistributedDataParallel and the DeepSpeed backend ZeRO stage 1, 2 or 3; either way each rank
takes its share of every batch, weighted so that the gradients the engine averages over ranks
are the whole batch's, and the losses and statistics the loop records are all-reduced: a run
over N ranks records what one process records, to rounding. Data preparation, validation
and prediction run on every rank alike (the same inputs give the same result; ZeRO-3 needs
every rank to take part in a forward pass); only rank 0 writes outputs.
`ensure_process_group_env` fills RANK, WORLD_SIZE, MASTER_ADDR and a free MASTER_PORT for the
single process.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from ws2s.config import EngineConfig
from ws2s.cpu import cpu_kind, native_bf16
from ws2s.errors import Ws2sError
from ws2s.io import atomic_path

# (example indices, step/total) -> scalar loss, or (loss, statistics: a NamedTuple of floats)
LossForBatch = Callable[[list[int], float], "torch.Tensor | tuple[torch.Tensor, tuple]"]

PLAIN = EngineConfig()


@dataclass
class FitResult:
    losses: list[float]
    seconds: float
    stats: list[dict] = field(default_factory=list)  # per step, where `loss_for_batch` returns statistics
    points: list = field(default_factory=list)  # what `on_point` returned at each evaluation point

    def epoch_means(self, epochs: int) -> list[float]:
        """Each epoch's mean training loss (every epoch has the same number of steps)."""
        return np.reshape(self.losses, (epochs, -1)).mean(axis=1).tolist() if self.losses else []


class LowestLoss:
    """Model selection on a validation split, in memory: the epoch of the lowest loss so far
    and the trained weights at its end (frozen ones never change).

    With `keep` (a file in the run's checkpoint folder) each new best is also saved there,
    and a rerun of the same run (`key`) starts from it, so a resumed run may still have the
    weights of a point before its resume; the folder goes when the run finishes. A point at or
    before the kept one means training went back past it (its checkpoint was older, or was
    discarded): the kept best is dropped, and the replay, being deterministic, finds it again.
    Without `keep`, a run resumed after its best point has no weights for it (`epoch` then
    names an earlier one, or None).

    Under ZeRO-3 each rank holds a shard of every weight: `update`, called on every rank,
    gathers them whole (a collective, so rank 0's decision is every rank's) for `restore`
    after training, when the engine has made the weights whole again."""

    def __init__(self, model: nn.Module, keep: Path | None = None, key: str = ""):
        self.trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.loss, self.epoch, self.state = math.inf, None, None
        self.keep, self.key = keep, key
        if keep is not None and keep.is_file():
            saved = torch.load(keep, map_location="cpu", weights_only=False)
            if saved["key"] == key:
                self.loss, self.epoch, self.state = saved["loss"], saved["epoch"], saved["state"]

    def update(self, epoch: int, loss: float) -> float:
        if self.epoch is not None and epoch <= self.epoch:
            self.loss, self.epoch, self.state = math.inf, None, None
        sharded = any(hasattr(p, "ds_id") for _, p in self.trainable)  # a ZeRO-3 partitioned parameter
        better = _rank0_says(loss < self.loss) if sharded else loss < self.loss
        if better:
            self.loss, self.epoch = loss, epoch
            with _gathered([p for _, p in self.trainable]) if sharded else contextlib.nullcontext():
                self.state = {name: p.detach().clone() for name, p in self.trainable}
            if self.keep is not None and is_main_process():
                self.keep.parent.mkdir(parents=True, exist_ok=True)
                partial = self.keep.with_name(self.keep.name + ".partial")
                torch.save({"key": self.key, "loss": loss, "epoch": epoch,
                            "state": {name: t.cpu() for name, t in self.state.items()}}, partial)
                os.replace(partial, self.keep)
        return loss

    @torch.no_grad()
    def restore(self) -> None:
        for name, p in self.trainable:
            p.copy_(self.state[name])


# ---- processes -------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on now: the kernel's pick for port 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_process_group_env() -> None:
    """Single-process defaults for what torchrun sets; a free port, so two jobs on a node never collide."""
    defaults = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    if "MASTER_PORT" not in os.environ:
        os.environ["MASTER_PORT"] = str(free_port())


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Only rank 0 writes a stage's outputs."""
    return rank() == 0


def device() -> torch.device:
    """This process's device: its GPU under torchrun, else the first GPU, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def init_distributed() -> None:
    """The process group of a run over several ranks: NCCL on GPUs, gloo on the CPU."""
    if world_size() > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(device())
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        # one line a rank in the job's log: where each process of the run went
        print(f"rank {rank()}/{world_size()} on {socket.gethostname()} ({backend})", file=sys.stderr, flush=True)


def barrier() -> None:
    if world_size() > 1 and dist.is_initialized():
        dist.barrier()


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def launch_command(argv: Sequence[str], procs: int, nodes: int = 1, gpus: int = 0) -> list[str]:
    """`ws2s ARGV` as `procs` processes on each of `nodes` nodes (one per GPU on a GPU cluster).

    On one node `torchrun --standalone`, which binds its rendezvous to port 0, so concurrent
    jobs on one node never collide on a port. On several nodes (a SLURM job) `srun` starts
    one `torchrun` a node; they meet at a c10d rendezvous on the job's first host, on a port
    drawn from the job id (jobs sharing a host then differ).
    """
    visible = torch.cuda.device_count()
    if gpus and visible < gpus:
        raise Ws2sError(f"launch: {gpus} GPUs requested but {visible} visible (CUDA_VISIBLE_DEVICES)")
    module = ["-m", "ws2s.cli", *argv]
    if nodes == 1:
        return ["torchrun", "--standalone", f"--nproc-per-node={procs}", *module]
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        raise Ws2sError(f"launch: --nodes {nodes} runs inside a SLURM job (no SLURM_JOB_ID here)")
    hosts = _job_hosts(job)
    port = 29500 + int(job) % 20000
    placement = [f"--nodes={nodes}", "--ntasks-per-node=1"]
    if len(hosts) < nodes:
        # Fewer hosts than nodes asked (the tests' one-node cluster): the torchruns share hosts,
        # through the same srun, rendezvous and process group as on separate nodes.
        placement = []
    # --overlap: the job's step that runs this command holds the allocation already.
    return ["srun", "--overlap", "--kill-on-bad-exit=1", f"--ntasks={nodes}", *placement,
            "torchrun", f"--nnodes={nodes}", f"--nproc-per-node={procs}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint={hosts[0]}:{port}", f"--rdzv-id=ws2s-{job}", *module]


def _job_hosts(job: str) -> list[str]:
    """The SLURM job's hosts, first one first. Snakemake's SLURM job step removes
    SLURM_JOB_NODELIST and the like from a rule's environment (it keeps SLURM_JOB_ID), so
    scontrol is asked where they are missing."""
    nodelist = os.environ.get("SLURM_JOB_NODELIST")
    if not nodelist:
        shown = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, check=True).stdout
        nodelist = next(field.split("=", 1)[1] for field in shown.split() if field.startswith("NodeList="))
    return subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                          check=True).stdout.split()


def supervise(command: list[str]) -> int:
    """Run `command`, handing it SIGTERM; exit 143 (as a plain SIGTERM) once it has stopped.

    torchrun, on SIGTERM, signals its workers, which save their checkpoint at the next step
    boundary and exit; torchrun's own exit status then says little, this one says SIGTERM."""
    child = subprocess.Popen(command)
    received: list[int] = []

    def forward(signum, _frame):
        received.append(signum)
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 128 + signal.SIGTERM if received else code


# ---- optimizers and schedules ----------------------------------------------------------

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def _schedule(name: str):
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    return {"cosine": get_cosine_schedule_with_warmup, "linear": get_linear_schedule_with_warmup}[name]


def _make_optimizer(params: list, name: str, lr: float, engine: EngineConfig):
    if name not in OPTIMIZERS:
        raise Ws2sError(f"optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    if engine.backend == "deepspeed" and engine.offload:
        # ZeRO-Offload steps the optimizer on the host: DeepSpeed's CPU Adam, same update rule.
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        adamw = name == "adamw"
        return DeepSpeedCPUAdam(params, lr=lr, adamw_mode=adamw, weight_decay=0.01 if adamw else 0.0)
    return OPTIMIZERS[name](params, lr=lr)


def bf16_on(requested: bool) -> bool:
    """Whether a run that asks for bf16 (`engine.bf16`) gets it here: on a GPU, yes; on a CPU,
    where its bf16 matrix products are native (ws2s.cpu). Elsewhere they are emulated, up to
    50 times as slow as fp32, and the run keeps fp32, saying so once: the same config then
    gives other numbers on such a CPU, as it does between any two CPU kinds."""
    if not requested or device().type != "cpu" or native_bf16():
        return requested
    _note_fp32()
    return False


@functools.cache
def _note_fp32() -> None:
    print(f"ws2s: note: engine.bf16 is set but this CPU ({cpu_kind()}) has no native bf16 matrix products; "
          "running in fp32", file=sys.stderr, flush=True)


def autocast(bf16: bool):
    """bf16 mixed precision on this process's device where `bf16_on`, or nothing."""
    return torch.autocast(device().type, dtype=torch.bfloat16) if bf16_on(bf16) else contextlib.nullcontext()


# ---- backends --------------------------------------------------------------------------


class Objective(nn.Module):
    """A stage's modules with its loss as their forward pass: DDP and DeepSpeed see every step's
    forward (DDP readies its gradient all-reduce there, ZeRO-3 gathers weights for it), while
    the stage calls its modules as it always does. The loss comes back times `scale`."""

    def __init__(self, modules: Sequence[nn.Module], loss_for_batch: LossForBatch):
        super().__init__()
        self.parts = nn.ModuleList(modules)
        self.loss_for_batch = loss_for_batch

    def forward(self, indices: list[int], step_frac: float, scale: float):
        out = self.loss_for_batch(indices, step_frac)
        loss, stats = out if isinstance(out, tuple) else (out, None)
        return loss * scale, stats


class _Plain:
    """torch's optimizer on the modules; DistributedDataParallel over several ranks."""

    def __init__(self, objective: Objective, optimizer, schedule, bf16: bool = False):
        self.objective, self.optimizer, self.schedule, self.bf16 = objective, optimizer, schedule, bf16
        self.forward = objective
        if world_size() > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [device().index] if device().type == "cuda" else None
            self.forward = DistributedDataParallel(objective, device_ids=ids)

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()

    def save(self, folder: Path, client: dict) -> None:
        if not is_main_process():  # the replicas are equal: rank 0's state is every rank's
            return
        folder.mkdir(parents=True, exist_ok=True)
        state = {"modules": self.objective.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "schedule": self.schedule.state_dict(), "client": client}
        with atomic_path(folder / "state.pt") as tmp:
            torch.save(state, tmp)

    def load(self, folder: Path) -> dict | None:
        path = folder / "state.pt"
        if not path.is_file():
            return None
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.objective.load_state_dict(state["modules"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        return state["client"]

    def autocast(self):
        # fp32 weights and optimizer, bf16 matrix products: on a CPU with AMX (Sapphire Rapids)
        # a Qwen2.5-0.5B forward pass took 7.6 s in bf16 against 16.4 s in fp32
        return autocast(self.bf16)

    def finish(self) -> None:
        pass


class _DeepSpeed:
    def __init__(self, objective: Objective, optimizer, schedule_fn, engine: EngineConfig, batch_size: int):
        ensure_process_group_env()
        import deepspeed

        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
        micro = max(1, math.ceil(batch_size / world_size()))
        engine = replace(engine, bf16=bf16_on(engine.bf16))
        self.bf16, self.zero_stage = engine.bf16, engine.zero_stage
        self.engine, *_ = deepspeed.initialize(model=objective, optimizer=optimizer,
                                               lr_scheduler=schedule_fn, config=engine.deepspeed_config(micro))
        self.forward = self.engine

    def step(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)
        self.engine.step()  # steps the schedule and zeroes the gradients too

    def save(self, folder: Path, client: dict) -> None:
        tag = f"step{client['step']}"
        self.engine.save_checkpoint(str(folder), tag=tag, client_state={"ws2s": client})
        barrier()
        if is_main_process():  # `latest` now names the new tag: older ones are dead weight
            for old in folder.glob("step*"):
                if old.name != tag:
                    shutil.rmtree(old, ignore_errors=True)

    def load(self, folder: Path) -> dict | None:
        if not (folder / "latest").is_file():
            return None
        _, client = self.engine.load_checkpoint(str(folder))
        return client["ws2s"]

    def autocast(self):
        # The stage calls its modules directly, not the engine: bf16 weights meet fp32 inputs.
        return autocast(self.bf16)

    def finish(self) -> None:
        if self.zero_stage == 3:
            self._gather_for_good()
        # DeepSpeed cast the modules to bf16 in place; the stage predicts with fp32 inputs.
        if self.bf16:
            self.engine.module.float()

    def _gather_for_good(self) -> None:
        """Every rank's modules whole again, with ZeRO-3's fetch hooks gone: after training, rank 0
        predicts and decodes alone, and a partitioned forward would wait for the other ranks.
        DeepSpeed's own gather (a collective, so on every rank), then its own hook removal."""
        import deepspeed

        params = list(self.engine.module.parameters())
        with deepspeed.zero.GatheredParameters(params):
            whole = [p.data.detach().clone() for p in params]
        self.engine.optimizer.parameter_offload._remove_module_hooks()
        for param, data in zip(params, whole):
            param.data = data


# ---- SIGTERM ---------------------------------------------------------------------------


class Interrupted(SystemExit):
    """SIGTERM arrived; the checkpoint is saved. Exit status 143, as for a plain SIGTERM."""

    def __init__(self, message: str):
        print(message, file=sys.stderr, flush=True)
        super().__init__(128 + signal.SIGTERM)


@contextlib.contextmanager
def _sigterm_flag():
    """A one-element list that becomes [True] when SIGTERM arrives (main thread only)."""
    flag = [False]
    if not hasattr(signal, "SIGTERM") or not _in_main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: flag.__setitem__(0, True))
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


def _rank0_says(flag: bool) -> bool:
    """Rank 0's flag, on every rank."""
    if world_size() == 1 or not dist.is_initialized():
        return flag
    value = torch.tensor([int(flag)], device=_comm_device())
    dist.broadcast(value, src=0)
    return bool(value.item())


def _gathered(params: list):
    import deepspeed

    return deepspeed.zero.GatheredParameters(params)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _any_rank(*flags: bool) -> list[bool]:
    """Each flag, true if true on any rank: all ranks save (a collective) at the same step."""
    if world_size() == 1 or not dist.is_initialized():
        return list(flags)
    value = torch.tensor([int(f) for f in flags], device=_comm_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return [bool(v) for v in value.tolist()]


def _comm_device() -> torch.device:
    return device() if dist.get_backend() == "nccl" else torch.device("cpu")


def _shard(batch: list[int]) -> tuple[list[int], float]:
    """This rank's share of a batch, and the weight of its mean loss: each rank's weight is its
    share of the batch times the world size, so the gradients DDP and DeepSpeed average over
    ranks are the whole batch's mean gradient, uneven shares included."""
    world = world_size()
    if world == 1:
        return batch, 1.0
    mine = batch[rank()::world]
    if not mine:  # fewer examples than ranks: a weightless example keeps every rank's collectives in step
        return batch[:1], 0.0
    return mine, len(mine) * world / len(batch)


def _global(loss: torch.Tensor, stats, scale: float) -> tuple[float, dict | None]:
    """The batch's loss and statistics over every rank: `loss` comes weighted by this rank's
    `_shard` weight, the statistics (means over this rank's share) are weighted the same way."""
    stats = None if stats is None else stats._asdict()
    if world_size() == 1 or not dist.is_initialized():
        return loss.item(), stats
    names = [k for k, v in (stats or {}).items() if v is not None]
    values = torch.tensor([loss.item()] + [scale * float(stats[k]) for k in names], dtype=torch.float64,
                          device=_comm_device())
    dist.all_reduce(values)
    values = (values / world_size()).tolist()
    if stats is not None:
        stats.update(zip(names, values[1:]))
    return values[0], stats


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dir_for(output: str | Path) -> Path:
    """Where a stage with this output keeps its checkpoint: beside it, declared by no rule."""
    output = Path(output)
    return output.parent / f".resume-{output.stem}"


def _resume(runner, folder: Path | None, key: str) -> dict | None:
    """The saved loop state if `folder` holds a complete checkpoint of this very run; else start over."""
    if folder is None or not folder.exists():
        return None
    try:
        saved = json.loads((folder / "run.json").read_text())["key"]
    except (OSError, ValueError, KeyError):
        saved = None
    # Checked before any weights load: another run's state must never leak into this one.
    client = runner.load(folder) if saved == key else None
    if client is None and is_main_process():
        shutil.rmtree(folder, ignore_errors=True)
    return client


# ---- the loop --------------------------------------------------------------------------


def train_loop(modules: Sequence[nn.Module], loss_for_batch: LossForBatch, n_examples: int, *, epochs: int,
               batch_size: int, lr: float, generator: torch.Generator, optimizer: str = "adam",
               schedule: str = "cosine", engine: EngineConfig = PLAIN, checkpoint_dir: Path | None = None,
               checkpoint_every: int = 0, checkpoint_minutes: float = 0.0, desc: str = "train",
               run_key: str = "", on_point: Callable[[int], object] | None = None,
               points_per_epoch: int = 1) -> FitResult:
    """Minimise `loss_for_batch` over `n_examples` examples; no warm-up, one schedule step per batch.

    Besides the save on SIGTERM, `checkpoint_every` > 0 saves every that many steps and
    `checkpoint_minutes` > 0 at the first step boundary that many minutes after the last
    save: bounds the work a SIGKILL loses whatever a step costs.
    `run_key` names what else the run depends on (e.g. the stage's params): a checkpoint
    of another key, or of other loop settings, is discarded rather than resumed.
    Under several processes each takes its share of every batch (data parallel, see `_shard`).
    `on_point(point)` runs at each evaluation point, `points_per_epoch` of them evenly spaced
    in every epoch, the last at its end (model selection on a validation split, training
    curves); what it returns is kept, checkpointed with the rest, and handed back in
    `FitResult.points`.
    """
    init_distributed()
    dev = device()
    for m in modules:
        m.to(dev)
        m.train()
    objective = Objective(modules, loss_for_batch)
    params = [p for p in objective.parameters() if p.requires_grad]
    steps_per_epoch = math.ceil(n_examples / batch_size)
    total = steps_per_epoch * epochs
    opt = _make_optimizer(params, optimizer, lr, engine)
    make_schedule = lambda o: _schedule(schedule)(o, 0, total)  # noqa: E731
    if engine.backend == "deepspeed":
        runner = _DeepSpeed(objective, opt, make_schedule, engine, batch_size)
    elif engine.backend == "plain":
        runner = _Plain(objective, opt, make_schedule(opt), engine.bf16)
    else:
        raise Ws2sError(f"engine.backend {engine.backend!r}; allowed: plain, deepspeed")

    settings = {"run_key": run_key, "n": n_examples, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                "optimizer": optimizer, "schedule": schedule, "engine": asdict(engine), "world": world_size(),
                "checkpoint_format": 3, "points_per_epoch": points_per_epoch}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    ends = point_ends(steps_per_epoch, points_per_epoch)
    start, losses, stats, point_records = 0, [], [], []
    client = _resume(runner, checkpoint_dir, key)
    barrier()  # rank 0 may have cleared a stale checkpoint
    if client is not None:
        start, losses, stats, point_records = client["step"], client["losses"], client["stats"], client["points"]
        own = checkpoint_dir / f"rng-rank{rank()}.pt"
        _set_rng_state(torch.load(own, weights_only=False) if own.is_file() else client["rng"])
        print(f"{desc}: resuming at step {start}/{total} from {checkpoint_dir}", file=sys.stderr, flush=True)

    def save(step: int) -> None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if is_main_process():
            with atomic_path(checkpoint_dir / "run.json") as tmp:
                tmp.write_text(json.dumps({"key": key, "settings": settings}, indent=1))
        runner.save(checkpoint_dir, {"key": key, "step": step, "losses": losses, "stats": stats, "points": point_records,
                                     "rng": _rng_state()})
        with atomic_path(checkpoint_dir / f"rng-rank{rank()}.pt") as tmp:  # each rank's own random state
            torch.save(_rng_state(), tmp)
        barrier()  # no rank stops (or goes on) before every rank has saved

    began = last_save = time.time()
    with _sigterm_flag() as sigterm, tqdm(total=total, initial=start, desc=desc, mininterval=5,
                                          disable=not is_main_process()) as bar:
        for epoch in range(epochs):
            # Drawn for every epoch, finished or not, so a resumed run sees the same order.
            order = torch.randperm(n_examples, generator=generator).tolist()
            for b, begin in enumerate(range(0, n_examples, batch_size)):
                step = epoch * steps_per_epoch + b
                if step < start:
                    continue
                mine, scale = _shard(order[begin:begin + batch_size])
                with runner.autocast():
                    loss, step_stats = runner.forward(mine, step / total, scale)
                runner.step(loss)
                value, step_stats = _global(loss.detach(), step_stats, scale)
                losses.append(value)
                if step_stats is not None:
                    stats.append(step_stats)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
                bar.update()
                done = step + 1
                # before any save at this step, so a checkpoint holds every point up to it
                if on_point is not None and b + 1 in ends:
                    for m in modules:  # validation without dropout
                        m.eval()
                    with torch.no_grad(), runner.autocast():
                        point_records.append(on_point(epoch * len(ends) + ends.index(b + 1)))
                    for m in modules:
                        m.train()
                due = checkpoint_minutes > 0 and time.time() - last_save >= 60 * checkpoint_minutes
                stop, due = _any_rank(sigterm[0], due)
                if checkpoint_dir is not None and done < total and (
                        stop or due or (checkpoint_every and done % checkpoint_every == 0)):
                    save(done)
                    last_save = time.time()
                if stop and done < total:  # at the last step, finishing is quicker than resuming
                    where = f"checkpoint in {checkpoint_dir}" if checkpoint_dir is not None else "no checkpoint dir"
                    raise Interrupted(f"{desc}: SIGTERM; stopped after step {done}/{total} ({where}); rerun to resume")
    runner.finish()
    barrier()
    if checkpoint_dir is not None and is_main_process():
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return FitResult(losses, time.time() - began, stats, point_records)


def point_ends(steps_per_epoch: int, points_per_epoch: int) -> list[int]:
    """The step counts within an epoch after which its evaluation points fall: evenly spaced,
    the last at the epoch's end, never two after one step."""
    return sorted({math.ceil(k * steps_per_epoch / points_per_epoch) for k in range(1, points_per_epoch + 1)})
