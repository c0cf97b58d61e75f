"""The iteration-time model: Mistral-7B (bf16) on one A100-80GB SXM.

One iteration runs one forward pass over a batch of prefill chunks and decodes. Its time is

    t = CPU + PER_SEQ x seqs + max(WEIGHTS_FLOOR, LINEAR x tokens)
        + ATTN_FLOP x sum_chunks c x (k + c / 2) + KV_READ x kv_tokens_read
        + SWAP x blocks_moved

with tokens = prefill tokens + decode sequences, k the tokens already cached for a prefill
chunk of c tokens, and kv_tokens_read the cached tokens every sequence's attention reads
(a decode reads its whole context; a chunk reads the context before it).

Where the figures come from (README.md has the citations):
- LINEAR and WEIGHTS_FLOOR: Vidur's A100 profile of the Llama-2-7B linear layers (the
  mlp.csv of microsoft/vidur, tensor parallelism 1): 8.0 ms per layer for 4,096 tokens
  and 0.29 ms per layer for one token, 32 layers; scaled by 1.077, the ratio of Mistral-7B's
  per-layer weights (GQA with 8 KV heads, FFN 14,336) to Llama-2-7B's.
- ATTN_FLOP: 4 x 32 layers x 4,096 (heads x head size) FLOPs per query-key pair, at
  160 TFLOP/s (about half of the A100's 312 bf16 peak, FlashAttention-2's prefill rate).
- KV_READ: 128 KiB of KV per token (2 x 32 layers x 8 KV heads x 128 x 2 bytes) at
  1.4 TB/s, about 70% of the A100-80GB's 2.0 TB/s.
- SWAP: one 16-token block (2 MiB) over PCIe 4.0 x16 at 25 GB/s.
- CPU, PER_SEQ: scheduling, sampling and launch overhead per iteration and per sequence.
- KV capacity: 90% of 80 GB minus 14.5 GB of weights and 2 GB of activations, in 2 MiB
  blocks: 26,000 blocks of 16 tokens (416,000 tokens). Swap space: vLLM's default 4 GiB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK_TOKENS = 16


@dataclass(frozen=True)
class CostModel:
    """Iteration-time coefficients (seconds) and memory sizes of one replica."""

    name: str = "Mistral-7B on one A100-80GB"
    cpu_s: float = 2.0e-3
    per_seq_s: float = 1.0e-5
    weights_floor_s: float = 10.1e-3
    linear_s: float = 6.75e-5  # per token, compute-bound linear layers
    attn_flop_s: float = 4 * 32 * 4096 / 160e12  # per query-key pair
    kv_read_s: float = 131072 / 1.4e12  # per cached token read
    swap_block_s: float = 2 * 1024 * 1024 / 25e9  # per block moved
    gpu_blocks: int = 26_000
    swap_blocks: int = 2_048
    max_batch_tokens: int = 16_384  # prefill tokens + decodes per iteration (activations)
    max_seqs: int = 512  # sequences holding KV on the GPU
    max_model_len: int = 16_384  # prompt + output tokens of one request

    def iteration_s(self, prefill_tokens: int, decodes: int, seqs: int, attn_pairs: float,
                    kv_read: int, blocks_moved: int) -> float:
        """The time of one iteration (scalar form, for reports and tests)."""
        tokens = prefill_tokens + decodes
        return float(self.cpu_s + self.per_seq_s * seqs
                     + max(self.weights_floor_s, self.linear_s * tokens)
                     + self.attn_flop_s * attn_pairs + self.kv_read_s * kv_read
                     + self.swap_block_s * blocks_moved)

    def iteration_many(self, tokens: np.ndarray, seqs: np.ndarray, attn_pairs: np.ndarray,
                       kv_read: np.ndarray, blocks_moved: np.ndarray) -> np.ndarray:
        """Iteration times of many replicas at once (tokens = prefill tokens + decodes)."""
        return (self.cpu_s + self.per_seq_s * seqs
                + np.maximum(self.weights_floor_s, self.linear_s * tokens)
                + self.attn_flop_s * attn_pairs + self.kv_read_s * kv_read
                + self.swap_block_s * blocks_moved)


MISTRAL_7B_A100 = CostModel()


def blocks_for(tokens: int | np.ndarray) -> int | np.ndarray:
    """KV blocks that hold `tokens` cached tokens."""
    return -(-tokens // BLOCK_TOKENS)
