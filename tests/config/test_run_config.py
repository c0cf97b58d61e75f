from __future__ import annotations

from pathlib import Path

import pytest

from adrs.config.run_config import RunConfig, dump, load_resolved, read_yaml, resolve
from adrs.errors import UserError


def test_layers_merge_in_priority_order() -> None:
    config = resolve([("problem", {"stop": {"iterations": 60}, "seed": 1}),
                      ("file", {"stop": {"patience": 5}}),
                      ("cli", {"stop": {"iterations": 7}})])
    assert config.stop.iterations == 7 and config.stop.patience == 5 and config.seed == 1


def test_error_names_the_layer_and_key() -> None:
    with pytest.raises(UserError, match=r"config file: 'stop': unknown key 'iteratons'"):
        resolve([("config file", {"stop": {"iteratons": 3}})])


def test_invalid_values_are_user_errors() -> None:
    with pytest.raises(UserError, match="'workers' must be at least 1"):
        resolve([("cli", {"evaluation": {"workers": 0}})])


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    config = resolve([("cli", {"seed": 4, "archive": {"islands": 2}})])
    path = tmp_path / "config.yaml"
    path.write_text(dump(config))
    assert load_resolved(path) == config
    assert config.pipeline_depth == config.llm.proposals_in_flight + config.evaluation.workers


def test_read_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_yaml(tmp_path / "nope.yaml", "config file")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(UserError, match="not valid YAML at line"):
        read_yaml(bad, "config file")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(UserError, match="must hold a mapping"):
        read_yaml(listy, "config file")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_yaml(empty, "config file") == {}
    assert RunConfig() == resolve([("empty", {})])
