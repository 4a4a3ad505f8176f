"""pytest plugin: ``pytest --dataset-root=PATH`` turns every check into test items.

Registered through the ``pytest11`` entry point; does nothing unless ``--dataset-root`` is
given. The dataset is scanned and checked once per session (lazily, state in
``config.stash``); one item per check, or per check and case for per-case checks. An item
fails on error findings, warns on warning findings, and is skipped when its check examined
nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .archive import is_archive
from .baseline import load_baseline
from .cache import RunCache
from .checks import REGISTRY, CheckSpec
from .config import load_config
from .engine import MODES, validate
from .errors import CtmdError
from .findings import CheckStatus, Finding, Severity
from .paths import contains, display
from .policy import load_policy
from .profiles import load_profile
from .report import Report, check_report_target

__all__ = ["CheckItem", "CtmdWarning", "DatasetCollector"]


class CtmdWarning(UserWarning):
    """A warning-level finding of a ctmd-validate check."""


class CheckFailed(Exception):
    """Raised by a check item whose check produced error findings."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__(f"{len(findings)} error findings")
        self.findings = findings


@dataclass
class _State:
    root: Path
    profile: str
    config: str | None
    jobs: int | None
    report_path: str | None
    policy: str | None = None
    labels: str | None = None
    deep: bool = False
    baseline: str | None = None
    mode: str = "full"
    cache: bool = True
    _report: Report | None = field(default=None, repr=False)

    @property
    def report(self) -> Report:
        if self._report is None:
            self._report = validate(
                self.root,
                self.profile,
                config=self.config,
                jobs=self.jobs,
                policy=self.policy,
                labels_dir=self.labels,
                deep=self.deep,
                baseline=self.baseline,
                mode=self.mode,
                cache=RunCache() if self.cache else None,
            )
        return self._report


