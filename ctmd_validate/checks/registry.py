"""The check registry: every check has a stable id, a default severity and a scope.

Checks are pure functions ``(ctx, sink) -> examined`` over the scan tables. They report
through the :class:`Sink` bound to their own id, so a check can never emit a finding under
another check's id, and an unregistered id is a programming error.
"""

from __future__ import annotations

import fnmatch
import inspect
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..findings import CheckResult, Finding, Severity
from ..fixity import Verification
from ..paths import sanitize_message
from ..policy import Policy, load_policy
from ..profiles import Profile
from ..scan import ScanResult, captured
from ..views import Views

__all__ = ["REGISTRY", "CheckContext", "CheckSpec", "Sink", "check", "check_ids", "run_checks"]

Scope = Literal["dataset", "case"]


@dataclass(frozen=True)
class CheckContext:
    """What every check may read: the scan tables, the profile and the de-id policy.

    ``show_values``: the user explicitly asked to see identifying values in findings;
    ``fixity``: the tree compared with a manifest (``--manifest``), when one was given;
    ``archive_md5``: the archive's sum against the published one; ``views``: the run's
    derived views (index rows, demographics, stacks…), built from ``scan`` when not given.
    """

    scan: ScanResult
    profile: Profile
    policy: Policy = field(default_factory=load_policy)
    show_values: bool = False
    fixity: Verification | None = None
    #: ``--archive-md5``: (expected MD5, actual MD5, expected size or None, actual size)
    archive_md5: tuple[str, str, int | None, int] | None = None
    views: Views = None  # type: ignore[assignment]  # set in __post_init__ when not given

    def __post_init__(self) -> None:
        if self.views is None:
            object.__setattr__(self, "views", Views(self.scan))

    @property
    def absent(self) -> Severity:
        """Severity of something absent: an error for a complete release, info for a subset."""
        return Severity.ERROR if self.profile.complete else Severity.INFO


class Sink:
    """Collects the findings of one check."""

    def __init__(self, spec: CheckSpec) -> None:
        self.spec = spec
        self.findings: list[Finding] = []

    def add(
        self,
        message: str,
        *,
        case: str | None = None,
        path: str | None = None,
        expected: Any = None,
        actual: Any = None,
        files: Iterable[str] = (),
        severity: Severity | None = None,
        code: str | None = None,
    ) -> None:
        """Record one finding of this check: where, expected vs actual, the files it stands
        for; ``severity`` overrides the check's default, ``code`` names the kind of problem
        where the check reports several."""
        self.findings.append(
            Finding(
                check_id=self.spec.id,
                severity=severity or self.spec.severity,
                message=message,
                case=case,
                path=path,
                expected=expected,
                actual=actual,
                files=tuple(sorted(files)),
                code=code,
            )
        )


CheckFn = Callable[[CheckContext, Sink], int]


@dataclass(frozen=True)
class CheckSpec:
    """A registered check. ``scope='case'`` checks put the case id on every finding."""

    id: str
    severity: Severity
    scope: Scope
    func: CheckFn

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.func.__doc__ or "")

    @property
    def title(self) -> str:
        return self.doc.split("\n", 1)[0].strip()

    @property
    def why(self) -> str:
        """What the check means and why it exists: the docstring before its "Fix:"."""
        return " ".join(self.doc.split("Fix:", 1)[0].split())

    @property
    def fix(self) -> str:
        """What a user should do when the check fires: the docstring's "Fix:" text."""
        parts = self.doc.split("Fix:", 1)
        return " ".join(parts[1].split()) if len(parts) == 2 else ""


REGISTRY: dict[str, CheckSpec] = {}


def check(
    check_id: str, severity: Severity, scope: Scope = "dataset"
) -> Callable[[CheckFn], CheckFn]:
    """Register ``func`` under a public, never-changing id."""

    def register(func: CheckFn) -> CheckFn:
        if check_id in REGISTRY:
            raise ValueError(f"check id registered twice: {check_id}")
        if "Fix:" not in (func.__doc__ or ""):
            raise ValueError(f"check {check_id} needs a docstring: why it exists, then 'Fix:'")
        REGISTRY[check_id] = CheckSpec(check_id, severity, scope, func)
        return func

    return register


def check_ids(patterns: Iterable[str]) -> list[str]:
    """Registered ids matching any of the fnmatch ``patterns``, sorted."""
    pats = list(patterns)
    return [i for i in sorted(REGISTRY) if any(fnmatch.fnmatchcase(i, p) for p in pats)]


def run_checks(ctx: CheckContext, only: Iterable[str] | None = None) -> list[CheckResult]:
    """Run every registered check (or those in ``only``) over one scan.

    A check that raises becomes a failed result with one error finding saying so; the
    run goes on.
    """
    ids = sorted(REGISTRY) if only is None else list(only)
    results: list[CheckResult] = []
    for check_id in ids:
        if check_id not in REGISTRY:
            raise KeyError(f"unknown check id: {check_id}")
        spec = REGISTRY[check_id]
        sink = Sink(spec)
        result = CheckResult(check_id)
        notes: list[str] = []
        try:
            # a library warning raised by a check may quote a data value: it is let out
            # only sanitised, as the scan's are
            with captured(notes):
                result.examined = int(spec.func(ctx, sink))
            result.findings = sink.findings
        except Exception as exc:
            # the exception text may quote data values: keep only the library's wording
            result.crashed = sanitize_message("".join(traceback.format_exception_only(exc)))
            result.findings = [
                *sink.findings,
                Finding(
                    check_id=check_id,
                    severity=Severity.ERROR,
                    message=f"the check itself crashed ({result.crashed}); please report this",
                ),
            ]
        for note in notes:
            warnings.warn(f"{check_id}: {note}", RuntimeWarning, stacklevel=2)
        results.append(result)
    return results
