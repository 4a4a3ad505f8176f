"""Time ``validate(deep=True)`` against a bare pydicom decode loop, same run.

Usage::

    python benchmarks/bench_deep.py [ROOT] [--repeat 3] [--profile subset] [--cprofile N]

ROOT defaults to the real public sample (``../shared/data/covid-ct-md-sample`` beside the
repository: 470 JPEG Lossless slices). Every file is read once first, so every contender
decodes from the page cache. Then, ``--repeat`` times each (the best run counts):

- **loop x1**: one process, ``pydicom.dcmread(path).pixel_array`` for every ``.dcm`` file;
- **loop x2**: the same loop over 2 processes (``ProcessPoolExecutor``, chunks of files,
  the pool's start-up included, as it is in the tool);
- **tool**: ``validate(root, profile, jobs=J, deep=D, cache=None)`` in this process, for
  J in 1, 2 and D in False, True; ``deep - shallow`` is the decode's own cost inside the
  tool (the header scan, the checks and the report are in both).

Prints seconds, files per second and the ratios tool / loop (above 1: the tool is slower).
Target in the issue: a deep run's throughput within 20 % of a bare decode loop (ratio
<= 1.25 in time). ``--cprofile N``: also profile one ``jobs=1`` deep run and print the N
costliest functions (cumulative), to see where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pydicom

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared/data/covid-ct-md-sample"


def dicom_files(root: Path) -> list[str]:
    out: list[str] = []
    for dirpath, _dirs, files in os.walk(root):
        out.extend(os.path.join(dirpath, f) for f in files if f.lower().endswith(".dcm"))
    return sorted(out)


def decode_all(files: list[str]) -> int:
    """The reference: read each file and decode its pixels; returns the values decoded."""
    values = 0
    for f in files:
        values += pydicom.dcmread(f).pixel_array.size
    return values


def loop(files: list[str]) -> float:
    started = time.perf_counter()
    decode_all(files)
    return time.perf_counter() - started


def loop_parallel(files: list[str], jobs: int) -> float:
    """The loop over ``jobs`` processes, chunked as the tool's scan chunks its files."""
    size = max(8, min(256, len(files) // (jobs * 8) or 8))
    chunks = [files[i : i + size] for i in range(0, len(files), size)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        values = sum(pool.map(decode_all, chunks))
    seconds = time.perf_counter() - started
    assert values > 0
    return seconds


def tool(root: Path, profile: str, jobs: int, deep: bool) -> float:
    from ctmd_validate.engine import run_validation

    started = time.perf_counter()
    result = run_validation(root, profile, jobs=jobs, deep=deep, cache=None)
    seconds = time.perf_counter() - started
    if deep:
        files = result.scan.files
        bad = files[files["pixel_status"] != "ok"] if "pixel_status" in files else files
        if len(bad):
            sys.exit(f"deep run: {len(bad)} files not decoded")
    return seconds


def best(fn: Callable[[], float], repeat: int) -> tuple[float, list[float]]:
    runs = [fn() for _ in range(repeat)]
    return min(runs), runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("root", nargs="?", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--profile", default="subset")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cprofile", type=int, default=0, metavar="N")
    args = parser.parse_args()

    files = dicom_files(args.root)
    if not files:
        sys.exit(f"no .dcm file under {args.root}")
    for f in files:  # into the page cache
        with open(f, "rb") as fh:
            fh.read()
    # imports and the decoder plugins loaded once, outside every timing
    pydicom.dcmread(files[0]).pixel_array  # noqa: B018
    tool(args.root, args.profile, 1, True)
    n = len(files)
    print(f"{n} DICOM files under {args.root}; {os.cpu_count()} cores", flush=True)

    def line(label: str, seconds: float, runs: list[float]) -> None:
        shown = " / ".join(f"{r:.2f}" for r in runs)
        print(f"{label:<34}: {seconds:7.2f} s ({n / seconds:6,.0f} files/s; runs {shown})")

    rows: dict[str, float] = {}
    contenders: list[tuple[str, Callable[[], float]]] = [
        ("loop x1", lambda: loop(files)),
        ("loop x2", lambda: loop_parallel(files, 2)),
        ("tool jobs=1 shallow", lambda: tool(args.root, args.profile, 1, False)),
        ("tool jobs=1 deep", lambda: tool(args.root, args.profile, 1, True)),
        ("tool jobs=2 shallow", lambda: tool(args.root, args.profile, 2, False)),
        ("tool jobs=2 deep", lambda: tool(args.root, args.profile, 2, True)),
    ]
    for label, fn in contenders:
        rows[label], runs = best(fn, args.repeat)
        line(label, rows[label], runs)
    for jobs in (1, 2):
        cost = rows[f"tool jobs={jobs} deep"] - rows[f"tool jobs={jobs} shallow"]
        print(f"{f'decode in tool jobs={jobs} (deep - shallow)':<34}: {cost:7.2f} s")
    print()
    for jobs in (1, 2):
        base = rows[f"loop x{jobs}"]
        deep = rows[f"tool jobs={jobs} deep"]
        cost = deep - rows[f"tool jobs={jobs} shallow"]
        print(f"ratio tool deep jobs={jobs} / loop x{jobs}         : {deep / base:6.2f}")
        print(f"ratio (deep - shallow) jobs={jobs} / loop x{jobs}  : {cost / base:6.2f}")

    if args.cprofile:
        from ctmd_validate.engine import validate

        prof = cProfile.Profile()
        prof.enable()
        validate(args.root, args.profile, jobs=1, deep=True, cache=None)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(args.cprofile)
        print("\ncProfile of one jobs=1 deep run (cumulative):")
        print(out.getvalue())


if __name__ == "__main__":
    main()
