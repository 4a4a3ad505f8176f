"""Time ``fixity.hash_files`` against ``sha256sum`` over the same files, same run.

Usage::

    python benchmarks/bench_fixity.py [--files 200] [--size-mb 1024] [--jobs 2] [--repeat 3]

Writes ``--files`` files of random bytes totalling ``--size-mb`` MB into a temporary folder
(deleted afterwards), reads each once so that every contender reads from the page cache,
then times, ``--repeat`` times in turn (the best run of each counts):

- ``sha256sum``: one process, the file list on its command line in batches (no xargs);
- ``sha256sum xJ``: ``--jobs`` such processes at once, each over its share of the batches;
- ``hash_files jobs=1`` and ``hash_files jobs=J``.

Every contender's digests are checked against the others'. Prints MB/s (10^6 bytes) and
the ratio of each ``hash_files`` run to the one-process ``sha256sum`` (above 1: faster).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ctmd_validate import fixity

BATCH = 50  # paths per sha256sum command line


def make_files(root: Path, count: int, total: int) -> list[Path]:
    size = total // count
    paths = []
    for i in range(count):
        path = root / f"case {i // 50:03}" / f"IM{i:05}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            left = size
            while left:
                chunk = os.urandom(min(left, 8 << 20))
                fh.write(chunk)
                left -= len(chunk)
        paths.append(path)
    return paths


def warm(paths: list[Path]) -> None:
    """Read every file once so that all contenders read from memory."""
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while fh.read(8 << 20):
                pass


def sha256sum(root: Path, rels: list[str], procs: int) -> tuple[float, dict[str, str]]:
    """``sha256sum`` over ``rels`` (cwd=root) in ``procs`` concurrent processes; digests."""
    batches = [rels[i : i + BATCH] for i in range(0, len(rels), BATCH)]
    shares = [batches[i::procs] for i in range(procs)]
    with contextlib.ExitStack() as stack:
        # one shell script per process (a -c argument is capped at 128 KiB); output into
        # files, so that no pipe fills up and stalls a process
        scripts = [stack.enter_context(tempfile.NamedTemporaryFile("w")) for _ in shares]
        for share, script in zip(shares, scripts, strict=True):
            script.write("set -e\n")
            script.writelines("sha256sum -- " + " ".join(map(quote, b)) + "\n" for b in share)
            script.flush()
        sinks = [stack.enter_context(tempfile.TemporaryFile()) for _ in shares]
        started = time.perf_counter()
        running = [
            subprocess.Popen(["sh", script.name], cwd=root, stdout=sink)
            for script, sink in zip(scripts, sinks, strict=True)
        ]
        for proc in running:
            if proc.wait():
                raise SystemExit(f"sha256sum failed ({proc.returncode})")
        elapsed = time.perf_counter() - started
        outputs: list[bytes] = []
        for sink in sinks:
            sink.seek(0)
            outputs.append(sink.read())
    digests = {}
    for out in outputs:
        for line in out.decode().splitlines():
            digest, name = line.split("  ", 1)
            digests[name] = digest
    return elapsed, digests


def quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def tool(root: Path, files: list[tuple[str, str, int]], jobs: int) -> tuple[float, dict[str, str]]:
    started = time.perf_counter()
    hashed = fixity.hash_files(root, files, jobs=jobs)
    elapsed = time.perf_counter() - started
    if any(f.error for f in hashed):
        raise SystemExit("hash_files could not read a file")
    return elapsed, {f.path: f.sha256 or "" for f in hashed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size-mb", type=int, default=1024, help="total size in MB (10^6)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary folder goes")
    parser.add_argument(
        "--buffer-mib", type=int, default=None, help="fixity.BUFFER_SIZE for this run (MiB)"
    )
    args = parser.parse_args()
    if shutil.which("sha256sum") is None:
        raise SystemExit("sha256sum not found")
    if args.buffer_mib:
        fixity.BUFFER_SIZE = args.buffer_mib << 20
    total = args.size_mb * 10**6
    tmp = Path(tempfile.mkdtemp(prefix="ctmd-bench-fixity-", dir=args.dir))
    try:
        paths = make_files(tmp, args.files, total)
        files, _ = fixity.list_files(tmp)
        rels = [rel for rel, _, _ in files]
        nbytes = sum(size for _, _, size in files)
        warm(paths)
        best: dict[str, float] = {}
        reference: dict[str, str] | None = None
        contenders = {
            "sha256sum": lambda: sha256sum(tmp, rels, 1),
            f"sha256sum x{args.jobs}": lambda: sha256sum(tmp, rels, args.jobs),
            "hash_files jobs=1": lambda: tool(tmp, files, 1),
            f"hash_files jobs={args.jobs}": lambda: tool(tmp, files, args.jobs),
        }
        for _ in range(args.repeat):
            for name, run in contenders.items():
                elapsed, digests = run()
                if reference is None:
                    reference = digests
                elif digests != reference:
                    raise SystemExit(f"{name}: digests differ from sha256sum's")
                best[name] = min(best.get(name, elapsed), elapsed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{len(files)} files, {nbytes / 1e6:,.0f} MB, page cache warm, best of {args.repeat}; "
        f"Python {sys.version.split()[0]}, buffer {fixity.BUFFER_SIZE >> 20} MiB, "
        f"{os.cpu_count()} CPUs"
    )
    base = nbytes / best["sha256sum"] / 1e6
    for name, elapsed in best.items():
        rate = nbytes / elapsed / 1e6
        print(f"  {name:<20} {elapsed:7.3f} s  {rate:8.1f} MB/s  ratio {rate / base:5.2f}")


if __name__ == "__main__":
    main()
