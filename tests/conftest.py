"""Shared fixtures: the real public sample (skipped when absent) and synthetic trees."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from ctmd_validate import Finding, Report, synth, validate

REPO = Path(__file__).resolve().parent.parent
SAMPLE_ENV = "CTMD_SAMPLE_ROOT"


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
def sample_report(sample_root: Path) -> Report:
    return validate(sample_root, "subset", jobs=2)


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
def clean_tiny_report(clean_tiny: Path) -> Report:
    return validate(clean_tiny, "subset", jobs=1)


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
