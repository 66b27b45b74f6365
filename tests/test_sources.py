import pytest

from ws2s.data.sources import read_jsonl_records, read_table
from ws2s.errors import Ws2sError


def test_missing_local_path_named(tmp_path):
    with pytest.raises(Ws2sError, match=r"data.cosmosqa.source: .*nope.csv does not exist"):
        read_table({"source": str(tmp_path / "nope.csv")}, "data.cosmosqa", ["id"])


def test_offline_hub_names_id_and_remedy():
    with pytest.raises(Ws2sError) as info:
        read_table({"source": "allenai/sciq", "split": "train"}, "data.sciq", ["question"])
    assert "'allenai/sciq'" in str(info.value) and "data.sciq.source" in str(info.value)


def test_missing_columns_named(data_dir):
    with pytest.raises(Ws2sError, match="lacks column"):
        read_table({"source": str(data_dir / "cosmosqa" / "valid.csv")}, "data.sciq", ["correct_answer"])


def test_slurp_jsonl(data_dir, tmp_path):
    records = read_jsonl_records(data_dir / "slurp" / "devel.jsonl", "data.slurp.devel")
    assert len(records) == 2033 and {"sentence", "entities", "slurp_id"} <= set(records[0][1])
    assert records[0][0] == 1 and records[-1][0] == 2033
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(Ws2sError, match="line 2 is not valid JSON"):
        read_jsonl_records(bad, "data.slurp.train")
