# Config validation, wildcard constraints, resources, and the input and params functions of
# the rules: each a thin call into ws2s.design, where the experiment design lives.
import os
import sys

from snakemake.settings.types import DeploymentMethod

from ws2s import design, eta
from ws2s.codeversion import code_version
from ws2s.configfile import check
from ws2s.errors import Ws2sError
from ws2s.guards import hold_run_lock, ws2s_command
from ws2s.models import needs_preparation

try:
    DATA_FILES = check(config, workflow.configfiles)  # the checks `ws2s validate` runs, exactly
except Ws2sError as err:
    sys.exit(f"ws2s: config error: {err}")

# The `ws2s` that the rules call: on PATH, or beside the Python running Snakemake (.venv/bin/snakemake
# without the venv activated); otherwise one line with the fix, not exit 127 from every job.
try:
    note = ws2s_command(conda=DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method)
except Ws2sError as err:
    sys.exit(f"ws2s: error: {err}")
if note and workflow.is_main_process:
    print(f"ws2s: note: {note}", file=sys.stderr)


onstart:
    # One run a directory, for the whole run (Snakemake removes .snakemake/locks whole when any
    # run ends: see ws2s/guards.py). Not in dry runs (no onstart), cluster job steps (no hooks)
    # or under --nolock.
    if workflow.is_main_process and workflow.execution_settings.lock:
        try:
            note = hold_run_lock(workflow.persistence.path)
        except Ws2sError as err:
            sys.exit(f"ws2s: error: {err}")
        if note:
            print(f"ws2s: note: {note}", file=sys.stderr)
    # How long this run will take on this machine's cores, from the shipped step times (ws2s/eta.py);
    # on a cluster the jobs' times are the scheduler's: no estimate.
    # An estimate that cannot be made is a note: the run itself is fine.
    if workflow.is_main_process and workflow.local_exec:
        jobs, deps = eta.snakemake_jobs(workflow.dag)
        cores = workflow.resource_settings.cores or os.cpu_count() or 1
        try:
            times = eta.read_step_times(os.path.join(workflow.basedir, "workflow", "resources", "step_times.tsv"))
            print(f"ws2s: estimate: {eta.estimate(config, jobs, deps, cores, times)}", file=sys.stderr)
        except (OSError, Ws2sError) as err:
            print(f"ws2s: note: no estimate of this run's time: {err}", file=sys.stderr)


# Every rule's command ends so: its output goes to its log, and when it fails its ws2s error
# line is also printed to the console, beside Snakemake's "check log file(s)".
LOGGED = ' > {log} 2>&1 || {{ status=$?; grep -h "^ws2s" {log} >&2 || true; exit $status; }}'


def logged(command):
    """A rule's shell command, its output to its log (LOGGED)."""
    return command + LOGGED


wildcard_constraints:
    dataset="|".join(design.classification_data(config)),
    model="[A-Za-z0-9][A-Za-z0-9._-]*",
    seed=r"\d+",


def all_targets():
    return design.all_targets(config)


def model_inputs(name):
    """The prepared checkpoint a model needs, or nothing for hub/local/package models."""
    return [f"results/models/{name}"] if needs_preparation(config["models"][name]) else []


def model_input(wildcards):
    return model_inputs(wildcards.model)


def prepare_model_parent(wildcards):
    spec = config["models"][wildcards.model]
    return model_inputs(spec["from"]) if "from" in spec else []


def split_data(wildcards):
    """The data files the splits read: inputs, so an edited file reruns what reads it."""
    return DATA_FILES[wildcards.dataset]


def generation_split_data(wildcards):
    return {split: DATA_FILES[f"slurp.{split}"] for split in ("train", "test")}


def run_params(rule):
    """A rule's params slice, from a job's wildcards: what the run's result depends on."""
    return lambda wildcards: design.run_params(config, rule, **wildcards)


def run_inputs(rule):
    """A rule's named inputs, from a job's wildcards."""
    return lambda wildcards: design.run_inputs(config, rule, model_inputs, **wildcards)


def input_arg(rule, key, default):
    """One of a run's inputs as a command argument, `default` where the run reads none."""
    return lambda wildcards: run_inputs(rule)(wildcards).get(key, default)


# ---- scheduler resources ----------------------------------------------------------------

# Where GPU jobs go under SLURM; CPU jobs take the profile's default partition.
GPU_PARTITION = os.environ.get("WS2S_SLURM_GPU_PARTITION", "gpu")
# The tests' one-node cluster: a job of `nodes` nodes asks for that many tasks on one host, so
# its torchruns share the host through the same srun, rendezvous and process group.
ONE_HOST_NODES = os.environ.get("WS2S_SLURM_ONE_HOST") == "1"


def job_resources(kind):
    """What one job of a kind (config `resources`) asks for: memory, runtime, GPUs, nodes.

    Resources change where and how fast a job runs, never its results, so they are not
    params: editing them reruns nothing. launch_gpus and launch_nodes are what the job's
    `ws2s launch` starts: that many processes a node, on that many nodes.
    """
    res = config["resources"][kind]
    gpus, nodes = res["gpu"], res["nodes"]
    request = {"launch_gpus": gpus, "launch_nodes": nodes, "mem_mb": res["mem_mb"], "runtime": res["runtime"]}
    if nodes == 1:
        request["gpu"] = gpus  # the plugin's --gpus, a count for the whole (one-node) job
    else:
        # One task a node, started by the job's own srun (ws2s launch), not by the plugin's
        # `srun -n1` wrapper: the plugin's `mpi` mode. GPUs a node as gres (--gpus would
        # count the whole job); tasks_per_gpu 0 keeps the plugin from deriving it from tasks.
        request.update(tasks=nodes, mpi="srun", tasks_per_gpu=0)
        if not ONE_HOST_NODES:
            request["nodes"] = nodes
        if gpus:
            request["gres"] = ":".join(["gpu", *filter(None, [res["gpu_model"]]), str(gpus)])
    if gpus:
        request["slurm_partition"] = GPU_PARTITION
        if res["gpu_model"] and nodes == 1:
            request["gpu_model"] = res["gpu_model"]
    return request


def job_threads(kind):
    return config["resources"][kind]["cpus"]


def generation_priority(wildcards):
    """On a few cores the generation chain (weak_generate -> map_hypotheses -> strong_generate
    -> cdpo) is the critical path: its jobs go first and the classification jobs fill the free slots;
    among the strong runs, those trained on an ensemble's hypotheses (one pass per member,
    the longest) start first. Priorities order jobs only: they are not params."""
    source = getattr(wildcards, "source", None)
    return 1 if source is not None and source not in config["generation"]["ensembles"] else 2
