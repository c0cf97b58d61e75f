"""Prefix hit rate through a bounded prefix cache with LRU eviction, at block granularity.

The paper's metric (hitrate.py) credits a prompt with its longest prefix shared with *any*
earlier prompt, as if the serving engine kept every prefix forever; its total does not depend
on the row order. A real engine (vLLM's automatic prefix caching) keeps a bounded number of
fixed-size KV blocks and evicts the least recently used, so the row order matters. The model:

- Tokens are approximated from characters: CHARS_PER_TOKEN = 4 characters make one token.
  A prompt of L characters counts ceil(L / 4) tokens.
- A block holds `block_tokens` tokens, i.e. 4 x block_tokens characters. A prompt's full
  blocks are its first floor(L / (4 x block_tokens)) runs of that many characters; the
  trailing partial block is never cached (vLLM caches full blocks only).
- A block is identified by the whole prefix up to and including it (vLLM chains each block's
  hash with its parent's), so equal block text after different prefixes does not hit. Here
  ids are interned exactly, (parent id, block text) -> id: no hash collisions.
- Requests are served one at a time in row order. A request's hit is the longest run of its
  leading blocks present in the cache; hit tokens = hit blocks x block_tokens.
- Then all its blocks enter the cache (or are touched), last block first, so within one
  request the tail is the least recently used and evicted first and the first block last,
  as vLLM v1 frees a finished request's blocks in reverse order. While the cache holds more
  than cache_tokens // block_tokens blocks the least recently used one is evicted. A block
  is always touched together with (and before) its parent, so the cache stays
  prefix-closed: an evicted block's descendants are gone before it.
- Hit rate = total hit tokens / total tokens. A fully cached prompt counts all its full
  blocks as hits (a real engine recomputes its last token; ignored here).

Cost: O(total characters) to cut the blocks, O(total blocks) dictionary operations.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CHARS_PER_TOKEN = 4


def tokens(prompt: str) -> int:
    """The token count of a prompt: ceil(characters / CHARS_PER_TOKEN)."""
    return -(-len(prompt) // CHARS_PER_TOKEN)


class BlockIds:
    """Interns chained blocks: the id of a block is fixed by its whole prefix."""

    def __init__(self, block_chars: int) -> None:
        self.block_chars = block_chars
        self.ids: dict[tuple[int, str], int] = {}

    def of(self, prompt: str) -> list[int]:
        """The ids of the prompt's full blocks, first block first."""
        size, parent, out = self.block_chars, -1, []
        for start in range(0, len(prompt) - size + 1, size):
            parent = self.ids.setdefault((parent, prompt[start:start + size]), len(self.ids))
            out.append(parent)
        return out


def hit_blocks(blocks: Sequence[Sequence[int]], capacity: int) -> list[int]:
    """Per request (each a list of chained block ids, first block first), the number of its
    leading blocks found in an LRU cache of `capacity` blocks, serving them in order."""
    cache: OrderedDict[int, None] = OrderedDict()
    hits = []
    for request in blocks:
        hit = 0
        while hit < len(request) and request[hit] in cache:
            hit += 1
        hits.append(hit)
        for block in reversed(request):
            cache[block] = None
            cache.move_to_end(block)
        while len(cache) > capacity:
            cache.popitem(last=False)
    return hits


@dataclass(frozen=True)
class LruCache:
    """A prefix cache of `cache_tokens` tokens in blocks of `block_tokens` tokens, with LRU
    eviction. Both positive, cache_tokens >= block_tokens (metric.py checks user input)."""

    cache_tokens: int
    block_tokens: int

    def __post_init__(self) -> None:
        if not 0 < self.block_tokens <= self.cache_tokens:
            raise ValueError(f"need 0 < block_tokens <= cache_tokens, got {self.block_tokens}"
                             f" and {self.cache_tokens}")

    @property
    def capacity(self) -> int:
        """How many blocks the cache holds."""
        return self.cache_tokens // self.block_tokens

    def hits(self, prompts: Iterable[str]) -> tuple[int, int]:
        """(total hit tokens, total tokens) of the prompts sent in order to an empty cache."""
        ids = BlockIds(self.block_tokens * CHARS_PER_TOKEN)
        listed = list(prompts)
        hit = sum(hit_blocks([ids.of(p) for p in listed], self.capacity))
        return hit * self.block_tokens, sum(tokens(p) for p in listed)

    def rate(self, rows: Sequence[Sequence[str]]) -> float:
        """Hit tokens over total tokens of the rows' prompts (cells concatenated, as in the
        paper's metric); 0.0 for empty prompts."""
        hit, total = self.hits("".join(row) for row in rows)
        return hit / total if total else 0.0

    def describe(self) -> str:
        plural = "s" if self.block_tokens != 1 else ""
        return (f"lru: a prefix cache of {self.cache_tokens:,} tokens in blocks of "
                f"{self.block_tokens} token{plural} ({CHARS_PER_TOKEN} characters per token), "
                "least recently used block evicted first, requests served in row order; a "
                "prompt's hit is its longest run of leading full blocks still cached, so "
                "the row order matters")
