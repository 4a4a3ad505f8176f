"""The engine both front ends share: scan once, derive the views, run the checks, report.

The engine alone sees every stage: it builds the run's :class:`~.views.Views` once, hands
them to the checks on the :class:`~.checks.CheckContext` and to the report as
:class:`~.report.RunFacts` (what the report shows), so the report never holds the scan.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .archive import archive_md5 as archive_md5_of
from .archive import is_archive
from .baseline import Baseline, load_baseline, mark_known
from .cache import Cached, RunCache
from .checks import REGISTRY, CheckContext, check_ids, run_checks
from .config import Config, load_config
from .errors import CtmdError
from .findings import CheckResult
from .fixity import verify
from .identifying import identifying_values
from .paths import display
from .policy import Policy, load_policy
from .profiles import Profile, load_profile
from .report import CaseFacts, CheckInfo, Report, RunFacts
from .scan import ProgressFn, ScanResult, scan
from .views import Views, inferred_json, stats_json

__all__ = [
    "FIXITY_IDS",
    "MODES",
    "Run",
    "facts_of",
    "run_validation",
    "validate",
    "validate_scan",
]

#: ``integrity``: is my copy complete and intact? Fixity, the tree, the counts, files that
#: cannot be read and pixels that cannot be decoded; not the release's own audit.
#: ``fixity``: the copy against a manifest only (``manifest verify``).
FIXITY_IDS = (
    "integrity.checksum",
    "integrity.extra_file",
    "integrity.manifest",
    "integrity.missing_file",
    "integrity.size",
)
MODES: dict[str, tuple[str, ...] | None] = {
    "full": None,
    "integrity": (
        "integrity.*",
        "archive.*",
        "structure.*",
        "counts.*",
        "dicom.unreadable",
        "labels.file.*",
    ),
    "fixity": FIXITY_IDS,
}


def _selected(mode: str, only: Iterable[str] | None) -> list[str] | None:
    """The check ids a run of ``mode`` (narrowed by ``only``) runs; None: all."""
    if mode not in MODES:
        raise CtmdError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    patterns = MODES[mode]
    if patterns is None:
        return None if only is None else list(only)
    selected = check_ids(patterns)
    return selected if only is None else [i for i in only if i in selected]


@dataclass(frozen=True)
class Run:
    """One run: the scan, its derived views and the report (front ends show the report)."""

    scan: ScanResult
    views: Views
    report: Report


def _check_infos() -> dict[str, CheckInfo]:
    """How the report shows each registered check (read per run: the registry can grow)."""
    return {i: CheckInfo(s.severity, s.title, s.fix) for i, s in REGISTRY.items()}


def facts_of(scanned: ScanResult, views: Views) -> RunFacts:
    """What the report shows of a scan: counts, cases, names to mask, figures."""
    classes = scanned.profile.classes
    geometry = views.case_geometry
    cases = tuple(
        CaseFacts(
            case=str(row.case_id),
            class_label=classes[row.class_key].label
            if row.class_key in classes
            else str(row.class_key),
            path=str(row.case_key),
            files=int(row.n_files),
            readable=int(row.n_readable),
            geometry=geometry.get(str(row.case_key), {}),
        )
        for row in scanned.cases.itertuples()
    )
    return RunFacts(
        root=str(scanned.root),
        profile=scanned.profile,
        cases=cases,
        files=len(scanned.files),
        names=tuple(str(p) for p in (*scanned.files["path"], *scanned.entries["path"])),
        stats=stats_json(views),
        inferred=inferred_json(views),
        checks=_check_infos(),
        seconds=scanned.seconds,
        jobs=scanned.jobs,
        deep=scanned.deep,
        cached=scanned.cached,
    )


def _finish(
    ctx: CheckContext,
    results: list[CheckResult],
    redact: frozenset[str],
    *,
    config: Config,
    baseline: Baseline | None,
    mode: str,
) -> Run:
    """The run's report: config applied to the check results, then the baseline."""
    facts = facts_of(ctx.scan, ctx.views)
    report = Report(facts, config.apply(results), config, ctx.policy, redact=redact, mode=mode)
    if baseline is not None:
        report.results = mark_known(report.results, baseline, report.scrub, report.redaction_basis)
        report.baseline = baseline.source
    return Run(ctx.scan, ctx.views, report)


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
    ids = _selected(mode, only)
    ctx = CheckContext(scanned, scanned.profile, policy or load_policy(), show_values)
    results = run_checks(ctx, ids)
    redact = frozenset() if show_values else identifying_values(scanned, ctx.policy)
    run = _finish(ctx, results, redact, config=config or Config(), baseline=baseline, mode=mode)
    return run.report


