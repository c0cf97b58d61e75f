"""The scripted OpenAI-compatible server of the benchmarks, in its own process.

It answers every request with a SEARCH/REPLACE edit of the toy's WINDOW, HEADROOM and
MARGIN lines in the program the prompt shows as the current one (adrs's "## Current
program", or "## Parent A" of its crossover prompts, or OpenEvolve's "# Current Program"),
after `delay_s`. In its own process, its
CPU is not counted with the client's. `serve(delay_s)` yields a `Loopback` whose `url` is
the base URL and whose `calls` and `arrivals`, once the block has ended, are the number of
requests the server answered and the time (epoch seconds) each arrived.

Usage (standalone): python benchmarks/loopback.py [--delay 0.0]  (prints the URL, serves
until stdin closes, then prints the number of requests)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CURRENT = re.compile(r"^#+ (?:Current [Pp]rogram|Parent A)(?: \(score[^\n]*\))?[ \t]*$"
                     r".*?```python\n(.*?)```", re.S | re.M)


def toy_edit(body: dict[str, Any]) -> str:
    """An edit of the current program's constants, a function of the request."""
    sys.path.insert(0, str(ROOT / "tests"))
    from openai_server import constant_edits, digest

    user = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")
    match = CURRENT.search(user)
    return "Tune the constants.\n\n" + constant_edits(match.group(1) if match else "",
                                                      digest(body))


@dataclass
class Loopback:
    url: str
    calls: int = 0
    arrivals: list[float] = field(default_factory=list)


@contextmanager
def serve(delay_s: float = 0.0) -> Iterator[Loopback]:
    """The server in a child process (see the module docstring)."""
    child = subprocess.Popen([sys.executable, __file__, "--delay", str(delay_s)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdin is not None
    server = Loopback(child.stdout.readline().strip())
    try:
        yield server
    finally:
        child.stdin.close()
        server.calls = int(child.stdout.readline().strip() or 0)
        server.arrivals = json.loads(child.stdout.readline().strip() or "[]")
        child.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from openai_server import FakeOpenAI, Reply

    arrivals: list[float] = []

    def answer(body: dict[str, Any], n: int) -> Reply:
        arrivals.append(time.time())
        return Reply(text=toy_edit(body), delay_s=args.delay)

    server = FakeOpenAI(answer)
    with server.running():
        print(server.url, flush=True)
        sys.stdin.read()  # until the parent closes it
        print(len(server.seen), flush=True)
        print(json.dumps(sorted(arrivals)), flush=True)


if __name__ == "__main__":
    main()
