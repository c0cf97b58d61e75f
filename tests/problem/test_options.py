"""Problem options: declared defaults, overrides, parsing of --option, absolute paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adrs.config.run_config import dump, load_resolved
from adrs.errors import UserError
from adrs.problem.options import absolute_paths, merged_options, option_layer, parse_option
from adrs.problem.spec import load_problem
from adrs.run.session import config_layers


def test_bundled_problems_declare_their_options() -> None:
    assert load_problem("eplb").spec.options == {"trace": None}
    assert load_problem("cbl").spec.options == {"trace_dir": None}
    assert load_problem("cbl-multi").spec.options == {"trace_dir": None,
                                                      "accounting": "faithful"}
    assert load_problem("llm-sql").spec.options == {"data_dir": None, "metric": "paper",
                                                    "cache_tokens": 16384, "block_tokens": 16}
    assert load_problem("llm-serve").spec.options == {"trace": None}
    assert load_problem("txn").spec.options == {"workloads": None}
    assert load_problem("toy").spec.options == {}


def test_overrides_go_over_the_defaults() -> None:
    defaults = {"trace_dir": None, "accounting": "faithful"}
    assert merged_options(defaults, {}, "p") == defaults
    assert merged_options(defaults, {"accounting": "reference"}, "p") == \
        {"trace_dir": None, "accounting": "reference"}


def test_an_unknown_option_names_the_known_ones() -> None:
    with pytest.raises(UserError, match=r"no option 'trace'.*accounting, trace_dir"):
        merged_options({"trace_dir": None, "accounting": "faithful"}, {"trace": 1}, "p")
    with pytest.raises(UserError, match=r"its options: none"):
        merged_options({}, {"x": 1}, "toy")


@pytest.mark.parametrize(("text", "expected"), [
    ("a=1", ("a", 1)), ("a=2.5", ("a", 2.5)), ("a=true", ("a", True)), ("a=null", ("a", None)),
    ("a=", ("a", None)), ("a=reference", ("a", "reference")), ("a=x=y", ("a", "x=y")),
    ("a=: odd", ("a", ": odd")),
])
def test_values_are_yaml_scalars(text: str, expected: tuple[str, object]) -> None:
    assert parse_option(text) == expected


@pytest.mark.parametrize("text", ["novalue", "=1", "1a=2", "a=[1, 2]", "a={b: 1}"])
def test_malformed_flags_are_user_errors(text: str) -> None:
    with pytest.raises(UserError, match="--option"):
        parse_option(text)


def test_paths_become_absolute_other_values_stay(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "traces").mkdir()
    assert absolute_paths({"a": "traces", "b": "sub/missing.json", "c": "reference",
                           "d": 3, "e": None, "f": "./gone.json", "g": "gone.json"}) == {
        "a": str(tmp_path / "traces"), "b": str(tmp_path / "sub" / "missing.json"),
        "c": "reference", "d": 3, "e": None, "f": str(tmp_path / "gone.json"),
        "g": "gone.json"}
    assert option_layer(["a=./traces"]) == {"a": str(tmp_path / "traces")}
    assert option_layer(None) == {}
    assert os.path.isabs(absolute_paths({"h": "~/x"})["h"])


def test_the_resolved_configuration_keeps_the_options(tmp_path: Path) -> None:
    problem = load_problem("cbl-multi")
    config = config_layers(problem, {"problem_options": {"trace_dir": "/data/t"}},
                           {"problem_options": {"accounting": "reference"}})
    assert config.problem_options == {"trace_dir": "/data/t", "accounting": "reference"}
    (tmp_path / "config.yaml").write_text(dump(config), encoding="utf-8")
    assert load_resolved(tmp_path / "config.yaml").problem_options == config.problem_options
