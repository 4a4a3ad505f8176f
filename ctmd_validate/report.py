"""The run's result: JSON report (validated against ``schemas/report.schema.json``) and summary."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import stat
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import jsonschema

from . import __version__
from .atomic import is_stream, own_fd, write_atomic
from .config import Config
from .errors import CtmdError
from .findings import CheckResult, CheckStatus, Finding, Severity
from .paths import contains, display, printable
from .policy import Policy
from .profiles import Profile
from .resources import schema_file

__all__ = [
    "REPORT_VERSION",
    "CaseFacts",
    "CheckInfo",
    "Report",
    "RunFacts",
    "check_report_target",
    "report_schema",
    "validate_report",
    "write_atomic",
]

REPORT_VERSION = "1.4"
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


def check_report_target(  # noqa: C901, PLR0912  (every refusal before scanning)
    target: str | os.PathLike[str],
    dataset_root: str | os.PathLike[str],
    labels_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Where a report may be written: outside the dataset and its labels folder.

    Checked before any scanning, so a bad ``--report`` costs nothing: a folder, a place
    inside the dataset or the labels folder (never written into, not even through a link),
    something that is neither a file nor a stream, or a place that cannot be created or
    written is refused with a plain message. Returns where the text will go: a link
    resolved to the real file it names (the link is kept), a stream as given.
    """
    path = Path(target)
    shown = display(str(path))
    if not str(target):
        raise CtmdError("the report path is empty: give a file name")
    real = os.path.realpath(path)
    for folder, what in ((dataset_root, "the dataset"), (labels_dir, "the labels folder")):
        if folder is not None and contains(os.path.realpath(folder), real):
            raise CtmdError(f"refusing to write the report inside {what}: {shown}")
    fd = own_fd(path)
    if fd is not None:
        import fcntl  # POSIX only, as are the names that give a descriptor

        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError as exc:
            raise CtmdError(f"cannot write the report to {shown}: {exc.strerror}") from exc
        if flags & os.O_ACCMODE == os.O_RDONLY:
            raise CtmdError(f"cannot write the report to {shown}: open for reading only")
        return path
    if is_stream(path):
        if not os.access(path, os.W_OK):
            raise CtmdError(f"cannot write the report: no write permission for {shown}")
        return path
    try:
        mode: int | None = os.stat(real).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as exc:  # a link loop, a name too long, no search permission
        raise CtmdError(f"cannot write the report {shown}: {exc.strerror}") from exc
    if mode is not None and stat.S_ISDIR(mode):
        raise CtmdError(f"the report path is a folder, give a file name: {shown}")
    if mode is not None and not stat.S_ISREG(mode):
        raise CtmdError(f"the report path is not a file, a pipe or a terminal: {shown}")
    ancestor = Path(real).parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CtmdError(
            f"cannot create the report's folder (not a folder: {display(str(ancestor))})"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise CtmdError(f"cannot write the report: no write permission in {display(str(ancestor))}")
    return Path(real)


@dataclass(frozen=True)
class CheckInfo:
    """How the report presents a check: its default severity, title and fix."""

    severity: Severity
    title: str
    fix: str


@dataclass(frozen=True)
class CaseFacts:
    """One case as the report shows it (the ``cases`` section, before finding counts)."""

    case: str
    class_label: str
    path: str
    files: int
    readable: int
    #: median rows, columns, slice thickness, pixel spacing; z extent (mm)
    geometry: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class RunFacts:
    """What the report shows about the data and the run, handed over by the engine.

    The report renders these; it never sees the scan tables, so holding a report (the
    pytest plugin does, for a whole session) does not hold the scan.
    """

    root: str
    profile: Profile
    cases: tuple[CaseFacts, ...]
    files: int
    #: every path of the tree (images and other entries): names to mask whole
    names: tuple[str, ...]
    #: the report's ``stats`` and ``inferred`` sections
    stats: dict[str, Any]
    inferred: dict[str, Any]
    #: check id -> how it is shown (every check a result may name)
    checks: Mapping[str, CheckInfo]
    seconds: float = 0.0
    jobs: int = 1
    deep: bool = False
    cached: bool = False


@dataclass
class Report:
    """Everything one run found; rendering and exit codes are the front ends' business."""

    facts: RunFacts
    results: list[CheckResult]
    config: Config
    policy: Policy | None = None
    #: identifying values found in the data; every rendering masks them
    redact: frozenset[str] = frozenset()
    #: the report this run was judged against (``--baseline``), as shown
    baseline: str | None = None
    #: which checks ran: ``full`` or ``integrity``
    mode: str = "full"

    @cached_property
    def _mask(self) -> re.Pattern[str] | None:
        """One pattern for every value, also as shown: texts are escaped before masking.

        A value read from a file name may hold a control character or an undecodable byte;
        the name is shown escaped (``JOHN\\x1bDOE``), and must still be found.
        """
        if not self.redact:
            return None
        forms = {form for v in self.redact for form in (v, printable(v), display(v))}
        alternatives = sorted(forms, key=len, reverse=True)
        return re.compile("|".join(re.escape(v) for v in alternatives), re.IGNORECASE)

    def _spans(self, text: str) -> list[tuple[int, int, int]]:
        """Tokens of ``text`` that hold an identifying value: ``(start, end, keep)``.

        A token runs from boundary to boundary around each match (overlapping tokens
        merge). ``keep`` is where the part shown unmasked begins: the token's extension, when
        no match overlaps it (``P001.JOHN`` keeps nothing when ``JOHN`` is masked), else the
        token's end.
        """
        assert self._mask is not None
        spans: list[list[int]] = []  # start, end, end of the last match inside
        for m in self._mask.finditer(text):
            a, b = m.start(), m.end()
            while a > 0 and text[a - 1] not in _BOUNDARY:
                a -= 1
            while b < len(text) and text[b] not in _BOUNDARY:
                b += 1
            if spans and a <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], b)
                spans[-1][2] = max(spans[-1][2], m.end())
            else:
                spans.append([a, b, m.end()])
        out = []
        for a, b, last_match in spans:
            ext = _EXTENSION.search(text, a, b)
            keep = ext.start() if ext and a < ext.start() and last_match <= ext.start() else b
            out.append((a, b, keep))
        return out

    @cached_property
    def _names(self) -> tuple[re.Pattern[str] | None, dict[str, str], dict[str, str]]:
        """Names in the tree (path components) holding an identifying value, masked whole.

        Returns a pattern of those names, name -> masked name (``[redacted#3].dcm``: the stem
        numbered in name order, the extension kept unless a value lies in it) and stem ->
        token. A whole name is masked, whatever its separators: ``99C628 ASAD_1.dcm`` or
        ``99C628(ASAD)_2.dcm`` must not keep the part of the ID outside the masked word.
        """
        assert self._mask is not None
        stems: dict[str, str] = {}
        for rel in self.facts.names:
            for part in rel.split("/"):
                if part in stems:
                    continue
                ends = [m.end() for m in self._mask.finditer(part)]
                if not ends:
                    continue
                ext = _EXTENSION.search(part)
                keep = ext.start() if ext and 0 < ext.start() >= max(ends) else len(part)
                stems[part] = part[:keep]
        tokens = {t: f"[redacted#{i}]" for i, t in enumerate(sorted(set(stems.values())), 1)}
        masked = {part: tokens[stem] + part[len(stem) :] for part, stem in stems.items()}
        if not masked:
            return None, {}, tokens
        alternatives = sorted(masked, key=len, reverse=True)
        return re.compile("|".join(re.escape(a) for a in alternatives)), masked, tokens

    @cached_property
    def redaction_basis(self) -> str | None:
        """What the masked names' numbering rests on, as a keyed digest (or None).

        ``[redacted#N]`` numbers the tree's names that hold identifying values; two runs
        number alike only over the same names and values. A baseline may match masked
        findings only when both runs share this basis. The digest is keyed with the
        identifying values themselves, so the report gives nothing to test guesses of a
        name against.
        """
        if self._mask is None:
            return None
        key = "\0".join(sorted(self.redact)).encode("utf-8", "surrogateescape")
        stems = "\0".join(sorted(self._names[2])).encode("utf-8", "surrogateescape")
        return hmac.new(key, stems, hashlib.sha256).hexdigest()

    def _mask_text(self, text: str) -> str:
        """Every name and token holding an identifying value, masked whole.

        Masking value by value is not enough: a file name that holds a Patient ID with the
        Operators' Name inside it would keep the rest of the ID once the name was masked.
        Names of the tree are masked first (whole), then any other word holding a value.
        """
        names, masked, tokens = self._names
        if names is not None:
            text = names.sub(lambda m: masked[m.group()], text)
        out, last = [], 0
        for a, b, keep in self._spans(text):
            out.append(text[last:a] + tokens.get(text[a:keep], REDACTED) + text[keep:b])
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
        profile = self.facts.profile
        out: list[str] = []
        no_dataset = any(f.check_id == "structure.no_dataset" for f in self.active)
        # no dataset at all: another profile would not help, the message says where to look
        if profile.complete and profile.manifest and not no_dataset:
            present = len({c.case for c in self.facts.cases} & set(profile.manifest))
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
        """Findings that count: not waived, not known from the baseline."""
        return [f for f in self.findings if f.counted]

    @property
    def known(self) -> list[Finding]:
        """Findings already in the baseline (listed, not counted)."""
        return [f for f in self.findings if f.known and f.waived is None]

    def cases_json(self) -> list[dict[str, Any]]:
        """One line per case: its class, files, geometry at a glance and finding counts."""
        counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(Severity, 0))
        for f in self.active:
            if f.case is not None:
                counts[f.case][f.severity] += 1
        out = []
        for case in self.facts.cases:
            n = counts.get(case.case, {})
            out.append(
                {
                    "case": case.case,
                    "class": case.class_label,
                    "path": case.path,
                    "files": case.files,
                    "readable": case.readable,
                    "geometry": dict(case.geometry),
                    "error": n.get(Severity.ERROR, 0),
                    "warning": n.get(Severity.WARNING, 0),
                    "info": n.get(Severity.INFO, 0),
                }
            )
        return out

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
        """The report as ``schemas/report.schema.json`` describes it, identifying values
        masked (``dumps`` validates it against the schema)."""
        statuses = [r.status for r in self.results]
        facts = self.facts
        profile = facts.profile
        data: dict[str, Any] = {
            "report_version": REPORT_VERSION,
            "tool": {"name": "ctmd-validate", "version": __version__},
            "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "dataset_root": display(facts.root),
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
            "redaction_basis": self.redaction_basis,
            "mode": self.mode,
            "baseline": self.baseline,
            "valid": self.valid,
            "summary": {
                "error": self.count(Severity.ERROR),
                "warning": self.count(Severity.WARNING),
                "info": self.count(Severity.INFO),
                "waived": sum(1 for f in self.findings if f.waived is not None),
                "known": len(self.known),
                "cases": len(facts.cases),
                "files": facts.files,
                "checks": {
                    "total": len(statuses),
                    "passed": statuses.count(CheckStatus.PASSED),
                    "failed": statuses.count(CheckStatus.FAILED),
                    "skipped": statuses.count(CheckStatus.SKIPPED),
                },
            },
            "scan": {
                "seconds": round(facts.seconds, 3),
                "jobs": facts.jobs,
                "deep": facts.deep,
                "cached": facts.cached,
            },
            "stats": facts.stats,
            "inferred": facts.inferred,
            "checks": [self._check_json(r) for r in self.results],
            "cases": self.cases_json(),
            "findings": [f.to_json() for f in self.findings],
        }
        return self.scrub(data)

    def _check_json(self, result: CheckResult) -> dict[str, Any]:
        spec = self.facts.checks[result.check_id]
        out: dict[str, Any] = {
            "id": result.check_id,
            "status": result.status.value,
            "severity": spec.severity.value,
            "examined": result.examined,
            "findings": len(result.active),
            "known": sum(1 for f in result.findings if f.known and f.waived is None),
            "title": spec.title,
            "fix": spec.fix,
        }
        if result.crashed:
            out["crashed"] = result.crashed
        return out

    def dumps(self) -> str:
        """The JSON text of the report, validated against its schema first."""
        data = self.to_json()
        validate_report(data)
        return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"

    def write(
        self, target: str | os.PathLike[str], labels_dir: str | os.PathLike[str] | None = None
    ) -> Path:
        """Validate and write the JSON report (parents created; never inside the dataset).

        ``labels_dir``: a labels folder given apart from the root, never written into
        either. Returns where the report went (a link resolved to its file).
        """
        path = check_report_target(target, self.facts.root, labels_dir)
        write_atomic(path, self.dumps())
        return path

    def _group_lines(self, per_group: int | None, errors_only: bool) -> list[str]:
        """The summary's findings, grouped by check id (worst first), each with its fix."""
        groups: dict[tuple[int, str], list[Finding]] = defaultdict(list)
        for f in self.active:
            if errors_only and f.severity is not Severity.ERROR:
                continue
            groups[(f.severity.rank, f.check_id)].append(f)
        lines = [""] if groups else []
        for (_rank, check_id), items in sorted(groups.items()):
            lines.append(f"{items[0].severity.value:<8} {check_id} ({len(items)})")
            shown = items if per_group is None else items[:per_group]
            for f in shown:
                where = f.path or f.case or "dataset"
                lines.append(f"           {where}: {f.message}")
            if len(items) > len(shown):
                lines.append(
                    f"           … and {len(items) - len(shown)} more (--max-lines 0 shows all)"
                )
            fix = self.facts.checks[check_id].fix
            if fix:
                lines.append(f"           fix: {fix}")
        return lines

    def _case_lines(self, errors_only: bool) -> list[str]:
        """The per-case table of the summary: cases with findings, worst first."""
        rows = [
            c
            for c in self.cases_json()
            if c["error"] or (not errors_only and (c["warning"] or c["info"]))
        ]
        rows.sort(key=lambda c: (-c["error"], -c["warning"], -c["info"], c["case"]))
        lines = ["", f"cases with findings: {len(rows)} of {len(self.facts.cases)}"]
        for c in rows:
            lines.append(
                f"  {c['case']:<12} {c['class']:<10} {c['files']:>4} files  "
                f"{c['error']} errors, {c['warning']} warnings, {c['info']} info"
            )
        return lines

    def _label_lines(self) -> list[str]:
        """Two lines on the labels: their slice order and each version's infected total."""
        order = self.facts.inferred["label_slice_order"]
        head = f"labels: slice order {order['value']}"
        if order["index_0"]:
            head += (
                f" (index 0 = {order['index_0']} end; {order['cases_agreeing']} cases agree, "
                f"{len(order['cases_disagreeing'])} disagree)"
            )
        totals = []
        for name, entry in self.facts.stats["labels"]["versions"].items():
            if entry["infected_slices"] is None:
                totals.append(f"{name} unreadable")
                continue
            text = f"{name} {entry['infected_slices']}"
            if entry["published_infected_slices"] is not None:
                mark = "=" if entry["reproduces_published"] else "≠"
                text += f" ({mark} published {entry['published_infected_slices']})"
            totals.append(text)
        return [head, "infected slices: " + ", ".join(totals)]

    def summary(
        self, *, per_group: int | None = 3, errors_only: bool = False, by_case: bool = False
    ) -> str:
        """A short human summary: counts, then findings grouped by check id.

        ``per_group``: findings shown per check (None: all); ``errors_only``: list only
        error findings (the counts stay whole); ``by_case``: a line per case with findings.
        """
        n_err, n_warn, n_info = (self.count(s) for s in Severity)
        waived = sum(1 for f in self.findings if f.waived is not None)
        known = len(self.known)
        facts = self.facts
        lines = [
            f"ctmd-validate {__version__} · profile '{facts.profile.name}' · {display(facts.root)}",
            f"{len(facts.cases)} cases, {facts.files} image files "
            + (
                f"unchanged since the last run (cache read in {facts.seconds:.1f} s; "
                "--no-cache scans again)"
                if facts.cached
                else f"scanned in {facts.seconds:.1f} s ({facts.jobs} jobs)"
            )
            + (" · every frame decoded" if facts.deep else "")
            + (f" · {self.mode} mode" if self.mode != "full" else ""),
            ("VALID" if self.valid else "INVALID")
            + f": {n_err} errors, {n_warn} warnings, {n_info} info"
            + (f", {waived} waived" if waived else "")
            + (f", {known} known from the baseline" if known else ""),
        ]
        if self.baseline is not None:
            lines.append(
                f"baseline: {self.baseline} ({known} findings already there; only new ones count)"
            )
        if self.mode != "fixity":
            lines.extend(self._label_lines())
        lines.extend(f"hint: {h}" for h in self.hints)
        lines.extend(self._group_lines(per_group, errors_only))
        if by_case:
            lines.extend(self._case_lines(errors_only))
        statuses = [r.status for r in self.results]
        lines.append("")
        lines.append(
            f"checks: {statuses.count(CheckStatus.PASSED)} passed, "
            f"{statuses.count(CheckStatus.FAILED)} failed, "
            f"{statuses.count(CheckStatus.SKIPPED)} skipped"
        )
        return self.scrub("\n".join(lines))
