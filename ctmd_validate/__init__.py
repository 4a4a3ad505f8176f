"""ctmd-validate: validation and integrity checks for the COVID-CT-MD chest-CT dataset."""

from __future__ import annotations

__version__ = "0.1.0"

from .engine import validate, validate_scan  # noqa: E402
from .errors import CtmdError  # noqa: E402
from .findings import CheckResult, CheckStatus, Finding, Severity  # noqa: E402
from .profiles import Profile, load_profile  # noqa: E402
from .report import Report  # noqa: E402
from .scan import ScanResult, scan  # noqa: E402

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
