"""Tests for adrs.code.edits: SEARCH/REPLACE and full-rewrite edits stay inside evolve blocks."""

from __future__ import annotations

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from adrs.code.edits import (
    DISCARDED_NOTE,
    Applied,
    DiffBlock,
    apply_diff,
    apply_edit,
    apply_rewrite,
    extract_code,
    has_diff,
    parse_diff,
)
from adrs.code.program import END_MARKER, START_MARKER, is_marker_line, split, split_lines
from adrs.errors import EditError

SOURCE = """\
import math

# EVOLVE-BLOCK-START
def priority(item, bins):
    score = item / bins
    if score > 1:
        return 0
    return score
# EVOLVE-BLOCK-END


def run(items):
    return [priority(i, 2) for i in items]
"""

TWO_BLOCKS = """\
# EVOLVE-BLOCK-START
def a():
    return 1
# EVOLVE-BLOCK-END
x = 0
# EVOLVE-BLOCK-START
def b():
    return 1
# EVOLVE-BLOCK-END
"""


def diff(search: str, replace: str, *, marks: int = 7) -> str:
    return (f"{'<' * marks} SEARCH\n{search}{'=' * marks}\n{replace}"
            f"{'>' * marks} REPLACE\n")


def error_of(source: str, response: str) -> str:
    with pytest.raises(EditError) as caught:
        apply_edit(source, response)
    return str(caught.value)


# ---------------------------------------------------------------- parse_diff


def test_parse_diff_reads_several_fenced_blocks_with_loose_markers() -> None:
    text = ("Here is my change.\n```diff\n<<<<<<< SEARCH   \na = 1\n=======  \na = 2\n"
            ">>>>>>> REPLACE \n```\nAnd another:\n<<<<< SEARCH\nb = 1\n=========\n"
            ">>>>>>>>> REPLACE\n")
    assert parse_diff(text) == (DiffBlock("a = 1\n", "a = 2\n"), DiffBlock("b = 1\n", ""))


def test_parse_diff_rejects_four_or_ten_marker_characters() -> None:
    with pytest.raises(EditError, match="no SEARCH/REPLACE block"):
        parse_diff("<<<< SEARCH\na\n====\nb\n>>>> REPLACE\n")
    with pytest.raises(EditError, match="no SEARCH/REPLACE block"):
        parse_diff(diff("a\n", "b\n", marks=10))


def test_parse_diff_without_blocks_or_with_an_unclosed_block_fails() -> None:
    with pytest.raises(EditError, match="no SEARCH/REPLACE block found"):
        parse_diff("just prose")
    with pytest.raises(EditError, match="not closed"):
        parse_diff("<<<<<<< SEARCH\na = 1\n=======\na = 2\n")
    with pytest.raises(EditError, match="before its '>>>>>>> REPLACE'"):
        parse_diff("<<<<<<< SEARCH\na\n=======\nb\n<<<<<<< SEARCH\n")
    with pytest.raises(EditError, match="before its '=======' divider"):
        parse_diff("<<<<<<< SEARCH\na\n>>>>>>> REPLACE\n")


def test_has_diff_detects_a_search_marker() -> None:
    assert has_diff(diff("a\n", "b\n"))
    assert not has_diff("```python\nx = 1\n```\n")


# ---------------------------------------------------------------- apply_diff


def test_exact_match_replaces_only_inside_the_block() -> None:
    applied = apply_diff(SOURCE, diff("        return 0\n", "        return 1\n"))
    assert applied == Applied(SOURCE.replace("return 0", "return 1"), ())


def test_exact_match_ignores_occurrences_in_fixed_text() -> None:
    source = f"y = 1\n{START_MARKER}\ny = 1\n{END_MARKER}\ny = 1\n"
    applied = apply_diff(source, diff("y = 1\n", "y = 2\n"))
    assert applied.code == f"y = 1\n{START_MARKER}\ny = 2\n{END_MARKER}\ny = 1\n"


def test_whitespace_tolerant_match_reindents_the_replacement() -> None:
    search = "if score > 1:\n    return 0\n"
    replace = "if score > 2:\n    return -1\n\nscore += 1\n"
    applied = apply_diff(SOURCE, diff(search, replace))
    assert ("    if score > 2:\n        return -1\n\n    score += 1\n    return score\n"
            in applied.code)
    assert len(applied.notes) == 1
    assert "ignoring whitespace" in applied.notes[0]


def test_whitespace_tolerant_match_dedents_an_over_indented_search() -> None:
    search = "        def priority(item, bins):\n\n            score = item / bins  \n"
    replace = "        def priority(item, bins):\n            score = item * bins\n"
    applied = apply_diff(SOURCE, diff(search, replace))
    assert "def priority(item, bins):\n    score = item * bins\n    if" in applied.code


