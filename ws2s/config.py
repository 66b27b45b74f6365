"""Typed stage configs: what each pipeline step reads from its rule's params.

Every stage imports this module, so it holds nothing but the configs (the config file's
reading and validation are in ws2s.configfile, which no stage imports).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

from ws2s.errors import Ws2sError


def canonical(obj) -> str:
    """A config slice as a key-order-independent string: what rule params carry."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


# ---- typed stage configs -------------------------------------------------------------


@dataclass(frozen=True)
class LossConfig:
    kind: str                 # "ce" (Eqns 1-2) or "edl" (Eqns 3-5)
    aux: bool = False         # add the auxiliary confidence term (Burns et al.; Eqn 5)
    gamma_max: float = 0.5
    warmup_frac: float = 0.1
    balanced_threshold: bool = True  # harden at the weak labels' class balance (else argmax)
    activation: str = "exp"
    kl_weight: float = 1.0
    # eqn4: Σ_k p_k KL(Dir(α̃^(k)) ‖ Dir(1)), the paper's Eqn 4; soft_label: KL(Dir(y + (1 − y)α) ‖ Dir(1)),
    # the authors' released code
    kl_target: str = "eqn4"
    centre_logits: bool = False      # evidence from z − mean z (shift-invariant)
    kl_clamp: float | None = None    # Section 4.1: the annealed KL clamped to [−c, c] per example
    kl_top_k: int | None = None      # the KL over the top-k tokens and one pooled class (`pooled_top_k`)


DEFAULT_DEEPSPEED_CONFIG = "workflow/deepspeed/zero2.json"
# The same template as package data (workflow/deepspeed/ links to it): the default is found
# where there is no checkout around the run, e.g. a stage run by hand from elsewhere.
PACKAGED_DEEPSPEED_CONFIG = Path(__file__).resolve().parent / "resources" / "deepspeed" / "zero2.json"


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapters (peft) in place of training the strong model's weights: `engine.lora`."""

    rank: int = 0                 # 0: no adapters
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: str | list = "all-linear"  # peft's name for every linear layer but the output layer


@dataclass(frozen=True)
class EngineConfig:
    """How strong models train: the config's `engine` section."""

    backend: str = "plain"        # plain | deepspeed
    zero_stage: int = 2           # 3 partitions the weights too; gathered whole after training
    bf16: bool = False
    offload: bool = False         # ZeRO-Offload of the optimizer state to host memory
    config: str = DEFAULT_DEEPSPEED_CONFIG  # DeepSpeed JSON template; the fields above override it
    lora: LoraConfig = field(default_factory=LoraConfig)

    def __post_init__(self):
        if isinstance(self.lora, dict):
            object.__setattr__(self, "lora", LoraConfig(**self.lora))

    def deepspeed_config(self, micro_batch: int) -> dict:
        """The template with this config's values filled in."""
        path = Path(self.config)
        if not path.is_file() and self.config == DEFAULT_DEEPSPEED_CONFIG:
            path = PACKAGED_DEEPSPEED_CONFIG
        if not path.is_file():
            raise Ws2sError(f"engine.config: DeepSpeed config {path} does not exist")
        ds = json.loads(path.read_text())
        zero = ds.setdefault("zero_optimization", {})
        zero["stage"] = self.zero_stage
        if self.offload:
            zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        else:
            zero.pop("offload_optimizer", None)
        ds["bf16"] = {**ds.get("bf16", {}), "enabled": self.bf16}
        ds["train_micro_batch_size_per_gpu"] = micro_batch
        ds["gradient_accumulation_steps"] = 1
        ds.pop("train_batch_size", None)  # DeepSpeed derives it from the two above and the world size
        ds.setdefault("zero_allow_untested_optimizer", True)
        return ds


@dataclass(frozen=True)
class SoftLabelConfig:
    """Stage 3's targets of the generation track (`ws2s.objectives.soft_targets`)."""

    kind: str = "full"       # full | target | onehot (Table 8)
    min_prob: float = 1e-4   # P(s_i) is clamped to [min_prob, 1]


@dataclass(frozen=True)
class DecodingConfig:
    """The strong model's decoding of test utterances (and cDPO's before and after)."""

    beams: int = 1           # 1: greedy
    max_new_tokens: int = 32


