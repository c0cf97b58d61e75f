"""Seeded building blocks for synthetic tables: pseudo-words, text, skewed choices, groups."""

from __future__ import annotations

import itertools
import math
import random
import string
from collections.abc import Sequence

_ONSETS = ("b", "br", "c", "ch", "d", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p",
           "pr", "r", "s", "st", "t", "tr", "v", "w", "z")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou")
_CODAS = ("", "", "n", "r", "s", "t", "l", "ck", "nd", "st")
COMMON_OPENERS = ("The ", "A ", "This ", "It ", "An ", "In ", "I ", "What ", "If ")


def word(rng: random.Random, syllables: int | None = None) -> str:
    """A pronounceable pseudo-word of 1 to 3 syllables."""
    count = syllables if syllables is not None else rng.choice((1, 1, 2, 2, 2, 3))
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                   for _ in range(count))


def title(rng: random.Random, lo: int, hi: int) -> str:
    """lo to hi capitalised pseudo-words."""
    return " ".join(word(rng).capitalize() for _ in range(rng.randint(lo, hi)))


def text(rng: random.Random, lo: int, hi: int, opener: bool = False) -> str:
    """Prose of about lo to hi characters; with `opener` it starts like real reviews do."""
    target = rng.randint(lo, hi)
    parts = [rng.choice(COMMON_OPENERS)] if opener else []
    size = sum(len(p) for p in parts)
    while size < target:
        piece = word(rng) + ("." if rng.random() < 0.1 else "")
        parts.append(piece + " ")
        size += len(piece) + 1
    return "".join(parts).strip()


def token(rng: random.Random, length: int) -> str:
    """A random alphanumeric identifier (hashes, asins)."""
    return "".join(rng.choices(string.ascii_letters + string.digits, k=length))


class Skewed:
    """Draws from `pool` with Zipf weights 1/rank**exponent: a few popular items, a long
    tail (cumulative weights computed once, so a draw is a binary search)."""

    def __init__(self, pool: Sequence[str], exponent: float) -> None:
        self.pool = list(pool)
        self.cum = list(itertools.accumulate(1.0 / rank ** exponent
                                             for rank in range(1, len(self.pool) + 1)))

    def draw(self, rng: random.Random) -> str:
        return rng.choices(self.pool, cum_weights=self.cum)[0]


def group_sizes(rng: random.Random, rows: int, median: float, mean: float,
                cap: int | None = None) -> list[int]:
    """Sizes >= 1 summing to `rows`, log-normal with about the given median and mean."""
    mu = math.log(median)
    sigma = math.sqrt(2.0 * max(math.log(mean / median), 1e-9))
    sizes: list[int] = []
    left = rows
    while left > 0:
        size = max(1, round(rng.lognormvariate(mu, sigma)))
        size = min(size, cap or size, left)
        sizes.append(size)
        left -= size
    return sizes
