"""Time a re-run over an unchanged tree with the run cache against the first run, same script.

Usage::

    python benchmarks/bench_cache.py [--root PATH] [--cache /tmp/ctmd-bench] [--scale small]

Without ``--root`` it uses the synthetic release replica ``DIR/replica-release`` when
``--cache DIR`` (default ``/tmp/ctmd-bench``) holds one (``bench_scan.py --cache DIR``
writes it; profile ``release``), else writes a ``--scale small`` tree into a temporary
folder (profile ``subset``). Every file is read once first (page cache). The run cache
lives in a fresh temporary folder, deleted afterwards. In turn, all ``validate(root,
profile, jobs=2, cache=RunCache(tmp))``:

- **first**: empty cache: the scan, every check, the entry written;
- **hit**: the same call again, ``--repeat`` times (the best counts): the tree is unchanged;
- **miss**: after ``os.utime`` of one slice (its ``ctime`` changes: a miss), then its times
  are set back (a second miss, not timed; nothing else of the tree is changed).

Prints seconds, the ratio hit / first (target in the issue: <= 0.1), the entry's size on
disk and what it holds, and where a hit's time goes: ``RunCache.key`` (the package's code
digest and the ``lstat`` walk of the tree), ``RunCache.load`` (reading and unpickling the
entry), and the rest of ``validate`` (config, the fixity checks, the ``Report``), plus
``Report.dumps`` (the JSON report the CLI writes on every run, not part of ``validate``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from ctmd_validate.cache import RunCache, _code_digest, _tree_digest
from ctmd_validate.engine import validate
from ctmd_validate.policy import load_policy
from ctmd_validate.profiles import load_profile

JOBS = 2


def dicom_files(root: Path) -> list[str]:
    out: list[str] = []
    for dirpath, _dirs, files in os.walk(root):
        out.extend(os.path.join(dirpath, f) for f in files if f.lower().endswith(".dcm"))
    return sorted(out)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    runs: list[float] = []
    value = None
    for _ in range(repeat):
        seconds, value = timed(fn)
        runs.append(seconds)
    return min(runs), runs, value


def mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", type=Path, help="an existing dataset tree")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ctmd-bench"))
    parser.add_argument("--scale", default="small", choices=["small", "tiny"])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI measurement")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="ctmd-bench-cache-"))  # 0700
    try:
        root, profile = args.root, args.profile
        if root is None and (args.cache / "replica-release").is_dir():
            root, profile = args.cache / "replica-release", profile or "release"
        elif root is None:
            from ctmd_validate.synth import write_dataset

            root = scratch / f"replica-{args.scale}"
            print(f"writing the {args.scale} replica to {root} …", flush=True)
            write_dataset(root, scale=args.scale)
        run(root, profile or "subset", scratch / "run-cache", args.repeat)
        if not args.no_cli:
            cli(root, profile or "subset", scratch, args.repeat)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(root: Path, profile: str, folder: Path, repeat: int) -> None:
    files = dicom_files(root)
    for f in files:  # into the page cache
        with open(f, "rb") as fh:
            fh.read()
    entries = sum(len(d) + len(f) for _p, d, f in os.walk(root))
    print(
        f"{len(files):,} DICOM files ({entries:,} entries) under {root}; profile {profile}; "
        f"jobs={JOBS}; {os.cpu_count()} cores",
        flush=True,
    )
    cache = RunCache(folder)

    def check(cached: bool) -> Callable[[], Any]:
        def call() -> Any:
            report = validate(root, profile, jobs=JOBS, cache=cache)
            if report.facts.cached is not cached:
                sys.exit(f"expected cached={cached}, got {report.facts.cached}")
            return report

        return call

    first, report = timed(check(False))
    dumps_first, _ = timed(report.dumps)
    hit, hit_runs, report = best(check(True), repeat)
    dumps_hit, _ = timed(report.dumps)

    # where a hit goes: the key (code digest + lstat walk), the load (unpickle), the rest
    prof, pol = load_profile(profile), load_policy()

    def key() -> tuple[str, str]:
        return cache.key(
            os.fspath(root),
            labels_dir=None,
            profile_source=prof.source,
            policy_source=pol.source,
            deep=False,
        )

    t_key, _, entry = best(key, repeat)
    t_code, _, _ = best(lambda: _code_digest(hashlib.sha256()), repeat)
    real = os.path.realpath(root)
    t_walk, _, _ = best(lambda: _tree_digest(real, hashlib.sha256()), repeat)
    t_load, _, cached = best(lambda: cache.load(*entry), repeat)
    if cached is None:
        sys.exit("the entry does not load: did the package's code change during the run?")

    t_store, _, _ = best(lambda: cache.store(*entry, cached), repeat)

    victim = files[len(files) // 2]
    st = os.stat(victim)
    os.utime(victim)
    try:
        miss, _ = timed(check(False))
    finally:
        os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    check(False)()  # the times set back: ctime moved again, one more (untimed) miss
    rest = hit - t_key - t_load
    pickles = sorted(folder.glob("*.pickle"))
    size = sum(p.stat().st_size for p in pickles)

    print(f"first   empty cache               : {first:7.2f} s (Report.dumps {dumps_first:.2f} s)")
    runs = " / ".join(f"{r:.3f}" for r in hit_runs)
    print(
        f"hit     unchanged tree            : {hit:7.3f} s (runs {runs}; dumps {dumps_hit:.2f} s)"
    )
    print(f"miss    one slice touched         : {miss:7.2f} s")
    print(f"ratio   hit / first               : {hit / first:7.3f}   (target <= 0.1)")
    print(f"ratio   hit + dumps / first+dumps : {(hit + dumps_hit) / (first + dumps_first):7.3f}")
    print(f"ratio   miss / first              : {miss / first:7.3f}")
    print(f"entry   {len(pickles)} file(s), {mib(size)} on disk")
    print("hit split (best of each):")
    print(f"  RunCache.key                    : {t_key:7.3f} s ({t_key / hit:4.0%})")
    print(f"    code digest                   : {t_code:7.3f} s")
    print(f"    lstat walk of the tree        : {t_walk:7.3f} s")
    print(f"  RunCache.load (read + unpickle) : {t_load:7.3f} s ({t_load / hit:4.0%})")
    print(f"  rest of validate (report etc.)  : {rest:7.3f} s ({rest / hit:4.0%})")
    print(f"  Report.dumps (CLI, not in hit)  : {dumps_hit:7.3f} s")
    print(f"  (RunCache.store, paid by a first run or a miss: {t_store:.3f} s)")
    print("entry contents (pickled apart, largest first):")
    parts = [(f.name, getattr(cached.scan, f.name)) for f in fields(cached.scan)]
    parts += [("results", cached.results), ("redact", cached.redact)]
    sizes = []
    for name, value in parts:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        t_unpickle, _, _ = best(lambda data=data: pickle.loads(data), repeat)
        sizes.append((len(data), name, t_unpickle, value))
    for n, name, t_unpickle, value in sorted(sizes, key=lambda s: s[0], reverse=True)[:6]:
        shape = f" {value.shape[0]:,} rows" if hasattr(value, "shape") else ""
        print(f"  {name:<12}{shape:>14}: {mib(n):>10}, unpickled in {t_unpickle:.3f} s")


def cli(root: Path, profile: str, scratch: Path, repeat: int) -> None:
    """The same in fresh processes: ``ctmd-validate check`` (start-up and JSON report included)."""
    env = dict(os.environ, CTMD_CACHE_DIR=str(scratch / "cli-cache"))
    cmd = [sys.executable, "-m", "ctmd_validate", "check", str(root), "--profile", profile]
    cmd += ["--jobs", str(JOBS), "--report", str(scratch / "report.json"), "--quiet"]

    def once() -> float:
        started = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode not in (0, 1):
            sys.exit(f"ctmd-validate failed ({proc.returncode}):\n{proc.stderr}")
        return time.perf_counter() - started

    def start_up() -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import ctmd_validate.cli"], env=env, check=True)
        return time.perf_counter() - started

    first = once()
    hit, runs, _ = best(once, repeat)
    imports, _, _ = best(start_up, repeat)
    shown = " / ".join(f"{r:.2f}" for r in runs)
    print("CLI, fresh process each (python -m ctmd_validate check --report FILE):")
    print(f"  first   empty cache             : {first:7.2f} s")
    print(f"  hit     unchanged tree          : {hit:7.2f} s (runs {shown})")
    print(f"  of which python + imports       : {imports:7.2f} s")
    print(f"  ratio   hit / first             : {hit / first:7.3f}   (target <= 0.1)")


if __name__ == "__main__":
    main()
