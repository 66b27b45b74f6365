"""One source of truth: every hand-written list of data sets, methods and tables elsewhere
(the config schema's enums, labels, prompts, titles) equals the registries it mirrors
(ws2s.data.classification, design.METHODS, design.TABLES). The wildcard constraint and the
CLI's choices are derived from the registries directly."""

import yaml
from conftest import ROOT

from ws2s import design
from ws2s.data.classification import CLASSIFICATION_DATASETS, YES_NO_PROMPTS
from ws2s.label_models import LABEL_MODELS
from ws2s.tables import METHOD_LABELS

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def methods_of(track: str) -> list[str]:
    return [name for name, method in design.METHODS.items() if track in method.targets and name != "ceiling"]


def test_classification_datasets_are_one_list():
    datasets = list(CLASSIFICATION_DATASETS)
    assert list(YES_NO_PROMPTS) == datasets and list(design.DATASET_TITLES) == datasets
    assert sorted(design.W2S_TABLES.values()) == sorted(datasets)
    cls = SCHEMA["properties"]["classification"]["properties"]
    assert cls["datasets"]["items"]["enum"] == datasets
    for key in ("weak_models", "ensembles"):
        assert cls[key]["propertyNames"]["enum"] == datasets, key


def test_methods_are_one_list():
    assert sorted(METHOD_LABELS) == sorted(design.METHODS)
    assert [m for m in design.METHODS if design.METHODS[m].targets.get("classification") == "label_model"] \
        == list(LABEL_MODELS)
    cls = SCHEMA["properties"]["classification"]["properties"]
    gen = SCHEMA["properties"]["generation"]["properties"]
    # the schema's order is the paper's reading order; the sets are what must agree
    assert sorted(cls["methods"]["items"]["enum"]) == sorted(methods_of("classification"))
    assert sorted(gen["methods"]["items"]["enum"]) == sorted(methods_of("generation"))
    assert sorted(gen["aux_methods"]["items"]["enum"]) == sorted(methods_of("generation"))


def test_tables_are_one_list():
    assert sorted(SCHEMA["properties"]["tables"]["properties"]) == sorted(design.TABLES)
    assert SCHEMA["properties"]["generation"]["properties"]["ablations"]["items"]["enum"] == list(design.VARIANTS)
