import json
import random
import subprocess
import sys

import pytest
from textdistance.algorithms.edit_based import levenshtein

import jiwer
from ws2s.data.slurp import load_utterances, parse_slots, slot_agreement, slots_to_entities
from ws2s.metrics.slu_f1 import char_distance, gold_examples, score, word_distance

# The worked example, counted by hand from the official scorer's definitions.
GOLD = [{"type": "date", "filler": "tomorrow"}, {"type": "time", "filler": "ten am"}]
PRED = [{"type": "date", "filler": "tomorrow 's"}, {"type": "time", "filler": "ten am"}, {"type": "person", "filler": "bob"}]


def test_hand_checked_example():
    # exact: TP 1, FP 2, FN 1 -> F1 0.4
    # word:  TP 2, FP 1+0+1 = 2, FN 1 (WER("tomorrow", "tomorrow 's") = 1) -> P .5, R .6667, F1 .5714
    # char:  TP 2, FP 3/11+1, FN 3/11 -> P .6111, R .88, F1 .7213
    # SLU:   TP 4, FP 3.2727, FN 1.2727 -> P .55, R .7586, F1 .6377
    scores = score({"a": GOLD}, {"a": PRED})
    assert scores.span_f1 == pytest.approx(0.4)
    assert scores.word_f1 == pytest.approx(4 / 7)
    assert scores.char_f1 == pytest.approx(0.72131, abs=1e-4)
    assert scores.slu_f1 == pytest.approx(2 * 0.55 * (4 / 5.2727) / (0.55 + 4 / 5.2727), abs=1e-4)
    assert scores.slu_f1 == pytest.approx(0.6377, abs=1e-4)


def test_greedy_alignment_in_prediction_order():
    gold = [{"type": "place_name", "filler": "new york"}, {"type": "place_name", "filler": "york"}]
    pred = [{"type": "place_name", "filler": "york"}, {"type": "place_name", "filler": "london"}]
    scores = score({"k": gold}, {"k": pred})
    # "york" takes gold "york" (d 0); "london" takes "new york": word d 1.0, char d 7/8
    # (new york -> london: 7 edits over 8 characters)
    word_p = 2 / (2 + 1.0)
    assert scores.word_f1 == pytest.approx(word_p)  # P = R here
    assert scores.char_f1 == pytest.approx(2 / (2 + 0.875))


def test_distances_match_the_official_scorers_libraries():
    rng = random.Random(0)
    vocab = ["new", "york", "ten", "am", "tomorrow", "'s", "pm", "o'clock", "New", "a", "", " "]
    for _ in range(300):
        gold = " ".join(rng.choice(vocab[:-2]) for _ in range(rng.randint(1, 4)))
        pred = rng.choice(["", "  "]) + "  ".join(rng.choice(vocab) for _ in range(rng.randint(0, 4)))
        if gold.strip():
            assert word_distance(gold, pred) == pytest.approx(jiwer.wer(truth=gold, hypothesis=pred))
        assert char_distance(gold, pred) == pytest.approx(levenshtein.normalized_distance(gold, pred))


def test_missing_predictions_are_skipped_not_counted():
    scores = score({"a": GOLD, "b": GOLD}, {"a": GOLD})
    assert scores.slu_f1 == 1.0 and scores.matched == 1 and scores.unmatched_gold == 1


def test_gold_from_official_records(data_dir):
    record = json.loads((data_dir / "slurp" / "test.jsonl").read_text().splitlines()[0])
    by_file = gold_examples([record], load_gold=False)
    by_id = gold_examples([record], load_gold=True)
    assert set(by_file) == {r["file"] for r in record["recordings"]}
    assert list(by_id) == [str(record["slurp_id"])]
    for entities in by_id.values():
        assert all(e["filler"] == e["filler"].lower() for e in entities)


def test_cli_on_gold_transcript_predictions(data_dir, tmp_path):
    """Gold targets turned into predictions score 1.0; an empty prediction scores below."""
    test_file = data_dir / "slurp" / "test.jsonl"
    utterances = load_utterances(str(test_file), "test").head(50)
    lines = []
    for row in utterances.itertuples():
        slots = parse_slots(row.target)
        entities = [{"type": e["type"], "filler": e["filler"].lower()} for e in slots_to_entities(slots)]
        lines.append(json.dumps({"slurp_id": str(row.slurp_id), "scenario": row.scenario, "action": row.action,
                                 "entities": entities}))
    pred = tmp_path / "pred.jsonl"
    pred.write_text("\n".join(lines) + "\n")
    run = subprocess.run([sys.executable, "-m", "ws2s.metrics.slu_f1", "--gold", str(test_file), "--pred", str(pred),
                          "--load-gold"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "word F1: 1.0000" in run.stdout and "char F1: 1.0000" in run.stdout and "SLU-F1: 1.0000" in run.stdout
    assert "50 examples scored" in run.stdout


def test_json_failure_rule():
    assert parse_slots('{"date": "tomorrow"}') == {"date": "tomorrow"}
    assert parse_slots("{}") == {}
    assert parse_slots('{"date": "tomorrow"') is None  # truncated: no slots, counted by the caller
    assert parse_slots('["date"]') is None
    assert slots_to_entities({"date": "monday & tuesday"}) == [{"type": "date", "filler": "monday"},
                                                              {"type": "date", "filler": "tuesday"}]


def test_slot_agreement_compares_the_filled_slots_as_multisets():
    student = ['{"date": "today", "time": "six"}', '{"place_name": "paris & rome"}', "not json", "{}"]
    teacher = ['{"time": "six", "date": "today"}', '{"place_name": "rome & paris"}', "{}", '{"date": "today"}']
    # same slots in another order; the same values joined in another order; invalid JSON is
    # no slots, as {} is; one slot more
    assert slot_agreement(student, teacher) == 3 / 4
    assert slot_agreement([], []) != slot_agreement([], [])  # NaN: nothing to compare
    with pytest.raises(ValueError):
        slot_agreement(student, teacher[:2])
