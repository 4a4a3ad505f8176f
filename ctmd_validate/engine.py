"""The engine both front ends share: scan once, run the checks, apply the config."""

from __future__ import annotations

import os
from collections.abc import Iterable

from .baseline import Baseline, load_baseline, mark_known
from .config import Config, load_config
from .errors import CtmdError
from .identifying import identifying_values
from .policy import Policy, load_policy
from .profiles import Profile, load_profile
from .registry import CheckContext, check_ids, run_checks
from .report import Report
from .scan import ProgressFn, ScanResult, scan

__all__ = ["MODES", "validate", "validate_scan"]

#: ``integrity``: is my copy complete and intact? Fixity, the tree, the counts, files that
#: cannot be read and pixels that cannot be decoded; not the release's own audit.
MODES: dict[str, tuple[str, ...] | None] = {
    "full": None,
    "integrity": ("integrity.*", "structure.*", "counts.*", "dicom.unreadable"),
}


def validate_scan(
    scanned: ScanResult,
    config: Config | None = None,
    only: Iterable[str] | None = None,
    *,
    policy: Policy | None = None,
    show_values: bool = False,
    baseline: Baseline | None = None,
    mode: str = "full",
) -> Report:
    """Run the checks over an existing scan (no file is read again).

    ``mode`` selects the checks (:data:`MODES`; ``only`` narrows further); ``baseline``
    turns the findings it already holds into known ones.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    config = config or Config()
    ctx = CheckContext(scanned, scanned.profile, policy or load_policy(), show_values)
    patterns = MODES[mode]
    if patterns is not None:
        selected = check_ids(patterns)
        only = selected if only is None else [i for i in only if i in selected]
    results = run_checks(ctx, only)
    report = Report(
        scanned,
        config.apply(results),
        config,
        ctx.policy,
        redact=frozenset() if show_values else identifying_values(scanned, ctx.policy),
        mode=mode,
    )
    if baseline is not None:
        report.results = mark_known(report.results, baseline, report.scrub)
        report.baseline = baseline.source
    return report


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
    baseline: str | os.PathLike[str] | Baseline | None = None,
    mode: str = "full",
    deep: bool = False,
) -> Report:
    """Validate the dataset at ``root``: one scan, every check, one report.

    Raises :class:`ctmd_validate.errors.CtmdError` only when the run itself is impossible
    (missing root, bad profile, policy or config). Identifying values are redacted from
    every rendering of the report unless ``show_values`` is true. ``labels_dir``: where the
    label files are, when not beside the images. ``baseline``: a report whose findings
    are known (listed, not counted); ``mode``: ``full`` or ``integrity``; ``deep``: decode
    every frame (the ``integrity.pixel`` checks).
    """
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    cfg = config if isinstance(config, Config) else load_config(config)
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    base = baseline if isinstance(baseline, Baseline | None) else load_baseline(baseline)
    if mode not in MODES:
        raise CtmdError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    scanned = scan(root, prof, jobs=jobs, progress=progress, labels_dir=labels_dir, deep=deep)
    return validate_scan(
        scanned, cfg, policy=pol, show_values=show_values, baseline=base, mode=mode
    )