def test_ambiguous_search_asks_for_more_lines() -> None:
    message = error_of(TWO_BLOCKS, diff("    return 1\n", "    return 2\n"))
    assert "matches 2 places" in message
    assert "add surrounding lines" in message


def test_overlapping_occurrences_count_as_ambiguous() -> None:
    source = f"{START_MARKER}\na\na\na\n{END_MARKER}\n"
    with pytest.raises(EditError, match="matches 2 places"):
        apply_diff(source, diff("a\na\n", "b\n"))


def test_no_match_quotes_the_search_and_shows_the_closest_lines() -> None:
    message = error_of(SOURCE, diff("    score = item // bins\n    if score > 3:\n",
                                    "    score = 0\n"))
    assert "was not found in the EVOLVE-BLOCK regions" in message
    assert "    score = item // bins" in message
    closest = message.split("The closest lines there are:")[1]
    assert "score = item / bins" in closest
    assert "if score > 1:" in closest


def test_quoted_text_is_truncated() -> None:
    search = "".join(f"missing_{n} = {n}\n" for n in range(40))
    message = error_of(SOURCE, diff(search, "x = 1\n"))
    assert "missing_0 = 0" in message
    assert "missing_30" not in message
    assert "more lines" in message
    assert len(message.splitlines()) < 25


def test_search_in_fixed_text_is_rejected_as_outside() -> None:
    message = error_of(SOURCE, diff("import math\n", "import cmath\n"))
    assert "is outside the EVOLVE-BLOCK regions" in message
    assert "only code between the markers may change" in message
    assert "import math" in message


def test_search_tolerantly_matching_fixed_text_is_outside() -> None:
    message = error_of(SOURCE, diff("def run(items):\nreturn [priority(i, 2) for i in items]\n",
                                    "def run(items):\n    return []\n"))
    assert "is outside the EVOLVE-BLOCK regions" in message


def test_search_spanning_a_marker_is_rejected() -> None:
    message = error_of(SOURCE, diff(f"    return score\n{END_MARKER}\n", "    return 1\n"))
    assert "is outside the EVOLVE-BLOCK regions" in message
    opening = error_of(SOURCE, diff(f"{START_MARKER}\ndef priority(item, bins):\n",
                                    "def priority(item, bins, k):\n"))
    assert "is outside the EVOLVE-BLOCK regions" in opening


def test_replace_with_a_marker_line_is_rejected() -> None:
    message = error_of(SOURCE, diff("        return 0\n", f"        return 0\n{END_MARKER}\n"))
    assert "marker" in message


def test_an_edit_that_forms_a_marker_from_block_text_is_rejected() -> None:
    source = f"{START_MARKER}\n#x\n{END_MARKER}\n"
    with pytest.raises(EditError, match="marker line inside a block"):
        apply_diff(source, diff("x\n", " EVOLVE-BLOCK-END\n"))


def test_several_blocks_apply_in_order_each_seeing_the_previous_result() -> None:
    response = (diff("        return 0\n", "        return 10\n")
                + "then\n" + diff("        return 10\n", "        return 20\n"))
    assert apply_diff(SOURCE, response).code == SOURCE.replace("return 0", "return 20")


def test_edits_reach_every_evolve_region() -> None:
    response = diff("def b():\n", "def c():\n") + diff("def a():\n", "def d():\n")
    code = apply_diff(TWO_BLOCKS, response).code
    assert split(code).evolve == ("def d():\n    return 1\n", "def c():\n    return 1\n")


def test_failing_block_is_named_when_there_are_several() -> None:
    response = diff("def a():\n", "def z():\n") + diff("nothing here\n", "x\n")
    assert error_of(TWO_BLOCKS, response).startswith("SEARCH/REPLACE block 2 of 2: ")


def test_empty_search_is_rejected() -> None:
    assert "SEARCH text is empty" in error_of(SOURCE, diff("\n  \n", "x = 1\n"))


def test_an_edit_that_changes_nothing_is_rejected() -> None:
    message = error_of(SOURCE, diff("        return 0\n", "        return 0\n"))
    assert message.startswith("the edit changed nothing")


def test_deleting_lines_works_and_an_emptied_block_stays_valid() -> None:
    source = f"{START_MARKER}\nx = 1\n{END_MARKER}\n"
    assert apply_diff(source, diff("x = 1\n", "")).code == f"{START_MARKER}\n{END_MARKER}\n"


# ---------------------------------------------------------------- rewrites


def test_rewrite_splices_blocks_and_discards_fixed_changes_with_a_note() -> None:
    rewritten = (SOURCE.replace("import math", "import os")
                 .replace("return 0", "return 5"))
    applied = apply_rewrite(SOURCE, f"Sure:\n```python\n{rewritten}```\n")
    assert applied.code == SOURCE.replace("return 0", "return 5")
    assert applied.notes == (DISCARDED_NOTE,)


