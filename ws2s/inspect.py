"""`ws2s inspect PATH`: what a pipeline Parquet file holds, summarised for its kind.

The kind is recognised from the columns (the schemas in `ws2s.schemas`), and the file is
checked whole first (`ws2s.verify`: types, ids, probabilities); each kind has
a summary: class balance, confidence histogram and test accuracy for class
probabilities; per-token and per-word log-probabilities aligned under the text for
generations; chosen and rejected
candidates with every judge's score for cDPO preference pairs; and so on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ws2s import verify
from ws2s.data.slurp import parse_slots
from ws2s.errors import Ws2sError
from ws2s.io import read_parquet
from ws2s.label_models import LABEL_MODELS


def histogram(values: np.ndarray, bins: int = 10, width: int = 40) -> list[str]:
    counts, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    top = max(counts.max(), 1)
    return [f"  [{a:.1f}, {b:.1f}) {'#' * int(round(width * c / top)):<{width}} {c}"
            for a, b, c in zip(edges[:-1], edges[1:], counts)]


def _ensemble_members(path: Path) -> list[str] | None:
    """results/classification/{dataset}/label_models/{ensemble}/seed{seed}.parquet: the members
    in vote order, from a strong run of that ensemble beside it."""
    runs = sorted(path.parents[2].glob(f"strong/*/{path.parent.name}/*/{path.stem}/metrics.json"))
    if not runs:
        return None
    return json.loads(runs[0].read_text()).get("members")


def _gold_for(path: Path) -> pd.DataFrame | None:
    """The test split beside a classification run: results/classification/{dataset}/splits/test.parquet."""
    parts = path.resolve().parts
    if "classification" not in parts:
        return None
    root = Path(*parts[:parts.index("classification") + 2])
    test = root / "splits" / "test.parquet"
    return read_parquet(test, ["id", "label"]) if test.exists() else None


def summarise_class_probs(frame: pd.DataFrame, path: Path) -> list[str]:
    lines = []
    for split, part in frame.groupby("split", sort=False):
        confidence = part[["prob_0", "prob_1"]].max(axis=1).to_numpy()
        lines += [f"{split}: {len(part)} rows, predicted class 1 for {part['pred'].mean():.1%}, "
                  f"mean confidence {confidence.mean():.3f}", "  confidence (max class probability):",
                  *histogram(confidence)]
        gold = _gold_for(path) if split == "test" else None
        if gold is not None:
            joined = part.merge(gold, on="id", how="inner")
            if len(joined):
                lines.append(f"  accuracy against gold on test: {(joined['pred'] == joined['label']).mean():.1%} "
                             f"({len(joined)} rows)")
    return lines


def aligned(pieces: list[str], values: np.ndarray, per_line: int = 8) -> list[str]:
    """Pieces of text with their probabilities in a column under each."""
    lines = []
    for start in range(0, len(pieces), per_line):
        chunk = [repr(p)[1:-1] for p in pieces[start:start + per_line]]
        probs = [f"{np.exp(v):.2f}" for v in values[start:start + per_line]]
        widths = [max(len(a), len(b)) for a, b in zip(chunk, probs)]
        lines.append("    " + " | ".join(a.ljust(w) for a, w in zip(chunk, widths)))
        lines.append("    " + " | ".join(b.ljust(w) for b, w in zip(probs, widths)))
    return lines


def _mapping_for(path: Path) -> pd.DataFrame | None:
    """The strong-tokenizer mapping of weak generations: results/generation/mapped/{model}/seed{seed}.parquet."""
    parts = path.resolve().parts
    if len(parts) < 5 or parts[-5:-3] != ("generation", "weak"):
        return None
    mapped = Path(*parts[:-4]) / "mapped" / parts[-3] / f"{parts[-2]}.parquet"
    return read_parquet(mapped).set_index("id") if mapped.exists() else None


def mapped_lines(row) -> list[str]:
    """A hypothesis's strong pieces with their Eqn 7 probability, and C_s under each."""
    tokens = list(row.strong_tokens)
    confidence = np.log(np.clip(np.asarray(row.strong_confidence, dtype=float), 1e-12, 1))
    return ["  strong tokens (Eqn 7 probability under each):", *aligned(tokens, np.asarray(row.target_logprobs)),
            "  strong tokens (the strong model's confidence C_s under each):", *aligned(tokens, confidence)]


def summarise_generations(frame: pd.DataFrame, mapping: pd.DataFrame | None = None) -> list[str]:
    lines = [f"valid JSON: {frame['valid_json'].mean():.1%} of {len(frame)}"]
    for row in frame.itertuples():
        lines += [f"[{row.split}] {row.id}: {row.text}",
                  f"  sequence log-prob {np.sum(row.token_logprobs):.2f}; tokens (probability under each):",
                  *aligned(list(row.tokens), np.asarray(row.token_logprobs)),
                  "  words (Stage 1):", *aligned(list(row.words), np.asarray(row.word_logprobs))]
        if mapping is not None and row.id in mapping.index:
            lines += mapped_lines(mapping.loc[row.id].rename(row.id))
        lines.append(f"  {len(row.nbest)}-best: " + json.dumps(list(row.nbest)))
    return lines


