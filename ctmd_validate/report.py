"""The run's result: JSON report (validated against ``schemas/report.schema.json``) and summary."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import tempfile
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
from .paths import display, printable
from .policy import Policy
from .registry import REGISTRY
from .resources import schema_file
from .scan import ScanResult

__all__ = [
    "REPORT_VERSION",
    "Report",
    "check_report_target",
    "report_schema",
    "validate_report",
    "write_atomic",
]

REPORT_VERSION = "1.3"
REDACTED = "[redacted]"
# Characters that end a masked token: path separators, white space, quotes, brackets.
_BOUNDARY = frozenset(" \t\r\n/\\'\"`,;:()[]{}<>|=")
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,5}$")


@cache
def report_schema() -> dict[str, Any]:
    """The report's JSON Schema, as shipped in ``schemas/``."""
    return json.loads(schema_file("report.schema.json").read_text(encoding="utf-8"))


def validate_report(data: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``data`` is not a valid report."""
    jsonschema.validate(data, report_schema(), format_checker=jsonschema.FormatChecker())


def check_report_target(target: str | os.PathLike[str], dataset_root: Path) -> Path:
    """Where a report may be written: a file outside the dataset, in a folder we can create.

    Checked before any scanning, so a bad ``--report`` costs nothing: a folder, a path
    inside the dataset (never written into), or a place that cannot be created or written
    is refused with a plain message.
    """
    path = Path(target)
    shown = display(str(path))
    try:
        path.resolve().relative_to(Path(os.path.realpath(dataset_root)))
    except ValueError:
        pass
    else:
        raise CtmdError(f"refusing to write the report inside the dataset: {shown}")
    if path.is_dir():
        raise CtmdError(f"the report path is a folder, give a file name: {shown}")
    ancestor = path.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CtmdError(
            f"cannot create the report's folder (not a folder: {display(str(ancestor))})"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise CtmdError(f"cannot write the report: no write permission in {display(str(ancestor))}")
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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

    @cached_property
    def _tokens(self) -> dict[str, str]:
        """Masked file-name stems of the tree, numbered in name order (``[redacted#3]``).

        Distinct files stay distinct in file lists without showing any part of a name.
        """
        if self._mask is None:
            return {}
        stems: set[str] = set()
        for column in (self.scan.files["path"], self.scan.entries["path"]):
            for rel in column:
                for part in str(rel).split("/"):
                    if self._mask.search(part):
                        stems.add(_EXTENSION.sub("", part) or part)
        return {stem: f"[redacted#{i}]" for i, stem in enumerate(sorted(stems), start=1)}

    def _mask_text(self, text: str) -> str:
        """Every token holding an identifying value, masked whole (its extension kept).

        Masking value by value is not enough: a file name that holds a Patient ID with the
        Operators' Name inside it would keep the rest of the ID once the name was masked.
        """
        assert self._mask is not None
        spans: list[list[int]] = []
        for m in self._mask.finditer(text):
            a, b = m.start(), m.end()
            while a > 0 and text[a - 1] not in _BOUNDARY:
                a -= 1
            while b < len(text) and text[b] not in _BOUNDARY:
                b += 1
            if spans and a <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], b)
            else:
                spans.append([a, b])
        out, last = [], 0
        for a, b in spans:
            token = text[a:b]
            ext = _EXTENSION.search(token)
            stem = token[: ext.start()] if ext and ext.start() > 0 else token
            suffix = token[len(stem) :]
            out.append(text[last:a] + self._tokens.get(stem, REDACTED) + suffix)
            last = b
        out.append(text[last:])
        return "".join(out)

    def scrub(self, value: Any) -> Any:
        """``value`` made safe to show: identifying values masked, undecodable bytes escaped."""
        if isinstance(value, str):
            text = printable(value)
            return (
                text if self._mask is None or not self._mask.search(text) else self._mask_text(text)
            )
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        if isinstance(value, dict):
            return {
                self.scrub(k) if isinstance(k, str) else k: self.scrub(v) for k, v in value.items()
            }
        return value

    @property
    def hints(self) -> list[str]:
        """Advice on how the run was set up (not findings about the data)."""
        profile = self.scan.profile
        out: list[str] = []
        if profile.complete and profile.manifest:
            present = len(set(self.scan.cases["case_id"]) & set(profile.manifest))
            if present < len(profile.manifest) / 2:
                out.append(
                    f"only {present} of the {len(profile.manifest)} release cases are here: for "
                    "a partial copy or the public sample, use --profile subset (absent cases "
                    "become info)"
                )
        return out

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
            "dataset_root": str(self.scan.root),
            "profile": {
                "name": profile.name,
                "complete": profile.complete,
                "source": profile.source,
            },
            "config": self.config.source,
            "hints": self.hints,
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
            "stats": stats_json(self.scan),
            "inferred": inferred_json(self.scan),
            "checks": [self._check_json(r) for r in self.results],
            "findings": [f.to_json() for f in self.findings],
        }
        return self.scrub(data)

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
        write_atomic(path, self.dumps())
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
        lines.extend(f"hint: {h}" for h in self.hints)
        groups: dict[tuple[int, str], list[Finding]] = defaultdict(list)
        for f in self.active:
            groups[(f.severity.rank, f.check_id)].append(f)
        if groups:
            lines.append("")
        for (_rank, check_id), items in sorted(groups.items()):
            lines.append(f"{items[0].severity.value:<8} {check_id} ({len(items)})")
            for f in items[:per_group]:
                where = f.path or f.case or "dataset"
                lines.append(f"           {where}: {f.message}")
            if len(items) > per_group:
                lines.append(f"           … and {len(items) - per_group} more")
        statuses = [r.status for r in self.results]
        lines.append("")
        lines.append(
            f"checks: {statuses.count(CheckStatus.PASSED)} passed, "
            f"{statuses.count(CheckStatus.FAILED)} failed, "
            f"{statuses.count(CheckStatus.SKIPPED)} skipped"
        )
        return self.scrub("\n".join(lines))
