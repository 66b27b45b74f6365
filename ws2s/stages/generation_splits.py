"""The generation splits stage: SLURP utterances -> Parquet.

weak_train, strong_train and val come from the training utterances, test from the official
test set; strong_train's and val's targets go to files of their own, read only by the strong
ceiling (val: the paper's protocol tunes the ceiling on gold validation data). Nothing is
written when a training split shares an utterance with val or the test file.

Per seed, the few-gold protocol's subset of val's targets goes to a file of its own
(`write_fewgold`): the only gold a Weak-to-Strong run is handed, and only to pick its
evaluation point (README, Training curves).
"""

from __future__ import annotations

from pathlib import Path

from ws2s import schemas
from ws2s.config import FewgoldConfig, GenerationSplitConfig
from ws2s.data.leakage import Part, check_disjoint
from ws2s.data.slurp import load_utterances, make_generation_splits
from ws2s.frames import fewgold_ids
from ws2s.io import read_parquet, write_parquet


def write_generation_splits(cfg: GenerationSplitConfig, out_dir: str | Path) -> dict[str, int]:
    train = load_utterances(cfg.train, "data.slurp.train")
    test = load_utterances(cfg.test, "data.slurp.test")
    splits = make_generation_splits(train, test, cfg.sizes, cfg.split_seed)
    # checked against the whole test file, not only the utterances drawn from it
    check_disjoint([Part(s, splits[s], f"data.slurp.train: {cfg.train}") for s in ("weak_train", "strong_train")],
                   [Part("val", splits["val"], f"data.slurp.train: {cfg.train}"),
                    Part("the test file", test, f"data.slurp.test: {cfg.test}")],
                   text="sentence", ids=("id", "slurp_id"))
    out_dir = Path(out_dir)
    write_parquet(splits["weak_train"], out_dir / "weak_train.parquet", schemas.UTTERANCES)
    write_parquet(splits["test"], out_dir / "test.parquet", schemas.UTTERANCES)
    for split in ("strong_train", "val"):
        frame = splits[split]
        write_parquet(frame[["id", "slurp_id", "sentence"]], out_dir / f"{split}.parquet", schemas.UNLABELLED_UTTERANCES)
        write_parquet(frame[["id", "target", "gold_entities"]], out_dir / f"{split}_gold.parquet", schemas.GOLD_TARGETS)
    return {name: len(frame) for name, frame in splits.items()}


def write_fewgold(cfg: FewgoldConfig, val_gold_file: str | Path, out: str | Path) -> dict[str, int]:
    """The targets of `cfg.size` val utterances drawn for `cfg.seed` (as the classification
    track draws its few-gold pairs)."""
    gold = read_parquet(val_gold_file, [f.name for f in schemas.GOLD_TARGETS])
    chosen = fewgold_ids(gold["id"], cfg.size, cfg.seed, "generation.fewgold_val")
    write_parquet(gold.set_index("id").loc[chosen].reset_index(), out, schemas.GOLD_TARGETS)
    return {"fewgold": len(chosen)}