def test_rewrite_with_only_layout_changes_outside_gets_no_note() -> None:
    rewritten = SOURCE.replace("return 0", "return 5").replace("import math", "import math  ")
    applied = apply_rewrite(SOURCE, rewritten.rstrip("\n"))
    assert applied == Applied(SOURCE.replace("return 0", "return 5"), ())


def test_rewrite_without_markers_becomes_the_single_block() -> None:
    code = "def priority(item, bins):\n    return item\n"
    applied = apply_edit(SOURCE, f"```python\n{code}```")
    assert split(applied.code).evolve == (code,)
    assert split(applied.code).fixed == split(SOURCE).fixed


def test_rewrite_without_markers_that_repeats_fixed_code_is_rejected() -> None:
    whole = SOURCE.replace(f"{START_MARKER}\n", "").replace(f"{END_MARKER}\n", "")
    message = error_of(SOURCE, whole)
    assert "repeats code from outside them ('import math')" in message
    assert "lines kept" in message
    assert START_MARKER in message


def test_rewrite_without_markers_needs_a_single_block_original() -> None:
    assert "has 2 blocks" in error_of(TWO_BLOCKS, "def a():\n    return 3\n")


def test_rewrite_with_a_different_marker_count_is_rejected() -> None:
    message = error_of(TWO_BLOCKS, SOURCE)
    assert "has 1 EVOLVE-BLOCK regions but the original has 2" in message


def test_rewrite_with_broken_markers_is_rejected() -> None:
    message = error_of(SOURCE, f"{START_MARKER}\nx = 1\n")
    assert "markers are broken" in message
    assert "never closed" in message


def test_rewrite_identical_to_the_source_is_rejected() -> None:
    assert error_of(SOURCE, SOURCE).startswith("the edit changed nothing")


def test_rewrite_of_an_empty_response_is_rejected() -> None:
    assert "holds no code" in error_of(SOURCE, "```python\n```\n")


def test_extract_code_prefers_the_longest_python_fence() -> None:
    text = ("```python\nshort = 1\n```\n```text\n" + "long prose\n" * 5 + "```\n"
            "```py\nlonger = 1\nlonger = 2\n```\n")
    assert extract_code(text) == "longer = 1\nlonger = 2\n"


def test_extract_code_falls_back_to_any_fence_then_to_the_whole_text() -> None:
    assert extract_code("see\n```\na = 1\n```\nend") == "a = 1\n"
    assert extract_code("a = 1\nb = 2") == "a = 1\nb = 2"
    assert extract_code("```python\na = 1\nb = 2\n") == "a = 1\nb = 2\n"  # cut-off reply
    assert extract_code("````python\na = '```'\n```\nb = 1\n````\n") == "a = '```'\n```\nb = 1\n"


def test_apply_edit_dispatches_on_search_markers() -> None:
    via_diff = apply_edit(SOURCE, diff("        return 0\n", "        return 3\n"))
    rewritten = SOURCE.replace("return 0", "return 3")
    assert via_diff == apply_edit(SOURCE, rewritten)


# ---------------------------------------------------------------- properties

# Lines that look like code, like diff or fence syntax, and random printable text.
_CODE = ["x = 1", "    return x", "def f(a):", "", "   ", "# note", "\tpass", "if x:",
         "        y = x + 1", "# EVOLVE-BLOCK", "#-", f"s = '{END_MARKER}'", "#", "x"]
_SYNTAX = ["=======", "<<<<<<< SEARCH", ">>>>>>> REPLACE", "```python", "```"]
_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\n"),
                max_size=20)
_LINE = st.one_of(st.sampled_from(_CODE + _SYNTAX), _TEXT).filter(
    lambda line: not is_marker_line(line))
_PLAIN = st.one_of(st.sampled_from(_CODE), _TEXT).filter(
    lambda line: not is_marker_line(line) and line.strip() not in _SYNTAX
    and not line.strip().startswith(("```", "<<<<<", "=====", ">>>>>")))

# Diff marker lines inside a program only make its SEARCH/REPLACE responses unparsable.
_NO_DIFF_SYNTAX = _LINE.filter(lambda line: line.strip() not in _SYNTAX[:3])

# Replacement lines may try to add markers, whole or by completing a "#-" line of the block.
_REPLACE_LINE = st.one_of(_NO_DIFF_SYNTAX, st.sampled_from(
    [START_MARKER, f"  {END_MARKER}", " EVOLVE-BLOCK-END", " EVOLVE-BLOCK-START"]))


