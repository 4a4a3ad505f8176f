"""The ``ctmd-validate`` command line. The only module that prints or exits.

Exit codes: 0 no error findings, 1 error findings, 2 the tool could not run.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
import textwrap
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from . import __version__
from .archive import is_archive
from .cache import CACHE_ENV, RunCache
from .catalogue import catalogue_markdown, update_block
from .checks import REGISTRY, check_ids
from .engine import MODES, validate
from .errors import CtmdError
from .fixity import hash_files, list_files, sizes_path, write_manifest
from .paths import display, printable, sanitize_message
from .profiles import load_profile
from .report import Report, check_report_target, write_atomic
from .scan import ProgressFn
from .synth import DEFECTS, LAYOUTS, SCALES, apply_defect, write_archive, write_dataset

EXIT_OK, EXIT_FINDINGS, EXIT_CANNOT_RUN = 0, 1, 2


@contextmanager
def _progress(enabled: bool) -> Iterator[ProgressFn | None]:
    """A rich progress bar on stderr, only when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("reading DICOM headers", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def out(text: str) -> None:
    """Print a line to stdout; once the reader has gone (``| head``), print nothing more.

    Like Unix tools under SIGPIPE, a closed pipe ends the output silently; the run still
    finishes, writes its report and returns its verdict. So does a closed stdout
    (``>&-``: ``sys.stdout`` is None) or one that refuses writes (``EBADF``).
    """
    if _stdout.closed:
        return
    if sys.stdout is None:
        _stdout.closed = True
        return
    try:
        _write_line(sys.stdout, text)
    except (OSError, ValueError):  # BrokenPipeError, EBADF, a closed file object
        _close_stdout()


def _write_line(stream: TextIO, text: str) -> None:
    """Write and flush one line, escaped; what the stream cannot encode is escaped too."""
    line = printable(text) + "\n"
    try:
        stream.write(line)
    except UnicodeEncodeError:  # a stream that is not UTF-8 (PYTHONIOENCODING=ascii)
        encoding = stream.encoding or "ascii"
        stream.write(line.encode(encoding, "backslashreplace").decode(encoding))
    stream.flush()


@dataclass
class _Stdout:
    closed: bool = False


_stdout = _Stdout()


def _close_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush stays quiet."""
    _stdout.closed = True
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _hold_standard_fds() -> None:
    """Put /dev/null on a closed fd 0, 1 or 2 (``check … >&-``).

    Else the next file opened (a DICOM file, the report's temporary file) would get that
    number, and anything that writes to "stdout" (a worker process, a library) would write
    into it.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDWR)
            except OSError:
                return
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def _write_report(report: Report, target: str | None, labels: str | None = None) -> str | None:
    if target is None:
        return None
    if target == "-":
        out(report.dumps().rstrip("\n"))
        return "stdout"
    report.write(target, labels)
    return display(str(Path(target)))


#: Options of ``check`` that name a file or folder: an empty one is refused, never read as
#: the current folder (``Path("")`` is ``.``).
_PATH_OPTIONS = {
    "root": "the dataset root",
    "profile": "--profile",
    "report": "--report",
    "config": "--config",
    "policy": "--policy",
    "labels": "--labels",
    "baseline": "--baseline",
    "manifest": "--manifest",
    "html": "--html",
}


def _run_check(args: argparse.Namespace) -> int:
    for name, what in _PATH_OPTIONS.items():
        if getattr(args, name) == "":
            raise CtmdError(f"{what} is empty: give a path (or '.' for the current folder)")
    root = Path(args.root)
    if not root.is_dir() and not is_archive(root):
        raise CtmdError(
            f"dataset root is not a readable folder or zip archive: {display(args.root)}"
        )
    if args.report not in (None, "-"):
        check_report_target(args.report, root, args.labels)  # before any scanning
    if args.html is not None:
        check_report_target(args.html, root, args.labels)
    with _progress(not args.quiet) as progress:
        report = validate(
            args.root,
            args.profile,
            config=args.config,
            jobs=args.jobs,
            progress=progress,
            policy=args.policy,
            show_values=args.show_values,
            labels_dir=args.labels,
            baseline=args.baseline,
            mode=args.mode,
            deep=args.deep,
            cache=None if args.no_cache else RunCache(),
            manifest=args.manifest,
            fast=args.fast,
            archive_md5=getattr(args, "archive_md5", None),
        )
    where = _write_report(report, args.report, args.labels)
    html_at = None
    if args.html is not None:
        from .html import render_html

        page = check_report_target(args.html, root, args.labels)
        write_atomic(page, render_html(report.to_json()))
        html_at = display(str(Path(args.html)))
    if args.report != "-":
        per_group = None if args.max_lines == 0 else args.max_lines
        out(report.summary(per_group=per_group, errors_only=args.errors_only, by_case=args.by_case))
        if where:
            out(f"report: {where}")
        if html_at:
            out(f"html: {html_at}")
    return report.exit_code


def _run_manifest_build(args: argparse.Namespace) -> int:
    for value, what in ((args.root, "the dataset root"), (args.output, "-o")):
        if value == "":
            raise CtmdError(f"{what} is empty: give a path")
    listed, skipped = list_files(args.root, [args.output, str(sizes_path(args.output))])
    hashed = hash_files(args.root, listed, jobs=args.jobs)
    unreadable = [f for f in hashed if f.error]
    for f in unreadable:
        _err(f"ctmd-validate: cannot read {display(f.path)}: {f.error}")
    if unreadable:
        raise CtmdError(f"{len(unreadable)} files could not be read: no manifest written")
    manifest, sizes = write_manifest(hashed, args.output, root=args.root)
    total = sum(f.size for f in hashed)
    out(
        f"wrote {display(str(manifest))}: {len(hashed)} files, {total:,} bytes "
        f"(sizes: {display(str(sizes))})"
    )
    for rel in skipped:
        out(f"  not in the manifest (a link, special file or unreadable folder): {display(rel)}")
    return EXIT_FINDINGS if skipped else EXIT_OK


def _run_manifest_verify(args: argparse.Namespace) -> int:
    args.mode = "fixity"
    args.deep = False
    return _run_check(args)


def _run_synth(args: argparse.Namespace) -> int:
    if args.out == "":
        raise CtmdError("the output folder is empty: give a path (or '.' for the current folder)")
    defects = args.defect or ()
    zipped = [d for d in defects if DEFECTS[d].archive]
    root = write_dataset(
        args.out,
        scale=args.scale,
        layout=args.layout,
        defects=[d for d in defects if not DEFECTS[d].archive],
        seed=args.seed,
        jobs=args.jobs,
    )
    n = sum(1 for _ in root.rglob("*.dcm"))
    out(
        f"wrote a synthetic COVID-CT-MD tree ({args.scale}, {args.layout} layout, "
        f"{n} DICOM files) to {display(str(root))}"
    )
    if zipped:
        archive = write_archive(root, root.with_name(root.name + ".zip"))
        for name in zipped:
            apply_defect(archive, name)
        out(f"and zipped it to {display(str(archive))}")
    for name in defects:
        out(f"  defect {name}: {DEFECTS[name].description}")
    return EXIT_OK


def _run_demo(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="ctmd-demo-"))
    root = work / "COVID-CT-MD"
    out(f"building a small synthetic dataset in {root} …")
    write_dataset(root, scale="small", defects=args.defect or (), jobs=args.jobs)
    with _progress(True) as progress:
        report = validate(root, "subset", jobs=args.jobs, progress=progress)
    report_path = _write_report(report, str(work / "report.json"))
    out(report.summary())
    out(f"report: {report_path}")
    return report.exit_code