class StageConfig:
    """A stage's typed config, built from the canonical JSON its rule passes as params.

    A field named in NESTED is a config of its own: given as a dict (from JSON, or by a
    caller), it is turned into that dataclass, so stages read `cfg.loss.kind`, never a
    dict's keys."""

    NESTED: ClassVar[dict[str, type]] = {}

    def __post_init__(self):
        for name, kind in self.NESTED.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                try:
                    object.__setattr__(self, name, kind(**value))
                except TypeError as err:
                    raise Ws2sError(f"--params: {type(self).__name__}.{name} does not fit {kind.__name__}: {err}") from None

    @classmethod
    def from_params(cls, params: dict):
        if not isinstance(params, dict):
            raise Ws2sError(f"--params: {cls.__name__} needs a JSON object; got {type(params).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - names)
        missing = sorted(f.name for f in fields(cls) if f.name not in params
                         and f.default is MISSING and f.default_factory is MISSING)
        if unknown or missing:
            raise Ws2sError(f"--params do not fit {cls.__name__}: "
                            + "; ".join(p for p in (f"unknown keys {unknown}" if unknown else "",
                                                    f"missing keys {missing}" if missing else "") if p))
        return cls(**params)


@dataclass(frozen=True)
class SplitConfig(StageConfig):
    dataset: str
    source: dict
    sizes: dict
    split_seed: int



@dataclass(frozen=True)
class TrainConfig(StageConfig):
    """What changes a classifier's results (and nothing that only changes speed)."""

    model_name: str
    model_spec: dict
    seed: int
    epochs: int
    batch_size: int
    lr: float
    max_length: int
    train_layers: str | int


@dataclass(frozen=True)
class WeakTrainConfig(TrainConfig):
    """A weak classifier finetuned on gold."""

    dataset: str         # recorded in its metrics.json, which the tables read


@dataclass(frozen=True)
class StrongTrainConfig(TrainConfig):
    """One strong-stage run: a method, its weak sources and weights, its loss."""

    dataset: str
    method: str          # ceiling | single | naive | bayesian | a label model (ws2s.label_models)
    target: str          # what it learns from (design.METHODS): gold | weak_labels | label_model
    source: str          # the weak model, the ensemble, or gold (the ceiling)
    members: list        # weak models whose labels it reads (empty for the ceiling)
    weights: list        # λ_i, one per member
    loss: LossConfig
    engine: EngineConfig = field(default_factory=EngineConfig)  # the default: plain PyTorch
    head: str = "random"  # readout: the LM's own answer rows (on prompted states); random
    prompt: str | None = None  # the data set's yes/no question: a readout head on a finetuned model
    NESTED: ClassVar[dict[str, type]] = {"loss": LossConfig, "engine": EngineConfig}


@dataclass(frozen=True)
class LabelModelConfig(StageConfig):
    """The label models of one ensemble and seed."""

    members: list                 # the weak models whose votes they read, in order
    methods: list                 # label-model methods (ws2s.label_models.LABEL_MODELS)
    class_balance: float | None   # P(class 1) for the models that take it; None: estimated
    seed: int


@dataclass(frozen=True)
class GenerationSplitConfig(StageConfig):
    train: str
    test: str
    sizes: dict
    split_seed: int



@dataclass(frozen=True)
class FewgoldConfig(StageConfig):
    """The few-gold protocol's subset of the generation track's val for one seed."""

    size: int
    seed: int


@dataclass(frozen=True)
class WeakGenerationConfig(StageConfig):
    """A weak causal LM's finetuning on gold targets and its generation settings."""

    model_name: str
    model_spec: dict
    seed: int
    prompt: str          # a key of ws2s.data.slurp.PROMPTS
    epochs: int
    batch_size: int
    lr: float
    val_fraction: float
    train_layers: str | int
    weak_beams: int      # beam width (1: greedy); each hypothesis keeps this many for Joint Decoding
    max_new_tokens: int
    engine: EngineConfig = field(default_factory=EngineConfig)  # bf16: autocast in training, bf16 weights in decoding
    NESTED: ClassVar[dict[str, type]] = {"engine": EngineConfig}


@dataclass(frozen=True)
class MappingConfig(StageConfig):
    """The cross-tokenizer mapping of one weak model's hypotheses (Eqns 6-7)."""

    strong_model: str
    strong_spec: dict
    prompt: str
    weighting: str       # confidence (e^{C_s}, Eqn 7) | inverse_confidence (the authors' code)
    bf16: bool = False   # the strong model's teacher-forced pass in bf16


@dataclass(frozen=True)
class JointDecodingConfig(StageConfig):
    """Joint Decoding: the pooled M-best lists of an ensemble, scored by its members."""

    members: list        # the judges: each scores every candidate
    weights: list        # λ_i, one per member
    prompt: str
    m: int               # M: the first M of each generator's list are pooled
    generators: list = field(default_factory=list)  # whose lists are pooled; empty: the members

@dataclass(frozen=True)
class StrongGenerationConfig(StageConfig):
    """One strong run of the generation track: a method, its sources and weights, its loss."""

    model_name: str
    model_spec: dict
    seed: int
    prompt: str
    method: str          # ceiling | single | naive | jointdecoding | bayesian
    target: str          # what it learns from (design.METHODS): gold | mapped | joint
    source: str          # the weak model, the ensemble (or Table 10 subset), or gold (the ceiling)
    members: list        # weak models whose hypotheses it reads (empty for the ceiling)
    weighting: str       # average | fixed | dynamic
    weights: list        # λ_i for average/fixed, one per member
    loss: LossConfig
    soft_labels: SoftLabelConfig
    epochs: int
    batch_size: int
    lr: float
    train_layers: str | int
    decoding: DecodingConfig
    engine: EngineConfig
    NESTED: ClassVar[dict[str, type]] = {"loss": LossConfig, "soft_labels": SoftLabelConfig,
                                         "decoding": DecodingConfig, "engine": EngineConfig}


@dataclass(frozen=True)
class CdpoConfig(StageConfig):
    """One cDPO run (Section 4.2): candidates, the weak ensemble's preferences, the cDPO fit."""

    seed: int
    ensemble: str
    members: list        # the weak models that judge the candidates
    weights: list        # λ_i of Eqn 8, one per member
    prompt: str          # a key of ws2s.data.slurp.PROMPTS
    test_beams: int      # test decoding before and after, as the strong stage evaluates
    max_new_tokens: int
    start_method: str
    start_aux: bool
    candidates: int      # M
    decoding: str        # beam | sample
    temperature: float
    score: str           # sequence_prob (Eqn 8) | mean_logprob
    beta: float
    epsilon: float
    lr: float
    epochs: int
    batch_size: int
    train_layers: str | int
    engine: EngineConfig
    NESTED: ClassVar[dict[str, type]] = {"engine": EngineConfig}
