"""SLURP slot filling as text generation: utterance -> prompt -> JSON of slots.

The prompt is the paper's Appendix I (as in the authors' released code): the list of
slot types, the instruction, the sentence in quotes. The target is the JSON object
`{"slot type": "value"}` built from the annotated entity spans, `{}` when there is none;
several values of one slot type are joined with " & ", as the authors do.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ws2s.frames import content_id
from ws2s.data.leakage import normalised
from ws2s.data.sources import read_jsonl_records
from ws2s.errors import Ws2sError
from ws2s.metrics.slu_f1 import checked_spans, gold_example, score

# The 55 slot types of the paper's prompt, in its order.
SLOT_TYPES = (
    "event_name", "date", "person", "time", "news_topic", "relation", "list_name", "media_type",
    "business_name", "weather_descriptor", "music_genre", "house_place", "game_name", "food_type",
    "timeofday", "place_name", "definition_word", "email_address", "transport_agency", "movie_name",
    "artist_name", "transport_type", "joke_type", "movie_type", "time_zone", "music_descriptor",
    "device_type", "color_type", "meal_type", "player_setting", "podcast_name", "email_folder",
    "song_name", "change_amount", "business_type", "personal_info", "radio_name", "coffee_type",
    "audiobook_author", "audiobook_name", "currency_name", "playlist_name", "podcast_descriptor",
    "general_frequency", "music_album", "app_name", "order_type", "transport_name",
    "transport_descriptor", "cooking_type", "ingredient", "alarm_type", "drink_type", "sport_type",
    "game_type",
)

PAPER_PROMPT = (
    "USER: Consider the following list of slot types provided to you:\n{slot_types}\n"
    "Now consider the following sentence(s) containing one or more of the above slot types. "
    "Can you extract slots belonging to that slot list and their values in json format i.e. "
    '{{"slot type": "value"}}? ONLY print out the json, or only print {{}} if no slot.\n'
    '"{sentence}"\nASSISTANT:'
)

VALUE_JOINER = " & "


# A short prompt for CPU-sized runs: the paper's lists 55 slot types (about 400 tokens).
SHORT_PROMPT = 'Extract the slots of "{sentence}" as JSON: '
PROMPTS = {"paper": PAPER_PROMPT, "short": SHORT_PROMPT}


def render_prompt(template: str, sentence: str, slot_types=SLOT_TYPES) -> str:
    return template.format(slot_types=", ".join(f'"{s}"' for s in slot_types), sentence=sentence)


def entity_slots(record: dict, where: str) -> dict[str, str]:
    """{type: filler} from a SLURP record's token-span entities, in order of appearance."""
    tokens, spans = checked_spans(record, where)
    slots: dict[str, str] = {}
    for kind, span in sorted(spans, key=lambda entity: min(entity[1])):
        filler = " ".join(tokens[i] for i in span)
        slots[kind] = f"{slots[kind]}{VALUE_JOINER}{filler}" if kind in slots else filler
    return slots


def target_json(slots: dict[str, str]) -> str:
    return json.dumps(slots, ensure_ascii=False)


def parse_slots(text: str) -> dict[str, str] | None:
    """The slots of a generated JSON string; None when it is not a JSON object of strings.

    The caller counts None as "no slots" and reports how many there were.
    """
    try:
        value = json.loads(text.strip())
    except (json.JSONDecodeError, ValueError):
        return None
    if not isinstance(value, dict):
        return None
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def slots_to_entities(slots: dict[str, str]) -> list[dict]:
    """SLURP prediction entities ({type, filler}), one per " & "-joined value."""
    return [{"type": t, "filler": f.strip()} for t, v in slots.items() for f in v.split(VALUE_JOINER) if f.strip()]


def slot_agreement(texts: list[str], others: list[str]) -> float:
    """The share of utterances whose two generations fill the same slots with the same values
    (as multisets of (type, value); invalid JSON: no slots)."""
    def entities(text):
        return sorted((e["type"], e["filler"]) for e in slots_to_entities(parse_slots(text) or {}))

    if len(texts) != len(others):
        raise ValueError(f"{len(texts)} generations against {len(others)}")
    return float(np.mean([entities(a) == entities(b) for a, b in zip(texts, others)])) if texts else float("nan")


def slu_scores(test: pd.DataFrame, texts: list[str]) -> dict:
    """SLU-F1 of generations on test against the official gold; invalid JSON counts as no slots."""
    slots = [parse_slots(t) for t in texts]
    gold = {row.id: json.loads(row.gold_entities) for row in test.itertuples()}
    predictions = {i: slots_to_entities(s or {}) for i, s in zip(test["id"], slots)}
    result = score(gold, predictions)
    return {"slu_f1": result.slu_f1, "word_f1": result.word_f1, "char_f1": result.char_f1,
            "span_f1": result.span_f1, "invalid_json": sum(s is None for s in slots), "n_test": len(test)}


