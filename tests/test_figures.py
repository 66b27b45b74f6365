import pandas as pd
import pytest

from ws2s.errors import Ws2sError
from ws2s.figures import agreement, heatmap, levenshtein_similarity, pgr_bars


def test_agreement_is_accuracy_against_each_other():
    preds = {"a": pd.Series([1, 0, 1, 1], index=list("wxyz")), "b": pd.Series([1, 1, 1, 0], index=list("wxyz")),
             "c": pd.Series([0, 1, 0, 0], index=list("wxyz"))}
    matrix = agreement(preds)
    assert matrix.loc["a", "b"] == 0.5 and matrix.loc["a", "c"] == 0.0 and matrix.loc["b", "c"] == 0.5
    assert (matrix.to_numpy().diagonal() == 1).all() and (matrix == matrix.T).all().all()
    with pytest.raises(Ws2sError, match="hold different test examples"):
        agreement({"a": pd.Series([1], index=["x"]), "b": pd.Series([1], index=["y"])})


def test_levenshtein_similarity():
    hyps = {"a": pd.Series(["abcd", "{}", "a"]), "b": pd.Series(["abce", "{}", "abc"])}
    matrix = levenshtein_similarity(hyps)
    # "abcd"/"abce": 1 substitution over 4 -> 0.75; "{}"/"{}" -> 1; "a"/"abc": 2 insertions over 3 -> 1/3
    assert matrix.loc["a", "b"] == pytest.approx((0.75 + 1.0 + 1 / 3) / 3)
    assert matrix.loc["a", "a"] == 1.0


def test_plots_write_png(tmp_path):
    heatmap(pd.DataFrame([[1.0, 0.4], [0.4, 1.0]], index=["a", "b"], columns=["a", "b"]), "t", tmp_path / "h.png")
    results = pd.DataFrame({"method": ["m1", "m1", "m2", "m2"], "aux": ["noaux", "aux", "noaux", "aux"],
                            "seed": [0, 0, 0, 0], "accuracy": [0.6] * 4, "pgr": [0.1, 0.2, float("nan"), 0.3]})
    pgr_bars(results, "t", tmp_path / "p.png")
    for name in ("h.png", "p.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
