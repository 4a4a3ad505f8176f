"""ctmd-validate: validation and integrity checks for the COVID-CT-MD chest-CT dataset."""

from __future__ import annotations

__version__ = "0.1.0"

from .engine import validate, validate_scan
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
    "ScanResult",
    "Severity",
    "__version__",
    "load_profile",
    "scan",
    "validate",
    "validate_scan",
]
