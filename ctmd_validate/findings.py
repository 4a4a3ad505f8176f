"""Value objects of a validation run: severities, findings and check results."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CheckResult", "CheckStatus", "Finding", "Severity"]


class Severity(enum.StrEnum):
    """How bad a finding is. Only ``error`` makes a dataset invalid (exit code 1)."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


class CheckStatus(enum.StrEnum):
    """``failed``: at least one error finding; ``skipped``: the check examined nothing."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or worth knowing) about the dataset.

    ``path`` is relative to the dataset root (POSIX separators); ``expected`` and
    ``actual`` are JSON-serialisable and never carry identifying values. ``files`` names
    the files involved when one finding stands for several files of a case.
    """

    check_id: str
    severity: Severity
    message: str
    case: str | None = None
    path: str | None = None
    expected: Any = None
    actual: Any = None
    files: tuple[str, ...] = ()
    waived: str | None = None
    #: already present in the baseline the user judged the copy against (listed, not counted)
    known: bool = False
    #: which kind of problem, where one check reports several (a config may waive one)
    code: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The finding as the report's ``findings`` items (optional keys only when set)."""
        data = asdict(self)
        data["id"] = data.pop("check_id")
        data["severity"] = self.severity.value
        data["files"] = list(self.files)
        if not self.files:
            data.pop("files")
        if self.waived is None:
            data.pop("waived")
        if not self.known:
            data.pop("known")
        if self.code is None:
            data.pop("code")
        return data

    @property
    def counted(self) -> bool:
        """Counts towards the verdict: neither waived nor known from a baseline."""
        return self.waived is None and not self.known


@dataclass
class CheckResult:
    """What one check did: how many things it examined and what it found."""

    check_id: str
    examined: int = 0
    findings: list[Finding] = field(default_factory=list)
    crashed: str | None = None

    @property
    def active(self) -> list[Finding]:
        """Findings that count: not waived, not known from a baseline."""
        return [f for f in self.findings if f.counted]

    @property
    def status(self) -> CheckStatus:
        if any(f.severity is Severity.ERROR for f in self.active):
            return CheckStatus.FAILED
        if self.examined == 0 and not self.findings:
            return CheckStatus.SKIPPED
        return CheckStatus.PASSED
