"""Regenerate the dashboard screenshots in docs/ from a real offline run.

    python scripts/screenshots.py [--out docs/screenshots]

Scaffolds the template problem into a temporary folder, runs 40 offline candidates on it,
opens the dashboard headlessly at 80x24 (the size it is designed for) and saves one SVG per
main screen. Nothing here is drawn by hand: the SVGs are what a user's terminal shows.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from adrs.cli.authoring import scaffold
from adrs.dashboard.app import DashboardApp

REPO = Path(__file__).resolve().parent.parent
# (file name, keys pressed before the shot, caption)
SHOTS = (
    ("overview.svg", (), "best score over time, archive stats, LLM usage"),
    ("islands.svg", ("2",), "one island's MAP-Elites grid; Enter opens the elite"),
    ("candidates.svg", ("3", "s", "r"), "the candidate table sorted by score"),
    ("failures.svg", ("4",), "failed candidates and their reasons"),
    ("program.svg", ("escape", "b"), "the best program's source"),
    ("diff.svg", ("d",), "its diff against its parent"),
    ("metrics.svg", ("m",), "its metrics and the evaluator's feedback"),
    ("help.svg", ("escape", "question_mark"), "the help screen"),
)


async def capture(run_dir: Path, out: Path) -> None:
    app = DashboardApp(run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for name, keys, caption in SHOTS:
            await pilot.press(*keys)
            await pilot.pause()
            app.save_screenshot(name, str(out))
            print(f"{out / name}: {caption}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--iterations", type=int, default=40)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        problem = scaffold("batch_flush", Path(tmp))
        run_dir = Path(tmp) / "run"
        subprocess.run([sys.executable, "-m", "adrs", "run", str(problem), "--iterations",
                        str(args.iterations), "--seed", "0", "--run-dir", str(run_dir)],
                       check=True, stdout=subprocess.DEVNULL)
        asyncio.run(capture(run_dir, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
