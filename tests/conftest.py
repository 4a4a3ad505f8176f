"""Shared fixtures: the real public sample (skipped when absent) and synthetic trees."""

from __future__ import annotations

import dataclasses
import os
import shutil
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ctmd_validate import Finding, Report, Run, load_profile, run_validation, synth
from ctmd_validate.cache import CACHE_ENV
from ctmd_validate.profiles import ManifestCase

REPO = Path(__file__).resolve().parent.parent
SAMPLE_ENV = "CTMD_SAMPLE_ROOT"
#: Checks that examine nothing unless asked: --deep (pixels), --manifest (fixity), an
#: archive as ROOT and --archive-md5.
NEED_AN_OPTION = frozenset(
    {
        "archive.md5",
        "archive.unreadable",
        "archive.unsafe_member",
        "integrity.pixel.decode",
        "integrity.pixel.range",
        "integrity.checksum",
        "integrity.extra_file",
        "integrity.manifest",
        "integrity.missing_file",
        "integrity.size",
    }
)


@pytest.fixture(autouse=True, scope="session")
def _private_run_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The CLI's run cache goes to a folder of this session, never the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("ctmd-run-cache")
    folder.chmod(0o700)
    os.environ[CACHE_ENV] = str(folder)


def sample_root_path() -> Path:
    """Where the real sample lives: $CTMD_SAMPLE_ROOT, else ../shared beside the checkout."""
    env = os.environ.get(SAMPLE_ENV)
    if env:
        return Path(env)
    return REPO.parent / "shared" / "data" / "covid-ct-md-sample"


@pytest.fixture(scope="session")
def sample_root() -> Path:
    path = sample_root_path()
    if not (path / "Index.csv").is_file():
        pytest.skip(
            f"real COVID-CT-MD sample not found at {path} "
            f"(set {SAMPLE_ENV} or place ../shared beside the checkout)"
        )
    return path


@pytest.fixture(scope="session")
def sample_run(sample_root: Path) -> Run:
    """The real sample validated once (subset profile): scan tables, views and report."""
    return run_validation(sample_root, "subset", jobs=2)


@pytest.fixture(scope="session")
def sample_report(sample_run: Run) -> Report:
    return sample_run.report


