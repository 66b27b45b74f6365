"""SLU-F1 as the official SLURP scorer defines it (Bastianelli et al., EMNLP 2020).

    python -m ws2s.metrics.slu_f1 --gold GOLD.jsonl --pred PRED.jsonl [--load-gold]

Follows `scripts/evaluation` of the SLURP repository exactly:
- Gold: one example per recording (`file`), or per `str(slurp_id)` with `--load-gold`.
  Entities are `{type, filler}`, the filler being the span's token surfaces lowercased
  and joined by single spaces. Predictions are keyed by `file` (or `slurp_id`); the last
  line wins; gold examples without a prediction are skipped, not counted as misses.
- Span distance F1, per matched example: predictions in their order each take the
  remaining gold entity of the same type at the lowest distance (ties: first); that
  adds TP 1 and the distance d to both FP and FN. A prediction with no gold of its type
  left adds FP 1; each gold entity left adds FN 1. Word d is WER (word edit distance /
  gold words, after collapsing whitespace; may exceed 1), char d is the character
  Levenshtein distance / the longer length. No case folding on predictions.
- SLU-F1 sums the word- and char-level counts per label, then micro P, R, F1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field

from ws2s.errors import Ws2sError


def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences (unit costs)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def _jiwer_words(text: str) -> list[str]:
    """jiwer 2.x's default transform: collapse whitespace runs, strip, split on spaces."""
    return [w for w in re.sub(r"\s\s+", " ", text).strip().split(" ") if w]


def word_distance(gold: str, pred: str) -> float:
    """jiwer 2.x `wer(truth=gold, hypothesis=pred)` with its default transform."""
    gold_words, pred_words = _jiwer_words(gold), _jiwer_words(pred)
    if not gold_words:
        raise Ws2sError("one or more groundtruths are empty strings")
    return edit_distance(gold_words, pred_words) / len(gold_words)


def char_distance(gold: str, pred: str) -> float:
    """textdistance `levenshtein.normalized_distance(gold, pred)`."""
    longest = max(len(gold), len(pred))
    return edit_distance(gold, pred) / longest if longest else 0.0


DISTANCES = {"word": word_distance, "char": char_distance}


@dataclass
class Counts:
    tp: dict = field(default_factory=lambda: defaultdict(float))
    fp: dict = field(default_factory=lambda: defaultdict(float))
    fn: dict = field(default_factory=lambda: defaultdict(float))

    def add(self, other: "Counts") -> None:
        for mine, theirs in ((self.tp, other.tp), (self.fp, other.fp), (self.fn, other.fn)):
            for label, value in theirs.items():
                mine[label] += value

    def overall(self) -> tuple[float, float, float]:
        return prf(sum(self.tp.values()), sum(self.fp.values()), sum(self.fn.values()))


def prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def span_distance_counts(gold: list[dict], pred: list[dict], distance, counts: Counts) -> None:
    """One example's contribution to a span distance F1 (greedy, in prediction order)."""
    gold_labels = [e["type"] for e in gold]
    gold_fillers = [e["filler"] for e in gold]
    for entity in pred:
        label = entity["type"]
        if label in gold_labels:
            best, lowest = 0, float("inf")
            for j, gold_label in enumerate(gold_labels):
                if gold_label == label:
                    d = distance(gold_fillers[j], entity["filler"])
                    if d < lowest:
                        best, lowest = j, d
            counts.tp[label] += 1
            counts.fp[label] += lowest
            counts.fn[label] += lowest
            gold_labels.pop(best)
            gold_fillers.pop(best)
        else:
            counts.fp[label] += 1
    for label in gold_labels:
        counts.fn[label] += 1


def span_exact_counts(gold: list[dict], pred: list[dict], counts: Counts) -> None:
    remaining = list(gold)
    for entity in pred:
        if entity in remaining:
            counts.tp[entity["type"]] += 1
            remaining.remove(entity)
        else:
            counts.fp[entity["type"]] += 1
    for entity in remaining:
        counts.fn[entity["type"]] += 1


def gold_examples(records: list[dict], load_gold: bool) -> dict[str, list[dict]]:
    """Key -> gold entities, as the scorer's `release2prediction` builds them."""
    examples = {}
    for record in records:
        tokens = record["tokens"]
        entities = [{"type": e["type"], "filler": " ".join(tokens[i]["surface"].lower() for i in e["span"])}
                    for e in record["entities"]]
        keys = [str(record["slurp_id"])] if load_gold else [r["file"] for r in record["recordings"]]
        for key in keys:
            examples[key] = entities
    return examples


@dataclass
class SluScores:
    span_f1: float
    word_f1: float
    char_f1: float
    slu_f1: float
    matched: int
    unmatched_gold: int


def score(gold: dict[str, list[dict]], predictions: dict[str, list[dict]]) -> SluScores:
    exact, word, char = Counts(), Counts(), Counts()
    matched = 0
    for key, gold_entities in gold.items():
        if key not in predictions:
            continue
        matched += 1
        pred_entities = predictions[key]
        span_exact_counts(gold_entities, pred_entities, exact)
        span_distance_counts(gold_entities, pred_entities, word_distance, word)
        span_distance_counts(gold_entities, pred_entities, char_distance, char)
    slu = Counts()
    slu.add(word)
    slu.add(char)
    return SluScores(exact.overall()[2], word.overall()[2], char.overall()[2], slu.overall()[2],
                     matched, len(gold) - matched)


def _read_jsonl(path: str) -> list[dict]:
    try:
        with open(path) as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        raise Ws2sError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise Ws2sError(f"{path}: not JSON lines ({err})") from None


def load_predictions(path: str, load_gold: bool) -> dict[str, list[dict]]:
    key = "slurp_id" if load_gold else "file"
    predictions = {}
    for number, line in enumerate(_read_jsonl(path), 1):
        if key not in line:
            raise Ws2sError(f"{path}: line {number} has no '{key}'")
        predictions[line[key]] = line.get("entities", [])
    return predictions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ws2s.metrics.slu_f1", description=__doc__.splitlines()[0])
    parser.add_argument("--gold", "-g", required=True, help="official SLURP jsonl (e.g. dataset/slurp/test.jsonl)")
    parser.add_argument("--pred", "-p", required=True, help="predictions jsonl (file or slurp_id, scenario, action, entities)")
    parser.add_argument("--load-gold", action="store_true", help="predictions keyed by slurp_id (gold transcripts)")
    args = parser.parse_args(argv)
    try:
        scores = score(gold_examples(_read_jsonl(args.gold), args.load_gold), load_predictions(args.pred, args.load_gold))
    except Ws2sError as err:
        print(f"ws2s: error: {err}", file=sys.stderr)
        return 2
    print(f"word F1: {scores.word_f1:.4f}")
    print(f"char F1: {scores.char_f1:.4f}")
    print(f"SLU-F1: {scores.slu_f1:.4f}")
    print(f"(span F1 exact: {scores.span_f1:.4f}; {scores.matched} examples scored, "
          f"{scores.unmatched_gold} gold examples without a prediction skipped, as the official scorer does)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
