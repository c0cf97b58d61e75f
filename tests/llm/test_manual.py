"""Manual mode: a thread plays the LLM by answering prompt files in the run folder."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import yaml
from openai_server import good_rewrite

from adrs.cli.main import main
from adrs.store.database import RunStore


def answer_prompts(folder: Path, stop: threading.Event, answered: list[str]) -> None:
    while not stop.is_set():
        for prompt in sorted(folder.glob("*.prompt.md")) if folder.is_dir() else []:
            response = prompt.with_name(prompt.name.replace(".prompt.md", ".response.md"))
            if not response.exists():
                text = prompt.read_text(encoding="utf-8")
                body = {"messages": [{"role": "user", "content": text}]}
                response.write_text(good_rewrite(body), encoding="utf-8")
                answered.append(prompt.name)
        time.sleep(0.02)


def test_a_run_in_manual_mode_reads_the_response_files(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = tmp_path / "manual.yaml"
    config.write_text(yaml.safe_dump({"llm": {"manual_poll_s": 0.02}}))
    stop, answered = threading.Event(), []
    helper = threading.Thread(target=answer_prompts, args=(run_dir / "manual", stop, answered))
    helper.start()
    try:
        code = main(["run", "toy", "--llm", "manual", "-c", str(config), "--iterations", "6",
                     "--backend", "thread", "--run-dir", str(run_dir)])
    finally:
        stop.set()
        helper.join()
    assert code == 0
    assert sorted(answered) == sorted(p.name for p in (run_dir / "manual").glob("*.prompt.md"))
    store = RunStore.open(run_dir, readonly=True)
    records = list(store.records())
    store.close()
    assert len(records) == 6
    for r in records[1:]:
        assert r.usage.model == "manual" and r.usage.calls == r.attempts
        assert r.response == (run_dir / "manual" / f"{r.id}-0.response.md").read_text()
    prompt = (run_dir / "manual" / "1-0.prompt.md").read_text()
    assert "## system" in prompt and "## user" in prompt and "1-0.response.md" in prompt
