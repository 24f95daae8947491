"""The core benchmarks of two versions of the SDK, side by side in one run.

    python benchmarks/ab.py REV                    # cost, throughput, request; 3 rounds
    python benchmarks/ab.py REV throughput --rounds 5

REV (any git revision: a commit, ``main``, ``HEAD~3``) is exported to a
temporary folder and imported from there as ``dunetrace``; the working tree
is the other side. Each round runs ``bench_core.py PART`` once per version,
in child processes, alternating which goes first, so the machine's drift
hits both alike. Printed: each side's median over the rounds for every row,
the ratio working tree / REV (for caller cost, lower is better; for
events/s, higher is), and every round's pair.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent

#: A row of ``bench_core.py cost`` (name, median us) or ``throughput``
#: (label, events/s).
ROWS = {
    "cost": re.compile(r"^(run\.\S.*?|floor \(.*?\))\s{2,}([\d.]+)\s+[\d.]+\s+[\d.]+$"),
    "throughput": re.compile(r"^\s*(.+?\))\s+([\d,]+)\s+\d+\s+\d+\s+\d+$"),
    "request": re.compile(r"^(best|median)\s+([\d.]+)$"),
}


def export(rev: str, into: pathlib.Path) -> None:
    command = ["git", "-C", str(REPO), "archive", rev, "dunetrace_core"]
    archive = subprocess.run(command, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    (into / "dunetrace").symlink_to("dunetrace_core")


def measure(part: str, path: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = path + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, str(HERE / "bench_core.py"), part], capture_output=True, text=True, env=env, check=True
    ).stdout
    rows = {}
    for line in out.splitlines():
        match = ROWS[part].match(line)
        if match:
            rows[match.group(1).strip()] = float(match.group(2).replace(",", ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev")
    parser.add_argument("parts", nargs="*", help="cost, throughput, request (default: all three)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    parts = args.parts or ["cost", "throughput", "request"]
    unknown = sorted(set(parts) - set(ROWS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(sorted(ROWS))}")
    with tempfile.TemporaryDirectory() as tmp:
        export(args.rev, pathlib.Path(tmp))
        for part in parts:
            results: dict[str, dict[str, list[float]]] = {"rev": {}, "tree": {}}
            for i in range(args.rounds):
                order = [("rev", tmp), ("tree", None)]
                for side, path in order if i % 2 == 0 else order[::-1]:
                    for row, value in measure(part, path).items():
                        results[side].setdefault(row, []).append(value)
            unit = {"cost": "median us", "throughput": "events/s", "request": "CPU us"}[part]
            print(f"\n{part}: {args.rev} vs working tree, {args.rounds} rounds ({unit}, median of rounds)")
            for row, values in results["tree"].items():
                before = statistics.median(results["rev"].get(row, [float("nan")]))
                after = statistics.median(values)
                shape = "{:,.0f}/{:,.0f}" if part == "throughput" else "{:,.2f}/{:,.2f}"
                rounds = " ".join(shape.format(b, a) for b, a in zip(results["rev"].get(row, []), values, strict=False))
                print(f"{row:48} {before:12,.2f} {after:12,.2f} {after / before:8.3f}x   rounds {rounds}")


if __name__ == "__main__":
    main()
