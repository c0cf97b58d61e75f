"""parse: one syntax tree per program text, shared by its readers; None when it does not
parse, whatever the reason."""

from __future__ import annotations

import warnings

import pytest

from adrs.code.features import complexity
from adrs.code.program import normalise
from adrs.code.syntax import parse


def test_a_text_is_parsed_once() -> None:
    code = "def f(x):\n    return x + 1\n"
    assert parse(code) is parse(code)
    assert parse(code + "\n") is not parse(code)


@pytest.mark.parametrize("code", ["def f(:\n", "x = 1\0\n", "(" * 300 + ")" * 300,
                                  "-" * 100_000 + "1"])
def test_what_does_not_parse_is_none(code: str) -> None:
    assert parse(code) is None


def test_the_texts_own_warnings_are_silenced() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse("s = '\\d'\n") is not None  # an invalid escape: a SyntaxWarning


def test_readers_of_one_tree_agree_with_a_fresh_parse() -> None:
    code = "def f(x):\n    if x and x > 1:\n        return [i for i in x if i]\n    return 0\n"
    assert complexity(code) == 4.0
    assert normalise(code) == normalise("def f(x):\n  if x and x>1:\n    return [i for i in "
                                        "x if i]\n  return 0\n")
    assert complexity(code) == 4.0  # from the shared tree: unchanged by the readers
