"""Tests for adrs.code.program: evolve-block parsing, splicing and normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adrs.code.program import (
    END_MARKER,
    START_MARKER,
    Segments,
    code_hash,
    evolve_blocks,
    is_marker_line,
    normalise,
    splice,
    split,
    split_lines,
)
from adrs.errors import ProgramError

SOURCE = (
    "import math\n"
    "\n"
    "# EVOLVE-BLOCK-START\n"
    "def f(x):\n"
    "    return x + 1\n"
    "# EVOLVE-BLOCK-END\n"
    "\n"
    "class Runner:\n"
    "    # EVOLVE-BLOCK-START  (tuned by evolution)\n"
    "    def g(self):\n"
    "        return 2\n"
    "    # EVOLVE-BLOCK-END\n"
    "\n"
    "print(f(1))"
)


def test_split_cuts_fixed_and_evolve_parts_with_markers_in_fixed() -> None:
    segments = split(SOURCE)
    assert segments.evolve == ("def f(x):\n    return x + 1\n",
                               "    def g(self):\n        return 2\n")
    assert segments.fixed[0] == "import math\n\n# EVOLVE-BLOCK-START\n"
    assert segments.fixed[1] == ("# EVOLVE-BLOCK-END\n\nclass Runner:\n"
                                 "    # EVOLVE-BLOCK-START  (tuned by evolution)\n")
    assert segments.fixed[2] == "    # EVOLVE-BLOCK-END\n\nprint(f(1))"
    assert segments.join() == SOURCE


def test_split_accepts_an_empty_block_and_a_marker_on_the_last_line() -> None:
    source = f"{START_MARKER}\n{END_MARKER}"
    segments = split(source)
    assert segments.evolve == ("",)
    assert segments.join() == source


def test_split_keeps_crlf_line_endings_byte_for_byte() -> None:
    source = f"a = 1\r\n{START_MARKER}\r\nb = 2\r\n{END_MARKER}\r\n"
    segments = split(source)
    assert segments.evolve == ("b = 2\r\n",)
    assert segments.join() == source


@pytest.mark.parametrize(("source", "words"), [
    ("x = 1\n", ["no '# EVOLVE-BLOCK-START'", "wrap the code"]),
    (f"x = 1\n{END_MARKER}\n", ["line 2", "without", "add the START marker"]),
    (f"{START_MARKER}\nx = 1\n", ["line 1", "never closed", "add a"]),
    (f"{START_MARKER}\n  {START_MARKER}\n{END_MARKER}\n", ["line 2", "cannot nest"]),
])
def test_split_rejects_bad_markers_with_a_one_line_fix(source: str, words: list[str]) -> None:
    with pytest.raises(ProgramError) as caught:
        split(source)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_marker_text_later_in_a_line_is_not_a_marker() -> None:
    assert not is_marker_line(f"x = 1  {START_MARKER}\n")
    assert is_marker_line(f"\t  {END_MARKER} trailing words\n")
    with pytest.raises(ProgramError):
        split(f"x = '{START_MARKER}'\n")


def test_segments_need_one_more_fixed_part_than_evolve_parts() -> None:
    with pytest.raises(ValueError, match="one more fixed part"):
        Segments(fixed=("a",), evolve=("b",))


def test_split_lines_splits_on_newline_only() -> None:
    assert split_lines("a\rb\x0cc\u2028d\ne") == ["a\rb\x0cc\u2028d\n", "e"]
    assert split_lines("") == []
    assert split_lines("a\n") == ["a\n"]


def test_evolve_blocks_returns_the_block_contents() -> None:
    assert evolve_blocks(SOURCE) == split(SOURCE).evolve


def test_splice_replaces_each_block_and_keeps_fixed_text() -> None:
    result = splice(SOURCE, ["def f(x):\n    return x * 3\n", ""])
    segments = split(result)
    assert segments.fixed == split(SOURCE).fixed
    assert segments.evolve == ("def f(x):\n    return x * 3\n", "")


def test_splice_adds_the_missing_final_newline_so_the_marker_keeps_its_line() -> None:
    result = splice(SOURCE, ["y = 1", "    z = 2\n"])
    assert f"y = 1\n{END_MARKER}\n" in result
    assert split(result).evolve == ("y = 1\n", "    z = 2\n")


def test_splice_rejects_a_wrong_block_count() -> None:
    with pytest.raises(ValueError, match="needs 2 blocks, got 1"):
        splice(SOURCE, ["x = 1\n"])


def test_splice_rejects_a_marker_line_inside_a_new_block() -> None:
    with pytest.raises(ValueError, match="marker"):
        splice(SOURCE, [f"x = 1\n{END_MARKER}\ny = 2\n", ""])


def test_normalise_ignores_comments_and_layout_of_valid_code() -> None:
    a = "def f(x):\n    # add one\n    return x+1\n"
    b = "def f( x ):\n\n    return (x + 1)  # done\n"
    assert normalise(a) == normalise(b) == "def f(x):\n    return x + 1"
    assert normalise("def f(x):\n    return x + 2\n") != normalise(a)


def test_normalise_falls_back_to_line_cleaning_for_invalid_code() -> None:
    code = "def f(:\n    # comment\n\n    return 1   \n  \n"
    assert normalise(code) == "def f(:\n    return 1"


def test_normalise_survives_null_bytes_and_deep_nesting() -> None:
    assert normalise("x = 1\x00\n") == "x = 1\x00"
    deep = "x = " + "(" * 5000 + "1" + ")" * 5000
    assert normalise(deep) == deep


def test_code_hash_is_sha256_hex_of_the_normal_form() -> None:
    a = code_hash("x=1  # one\n")
    assert a == code_hash("x = 1\n")
    assert a != code_hash("x = 2\n")
    assert len(a) == 64
    assert int(a, 16) >= 0
    assert len(code_hash("x = '\ud800'\n")) == 64  # a lone surrogate still hashes


# ---------------------------------------------------------------- properties

_LINE = st.one_of(
    st.sampled_from(["x = 1", "    return x", "def f(a):", "", "   ", "# note", "=======",
                     "# EVOLVE-BLOCK", f"s = '{END_MARKER}'", "\tpass\r"]),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\n"),
            max_size=20),
).filter(lambda line: not is_marker_line(line))
_PART = st.lists(_LINE, max_size=4).map(lambda lines: "".join(f"{line}\n" for line in lines))
_INDENT = st.sampled_from(["", "    ", "\t", " "])
_TAIL = st.sampled_from(["", "  ", " (evolved)"])


@st.composite
def _programs(draw: st.DrawFn) -> tuple[str, tuple[str, ...]]:
    """A program with 1-3 evolve blocks, and the contents of those blocks."""
    blocks = tuple(draw(st.lists(_PART, min_size=1, max_size=3)))
    parts = [draw(_PART)]
    for block in blocks:
        start = draw(_INDENT) + START_MARKER + draw(_TAIL)
        end = draw(_INDENT) + END_MARKER + draw(_TAIL)
        parts += [start + "\n", block, end + "\n", draw(_PART)]
    source = "".join(parts)
    if draw(st.booleans()):
        source = source.removesuffix("\n")
    return source, blocks


@settings(max_examples=200, deadline=None)
@given(_programs())
def test_split_of_generated_programs_finds_the_blocks_and_joins_back(
        program: tuple[str, tuple[str, ...]]) -> None:
    source, blocks = program
    segments = split(source)
    assert segments.evolve == blocks
    assert segments.join() == source


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_LINE, st.just(START_MARKER), st.just("  " + END_MARKER)),
                max_size=12).map("\n".join))
def test_split_of_any_text_either_fails_cleanly_or_joins_back(text: str) -> None:
    try:
        segments = split(text)
    except ProgramError:
        return
    assert segments.join() == text
    assert all(not block or block.endswith("\n") for block in segments.evolve)


@settings(max_examples=200, deadline=None)
@given(_programs(), st.data())
def test_splice_keeps_fixed_text_and_installs_blocks(
        program: tuple[str, tuple[str, ...]], data: st.DataObject) -> None:
    source, blocks = program
    new = [data.draw(_PART) for _ in blocks]
    result = splice(source, new)
    assert split(result).fixed == split(source).fixed
    assert split(result).evolve == tuple(new)
