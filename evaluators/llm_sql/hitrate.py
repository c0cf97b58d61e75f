"""Prefix hit rate of prompts sent in order to an LLM server with an unbounded prefix cache.

A row's prompt is the concatenation of its cells without separators. Its hit is the length of
the longest prefix it shares with any earlier row's prompt; the hit rate is the total hit over
the total length. Each row adds (its length - its hit) new nodes to a trie of all earlier
prompts, so the total hit is the total length minus the number of distinct non-empty prefixes,
whatever the row order. That number is the sum, over the sorted prompts, of each prompt's
length minus its common prefix with its sorted predecessor; hence the total hit is the sum of
the common-prefix lengths of lexicographic neighbours: one sort, no trie.
"""

from __future__ import annotations

from collections.abc import Sequence


def common_prefix_length(a: str, b: str) -> int:
    """Length of the longest common prefix of `a` and `b` (binary search over C slices)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def total_hit(prompts: Sequence[str]) -> int:
    """Sum over the prompts of the longest prefix shared with an earlier prompt."""
    ordered = sorted(prompts)
    return sum(common_prefix_length(ordered[i - 1], ordered[i]) for i in range(1, len(ordered)))


def hit_rate(rows: Sequence[Sequence[str]]) -> float:
    """Total prefix hit over total length of the rows' prompts; 0.0 for empty prompts."""
    prompts = ["".join(row) for row in rows]
    length = sum(len(p) for p in prompts)
    return total_hit(prompts) / length if length else 0.0