_STATE = pytest.StashKey[_State]()
#: Options that name a file or folder; an empty value is refused.
_PATH_OPTIONS = (
    "dataset_root",
    "ctmd_profile",
    "ctmd_report",
    "ctmd_config",
    "ctmd_policy",
    "ctmd_labels",
    "ctmd_baseline",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ctmd-validate", "COVID-CT-MD dataset validation")
    group.addoption(
        "--dataset-root",
        metavar="PATH",
        default=None,
        help="validate the COVID-CT-MD copy at PATH: one test item per check",
    )
    group.addoption(
        "--ctmd-profile",
        metavar="NAME",
        default="release",
        help="release | subset | profile TOML (default: release)",
    )
    group.addoption(
        "--ctmd-report",
        metavar="FILE",
        default=None,
        help="write the JSON report of the dataset run to FILE",
    )
    group.addoption(
        "--ctmd-config",
        metavar="FILE",
        default=None,
        help="severity overrides and waivers (TOML/JSON)",
    )
    group.addoption(
        "--ctmd-policy",
        metavar="FILE",
        default=None,
        help="de-identification policy TOML (default: the dataset's claim)",
    )
    group.addoption(
        "--ctmd-labels",
        metavar="DIR",
        default=None,
        help="folder with Index.csv and the label arrays (default: the dataset root)",
    )
    group.addoption(
        "--ctmd-jobs",
        metavar="N",
        type=int,
        default=None,
        help="processes for the scan (default: all cores)",
    )
    group.addoption(
        "--ctmd-deep",
        action="store_true",
        default=False,
        help="decode every frame (the integrity.pixel checks)",
    )
    group.addoption(
        "--ctmd-baseline",
        metavar="REPORT",
        default=None,
        help="findings already in this report are known: listed, not failed",
    )
    group.addoption(
        "--ctmd-no-cache",
        action="store_true",
        default=False,
        help="scan again even when the tree is unchanged since the last run",
    )
    group.addoption(
        "--ctmd-mode",
        choices=sorted(MODES),
        default="full",
        help="full (every check) or integrity (is my copy complete and intact)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ctmd: a COVID-CT-MD dataset check item")
    root = config.getoption("dataset_root")
    if root is None:
        return
    for option in _PATH_OPTIONS:
        if config.getoption(option) == "":  # Path("") is the current folder: never guess
            flag = "--" + option.replace("_", "-")
            raise pytest.UsageError(f"{flag} is empty: give a path (or '.' for the current one)")
    path = Path(root)
    if not path.is_dir() and not is_archive(path):
        raise pytest.UsageError(
            f"--dataset-root: not a folder or zip archive: {display(str(path))}"
        )
    labels = config.getoption("ctmd_labels")
    if labels and not Path(labels).is_dir():
        raise pytest.UsageError(f"--ctmd-labels: not a folder: {display(labels)}")
    if _inside(config.rootpath, path) and config.pluginmanager.has_plugin("cacheprovider"):
        raise pytest.UsageError(
            f"pytest chose the dataset as its rootdir ({display(str(config.rootpath))}) and "
            "would write .pytest_cache into it; write --dataset-root=PATH with '=', run from "
            "your project folder, or add -p no:cacheprovider"
        )
    try:
        load_profile(config.getoption("ctmd_profile"))
        load_config(config.getoption("ctmd_config"), REGISTRY)
        load_policy(config.getoption("ctmd_policy"))
        if config.getoption("ctmd_baseline"):
            load_baseline(config.getoption("ctmd_baseline"))
        if config.getoption("ctmd_report"):
            check_report_target(config.getoption("ctmd_report"), path, labels)
    except CtmdError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[_STATE] = _State(
        root=path,
        profile=config.getoption("ctmd_profile"),
        config=config.getoption("ctmd_config"),
        jobs=config.getoption("ctmd_jobs"),
        report_path=config.getoption("ctmd_report"),
        policy=config.getoption("ctmd_policy"),
        labels=config.getoption("ctmd_labels"),
        deep=config.getoption("ctmd_deep"),
        baseline=config.getoption("ctmd_baseline"),
        mode=config.getoption("ctmd_mode"),
        cache=not config.getoption("ctmd_no_cache"),
    )


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """Add the dataset collector beside whatever the session collects."""
    rep = yield
    if isinstance(collector, pytest.Session) and _STATE in collector.config.stash:
        rep.result.append(DatasetCollector.from_parent(collector, name="ctmd", nodeid="ctmd"))
    return rep


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None or state.report_path is None or state._report is None:
        return
    state.report.write(state.report_path, state.labels)


def _inside(path: Path, root: Path) -> bool:
    return contains(os.path.realpath(root), os.path.realpath(path))


class DatasetCollector(pytest.Collector):
    """Scans the dataset once and yields an item per check (and case, for per-case checks)."""

    def collect(self) -> Iterator[pytest.Item]:
        state = self.config.stash[_STATE]
        report = state.report
        present = {c.case for c in report.facts.cases}
        for check_id in sorted(r.check_id for r in report.results):  # the mode's checks
            spec = REGISTRY[check_id]
            if spec.scope == "case":
                # cases with images, plus any case a finding names (the label checks judge
                # labelled cases whose images are absent, from the release manifest)
                named = {f.case for f in report.result(check_id).findings if f.case}
                seen: set[str] = set()
                for case in sorted(present | named):
                    name = _item_name(report, check_id, case, seen)
                    yield CheckItem.from_parent(self, name=name, spec=spec, case=case)
            else:
                yield CheckItem.from_parent(self, name=check_id, spec=spec, case=None)


def _item_name(report: Report, check_id: str, case: str, seen: set[str]) -> str:
    """``check[case]`` with the case scrubbed like every report text.

    A case folder named after a patient must not reach pytest's output, node ids or junit
    XML. Cases that scrub alike (``[redacted]``) are numbered: node ids must stay distinct.
    """
    shown = str(report.scrub(case))
    name, n = f"{check_id}[{shown}]", 1
    while name in seen:
        n += 1
        name = f"{check_id}[{shown}~{n}]"
    seen.add(name)
    return name


class CheckItem(pytest.Item):
    """One check (optionally restricted to one case) over the session's scan."""

    def __init__(self, *, spec: CheckSpec, case: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.case = case
        self.add_marker("ctmd")

    @property
    def _report(self) -> Report:
        return self.config.stash[_STATE].report

    def _findings(self) -> tuple[CheckStatus, list[Finding]]:
        result = self.config.stash[_STATE].report.result(self.spec.id)
        findings = result.active
        if self.case is not None:
            findings = [f for f in findings if f.case == self.case]
        return result.status, findings

    def runtest(self) -> None:
        status, findings = self._findings()
        if status is CheckStatus.SKIPPED:
            pytest.skip(f"{self.spec.id}: nothing to examine in this dataset")
        for f in findings:
            if f.severity is Severity.WARNING:
                self.warn(CtmdWarning(self._report.scrub(_line(f))))
        errors = [f for f in findings if f.severity is Severity.ERROR]
        if errors:
            raise CheckFailed(errors)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CheckFailed):
            n = len(excinfo.value.findings)
            head = f"{self.spec.id}: {n} error finding(s) — {self.spec.title}"
            lines = [self._report.scrub(f"  {_line(f)}") for f in excinfo.value.findings]
            if self.spec.fix:
                lines.append(f"Fix: {self.spec.fix}")
            return "\n".join([head, *lines])
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"ctmd {self.name}"


def _line(f: Finding) -> str:
    where = f.path or f.case or "dataset"
    detail = ""
    if f.expected is not None or f.actual is not None:
        detail = f" (expected {f.expected!r}, actual {f.actual!r})"
    return f"{where}: {f.message}{detail}"