def load_utterances(path: str, where: str) -> pd.DataFrame:
    """One row per SLURP utterance: id, slurp_id, sentence, target (JSON), scenario, action.
    Every record is checked: an integer slurp_id given once (a record repeated whole is kept
    once), a sentence, an intent, tokens and entities whose spans are integer indices within
    them; a bad one is one error naming the file, the line and the field."""
    rows = []
    seen: dict[int, tuple[int, dict]] = {}
    for number, record in read_jsonl_records(path, where):
        at = f"{where}: {path} line {number}"
        slurp_id = record.get("slurp_id")
        if isinstance(slurp_id, bool) or not str(slurp_id).strip().isdigit():
            raise Ws2sError(f"{at}: 'slurp_id' must be an integer; got {json.dumps(slurp_id)}")
        for field in ("sentence", "intent"):
            if not isinstance(record.get(field), str) or not record[field].strip():
                raise Ws2sError(f"{at}: '{field}' must be a non-empty string; got "
                                f"{json.dumps(record[field]) if field in record else 'no such field'}")
        record = {**record, "slurp_id": int(slurp_id)}
        if record["slurp_id"] in seen:
            first_line, first = seen[record["slurp_id"]]
            if first == record:
                continue
            differ = [f for f in ("sentence", "intent", "entities", "tokens") if first.get(f) != record.get(f)] or ["fields"]
            raise Ws2sError(f"{where}: {path} lines {first_line} and {number} both have slurp_id {record['slurp_id']}, "
                            f"with different {' and '.join(differ)}"
                            + (f" ({json.dumps(first['sentence'][:60])} and {json.dumps(record['sentence'][:60])})"
                               if "sentence" in differ else "")
                            + "; a slurp_id names one utterance")
        seen[record["slurp_id"]] = (number, record)
        rows.append({
            "id": content_id("slurp", str(record["slurp_id"]), record["sentence"]),
            "slurp_id": record["slurp_id"],
            "sentence": record["sentence"],
            "target": target_json(entity_slots(record, at)),
            # the official scorer's gold: fillers from the token surfaces, lowercased
            "gold_entities": json.dumps(gold_example(record, load_gold=True, at=at)[1]),
            "scenario": record.get("scenario", ""),
            "action": record.get("action", ""),
        })
    return pd.DataFrame(rows)


def make_generation_splits(train_pool: pd.DataFrame, test_pool: pd.DataFrame, sizes: dict, seed: int) -> dict[str, pd.DataFrame]:
    """weak_train, strong_train and val drawn disjointly (by id and by sentence) from the training
    utterances, test from the official test set (all of it when sizes["test"] is 0), seeded. val
    is drawn last, so adding it leaves the other splits as they were."""
    rng = np.random.default_rng(seed)
    pool = train_pool.drop_duplicates("id").sort_values("id").reset_index(drop=True)
    need = sizes["weak_train"] + sizes["strong_train"]
    val = sizes.get("val", 0)
    # An utterance whose sentence (lower-cased, whitespace collapsed) an earlier-drawn one
    # already has is passed over, so no sentence lands in two splits: SLURP repeats a few
    # sentences under different slurp_ids. Where nothing repeats, the draw is as it always was.
    keys = pool["sentence"].map(normalised).to_numpy()
    distinct = len(set(keys))
    if need + val > distinct:
        raise Ws2sError(f"generation.split_sizes: the training utterances number {len(pool)} ({distinct} distinct "
                        f"sentences), weak_train + strong_train + val need {need + val}")
    order, seen = [], set()
    for i in rng.permutation(len(pool)):
        if len(order) < need + val and keys[i] not in seen:
            seen.add(keys[i])
            order.append(i)
    test = test_pool.drop_duplicates("id").sort_values("id").reset_index(drop=True)
    if sizes["test"]:
        if sizes["test"] > len(test):
            raise Ws2sError(f"generation.split_sizes.test: {sizes['test']} > the {len(test)} test utterances")
        test = test.iloc[np.sort(rng.permutation(len(test))[:sizes["test"]])].reset_index(drop=True)
    return {
        "weak_train": pool.iloc[order[:sizes["weak_train"]]].reset_index(drop=True),
        "strong_train": pool.iloc[order[sizes["weak_train"]:need]].reset_index(drop=True),
        "test": test,
        "val": pool.iloc[order[need:need + val]].reset_index(drop=True),
    }
