"""Time ``ctmd-validate check`` against a bare one-process pydicom header loop, same run.

Usage::

    python benchmarks/bench_scan.py [--root PATH] [--scale release|small] [--jobs N]

Without ``--root`` it writes a synthetic replica (``--scale release``: the 45,471-file
release) into a temporary folder, or reuses ``--cache DIR`` if it already holds one.
Both contenders read the same files; the baseline runs first and last (its faster run is
kept) so that neither profits alone from a warm page cache. Prints seconds, files per second,
peak memory and the ratio tool / baseline (below 1: the tool is faster than the bare loop).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom


def dicom_files(root: Path) -> list[str]:
    out: list[str] = []
    for dirpath, _dirs, files in os.walk(root):
        out.extend(os.path.join(dirpath, f) for f in files if f.lower().endswith(".dcm"))
    return sorted(out)


def baseline(files: list[str]) -> float:
    """The reference: one process, ``dcmread(stop_before_pixels=True)`` on every file."""
    started = time.perf_counter()
    for f in files:
        pydicom.dcmread(f, stop_before_pixels=True)
    return time.perf_counter() - started


def tool(root: Path, profile: str, jobs: int | None) -> tuple[float, float, str]:
    """The whole ``ctmd-validate check`` run in a fresh process: scan, tables, checks, report."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [
            sys.executable,
            "-m",
            "ctmd_validate",
            "check",
            str(root),
            "--profile",
            profile,
            "--report",
            str(report),
            "--quiet",
        ]
        if jobs:
            cmd += ["--jobs", str(jobs)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode not in (0, 1):
            sys.exit(f"ctmd-validate failed ({proc.returncode}):\n{proc.stderr}")
        # verdict, labels' slice order, infected totals vs the published figure
        summary = "\n          ".join(proc.stdout.splitlines()[2:5])
    return seconds, max(peak, before) / 1024, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", type=Path, help="an existing dataset tree")
    parser.add_argument("--scale", default="release", choices=["release", "small", "tiny"])
    parser.add_argument("--cache", type=Path, help="where to keep the synthetic replica")
    parser.add_argument("--profile", default=None, help="default: release for the replica")
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()

    root = args.root
    if root is None:
        from ctmd_validate.synth import write_dataset

        base = args.cache or Path(tempfile.mkdtemp(prefix="ctmd-bench-"))
        root = base / f"replica-{args.scale}"
        if not root.exists():
            print(f"writing the {args.scale} replica to {root} …", flush=True)
            started = time.perf_counter()
            write_dataset(root, scale=args.scale)
            print(f"  written in {time.perf_counter() - started:.1f} s", flush=True)
    profile = args.profile or ("release" if args.scale == "release" else "subset")

    files = dicom_files(root)
    print(f"{len(files)} DICOM files under {root}; {os.cpu_count()} cores", flush=True)
    first = baseline(files)
    seconds, peak_mb, summary = tool(root, profile, args.jobs)
    second = baseline(files)
    base = min(first, second)
    print(
        f"baseline  bare pydicom loop, 1 process : {base:8.2f} s "
        f"({len(files) / base:,.0f} files/s; runs {first:.2f} / {second:.2f})"
    )
    print(
        f"tool      ctmd-validate check          : {seconds:8.2f} s "
        f"({len(files) / seconds:,.0f} files/s; peak RSS {peak_mb:,.0f} MiB)"
    )
    print(f"          {summary}")
    print(f"ratio     tool / baseline              : {seconds / base:8.2f}")


if __name__ == "__main__":
    main()