def _part(line: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(line, max_size=4).map(lambda lines: "".join(f"{x}\n" for x in lines))


@st.composite
def _programs(draw: st.DrawFn, line: st.SearchStrategy[str] = _LINE,
              blocks: int | None = None) -> str:
    """A program with 1-3 (or `blocks`) evolve blocks made of random lines."""
    count = blocks if blocks is not None else draw(st.integers(1, 3))
    parts = [draw(_part(line))]
    for _ in range(count):
        indent = draw(st.sampled_from(["", "    ", "\t"]))
        parts += [f"{indent}{START_MARKER}\n", draw(_part(line)),
                  f"{indent}{END_MARKER}\n", draw(_part(line))]
    source = "".join(parts)
    return source.removesuffix("\n") if draw(st.booleans()) else source


@st.composite
def _searches(draw: st.DrawFn, source: str) -> str:
    """A SEARCH text cut from the whole program or (more often) from one evolve block:
    whole lines, a run from mid-line to a line end, or any run of characters."""
    blocks = [block for block in split(source).evolve if block]
    pool = draw(st.sampled_from([source, *blocks, *blocks]))
    first = draw(st.integers(0, len(pool)))
    mode = draw(st.sampled_from(["lines", "tail", "chars"]))
    if mode == "lines":
        first = pool.rfind("\n", 0, first) + 1
    last = draw(st.integers(first, len(pool)))
    if mode != "chars" and pool.find("\n", last) >= 0:
        last = pool.find("\n", last) + 1
    return pool[first:last]


def _assert_fixed_kept(source: str, response: str) -> Applied | None:
    """The core contract: an edit fails with EditError or keeps the fixed text exactly."""
    try:
        applied = apply_edit(source, response)
    except EditError as error:
        reasons = ["outside", "not found", "places", "is empty", "changed nothing",
                   "no code", "has no EVOLVE", "repeats code", "markers are broken",
                   "regions but", "marker line", "not closed", "before its"]
        event("rejected: " + next((r for r in reasons if r in str(error)), str(error)[:40]))
        return None
    event("applied" + (" with notes" if applied.notes else ""))
    assert split(applied.code).fixed == split(source).fixed
    assert applied.code != source
    return applied


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_diff_edits_never_change_fixed_text(data: st.DataObject) -> None:
    source = data.draw(_programs(_NO_DIFF_SYNTAX))
    response = ""
    for _ in range(data.draw(st.integers(1, 2))):
        search = data.draw(_searches(source))
        indent = data.draw(st.sampled_from(["", "", "", "  ", "\t"]))  # exercise re-indentation
        search = "".join(indent + line for line in split_lines(search))
        search += "" if search.endswith("\n") else "\n"
        response += diff(search, data.draw(_part(_REPLACE_LINE)))
    _assert_fixed_kept(source, response)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_rewrites_never_change_fixed_text(data: st.DataObject) -> None:
    source = data.draw(_programs())
    blocks = len(split(source).evolve)
    # Random fixed parts around the same number of blocks, or any number, or no markers.
    rewrite = data.draw(st.one_of(_programs(blocks=blocks), _programs(), _part(_LINE)))
    if data.draw(st.booleans()):
        rewrite = f"Here you go:\n```python\n{rewrite}\n```\nDone."
    _assert_fixed_kept(source, rewrite)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_response_never_changes_fixed_text(data: st.DataObject) -> None:
    source = data.draw(_programs())
    pieces = st.one_of(_LINE, st.sampled_from([START_MARKER, END_MARKER]),
                       st.sampled_from(split_lines(source) or [""]))
    response = "\n".join(data.draw(st.lists(pieces, max_size=15)))
    _assert_fixed_kept(source, response)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_unique_search_line_is_always_replaced(data: st.DataObject) -> None:
    source = data.draw(_programs(_PLAIN))
    segments = split(source)
    index = data.draw(st.integers(0, len(segments.evolve) - 1))
    anchor = "zz_anchor_7 = 0\n"
    evolve = list(segments.evolve)
    evolve[index] = anchor + evolve[index]
    source = "".join(f + e for f, e in zip(segments.fixed, [*evolve, ""], strict=True))
    replace = data.draw(_part(_PLAIN))
    applied = apply_diff(source, diff(anchor, replace))
    evolve[index] = replace + evolve[index][len(anchor):]
    assert split(applied.code).evolve == tuple(evolve)
    assert split(applied.code).fixed == segments.fixed


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_rewrite_with_the_same_markers_installs_its_blocks(data: st.DataObject) -> None:
    source = data.draw(_programs(_PLAIN))
    count = len(split(source).evolve)
    rewrite = data.draw(_programs(_PLAIN, blocks=count))
    new_blocks = split(rewrite).evolve
    if new_blocks == split(source).evolve:
        return
    applied = apply_rewrite(source, rewrite)
    assert split(applied.code).evolve == new_blocks
    assert split(applied.code).fixed == split(source).fixed
