import pandas as pd
import pytest

from ws2s.data.classification import CLASSIFICATION_DATASETS
from ws2s.data.binary import SPLITS, Question, content_id, make_splits
from ws2s.errors import Ws2sError

SIZES = {"weak_train": 200, "strong_train": 200, "test": 100, "val": 60}


@pytest.fixture(scope="module")
def cosmos(data_dir):
    return CLASSIFICATION_DATASETS["cosmosqa"].loader({"source": str(data_dir / "cosmosqa" / "valid.csv")}, "data.cosmosqa")


def test_cosmosqa_reads_the_labelled_answer_as_correct(cosmos, data_dir):
    raw = pd.read_csv(data_dir / "cosmosqa" / "valid.csv")
    assert len(cosmos) == len(raw)
    first = raw.iloc[0]
    assert cosmos[0].correct == first[f"answer{first['label']}"].strip()
    assert len(cosmos[0].distractors) == 3 and cosmos[0].correct not in cosmos[0].distractors


def test_splits_balanced_and_sized(cosmos):
    splits = make_splits("cosmosqa", cosmos, SIZES, seed=0)
    for name in SPLITS:
        frame = splits[name]
        assert len(frame) == SIZES[name]
        assert frame["label"].sum() * 2 == len(frame)  # exactly 50/50
        assert (frame.groupby("question_id")["label"].agg(sorted).map(tuple) == (0, 1)).all()


def test_splits_disjoint_by_question(cosmos):
    splits = make_splits("cosmosqa", cosmos, SIZES, seed=0)
    sets = [set(splits[name]["question_id"]) for name in SPLITS]
    assert all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1:])


def test_a_validation_split_leaves_the_others_as_they_were(cosmos):
    """val is drawn last: adding it does not move a pair of weak_train, strong_train or test."""
    without = make_splits("cosmosqa", cosmos, {**SIZES, "val": 0}, seed=0)
    with_val = make_splits("cosmosqa", cosmos, SIZES, seed=0)
    for name in ("weak_train", "strong_train", "test"):
        assert set(without[name]["id"]) == set(with_val[name]["id"])


def test_splits_deterministic_per_seed(cosmos):
    a = make_splits("cosmosqa", cosmos, SIZES, seed=3)
    b = make_splits("cosmosqa", list(reversed(cosmos)), SIZES, seed=3)  # source order does not matter
    c = make_splits("cosmosqa", cosmos, SIZES, seed=4)
    for name in SPLITS:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert set(a["test"]["id"]) != set(c["test"]["id"])


def test_ids_are_stable_content_hashes(cosmos):
    a = make_splits("cosmosqa", cosmos, SIZES, seed=0)
    row = a["weak_train"].iloc[0]
    assert row["id"] == content_id("cosmosqa", row["text"], row["candidate"])
    assert row["question_id"] == content_id("cosmosqa", row["text"])
    # The same pair gets the same id under another seed wherever it appears.
    other = make_splits("cosmosqa", cosmos, {"weak_train": 2000, "strong_train": 2000, "test": 1000}, seed=7)
    everything = pd.concat(other.values())
    for _, r in pd.concat(a.values()).iterrows():
        hits = everything[(everything["text"] == r["text"]) & (everything["candidate"] == r["candidate"])]
        assert (hits["id"] == r["id"]).all()
    assert a["weak_train"]["id"].is_unique


def test_too_few_questions_names_the_sizes(cosmos):
    with pytest.raises(Ws2sError, match="classification.split_sizes: cosmosqa has 2603 distinct questions"):
        make_splits("cosmosqa", cosmos, {"weak_train": 5000, "strong_train": 5000, "test": 1000}, seed=0)


def test_odd_size_rejected():
    q = [Question("t", "a", ("b",))]
    with pytest.raises(Ws2sError, match="classification.split_sizes.test: 3 is odd"):
        make_splits("x", q, {"weak_train": 2, "strong_train": 2, "test": 3}, seed=0)


def test_sciq_fixture_in_hub_schema():
    from conftest import FIXTURES

    questions = CLASSIFICATION_DATASETS["sciq"].loader({"source": str(FIXTURES / "sciq")}, "data.sciq")
    assert len(questions) == 60
    assert questions[0].text.startswith("Q: ") and questions[0].correct == "carbon dioxide"
    with_support = CLASSIFICATION_DATASETS["sciq"].loader({"source": str(FIXTURES / "sciq"), "use_support": True}, "data.sciq")
    assert with_support[0].text.startswith("Support paragraph")
    splits = make_splits("sciq", questions, {"weak_train": 40, "strong_train": 40, "test": 20}, seed=0)
    assert sum(len(s) for s in splits.values()) == 100


def test_slurp_intent_pairs_each_utterance_with_its_intent_and_the_others_as_distractors(data_dir):
    import json

    questions = CLASSIFICATION_DATASETS["slurp_intent"].loader({"source": str(data_dir / "slurp")}, "data.slurp_intent")
    records = [json.loads(line) for name in ("devel", "test") for line in (data_dir / "slurp" / f"{name}.jsonl").open()]
    assert len(questions) == len(records)
    intents = {r["intent"] for r in records}
    by_text = {q.text: q for q in questions}
    first = by_text[records[0]["sentence"]]
    assert first.correct == records[0]["intent"].replace("_", " ")
    assert len(first.distractors) == len(intents) - 1 and first.correct not in first.distractors
    splits = make_splits("slurp_intent", questions, {"weak_train": 40, "strong_train": 40, "test": 40}, seed=0)
    test = splits["test"]
    assert set(test.loc[test["label"] == 1, "candidate"]) <= {i.replace("_", " ") for i in intents}
