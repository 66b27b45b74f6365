"""Arrow schemas of the pipeline's Parquet files (documented in the README)."""

import pyarrow as pa

# A classification split with gold labels: weak_train and test.
LABELLED_PAIRS = pa.schema([
    ("id", pa.string()),           # content hash of (dataset, text, candidate)
    ("question_id", pa.string()),  # content hash of (dataset, text); splits are disjoint by it
    ("text", pa.string()),
    ("candidate", pa.string()),
    ("label", pa.int8()),          # 1: candidate is the correct answer
])

# strong_train as the strong stage reads it: the same pairs without gold.
UNLABELLED_PAIRS = pa.schema([f for f in LABELLED_PAIRS if f.name != "label"])

# strong_train's gold, read only by the strong ceiling.
GOLD = pa.schema([("id", pa.string()), ("label", pa.int8())])

# One weak model's predictions (one file per dataset, weak model and seed).
WEAK_LABELS = pa.schema([
    ("id", pa.string()),
    ("split", pa.string()),       # strong_train or test
    ("prob_0", pa.float32()),     # P(incorrect)
    ("prob_1", pa.float32()),     # P(correct)
    ("pred", pa.int8()),          # argmax
])
