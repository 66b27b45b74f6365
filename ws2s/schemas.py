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

# Class probabilities: a weak model's labels on strong_train and test (one file per
# dataset, weak model and seed), and a strong run's predictions on test.
CLASS_PROBS = pa.schema([
    ("id", pa.string()),
    ("split", pa.string()),       # strong_train or test
    ("prob_0", pa.float32()),     # P(incorrect)
    ("prob_1", pa.float32()),     # P(correct)
    ("pred", pa.int8()),          # argmax
])

# The strong model's frozen features (linear-probe setting): what its head would see.
FEATURES = pa.schema([
    ("id", pa.string()),
    ("split", pa.string()),                  # strong_train or test
    ("features", pa.list_(pa.float32())),   # the pooled hidden state
])