def _run_explain(args: argparse.Namespace) -> int:
    ids = check_ids([args.id])
    if not ids:
        close = difflib.get_close_matches(args.id, sorted(REGISTRY), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise CtmdError(f"no check id matches {printable(args.id)!r}{hint}")
    for i, check_id in enumerate(ids):
        spec = REGISTRY[check_id]
        if i:
            out("")
        out(f"{check_id}  ({spec.severity.value}, per {spec.scope})")
        for line in textwrap.wrap(spec.why, 88):
            out(f"  {line}")
        if spec.fix:
            out("")
            for j, line in enumerate(textwrap.wrap(spec.fix, 88)):
                out(f"  {'Fix: ' if j == 0 else '     '}{line}")
    return EXIT_OK


def _run_catalogue(args: argparse.Namespace) -> int:
    if args.update is None:
        out(catalogue_markdown().rstrip("\n"))
        return EXIT_OK
    path = Path(args.update)
    path.write_text(update_block(path.read_text(encoding="utf-8")), encoding="utf-8")
    out(f"updated the check catalogue in {path}")
    return EXIT_OK


def _add_manifest_options(p: argparse.ArgumentParser, *, positional: bool) -> None:
    if positional:
        p.add_argument("manifest", help="manifest-sha256.txt (ours, bagit's or sha256sum's)")
    else:
        p.add_argument(
            "--manifest",
            metavar="FILE",
            help="compare every file with this SHA-256 manifest (BagIt or sha256sum format)",
        )
    p.add_argument(
        "--fast",
        action="store_true",
        help="with a manifest: compare sizes only (needs its .sizes.txt companion)",
    )


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:  # noqa: PLR0915  (one declaration per option)
    parser = argparse.ArgumentParser(
        prog="ctmd-validate",
        description="Validate a copy of the COVID-CT-MD chest-CT dataset.",
        epilog="exit codes: 0 no error findings, 1 error findings, 2 could not run",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="validate a dataset folder")
    p.add_argument(
        "root",
        help="dataset root (class folders directly or one folder below), or the zip archive "
        "as downloaded (read member by member, never extracted)",
    )
    p.add_argument(
        "--profile",
        default="release",
        help="release | subset | path to a profile TOML (default: release)",
    )
    p.add_argument("--report", metavar="FILE", help="write the JSON report here ('-': stdout)")
    p.add_argument("--jobs", type=int, default=None, help="parallel processes (default: all cores)")
    p.add_argument("--config", metavar="FILE", help="severity overrides and waivers (TOML/JSON)")
    p.add_argument(
        "--policy",
        metavar="FILE",
        help="de-identification policy TOML (default: the dataset's claim)",
    )
    p.add_argument(
        "--labels",
        metavar="DIR",
        help="folder with Index.csv and the label arrays (default: ROOT, else beside the "
        "class folders)",
    )
    p.add_argument(
        "--show-values",
        action="store_true",
        help="show identifying values in findings (never shown otherwise)",
    )
    p.add_argument(
        "--baseline",
        metavar="REPORT",
        help="a report of the release (or of your first run): findings already in it are "
        "'known', listed and not counted, so only new problems fail",
    )
    p.add_argument(
        "--mode",
        choices=sorted(MODES),
        default="full",
        help="full: every check (default); integrity: is my copy complete and intact "
        "(fixity, archive, tree, counts, unreadable files, pixels); fixity: the manifest only",
    )
    _add_manifest_options(p, positional=False)
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    p.add_argument(
        "--archive-md5",
        nargs="?",
        const="published",
        metavar="MD5",
        help="ROOT is the zip as downloaded: compare its MD5 with MD5 (default: the published "
        "one, and its size)",
    )
    p.add_argument(
        "--deep",
        action="store_true",
        help="decode every frame (JPEG Lossless via pylibjpeg) to find damaged pixel data",
    )
    p.add_argument(
        "--errors-only", action="store_true", help="list only error findings on the console"
    )
    p.add_argument(
        "--max-lines",
        type=_non_negative,
        default=3,
        metavar="N",
        help="findings shown per check on the console (default 3; 0: all)",
    )
    p.add_argument(
        "--by-case", action="store_true", help="add a per-case table of findings to the summary"
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help=f"scan again even when the tree is unchanged since the last run (the cache: "
        f"${CACHE_ENV}, else ~/.cache/ctmd-validate)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_check)

    p = sub.add_parser("manifest", help="fixity: build or verify a SHA-256 manifest (BagIt)")
    msub = p.add_subparsers(dest="manifest_command", required=True)
    m = msub.add_parser(
        "build", help="hash every file below ROOT into a BagIt manifest-sha256.txt (+ sizes)"
    )
    m.add_argument("root", help="the dataset root")
    m.add_argument("-o", "--output", required=True, metavar="FILE", help="manifest to write")
    m.add_argument("--jobs", type=int, default=None, help="hashing threads (default: all cores)")
    m.set_defaults(func=_run_manifest_build)
    m = msub.add_parser("verify", help="compare the copy at ROOT with a manifest")
    m.add_argument("root", help="the dataset root")
    _add_manifest_options(m, positional=True)
    m.add_argument("--profile", default="subset", help=argparse.SUPPRESS)
    m.add_argument("--report", metavar="FILE", help="write the JSON report here ('-': stdout)")
    m.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    m.add_argument("--jobs", type=int, default=None, help="hashing threads (default: all cores)")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.add_argument(
        "--show-values",
        action="store_true",
        help="show the names of missing files (never shown otherwise: they may hold IDs)",
    )
    m.add_argument(
        "--max-lines",
        type=_non_negative,
        default=20,
        metavar="N",
        help="files shown per kind of difference (default 20; 0: all)",
    )
    m.set_defaults(
        func=_run_manifest_verify,
        config=None,
        policy=None,
        labels=None,
        baseline=None,
        errors_only=False,
        by_case=False,
        no_cache=False,
    )

    p = sub.add_parser("explain", help="what a check means and how to fix what it finds")
    p.add_argument("id", help="a check id or an fnmatch pattern (labels.index.*)")
    p.set_defaults(func=_run_explain)

    p = sub.add_parser("synth", help="write a synthetic COVID-CT-MD tree")
    p.add_argument("out", help="output folder (absent or empty)")
    p.add_argument("--scale", choices=sorted(SCALES), default="small")
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="readme")
    p.add_argument(
        "--defect",
        action="append",
        choices=sorted(DEFECTS),
        metavar="NAME",
        help=f"inject a defect (repeatable): {', '.join(sorted(DEFECTS))}",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=None)
    p.set_defaults(func=_run_synth)

    p = sub.add_parser("demo", help="build a small synthetic dataset and validate it")
    p.add_argument(
        "--defect",
        action="append",
        choices=sorted(n for n, d in DEFECTS.items() if not d.archive),
        metavar="NAME",
        help="inject a defect to see what findings look like",
    )
    p.add_argument("--jobs", type=int, default=None)
    p.set_defaults(func=_run_demo)

    p = sub.add_parser("catalogue", help="print the check catalogue (Markdown)")
    p.add_argument(
        "--update",
        metavar="FILE",
        help="rewrite the catalogue block of a Markdown file (e.g. README.md)",
    )
    p.set_defaults(func=_run_catalogue)
    return parser


def _err(text: str) -> None:
    """Print to stderr; a closed or broken stderr loses the text, never the exit code."""
    if sys.stderr is None:
        return
    with suppress(OSError, ValueError):
        _write_line(sys.stderr, text)


def _error(message: str) -> None:
    _err(f"ctmd-validate: error: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    _hold_standard_fds()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "profile", None):
            load_profile(args.profile)  # fail fast, before any work
        return int(args.func(args))
    except CtmdError as exc:
        _error(str(exc))
        return EXIT_CANNOT_RUN
    except BrokenPipeError:
        _close_stdout()
        return EXIT_CANNOT_RUN
    except OSError as exc:
        where = f": {display(str(exc.filename))}" if exc.filename else ""
        _error(f"{exc.strerror}{where}" if exc.strerror else str(exc))
        return EXIT_CANNOT_RUN
    except ValueError as exc:
        _error(sanitize_message(str(exc)))
        return EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        return EXIT_CANNOT_RUN
    except Exception as exc:
        # the traceback's frames are our code; its last line may quote data: sanitise it
        frames = "".join(traceback.format_tb(exc.__traceback__))
        last = sanitize_message(f"{type(exc).__name__}: {exc}")
        _err(f"ctmd-validate: internal error, please report:\n{frames}{last}")
        return EXIT_CANNOT_RUN


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
