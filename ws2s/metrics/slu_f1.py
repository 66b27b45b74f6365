"""SLU-F1 as the official SLURP scorer defines it (Bastianelli et al., EMNLP 2020).

    python -m ws2s.metrics.slu_f1 --gold GOLD.jsonl --pred PRED.jsonl [--load-gold]

Follows `scripts/evaluation` of the SLURP repository exactly:
- Gold: one example per recording (`file`), or per `str(slurp_id)` with `--load-gold`.
  Entities are `{type, filler}`, the filler being the span's token surfaces lowercased
  and joined by single spaces. Predictions are keyed by `file` (or `slurp_id`, compared
  as text whatever its JSON type); the last line wins (duplicates are reported, and are an
  error with `--strict`, as are ids absent from gold); gold examples without a prediction
  are skipped, not counted as misses; a prediction file that matches no gold id is an error.
  A gold id given twice: the last record kept, as the official scorer does, with a note
  (an error with `--strict`).
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
from ws2s.io import read_jsonl


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


def checked_spans(record: dict, where: str) -> tuple[list[str], list[tuple[str, list[int]]]]:
    """A SLURP record's token surfaces and (type, span) of each entity, checked: a bad record
    is one error naming `where` and the field."""
    tokens, entities = record.get("tokens"), record.get("entities")
    if not isinstance(tokens, list) or not all(isinstance(t, dict) and isinstance(t.get("surface"), str) for t in tokens):
        raise Ws2sError(f"{where}: 'tokens' must be a list of {{surface: text}} objects")
    if not isinstance(entities, list):
        raise Ws2sError(f"{where}: 'entities' must be a list (empty when the utterance has none)")
    spans = []
    for entity in entities:
        if not isinstance(entity, dict) or not isinstance(entity.get("type"), str) or "span" not in entity:
            raise Ws2sError(f"{where}: an entity needs a 'type' (text) and a 'span'; got {json.dumps(entity)[:80]}")
        span = entity["span"]
        if not isinstance(span, list) or not span or not all(isinstance(i, int) and not isinstance(i, bool) for i in span):
            raise Ws2sError(f"{where}: entity '{entity['type']}': 'span' must be a non-empty list of integer token "
                            f"indices; got {json.dumps(span)[:80]}")
        outside = [i for i in span if not 0 <= i < len(tokens)]
        if outside:
            raise Ws2sError(f"{where}: entity '{entity['type']}': span {json.dumps(span)} lies outside the sentence's "
                            f"{len(tokens)} tokens (indices 0..{len(tokens) - 1})")
        spans.append((entity["type"], span))
    return [t["surface"] for t in tokens], spans


def _entity_fillers(record: dict, where: str) -> list[dict]:
    """A SLURP record's gold entities: each span's token surfaces, lowercased, joined by spaces."""
    surfaces, spans = checked_spans(record, where)
    return [{"type": kind, "filler": " ".join(surfaces[i].lower() for i in span)} for kind, span in spans]


def gold_example(record: dict, load_gold: bool, at: str) -> tuple[list[str], list[dict]]:
    """One gold record's keys (its slurp_id, or each recording's file) and entities; `at` names it in an error."""
    entities = _entity_fillers(record, at)
    if load_gold:
        if "slurp_id" not in record:
            raise Ws2sError(f"{at}: no 'slurp_id'")
        return [str(record["slurp_id"])], entities
    recordings = record.get("recordings")
    if not isinstance(recordings, list) or not all(isinstance(r, dict) and "file" in r for r in recordings):
        raise Ws2sError(f"{at}: no 'recordings' with a 'file' each (score gold transcripts with --load-gold)")
    return [str(r["file"]) for r in recordings], entities


def gold_examples(records: list[dict], load_gold: bool, where: str = "gold") -> dict[str, list[dict]]:
    """Key -> gold entities, as the scorer's `release2prediction` builds them; keys are strings
    whatever type the file gives (SLURP's own jsonl has integer slurp_ids); a key given again
    replaces the first, as in the official scorer."""
    examples = {}
    for number, record in enumerate(records, 1):
        keys, entities = gold_example(record, load_gold, f"{where} record {number}")
        examples.update((key, entities) for key in keys)
    return examples


@dataclass
class Gold:
    examples: dict[str, list[dict]]   # key -> gold entities (a key given again: the last record kept)
    lines: dict[str, int]             # key -> the line of the record kept
    duplicates: dict[str, list[int]]  # key given on more than one line -> those lines


def read_gold(path: str, load_gold: bool) -> Gold:
    """The official gold jsonl, keyed as the scorer keys it, with each key's line and the keys
    given twice (SLURP's own files give each once; a repeat changes the scores)."""
    examples, lines, duplicates = {}, {}, {}
    for number, record in read_jsonl(path):
        keys, entities = gold_example(record, load_gold, f"{path} line {number}")
        for key in keys:
            if key in lines:
                duplicates.setdefault(key, [lines[key]]).append(number)
            examples[key], lines[key] = entities, number
    return Gold(examples, lines, duplicates)


@dataclass
class SluScores:
    span_f1: float
    word_f1: float
    char_f1: float
    slu_f1: float
    matched: int
    unmatched_gold: int


def score(gold: dict[str, list[dict]], predictions: dict[str, list[dict]], where=None) -> SluScores:
    """`where(key)` names a gold example in an error (default: "gold example KEY")."""
    exact, word, char = Counts(), Counts(), Counts()
    matched = 0
    for key, gold_entities in gold.items():
        if key not in predictions:
            continue
        matched += 1
        pred_entities = predictions[key]
        span_exact_counts(gold_entities, pred_entities, exact)
        try:
            span_distance_counts(gold_entities, pred_entities, word_distance, word)
        except Ws2sError as err:
            empty = [e["type"] for e in gold_entities if not _jiwer_words(e["filler"])]
            raise Ws2sError(f"{where(key) if where else f'gold example {key!r}'}: a groundtruth is an empty string "
                            f"(the filler of its '{empty[0] if empty else '?'}' entity has no words), which the "
                            "official scorer refuses ({err})") from None
        span_distance_counts(gold_entities, pred_entities, char_distance, char)
    slu = Counts()
    slu.add(word)
    slu.add(char)
    return SluScores(exact.overall()[2], word.overall()[2], char.overall()[2], slu.overall()[2],
                     matched, len(gold) - matched)


@dataclass
class Predictions:
    entities: dict[str, list[dict]]   # key -> predicted entities (the last line of a key wins)
    duplicates: list[str]              # keys given on more than one line


def load_predictions(path: str, load_gold: bool) -> Predictions:
    key = "slurp_id" if load_gold else "file"
    entities: dict[str, list[dict]] = {}
    duplicates = []
    for number, line in read_jsonl(path):
        if key not in line:
            raise Ws2sError(f"{path}: line {number} has no '{key}'")
        predicted = line.get("entities", [])
        if not isinstance(predicted, list) or not all(
                isinstance(e, dict) and isinstance(e.get("type"), str) and isinstance(e.get("filler"), str)
                for e in predicted):
            raise Ws2sError(f"{path}: line {number}: 'entities' must be a list of {{type, filler}} strings")
        name = str(line[key])  # one type for every id, whatever the file writes
        if name in entities:
            duplicates.append(name)
        entities[name] = predicted
    return Predictions(entities, duplicates)


def check_match(gold: dict, predictions: Predictions, strict: bool, path: str) -> list[str]:
    """What the scorer tells besides the scores; no prediction matching a gold id is an error
    (else it would print SLU-F1 0.0000), and with `strict` so are duplicates and unknown ids."""
    unknown = [k for k in predictions.entities if k not in gold]
    if len(unknown) == len(predictions.entities):
        raise Ws2sError(f"{path}: none of its {len(unknown)} ids is a gold id (e.g. {unknown[0]!r}); "
                        "score gold transcripts by slurp_id with --load-gold, recordings by file without it")
    notes = []
    if predictions.duplicates:
        notes.append(f"{len(predictions.duplicates)} ids predicted more than once (the last line kept), "
                     f"e.g. {predictions.duplicates[0]!r}")
    if unknown:
        notes.append(f"{len(unknown)} predicted ids are not in the gold file, e.g. {unknown[0]!r}")
    if strict and notes:
        raise Ws2sError(f"{path}: {'; '.join(notes)} (--strict)")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ws2s.metrics.slu_f1", description=__doc__.splitlines()[0])
    parser.add_argument("--gold", "-g", required=True, help="official SLURP jsonl (e.g. dataset/slurp/test.jsonl)")
    parser.add_argument("--pred", "-p", required=True, help="predictions jsonl (file or slurp_id, scenario, action, entities)")
    parser.add_argument("--load-gold", action="store_true", help="predictions keyed by slurp_id (gold transcripts)")
    parser.add_argument("--strict", action="store_true", help="duplicate or unknown prediction ids are errors")
    args = parser.parse_args(argv)
    try:
        gold = read_gold(args.gold, args.load_gold)
        notes = []
        if gold.duplicates:
            key, lines = next(iter(gold.duplicates.items()))
            notes.append(f"{args.gold}: {len(gold.duplicates)} gold ids given more than once (the last record kept, "
                         f"as the official scorer does), e.g. {key!r} on lines {', '.join(map(str, lines))}")
            if args.strict:
                raise Ws2sError(f"{notes[0]} (--strict)")
        predictions = load_predictions(args.pred, args.load_gold)
        notes += check_match(gold.examples, predictions, args.strict, args.pred)
        scores = score(gold.examples, predictions.entities, lambda key: f"{args.gold} line {gold.lines[key]}")
    except Ws2sError as err:
        print(f"ws2s: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a folder given as a file, an unreadable file
        print(f"ws2s: error: {err.filename}: {err.strerror or err}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"ws2s: note: {note}", file=sys.stderr)
    print(f"word F1: {scores.word_f1:.4f}")
    print(f"char F1: {scores.char_f1:.4f}")
    print(f"SLU-F1: {scores.slu_f1:.4f}")
    print(f"(span F1 exact: {scores.span_f1:.4f}; {scores.matched} examples scored, "
          f"{scores.unmatched_gold} gold examples without a prediction skipped, as the official scorer does)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