def summarise_mapped(frame: pd.DataFrame) -> list[str]:
    lines = []
    for row in frame.itertuples():
        lines += [f"{row.id}: {row.text}", f"  weak log-prob {row.weak_logprob:.2f}, "
                  f"strong pieces sum {np.sum(row.target_logprobs):.2f}", *mapped_lines(row)]
    return lines


def summarise_pairs(frame: pd.DataFrame, shown: pd.DataFrame) -> list[str]:
    """How often the ensemble preferred valid JSON, then each pair with every judge's scores."""
    def valid(texts) -> float:
        return float(np.mean([parse_slots(t) is not None for t in texts])) if len(texts) else 0.0

    lines = [f"valid JSON: chosen {valid(frame['chosen']):.1%}, rejected {valid(frame['rejected']):.1%}; "
             f"mean ensemble score gap {(frame['chosen_score'] - frame['rejected_score']).mean():.3f}"]
    for row in shown.itertuples():
        judges = [f"{j} (λ={w:.2f})" for j, w in zip(row.judges, row.judge_weights)]
        lines += [f"{row.id}: {row.sentence}",
                  f"  {len(row.candidates)} candidates, ensemble scores "
                  + ", ".join(f"{s:.2f}" for s in row.candidate_scores),
                  f"  chosen   {row.chosen_score:9.3f}  {row.chosen}",
                  f"  rejected {row.rejected_score:9.3f}  {row.rejected}",
                  "  judge scores (chosen / rejected): " + "; ".join(
                      f"{j} {c:.3f} / {r:.3f}" for j, c, r in zip(judges, row.chosen_weak_scores, row.rejected_weak_scores)),
                  f"  reference log p (start model): chosen {row.ref_chosen:.3f}, rejected {row.ref_rejected:.3f}"]
    return lines


def summarise_label_models(frame: pd.DataFrame, shown: pd.DataFrame, members: list[str] | None) -> list[str]:
    """Each label model's P(class 1) beside the members' votes, example by example."""
    models = [c for c in frame.columns if c in LABEL_MODELS]
    votes = np.stack(frame["votes"]) if len(frame) else np.zeros((0, 0))
    majority = votes.mean(axis=1) if len(frame) else np.zeros(0)
    lines = [f"members (vote order): {', '.join(members) if members else 'see the run config'}",
             "share of examples each model labels 1, and where it disagrees with the majority vote:"]
    lines += [f"  {m:<13} {(frame[m] > 0.5).mean():6.1%}   {((frame[m] > 0.5) != (majority > 0.5)).mean():6.1%}"
              for m in models]
    for row in shown.itertuples():
        lines.append(f"[{row.split}] {row.id}: votes {list(row.votes)}  " +
                     "  ".join(f"{m} {getattr(row, m):.3f}" for m in models))
    return lines


def inspect(path: str | Path, head: int = 5, example_id: str | None = None) -> str:
    path = Path(path)
    kind, frame = verify.check_parquet(path)  # NaN probabilities, null ids, other types: one line
    if example_id is not None:
        frame = frame[frame["id"] == example_id]
        if frame.empty:
            raise Ws2sError(f"{path}: no row with id {example_id}")
    schema = pq.read_schema(path)
    lines = [f"{path}: {kind}, {pq.ParquetFile(path).metadata.num_rows} rows",
             "schema: " + ", ".join(f"{f.name} {f.type}" for f in schema)]
    shown = frame.head(head)
    if kind in ("class probabilities", "strong predictions"):
        lines += summarise_class_probs(frame, path)
        if kind == "strong predictions" and frame["strength"].notna().any():
            lines.append(f"Dirichlet strength S: median {frame['strength'].median():.3g}; vacuity K/S: mean "
                         f"{frame['vacuity'].mean():.3f}, 10/50/90% {', '.join(f'{q:.3f}' for q in frame['vacuity'].quantile([0.1, 0.5, 0.9]))}")
    elif kind == verify.LABEL_MODEL_KIND:
        lines += summarise_label_models(frame, shown, _ensemble_members(path))
        return "\n".join(lines)
    elif kind == "weak generations":
        lines += summarise_generations(shown, _mapping_for(path))
        return "\n".join(lines)
    elif kind == "hypotheses in the strong tokenizer":
        lines += summarise_mapped(shown)
        return "\n".join(lines)
    elif kind == "strong generations":
        lines.append(f"valid JSON: {frame['valid_json'].mean():.1%} of {len(frame)}")
    elif kind == "preference pairs":
        lines += summarise_pairs(frame, shown)
        return "\n".join(lines)
    elif "label" in frame.columns:
        lines.append(f"label 1 share: {frame['label'].mean():.1%}")
    elif kind == "strong features":
        lines.append(f"feature size: {len(frame['features'].iloc[0]) if len(frame) else 0}")
    display = shown.drop(columns=[c for c in ("features",) if c in shown.columns])
    for column in display.columns:
        if display[column].dtype == object or str(display[column].dtype).startswith("str"):
            display[column] = display[column].map(lambda v: v if len(str(v)) <= 60 else str(v)[:57] + "...")
    lines += ["", display.to_string(index=False)]
    return "\n".join(lines)
