"""One source of truth: the names that registries hold (data sets, methods, label models,
tables, ablations) are written nowhere else. The config schema marks where they go
(`x-registry`) and ws2s.configfile fills them in; the wildcard constraints, CLI choices, table
rows and titles are derived from the registries."""

import re

import yaml
from conftest import ROOT

from ws2s import configfile, design
from ws2s.data.classification import CLASSIFICATION_DATASETS
from ws2s.label_models import LABEL_MODELS
from ws2s.tables import METHOD_LABELS

RAW_SCHEMA = (ROOT / "workflow/schemas/config.schema.yaml").read_text()


def registry_names() -> set[str]:
    return {*CLASSIFICATION_DATASETS, *design.METHODS, *LABEL_MODELS, *design.TABLES, *design.VARIANTS}


def test_the_schema_file_keeps_no_list_of_registry_names():
    # every enum list of the schema file, and every property name: none is a registry's name
    # (slurp is the generation track's data, not a registry entry)
    enums = re.findall(r"enum: \[([^\]]*)\]", RAW_SCHEMA)
    listed = {name.strip() for enum in enums for name in enum.split(",")}
    assert not listed & registry_names(), listed & registry_names()
    keys = set(re.findall(r"^\s*([A-Za-z0-9_]+):", RAW_SCHEMA, flags=re.M))
    assert not keys & (registry_names() - {"weighting", "soft_labels"}), keys & registry_names()


def test_the_filled_schema_names_what_the_registries_hold():
    schema = configfile.schema_for({"data": {"mytask": {"source": "./my.csv", "format": "pairs"}}})
    props = schema["properties"]
    assert set(CLASSIFICATION_DATASETS) <= set(props["data"]["properties"])
    assert list(props["tables"]["properties"]) == [*design.TABLES, "table_mytask"]
    cls, gen = props["classification"]["properties"], props["generation"]["properties"]
    assert cls["methods"]["items"]["enum"] == design.methods_of("classification")
    assert gen["methods"]["items"]["enum"] == gen["aux_methods"]["items"]["enum"] == design.methods_of("generation")
    assert gen["ablations"]["items"]["enum"] == list(design.VARIANTS)
    assert "x-registry" not in str(schema)


def test_methods_and_tables_follow_the_registries():
    assert METHOD_LABELS == {name: method.label for name, method in design.METHODS.items()}
    assert [m for m in design.METHODS if design.METHODS[m].targets.get("classification") == "label_model"] \
        == list(LABEL_MODELS)
    w2s = {table.dataset: name for name, table in design.TABLES.items() if table.dataset}
    assert w2s == {name: entry.table for name, entry in CLASSIFICATION_DATASETS.items()}


def test_every_methods_loss_is_in_the_loss_registry():
    from ws2s.objectives import LOSSES

    assert {method.loss for method in design.METHODS.values()} <= set(LOSSES)
