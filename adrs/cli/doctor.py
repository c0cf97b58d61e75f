"""`adrs doctor`: is this machine and this configuration ready for a run?

Checks, for each configured model: its key variable is set (the check `adrs run` makes,
adrs/llm/provider.py; a missing key is one line, and the endpoint is then not called), its
endpoint answers a tiny completion (short timeout, no retries), the longest conversation the
config can produce fits its context window, and a price is known (else its cost counts as
$0). Then it prints the sandbox protections a candidate would run under. Every problem is
one line naming the fix.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from adrs.config.llm import ModelConfig
from adrs.config.run_config import RunConfig
from adrs.engine.mutator import ProposalContext
from adrs.engine.prompts import KINDS, PromptRenderer
from adrs.errors import UserError
from adrs.llm.client import CallSettings, LiteLLMClient, import_litellm, to_chat
from adrs.llm.mutator import LLMRequest, Message
from adrs.llm.provider import key_status
from adrs.problem.spec import Problem
from adrs.sandbox.isolation import protection_report
from adrs.types import EvalResult, Program

PING_TIMEOUT_S = 15.0
PING = (Message("user", "Reply with the single word OK."),)


@dataclass(frozen=True)
class Finding:
    """One line of the report; `severity` 'fix' makes doctor exit with 1."""

    severity: str  # "ok", "warn" or "fix"
    text: str


def diagnose(config: RunConfig, problem: Problem | None) -> list[Finding]:
    llm = config.llm
    if llm.mode in ("offline", "manual", "replay") or not llm.models:
        return [Finding("ok", f"llm mode '{llm.mode}': no model endpoint to check")]
    prompt = longest_prompt(config, problem) if problem is not None else None
    findings: list[Finding] = []
    for model in llm.models:
        findings += check_model(model, config, prompt)
    if prompt is None:
        findings.append(Finding("warn", "no problem given: pass PROBLEM to check that its "
                                "prompts fit each model's context window"))
    return findings


def check_model(model: ModelConfig, config: RunConfig,
                prompt: Sequence[Message] | None) -> list[Finding]:
    try:
        key = key_status(model)
    except UserError as exc:  # the ping would only fail for the same reason
        return [Finding("fix", str(exc))]
    findings = [Finding("warn" if key.warn else "ok", key.text), _ping(model, config)]
    if prompt is not None:
        findings.append(_context(model, config, prompt))
    findings.append(_price(model))
    return findings


def _ping(model: ModelConfig, config: RunConfig) -> Finding:
    settings = CallSettings(min(PING_TIMEOUT_S, config.llm.timeout_s), 0, 0.0)
    client = LiteLLMClient(replace(model, max_tokens=8), settings)
    try:
        reply = asyncio.run(client.complete(LLMRequest(PING, -1, 0)))
    except UserError as exc:
        return Finding("fix", str(exc))
    return Finding("ok", f"{model.name}: endpoint answers ({reply.usage.prompt_tokens}+"
                   f"{reply.usage.completion_tokens} tokens, ${reply.usage.cost_usd:.6f})")


def _context(model: ModelConfig, config: RunConfig, prompt: Sequence[Message]) -> Finding:
    litellm = import_litellm()
    try:
        prompt_tokens = int(litellm.token_counter(model=model.name, messages=to_chat(prompt)))
    except Exception:  # no tokenizer known for this model: about four characters a token
        prompt_tokens = sum(len(m.content) for m in prompt) // 4
    # A repair conversation carries every earlier reply plus the repair request.
    repairs = config.llm.repair_attempts
    needed = prompt_tokens + repairs * (model.max_tokens + 200)
    window = context_window(model)
    if window is None:
        return Finding("warn", f"{model.name}: context window unknown: set context_window "
                       f"in its llm.models entry (longest prompt needs ~{needed} tokens)")
    if needed + model.max_tokens > window:
        return Finding("fix", f"{model.name}: the longest conversation needs ~{needed} input "
                       f"+ {model.max_tokens} output tokens but the window is {window}: "
                       "lower max_tokens, repair_attempts or the inspirations shown")
    return Finding("ok", f"{model.name}: longest conversation ~{needed}+{model.max_tokens} "
                   f"tokens fits the {window}-token window")


def context_window(model: ModelConfig) -> int | None:
    if model.context_window is not None:
        return model.context_window
    try:
        info = import_litellm().get_model_info(model.name)
    except Exception:  # a model litellm does not know
        return None
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if window else None


def _price(model: ModelConfig) -> Finding:
    if model.priced:
        return Finding("ok", f"{model.name}: configured price ${model.price_in:g}/"
                       f"${model.price_out:g} per input/output token")
    cost_map = import_litellm().model_cost
    bare = model.name.split("/", 1)[-1]
    if model.name in cost_map or bare in cost_map:
        return Finding("ok", f"{model.name}: price from litellm's price map")
    return Finding("warn", f"{model.name}: no known price, its calls count as $0: set "
                   "price_in and price_out (USD per token) in its llm.models entry")


def longest_prompt(config: RunConfig, problem: Problem) -> tuple[Message, ...]:
    """The largest first prompt of any kind, with the initial program in every place a
    program is shown (programs grow during a run: leave headroom)."""
    program = Program(id=0, code=problem.initial_code, result=EvalResult(True, 0.0))
    arch = config.archive
    shown = arch.num_top_inspirations + arch.num_diverse_inspirations
    ctx = ProposalContext(
        parent=program, mate=replace(program, id=1), island=0, rng=random.Random(0),
        inspirations=tuple(replace(program, id=i + 2) for i in range(shown)),
        task=problem.task,
        attempts=tuple(replace(program, id=i + 2, edit_kind="diff", parent_ids=(0,))
                       for i in range(config.llm.recent_attempts)))
    renderer = PromptRenderer()
    prompts = [renderer.render(kind, ctx) for kind in KINDS]
    big = max(prompts, key=lambda p: len(p.system) + len(p.user))
    return (Message("system", big.system), Message("user", big.user))


def protection_lines() -> list[str]:
    """Every sandbox protection, active or missing, with what it does or why it is not."""
    return [f"  {'active ' if p.active else 'MISSING'} {p.name.replace('_', ' ')}: {p.why}"
            for p in protection_report()]
