import pandas as pd
import pytest

from ws2s import schemas
from ws2s.errors import Ws2sError
from ws2s.io import read_parquet, write_parquet


def _labels():
    return pd.DataFrame({"id": ["a", "b"], "split": ["test", "test"], "prob_0": [0.2, 0.9],
                         "prob_1": [0.8, 0.1], "pred": [1, 0]})


def test_roundtrip_with_schema(tmp_path):
    path = tmp_path / "x" / "labels.parquet"
    write_parquet(_labels(), path, schemas.CLASS_PROBS)
    frame = pd.read_parquet(path)
    assert list(frame.columns) == [f.name for f in schemas.CLASS_PROBS]
    assert str(frame["prob_1"].dtype) == "float32" and str(frame["pred"].dtype) == "int8"
    assert [p.name for p in path.parent.iterdir()] == ["labels.parquet"]  # no temporary left


def test_truncated_file_is_one_clear_error(tmp_path):
    path = tmp_path / "labels.parquet"
    write_parquet(_labels(), path, schemas.CLASS_PROBS)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(Ws2sError, match="not a readable Parquet file"):
        read_parquet(path)


def test_missing_column_named(tmp_path):
    path = tmp_path / "labels.parquet"
    write_parquet(_labels().drop(columns="pred"), path)
    with pytest.raises(Ws2sError, match="missing column"):
        read_parquet(path, ["id", "pred"])


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "labels.parquet"
    bad = _labels().assign(prob_1=["x", "y"])  # cannot cast to float32
    with pytest.raises(Exception):
        write_parquet(bad, path, schemas.CLASS_PROBS)
    assert list(tmp_path.iterdir()) == []
