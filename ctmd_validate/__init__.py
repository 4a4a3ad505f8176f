"""ctmd-validate: validation and integrity checks for the COVID-CT-MD chest-CT dataset."""

from __future__ import annotations

__version__ = "0.1.0"

from .engine import Run, run_validation, validate, validate_scan
from .errors import CtmdError
from .findings import CheckResult, CheckStatus, Finding, Severity
from .profiles import Profile, load_profile
from .report import Report
from .scan import ScanResult, scan

__all__ = [
    "CheckResult",
    "CheckStatus",
    "CtmdError",
    "Finding",
    "Profile",
    "Report",
    "Run",
    "ScanResult",
    "Severity",
    "__version__",
    "load_profile",
    "run_validation",
    "scan",
    "validate",
    "validate_scan",
]
