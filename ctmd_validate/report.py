"""The run's result: JSON report (validated against ``schemas/report.schema.json``) and summary."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import jsonschema

from . import __version__
from .config import Config
from .errors import CtmdError
from .findings import CheckResult, CheckStatus, Finding, Severity
from .labelstats import inferred_json, stats_json
from .policy import Policy
from .registry import REGISTRY
from .resources import schema_file
from .scan import ScanResult

__all__ = ["REPORT_VERSION", "Report", "check_report_target", "report_schema", "validate_report"]

REPORT_VERSION = "1.2"
REDACTED = "[redacted]"


@cache
def report_schema() -> dict[str, Any]:
    """The report's JSON Schema, as shipped in ``schemas/``."""
    return json.loads(schema_file("report.schema.json").read_text(encoding="utf-8"))


def validate_report(data: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``data`` is not a valid report."""
    jsonschema.validate(data, report_schema(), format_checker=jsonschema.FormatChecker())


def check_report_target(target: str | os.PathLike[str], dataset_root: Path) -> Path:
    """Where a report may be written: anywhere but inside the dataset (never written into)."""
    path = Path(target)
    try:
        path.resolve().relative_to(dataset_root.resolve())
    except ValueError:
        return path
    raise CtmdError(f"refusing to write the report inside the dataset: {path}")


@dataclass
class Report:
    """Everything one run found; rendering and exit codes are the front ends' business."""

    scan: ScanResult
    results: list[CheckResult]
    config: Config
    policy: Policy | None = None
    #: identifying values found in the data; every rendering masks them
    redact: frozenset[str] = frozenset()

    @cached_property
    def _mask(self) -> re.Pattern[str] | None:
        if not self.redact:
            return None
        alternatives = sorted(self.redact, key=len, reverse=True)
        return re.compile("|".join(re.escape(v) for v in alternatives), re.IGNORECASE)

    def scrub(self, value: Any) -> Any:
        """``value`` with every identifying value replaced by ``[redacted]``."""
        if self._mask is None:
            return value
        if isinstance(value, str):
            return self._mask.sub(REDACTED, value)
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        return value

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.results for f in r.findings]

    @property
    def active(self) -> list[Finding]:
        return [f for f in self.findings if f.waived is None]

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.active if f.severity is severity)

    @property
    def valid(self) -> bool:
        return self.count(Severity.ERROR) == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.valid else 1

    def result(self, check_id: str) -> CheckResult:
        for r in self.results:
            if r.check_id == check_id:
                return r
        raise KeyError(check_id)

    def to_json(self) -> dict[str, Any]:
        statuses = [r.status for r in self.results]
        profile = self.scan.profile
        data: dict[str, Any] = {
            "report_version": REPORT_VERSION,
            "tool": {"name": "ctmd-validate", "version": __version__},
            "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "dataset_root": str(self.scan.root.resolve()),
            "profile": {
                "name": profile.name,
                "complete": profile.complete,
                "source": profile.source,
            },
            "config": self.config.source,
            "policy": None
            if self.policy is None
            else {
                "name": self.policy.name,
                "source": self.policy.source,
                "standard_edition": self.policy.standard_edition,
            },
            "redacted": bool(self.redact),
            "valid": self.valid,
            "summary": {
                "error": self.count(Severity.ERROR),
                "warning": self.count(Severity.WARNING),
                "info": self.count(Severity.INFO),
                "waived": sum(1 for f in self.findings if f.waived is not None),
                "cases": len(self.scan.cases),
                "files": len(self.scan.files),
                "checks": {
                    "total": len(statuses),
                    "passed": statuses.count(CheckStatus.PASSED),
                    "failed": statuses.count(CheckStatus.FAILED),
                    "skipped": statuses.count(CheckStatus.SKIPPED),
                },
            },
            "scan": {"seconds": round(self.scan.seconds, 3), "jobs": self.scan.jobs},
            "stats": self.scrub(stats_json(self.scan)),
            "inferred": self.scrub(inferred_json(self.scan)),
            "checks": [self._check_json(r) for r in self.results],
            "findings": [self.scrub(f.to_json()) for f in self.findings],
        }
        return data

    @staticmethod
    def _check_json(result: CheckResult) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": result.check_id,
            "status": result.status.value,
            "severity": REGISTRY[result.check_id].severity.value,
            "examined": result.examined,
            "findings": len(result.active),
        }
        if result.crashed:
            out["crashed"] = result.crashed
        return out

    def dumps(self) -> str:
        data = self.to_json()
        validate_report(data)
        return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"

    def write(self, target: str | os.PathLike[str]) -> Path:
        """Validate and write the JSON report (parents created; never inside the dataset)."""
        path = check_report_target(target, self.scan.root)
        text = self.dumps()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def _label_lines(self) -> list[str]:
        """Two lines on the labels: their slice order and each version's infected total."""
        if self.scan.labels is None:
            return []
        order = inferred_json(self.scan)["label_slice_order"]
        head = f"labels: slice order {order['value']}"
        if order["index_0"]:
            head += (
                f" (index 0 = {order['index_0']} end; {order['cases_agreeing']} cases agree, "
                f"{len(order['cases_disagreeing'])} disagree)"
            )
        totals = []
        for name, entry in stats_json(self.scan)["labels"]["versions"].items():
            if entry["infected_slices"] is None:
                totals.append(f"{name} unreadable")
                continue
            text = f"{name} {entry['infected_slices']}"
            if entry["published_infected_slices"] is not None:
                mark = "=" if entry["reproduces_published"] else "≠"
                text += f" ({mark} published {entry['published_infected_slices']})"
            totals.append(text)
        return [head, "infected slices: " + ", ".join(totals)]

    def summary(self, *, per_group: int = 3) -> str:
        """A short human summary: counts, then findings grouped by check id."""
        n_err, n_warn, n_info = (self.count(s) for s in Severity)
        waived = len(self.findings) - len(self.active)
        lines = [
            f"ctmd-validate {__version__} · profile '{self.scan.profile.name}' · {self.scan.root}",
            f"{len(self.scan.cases)} cases, {len(self.scan.files)} image files scanned in "
            f"{self.scan.seconds:.1f} s ({self.scan.jobs} jobs)",
            ("VALID" if self.valid else "INVALID")
            + f": {n_err} errors, {n_warn} warnings, {n_info} info"
            + (f", {waived} waived" if waived else ""),
        ]
        lines.extend(self._label_lines())
        groups: dict[tuple[int, str], list[Finding]] = defaultdict(list)
        for f in self.active:
            groups[(f.severity.rank, f.check_id)].append(f)
        if groups:
            lines.append("")
        for (_rank, check_id), items in sorted(groups.items()):
            lines.append(f"{items[0].severity.value:<8} {check_id} ({len(items)})")
            for f in items[:per_group]:
                where = f.path or f.case or "dataset"
                lines.append(self.scrub(f"           {where}: {f.message}"))
            if len(items) > per_group:
                lines.append(f"           … and {len(items) - per_group} more")
        statuses = [r.status for r in self.results]
        lines.append("")
        lines.append(
            f"checks: {statuses.count(CheckStatus.PASSED)} passed, "
            f"{statuses.count(CheckStatus.FAILED)} failed, "
            f"{statuses.count(CheckStatus.SKIPPED)} skipped"
        )
        return "\n".join(lines)
