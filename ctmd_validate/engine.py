"""The engine both front ends share: scan once, run the checks, apply the config."""

from __future__ import annotations

import os
from collections.abc import Iterable

from .config import Config, load_config
from .identifying import identifying_values
from .policy import Policy, load_policy
from .profiles import Profile, load_profile
from .registry import CheckContext, run_checks
from .report import Report
from .scan import ProgressFn, ScanResult, scan

__all__ = ["validate", "validate_scan"]


def validate_scan(
    scanned: ScanResult,
    config: Config | None = None,
    only: Iterable[str] | None = None,
    *,
    policy: Policy | None = None,
    show_values: bool = False,
) -> Report:
    """Run the checks over an existing scan (no file is read again)."""
    config = config or Config()
    ctx = CheckContext(scanned, scanned.profile, policy or load_policy(), show_values)
    results = run_checks(ctx, only)
    return Report(
        scanned,
        config.apply(results),
        config,
        ctx.policy,
        redact=frozenset() if show_values else identifying_values(scanned, ctx.policy),
    )


def validate(
    root: str | os.PathLike[str],
    profile: str | Profile = "release",
    *,
    config: str | os.PathLike[str] | Config | None = None,
    jobs: int | None = None,
    progress: ProgressFn | None = None,
    policy: str | Policy | None = None,
    show_values: bool = False,
    labels_dir: str | os.PathLike[str] | None = None,
) -> Report:
    """Validate the dataset at ``root``: one scan, every check, one report.

    Raises :class:`ctmd_validate.errors.CtmdError` only when the run itself is impossible
    (missing root, bad profile, policy or config). Identifying values are redacted from
    every rendering of the report unless ``show_values`` is true. ``labels_dir``: where the
    label files are, when not beside the images.
    """
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    cfg = config if isinstance(config, Config) else load_config(config)
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    scanned = scan(root, prof, jobs=jobs, progress=progress, labels_dir=labels_dir)
    return validate_scan(scanned, cfg, policy=pol, show_values=show_values)
