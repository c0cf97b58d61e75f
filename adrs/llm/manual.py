"""Manual mode: a person (or any tool) plays the LLM through files in the run folder.

For each request the client writes `manual/<candidate>-<attempt>.prompt.md` and waits for
`manual/<candidate>-<attempt>.response.md`, polling. A response is read once it is
non-empty and its size and modification time are unchanged across one polling interval, so
an editor saving it in pieces is not read half-written. A response already present (written
while a stopped run waited) is used at once, which is how a resumed run picks answers up.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from adrs.llm.mutator import LLMReply, LLMRequest
from adrs.types import LLMUsage

MANUAL_DIR = "manual"
MODEL_NAME = "manual"


def prompt_path(folder: Path, request: LLMRequest) -> Path:
    return folder / f"{request.candidate_id}-{request.attempt}.prompt.md"


def response_path(folder: Path, request: LLMRequest) -> Path:
    return folder / f"{request.candidate_id}-{request.attempt}.response.md"


def render_prompt(request: LLMRequest, answer: Path) -> str:
    head = (f"<!-- adrs manual mode: candidate {request.candidate_id}, attempt "
            f"{request.attempt}. Paste this conversation into any chat LLM and save its "
            f"whole answer as {answer.name} in this folder. -->\n")
    parts = [f"## {m.role}\n\n{m.content.rstrip()}\n" for m in request.messages]
    return head + "\n" + "\n".join(parts)


class ManualClient:
    """An LLMClient answered by files; costs nothing and counts one call per answer."""

    def __init__(self, folder: Path, poll_s: float = 0.5) -> None:
        self.folder, self._poll_s = folder, poll_s

    async def complete(self, request: LLMRequest) -> LLMReply:
        self.folder.mkdir(parents=True, exist_ok=True)
        answer = response_path(self.folder, request)
        _write_atomic(prompt_path(self.folder, request), render_prompt(request, answer))
        text = await self._wait_for(answer)
        return LLMReply(text, LLMUsage(model=MODEL_NAME, calls=1))

    async def _wait_for(self, path: Path) -> str:
        last: tuple[int, int] | None = None
        while True:
            try:
                stat = path.stat()
                seen: tuple[int, int] | None = (stat.st_size, stat.st_mtime_ns)
            except FileNotFoundError:
                seen = None
            if seen is not None and seen[0] > 0 and seen == last:
                return path.read_text(encoding="utf-8")
            last = seen
            await asyncio.sleep(self._poll_s)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
