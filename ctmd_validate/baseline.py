"""Judge a copy against a baseline: findings the curators already shipped become ``known``.

A consumer cannot fix the release's own defects; what they need to know is whether their
copy has problems the release did not have. A baseline is a JSON report of an earlier run
(the curators' run over the release, or the consumer's own first run). A finding of this
run is *known* when the baseline holds a finding with the same check id, case, path and
message, as the reports show them (identifying values masked): known findings are listed
in the report and not counted, so only new problems fail.

Findings of :data:`~ctmd_validate.config.PROTECTED_IDS` are never known: an empty or
wrong root must not pass because a baseline of an empty folder says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import PROTECTED_IDS
from .errors import CtmdError
from .findings import CheckResult, Finding
from .paths import display

__all__ = ["Baseline", "load_baseline", "mark_known"]

#: A baseline larger than this is refused (a release report is a few MB).
MAX_BASELINE_BYTES = 256 << 20

Key = tuple[str, str | None, str | None, str]


@dataclass(frozen=True)
class Baseline:
    """The findings of an earlier report, keyed as they were shown."""

    source: str
    keys: frozenset[Key]
    #: the baseline report's ``redaction_basis``: masked findings match only under the same
    redaction_basis: str | None = None


def _key(data: dict[str, Any]) -> Key | None:
    fields = (data.get("id"), data.get("case"), data.get("path"), data.get("message"))
    if not isinstance(fields[0], str) or not isinstance(fields[3], str):
        return None
    if any(v is not None and not isinstance(v, str) for v in fields[1:3]):
        return None
    return (fields[0], fields[1], fields[2], fields[3])


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Read a report written by ``check --report`` (any 1.x version) as a baseline.

    Raises :class:`CtmdError` with a plain message when the file cannot be read or is not
    a ctmd-validate report.
    """
    shown = display(str(path))
    try:
        size = os.stat(path).st_size
        if size > MAX_BASELINE_BYTES:
            raise CtmdError(f"baseline {shown} is larger than {MAX_BASELINE_BYTES >> 20} MiB")
        data = json.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as exc:
        raise CtmdError(f"cannot read the baseline {shown}: {exc.strerror}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CtmdError(f"the baseline {shown} is not a JSON report: {exc}") from exc
    except RecursionError as exc:
        raise CtmdError(f"the baseline {shown} is nested too deeply to be a report") from exc
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("tool"), dict)
        or data["tool"].get("name") != "ctmd-validate"
        or not isinstance(data.get("findings"), list)
    ):
        raise CtmdError(f"the baseline {shown} is not a ctmd-validate report")
    keys = set()
    for i, item in enumerate(data["findings"]):
        key = _key(item) if isinstance(item, dict) else None
        if key is None:
            raise CtmdError(f"the baseline {shown}: finding {i} lacks an id or a message")
        keys.add(key)
    basis = data.get("redaction_basis")
    return Baseline(shown, frozenset(keys), basis if isinstance(basis, str) else None)


def mark_known(
    results: list[CheckResult],
    baseline: Baseline,
    shown: Callable[[Any], Any],
    basis: str | None = None,
) -> list[CheckResult]:
    """Mark the findings present in ``baseline`` as known; ``shown`` masks as reports do.

    A finding whose shown key holds a masked name is known only when both runs masked
    alike (``basis``, the report's ``redaction_basis``, equals the baseline's): else two
    different files could read the same (``[redacted#3].dcm``) and one would hide the other.
    A plain ``[redacted]`` (a name that is in no file of the copy) never matches.
    """
    same_masking = basis is not None and basis == baseline.redaction_basis
    out = []
    for result in results:
        findings = [_marked(f, baseline, shown, same_masking) for f in result.findings]
        out.append(dataclasses.replace(result, findings=findings))
    return out


def _marked(
    f: Finding, baseline: Baseline, shown: Callable[[Any], Any], same_masking: bool
) -> Finding:
    if f.check_id in PROTECTED_IDS:
        return f
    key = (f.check_id, shown(f.case), shown(f.path), shown(f.message))
    text = "\0".join(str(k) for k in key)
    if "[redacted" in text and (not same_masking or "[redacted]" in text):
        return f
    return dataclasses.replace(f, known=True) if key in baseline.keys else f