@pytest.fixture(scope="session")
def _clean_trees(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    cache: dict[tuple[str, str], Path] = {}

    def get(scale: str, layout: str) -> Path:
        if (scale, layout) not in cache:
            out = tmp_path_factory.mktemp(f"clean-{scale}-{layout}") / "COVID-CT-MD"
            cache[(scale, layout)] = synth.write_dataset(out, scale=scale, layout=layout, jobs=1)
        return cache[(scale, layout)]

    return get


@pytest.fixture
def make_tree(_clean_trees: Callable[[str, str], Path], tmp_path: Path) -> Callable[..., Path]:
    """A fresh copy of a clean synthetic tree with the named defects applied."""

    def make(defects: Iterable[str] = (), scale: str = "tiny", layout: str = "readme") -> Path:
        dest = tmp_path / f"tree-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(_clean_trees(scale, layout), dest)
        for name in defects:
            synth.apply_defect(dest, name)
        return dest

    return make


@pytest.fixture(scope="session")
def clean_tiny(_clean_trees: Callable[[str, str], Path]) -> Path:
    """A clean tiny tree (one case per class). Read-only: copy it with make_tree to damage it."""
    return _clean_trees("tiny", "readme")


@pytest.fixture(scope="session")
def clean_tiny_run(clean_tiny: Path) -> Run:
    return run_validation(clean_tiny, "subset", jobs=1)


@pytest.fixture(scope="session")
def clean_tiny_report(clean_tiny_run: Run) -> Report:
    return clean_tiny_run.report


def finding_key(f: Finding) -> tuple[object, ...]:
    return (f.check_id, f.severity.value, f.case, f.path, f.message)


def new_findings(report: Report, baseline: Report) -> list[Finding]:
    """Findings of ``report`` that the clean ``baseline`` does not have."""
    base = {finding_key(f) for f in baseline.findings}
    return [f for f in report.findings if finding_key(f) not in base]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry below ``root`` (and root itself) with its mtime and size."""
    st = os.lstat(root)
    out = {".": (st.st_mtime_ns, st.st_size)}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_mtime_ns, st.st_size)
    return out


# --------------------------------------------------------------------------- shared test data

#: The label files of a release, in the order the README lists them.
LABEL_FILES = (
    "Index.csv",
    "Slice-level-labels.npy",
    "Lobe-level-labels.npy",
    "Slice-level-labels-updated-1.npy",
    "Lobe-level-labels-updated-1.npy",
)

# The "mini" tree of the property and fuzz tests: the tiny tree's three cases with
# 6 / 5 / 4 slices, validated with a ``subset`` profile whose manifest says so.
SUBSET = load_profile("subset")
TINY_CASES = {c.class_key: c for c in synth.select_cases(SUBSET, "tiny")}
MINI_SLICES = {"covid": 6, "cap": 5, "normal": 4}
MINI = dataclasses.replace(
    SUBSET,
    manifest={
        **SUBSET.manifest,
        **{c.case_id: ManifestCase(c.case_id, k, MINI_SLICES[k]) for k, c in TINY_CASES.items()},
    },
)
CLASS_DIR = {"covid": "COVID-19 subjects", "cap": "CAP subjects", "normal": "Normal subjects"}
CASE_REL = {k: f"{CLASS_DIR[k]}/{c.case_id}" for k, c in TINY_CASES.items()}


def npy_header(version: tuple[int, int], text: str) -> bytes:
    """A .npy header holding ``text``, padded the way numpy pads it (no data after it)."""
    raw = text.encode("utf-8" if version == (3, 0) else "latin-1")
    prefix = 10 if version[0] < 2 else 12
    raw += b" " * (63 - (prefix + len(raw)) % 64) + b"\n"
    size = struct.pack("<H" if version[0] < 2 else "<I", len(raw))
    return b"\x93NUMPY" + bytes(version) + size + raw


# --------------------------------------------------------------------------- what is touched

_EVENTS: list[tuple[str, str]] = []
_RECORDING: list[bool] = []


def _note(event: str, path: object) -> None:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if isinstance(path, str | os.PathLike):
        _EVENTS.append((event, os.path.abspath(os.fspath(path))))


def _audit(event: str, args: tuple) -> None:
    if _RECORDING and event in {"open", "os.scandir", "os.listdir"} and args:
        _note(event, args[0])


sys.addaudithook(_audit)  # hooks cannot be removed: it records only inside ``recorded``


def _watched(name: str, real: Callable[..., os.stat_result]) -> Callable[..., os.stat_result]:
    """``os.stat``/``os.lstat`` that records its path (stat raises no audit event)."""

    def wrapper(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if _RECORDING and not isinstance(path, int):
            _note(name, path)
        return real(path, *args, **kwargs)

    return wrapper


@contextmanager
def recorded(monkeypatch: pytest.MonkeyPatch | None = None) -> Iterator[list[tuple[str, str]]]:
    """Every file opened and folder listed in this process meanwhile: ``(event, path)``.

    With ``monkeypatch``, every path given to ``os.stat``/``os.lstat`` too.
    """
    if monkeypatch is not None:
        monkeypatch.setattr(os, "stat", _watched("os.stat", os.stat))
        monkeypatch.setattr(os, "lstat", _watched("os.lstat", os.lstat))
    _EVENTS.clear()
    _RECORDING.append(True)
    try:
        yield _EVENTS
    finally:
        _RECORDING.clear()
        if monkeypatch is not None:
            monkeypatch.undo()


def run_cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """``ctmd-validate ARGS`` in this process: exit code, stdout, stderr."""
    from ctmd_validate import cli

    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def tiny_slices(root: Path, class_key: str) -> list[Path]:
    """The slices of a tiny tree's case of ``class_key``, in name order."""
    return sorted((root / CLASS_DIR[class_key] / TINY_CASES[class_key].case_id).glob("*.dcm"))