def validate(
    root: str | os.PathLike[str], profile: str | Profile = "release", **options: Any
) -> Report:
    """Validate the dataset at ``root``: one scan, every check, one report.

    The options are :func:`run_validation`'s; this is its report alone (the scan tables
    are let go).
    """
    return run_validation(root, profile, **options).report


def run_validation(
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
    cache: RunCache | None = None,
    manifest: str | os.PathLike[str] | None = None,
    fast: bool = False,
    archive_md5: str | None = None,
) -> Run:
    """Validate the dataset at ``root``: one scan, every check; the scan, views and report.

    Raises :class:`ctmd_validate.errors.CtmdError` only when the run itself is impossible
    (missing root, bad profile, policy or config). Identifying values are redacted from
    every rendering of the report unless ``show_values`` is true. ``labels_dir``: where the
    label files are, when not beside the images. ``baseline``: a report whose findings
    are known (listed, not counted); ``mode``: ``full`` or ``integrity``; ``deep``: decode
    every frame (the ``integrity.pixel`` checks); ``cache``: reuse the scan and results of
    an earlier run over the unchanged tree (:mod:`ctmd_validate.cache`); ``manifest``:
    compare the copy with a BagIt/sha256sum manifest (``fast``: sizes only);
    ``archive_md5``: ROOT is the zip as downloaded, compared with this MD5 (``"published"``:
    the profile's published MD5 and size).
    """
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    cfg = config if isinstance(config, Config) else load_config(config, REGISTRY)
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    base = baseline if isinstance(baseline, Baseline | None) else load_baseline(baseline)
    ids = _selected(mode, None)
    fixity = None
    if manifest is not None:
        if not os.path.isdir(root):
            raise CtmdError(
                f"--manifest compares a folder: {display(os.fspath(root))} is none (for the "
                "archive as downloaded, use --archive-md5)"
            )
        fixity = verify(root, manifest, fast=fast, jobs=jobs)
    md5 = _archive_md5(root, archive_md5, prof) if archive_md5 is not None else None
    finish = functools.partial(_finish, config=cfg, baseline=base, mode=mode)
    labels = None if labels_dir is None else os.fspath(labels_dir)
    entry = None
    if (
        cache is not None
        and not show_values
        and os.path.isdir(root)  # an archive is read anew: its members have no stat of their own
        and cache.usable_for(os.fspath(root), labels)
    ):
        entry = cache.key(
            os.fspath(root),
            labels_dir=labels,
            profile_source=prof.source,
            policy_source=pol.source,
            deep=deep,
        )
        started = time.perf_counter()
        hit = cache.load(*entry)
        if hit is not None and hit.scan.profile == prof:
            hit.scan.cached = True
            hit.scan.seconds = time.perf_counter() - started
            wanted = set(ids or _hit_ids(hit))
            results = [
                r for r in hit.results if r.check_id in wanted and r.check_id not in FIXITY_IDS
            ]
            # the manifest is compared anew each run: that is what it is for
            ctx = CheckContext(hit.scan, prof, pol, show_values, fixity, md5)
            results += run_checks(ctx, [i for i in FIXITY_IDS if i in wanted])
            results.sort(key=lambda r: r.check_id)
            return finish(ctx, results, hit.redact)
    scanned = scan(root, prof, jobs=jobs, progress=progress, labels_dir=labels_dir, deep=deep)
    ctx = CheckContext(scanned, prof, pol, show_values, fixity, md5)
    results = run_checks(ctx, ids)
    redact = frozenset() if show_values else identifying_values(scanned, pol)
    if entry is not None and cache is not None and ids is None:  # only a full run is kept
        cache.store(*entry, Cached(scanned, results, redact))
    return finish(ctx, results, redact)


def _archive_md5(
    root: str | os.PathLike[str], value: str, profile: Profile
) -> tuple[str, str, int | None, int]:
    """(expected, actual, expected size, actual size) of the archive at ``root``."""
    if not is_archive(root):
        raise CtmdError(
            f"--archive-md5 compares the archive as downloaded: {display(os.fspath(root))} "
            "is not a zip file"
        )
    expected_size = None
    if value == "published":
        if profile.published.archive_md5 is None:
            raise CtmdError(f"profile '{profile.name}' publishes no archive MD5: give one")
        expected, expected_size = profile.published.archive_md5, profile.published.archive_size
    elif re.fullmatch(r"[0-9a-fA-F]{32}", value):
        expected = value.lower()
    else:
        raise CtmdError("--archive-md5 takes 32 hexadecimal digits (or nothing: the published)")
    return expected, archive_md5_of(root), expected_size, os.path.getsize(root)


def _hit_ids(hit: Cached) -> list[str]:
    """Every check id a cached full run holds, and the fixity checks."""
    return [r.check_id for r in hit.results] + list(FIXITY_IDS)
