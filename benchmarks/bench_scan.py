"""Time ``ctmd-validate check`` against a bare one-process pydicom header loop, same run.

Usage::

    python benchmarks/bench_scan.py [--root PATH] [--scale release|small] [--jobs N]

Without ``--root`` it writes a synthetic replica (``--scale release``: the 45,471-file
release) into a temporary folder, or reuses ``--cache DIR`` if it already holds one. The
replica's headers are as heavy as the real release's (``write_dataset(vendor=True)``:
private blocks, sequences, CT acquisition attributes; ``--light`` for the essentials
alone), and the tool reads it with a policy that lists its private creators as safe, so
the run is clean. The shape of the headers (elements, private elements, sequences, value
bytes per file) is printed for the tree and, when present, for the real public sample.
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
from pydicom.dataset import Dataset

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "covid-ct-md-sample"


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


def header_shape(files: list[str], n: int = 40) -> str:
    """Median elements, private elements, sequences and value bytes per header (``n`` files)."""
    step = max(1, len(files) // n)
    rows = []
    for f in files[::step][:n]:
        counts = [0, 0, 0, 0]  # elements, private, sequences, value bytes

        def walk(ds: Dataset, counts: list[int] = counts) -> None:
            for elem in ds:
                counts[0] += 1
                counts[1] += elem.tag.is_private
                if elem.VR == "SQ":
                    counts[2] += 1
                    for item in elem.value:
                        walk(item)
                else:
                    counts[3] += len(elem.value) if isinstance(elem.value, str | bytes) else 8

        walk(pydicom.dcmread(f, stop_before_pixels=True))
        rows.append(counts)
    med = [sorted(col)[len(col) // 2] for col in zip(*rows, strict=True)]
    return (
        f"{med[0]} elements ({med[1]} private, {med[2]} sequences), {med[3]:,} value bytes "
        f"per header (median of {len(rows)} files)"
    )


def safe_policy(folder: Path) -> Path:
    """The dataset's policy, with the replica's synthetic private creators declared safe."""
    from ctmd_validate.resources import schema_dir
    from ctmd_validate.synth.headers import SYNTH_PRIVATE_CREATORS

    text = (schema_dir() / "deid" / "ctmd-default.toml").read_text(encoding="utf-8")
    creators = ", ".join(f'"{c}"' for c in SYNTH_PRIVATE_CREATORS)
    assert "safe_private = []" in text
    path = folder / "bench-policy.toml"
    path.write_text(text.replace("safe_private = []", f"safe_private = [{creators}]"))
    return path


def tool(
    root: Path, profile: str, jobs: int | None, policy: Path | None = None
) -> tuple[float, float, str]:
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
            "--no-cache",  # every run scans: a cached re-run is bench_cache.py's subject
        ]
        if jobs:
            cmd += ["--jobs", str(jobs)]
        if policy:
            cmd += ["--policy", str(policy)]
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
    parser.add_argument("--light", action="store_true", help="replica without vendor headers")
    parser.add_argument(
        "--scaling", action="store_true", help="also time --jobs 1 and 2: the parallel speed-up"
    )
    args = parser.parse_args()

    root = args.root
    policy = None
    if root is None:
        from ctmd_validate.synth import write_dataset

        base = args.cache or Path(tempfile.mkdtemp(prefix="ctmd-bench-"))
        root = base / f"replica-{args.scale}{'' if args.light else '-vendor'}"
        if not root.exists():
            print(f"writing the {args.scale} replica to {root} …", flush=True)
            started = time.perf_counter()
            write_dataset(root, scale=args.scale, vendor=not args.light)
            print(f"  written in {time.perf_counter() - started:.1f} s", flush=True)
        policy = None if args.light else safe_policy(base)
    profile = args.profile or ("release" if args.scale == "release" else "subset")

    files = dicom_files(root)
    print(f"{len(files)} DICOM files under {root}; {os.cpu_count()} cores", flush=True)
    print(f"headers   this tree: {header_shape(files)}", flush=True)
    if SAMPLE.is_dir() and SAMPLE.resolve() != root.resolve():
        print(f"          real sample: {header_shape(dicom_files(SAMPLE))}", flush=True)
    first = baseline(files)
    seconds, peak_mb, summary = tool(root, profile, args.jobs, policy)
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
    if args.scaling:
        one = tool(root, profile, 1, policy)[0]
        two = tool(root, profile, 2, policy)[0]
        print(f"scaling   --jobs 1 {one:.2f} s, --jobs 2 {two:.2f} s: {one / two:.2f}x")


if __name__ == "__main__":
    main()
