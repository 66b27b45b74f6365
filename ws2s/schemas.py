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

# A strong run's predictions on test: class probabilities and, after the evidential loss
# (Bayesian Multi-Weak), the Dirichlet's strength S = Σ_k α_k and vacuity K / S (the mass it
# leaves to "I don't know"); null for runs trained with cross-entropy, which have no Dirichlet.
STRONG_PREDICTIONS = pa.schema([*CLASS_PROBS, ("strength", pa.float64()), ("vacuity", pa.float64())])

# A classification strong run's curve: at each evaluation point (0: the start model, before
# any step), the run's predictions on val and test. Empty without a validation split.
STRONG_CURVE = pa.schema([
    ("point", pa.int32()),
    ("epochs", pa.float64()),     # training progress at the point
    ("val_loss", pa.float64()),   # the validation loss against the run's own targets
    ("split", pa.string()),       # val or test
    ("id", pa.string()),
    ("prob_1", pa.float32()),     # P(correct)
])

# What names a point of a strong run in the curves tables of both tracks: the run, the point,
# its training progress in epochs and its validation loss against the run's own targets.
RUN_POINT = [
    ("method", pa.string()),
    ("source", pa.string()),
    ("aux", pa.string()),                         # aux or noaux
    ("seed", pa.int64()),
    ("point", pa.int32()),
    ("epochs", pa.float64()),
    ("val_loss", pa.float64()),
]

# Every strong run of the generation track, point by point, from its metrics.json: the
# few-gold SLU-F1, agreement with each teacher there, and the points the protocols pick.
GENERATION_CURVES = pa.schema([
    *RUN_POINT,                                   # val_loss: null at the start model
    ("fewgold_slu_f1", pa.float64()),             # gold, the few-gold utterances of val
    ("members", pa.list_(pa.string())),           # the run's teachers (the ceiling: none)
    ("teacher_agreement", pa.list_(pa.float64())),  # same slots as each teacher, few-gold utterances
    ("paper", pa.bool_()),                        # the point each protocol picks
    ("nogold", pa.bool_()),
    ("fewgold", pa.bool_()),
])

# A generation strong run's curve: at each evaluation point (0: the start model), its decoding
# of the few-gold protocol's val utterances. Empty without a validation split.
STRONG_GENERATION_CURVE = pa.schema([
    ("point", pa.int32()),
    ("epochs", pa.float64()),     # training progress at the point
    ("val_loss", pa.float64()),   # the validation loss against the run's own targets (all of val)
    ("id", pa.string()),
    ("text", pa.string()),        # what the run decoded
])

# Every strong run of a classification data set, point by point, as the curves stage scores
# it: gold validation accuracy (all of val, and the few-gold subset), agreement with each
# teacher on val, test accuracy, and which points the four protocols pick.
CURVES = pa.schema([
    *RUN_POINT,
    ("val_accuracy", pa.float64()),               # gold, all of val
    ("fewgold_accuracy", pa.float64()),           # gold, the few-gold subset of val
    ("members", pa.list_(pa.string())),           # the run's teachers (the ceiling: none)
    ("teacher_agreement", pa.list_(pa.float64())),  # with each member's val predictions
    ("teacher_error", pa.list_(pa.float64())),    # each member's estimated val error, no gold read
    ("test_accuracy", pa.float64()),
    ("paper", pa.bool_()),                        # the point each protocol picks
    ("nogold", pa.bool_()),
    ("fewgold", pa.bool_()),
    ("goldfree", pa.bool_()),
])

# Label models' soft labels for one ensemble and seed: the members' hard votes (in ensemble
# order) and, one float32 column per configured label model named as its method, P(class 1).
LABEL_MODEL_OUTPUTS = pa.schema([
    ("id", pa.string()),
    ("split", pa.string()),                  # strong_train or val
    ("votes", pa.list_(pa.int8())),          # each member's predicted class
])

# The strong model's frozen features, computed once per data set: what the linear probe's head
# sees, or (the finetuned readout arm) what its trained top blocks read.
FEATURES = pa.schema([
    ("id", pa.string()),
    ("split", pa.string()),                  # strong_train, val or test
    # the probe: the pooled (or last prompted) hidden state; the finetuned readout arm: every
    # position's state after the frozen bottom blocks, [length x hidden] flattened
    ("features", pa.list_(pa.float32())),
])

