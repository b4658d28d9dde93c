"""Run every ``bench/*_bench.py`` in turn and print a combined report (``make bench``).

Usage: python bench/run.py [--only NAME ...]

Each benchmark runs in its own process with its defaults (each keeps its own run to a
few minutes), prints its own table as it finishes, and writes its figures as JSON if it
takes ``--json``;
the report at the end lists every benchmark with its status, duration and headline
ratios. A benchmark that fails is reported and the others still run; the exit status
says whether all of them passed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


def headline(name: str, figures: dict[str, Any]) -> str:
    """The one line each benchmark is run for."""
    if name == "deid" and "tools" in figures:
        tools = figures["tools"]
        ours = tools["dicomhub"]["one_core"]
        parts = [f"dicomhub {ours:.0f}/s on one core, {ours / tools['limit']['one_core']:.0%} "
                 f"of read+write"]  # fmt: skip
        parts += [f"{ours / tools[p]['one_core']:.2f}x {p}"
                  for p in ("dicognito", "dicom-anonymizer") if p in tools]  # fmt: skip
        parts.append(f"2 workers {tools['dicomhub']['two_workers'] / ours:.2f}x")
        return ", ".join(parts)
    if name == "submit" and "ratio" in figures:
        return (f"end to end {figures['end_to_end']:.0f}/s = {figures['ratio']:.0%} of "
                f"de-identify only ({figures['deidentify_only']:.0f}/s); intake alone "
                f"{figures['send_only']:.0f}/s")  # fmt: skip
    numbers = {k: v for k, v in figures.items() if isinstance(v, int | float)}
    return ", ".join(f"{k} {v:.4g}" for k, v in list(numbers.items())[:6])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="e.g. deid submit")
    args = parser.parse_args()
    benches = sorted(BENCH.glob("*_bench.py"))
    if args.only:
        benches = [b for b in benches if b.stem.removesuffix("_bench") in args.only]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bench in benches:
            name = bench.stem.removesuffix("_bench")
            out = Path(tmp) / f"{name}.json"
            print(f"== {name} ({bench.name})", flush=True)
            start = time.monotonic()
            # a benchmark that takes --json hands its figures over; others only print
            extra = ["--json", str(out)] if '"--json"' in bench.read_text() else []
            done = subprocess.run([sys.executable, str(bench), *extra], check=False)
            seconds = time.monotonic() - start
            figures = json.loads(out.read_text()) if out.exists() else {}
            status = "ok" if done.returncode == 0 else f"failed ({done.returncode})"
            rows.append((name, status, seconds, headline(name, figures) if figures else ""))
            print(flush=True)
    print("== report")
    width = max((len(r[0]) for r in rows), default=5)
    for name, status, seconds, line in rows:
        print(f"{name:<{width}}  {status:<12} {seconds:6.0f}s  {line}")
    if any(r[1] != "ok" for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
