"""LLM serving: iteration-level batch scheduling on one replica (problem `llm-serve`).

Trusted side: `costmodel` (the iteration time of Mistral-7B on an A100), `workloads`
(seeded chat and summarisation traces, a user's CSV trace), `simulator` (the replica:
paged KV cache, prefill chunks, decodes, preemption), `decisions` (the reply's layout and
the rules every decision is checked against), `lockstep` (drives all scenarios, one call
per step), `metrics` (SLOs, goodput, percentiles), `scenarios` (the scored set) and
`evaluate` (the entry point). `harness.py` runs inside the sandbox next to the candidate.
"""