# Generation splits: SLURP utterances with their target JSON (weak_train, test).
UTTERANCES = pa.schema([
    ("id", pa.string()),             # content hash of (slurp_id, sentence)
    ("slurp_id", pa.int64()),
    ("sentence", pa.string()),
    ("target", pa.string()),         # {"slot type": "value"} JSON, {} when none
    ("gold_entities", pa.string()),  # the official scorer's gold entities, JSON
    ("scenario", pa.string()),
    ("action", pa.string()),
])
# strong_train as the strong stage reads it: sentences only.
UNLABELLED_UTTERANCES = pa.schema([f for f in UTTERANCES if f.name in ("id", "slurp_id", "sentence")])
GOLD_TARGETS = pa.schema([("id", pa.string()), ("target", pa.string()), ("gold_entities", pa.string())])

# One weak model's generations (one file per weak model and seed).
HYPOTHESES = pa.schema([
    ("id", pa.string()),
    ("split", pa.string()),                         # strong_train, val or test
    ("text", pa.string()),                          # the chosen (best) beam hypothesis
    ("valid_json", pa.bool_()),                     # False: counts as no slots
    ("token_ids", pa.list_(pa.int32())),
    ("tokens", pa.list_(pa.string())),              # each token's piece of `text`
    ("token_logprobs", pa.list_(pa.float32())),     # log p(token | prompt, previous tokens)
    ("words", pa.list_(pa.string())),               # Stage 1 words (they concatenate to `text`)
    ("word_logprobs", pa.list_(pa.float32())),      # Σ of each word's token log-probs
    ("nbest", pa.list_(pa.string())),               # the M beams, best first
    ("nbest_scores", pa.list_(pa.float32())),       # their beam-search sequence scores
])

# cDPO preference pairs (one file per ensemble and seed): one row per strong_train prompt
# that gave a pair, with everything that formed it.
PREFERENCE_PAIRS = pa.schema([
    ("id", pa.string()),                                # the strong_train utterance
    ("sentence", pa.string()),
    ("candidates", pa.list_(pa.string())),              # the strong model's M candidates
    ("candidate_scores", pa.list_(pa.float64())),       # the ensemble's score of each (Eqn 8 as a log, or mean log-prob)
    ("chosen", pa.string()),                            # the highest-scored candidate
    ("rejected", pa.string()),                          # the lowest-scored candidate
    ("chosen_score", pa.float64()),
    ("rejected_score", pa.float64()),
    ("judges", pa.list_(pa.string())),                  # the weak models, in the order of the score lists
    ("judge_weights", pa.list_(pa.float64())),          # their λ_i
    ("chosen_weak_scores", pa.list_(pa.float64())),     # each weak model's log p(chosen) or mean token log-prob
    ("rejected_weak_scores", pa.list_(pa.float64())),
    ("ref_chosen", pa.float64()),                       # log p(chosen + EOS | prompt) under the frozen start model
    ("ref_rejected", pa.float64()),
])

# One weak model's strong_train and val hypotheses in the strong tokenizer (Eqns 6-7), one
# file per (weak model, seed): what every strong run on that weak model trains on (and scores
# its epochs against, on val, under the no-gold protocol).
MAPPED_HYPOTHESES = pa.schema([
    ("id", pa.string()),
    ("split", pa.string()),                             # strong_train or val
    ("text", pa.string()),                              # the weak hypothesis
    ("strong_token_ids", pa.list_(pa.int32())),         # its strong tokens (no EOS)
    ("strong_tokens", pa.list_(pa.string())),           # each one's piece of `text`
    ("strong_confidence", pa.list_(pa.float32())),      # C_s: the strong model's max probability there
    ("target_logprobs", pa.list_(pa.float32())),        # log P(s_i), Eqn 7; they sum to the hypothesis's
    ("weak_logprob", pa.float32()),                     # Σ of the weak token log-probs
    ("weak_mean_logprob", pa.float32()),                # their mean: the weak confidence of dynamic weights
])

# Joint Decoding (one file per ensemble, seed and M): the pooled beams of the members and
# the candidate the ensemble prefers.
JOINT_CANDIDATES = pa.schema([
    ("id", pa.string()),
    ("split", pa.string()),                             # strong_train or val
    ("candidates", pa.list_(pa.string())),              # distinct texts of the members' M-best lists
    ("member_logprobs", pa.list_(pa.list_(pa.float32()))),  # [member][candidate] log p(text + EOS | prompt)
    ("scores", pa.list_(pa.float32())),                 # log Σ_i λ_i p_i(candidate)
    ("chosen", pa.string()),                            # the best-scored candidate: the training target
])

# A strong generation run's test outputs.
GENERATIONS = pa.schema([
    ("id", pa.string()),
    ("text", pa.string()),
    ("valid_json", pa.bool_()),                         # False: counted as no slots
])
