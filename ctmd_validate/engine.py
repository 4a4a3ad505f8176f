"""The engine both front ends share: scan once, run the checks, apply the config."""

from __future__ import annotations

import os
from collections.abc import Iterable

from .config import Config, load_config
from .profiles import Profile, load_profile
from .registry import CheckContext, run_checks
from .report import Report
from .scan import ProgressFn, ScanResult, scan

__all__ = ["validate", "validate_scan"]


def validate_scan(
    scanned: ScanResult, config: Config | None = None, only: Iterable[str] | None = None
) -> Report:
    """Run the checks over an existing scan (no file is read again)."""
    config = config or Config()
    results = run_checks(CheckContext(scanned, scanned.profile), only)
    return Report(scanned, config.apply(results), config)


def validate(
    root: str | os.PathLike[str],
    profile: str | Profile = "release",
    *,
    config: str | os.PathLike[str] | Config | None = None,
    jobs: int | None = None,
    progress: ProgressFn | None = None,
) -> Report:
    """Validate the dataset at ``root``: one scan, every check, one report.

    Raises :class:`ctmd_validate.errors.CtmdError` only when the run itself is impossible
    (missing root, bad profile or config).
    """
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    cfg = config if isinstance(config, Config) else load_config(config)
    return validate_scan(scan(root, prof, jobs=jobs, progress=progress), cfg)
