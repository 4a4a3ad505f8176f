"""Whole synthetic trees: which cases a scale writes, where, with which demographics.

``write_dataset`` writes the DICOM stacks (:mod:`.headers`) and the label files
(:mod:`.labels`) in one of the :data:`LAYOUTS`; ``write_archive`` zips a tree as the
publisher would; ``tree_profile`` is the profile a clean small tree satisfies exactly.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..profiles import Demographics, ManifestCase, Profile, load_profile
from .defects import apply_defect
from .headers import CaseJob, write_case
from .labels import write_labels

__all__ = [
    "LAYOUTS",
    "SCALES",
    "class_dir",
    "select_cases",
    "tree_profile",
    "write_archive",
    "write_dataset",
]

#: Folder names per layout: the README's tree, the public sample, the Figshare archive.
LAYOUTS: dict[str, tuple[str | None, dict[str, str]]] = {
    "readme": (
        None,
        {"covid": "COVID-19 subjects", "cap": "CAP subjects", "normal": "Normal subjects"},
    ),
    "sample": (
        "Sample data",
        {"covid": "COVID-19 subjects", "cap": "Cap subjects", "normal": "Normal subjects"},
    ),
    "figshare": (None, {"covid": "COVID-19 Cases", "cap": "Cap Cases", "normal": "Normal Cases"}),
}
#: Cases per class (None: all of them). Small scales take the shortest cases of each class.
SCALES: dict[str, int | None] = {"release": None, "small": 2, "tiny": 1}


def select_cases(profile: Profile, scale: str) -> list[ManifestCase]:
    """The manifest cases a scale writes, in manifest order."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose from {sorted(SCALES)}")
    per_class = SCALES[scale]
    cases = list(profile.manifest.values())
    if per_class is None:
        return cases
    chosen: list[ManifestCase] = []
    for key in profile.classes:
        of_class = [c for c in cases if c.class_key == key]
        chosen.extend(sorted(of_class, key=lambda c: (c.n_slices, c.case_id))[:per_class])
    order = {c.case_id: i for i, c in enumerate(cases)}
    return sorted(chosen, key=lambda c: order[c.case_id])


def class_dir(root: Path, class_key: str, layout: str = "readme") -> Path:
    """The folder of class ``class_key`` under ``root`` in ``layout``."""
    container, names = LAYOUTS[layout]
    base = root / container if container else root
    return base / names[class_key]


# --------------------------------------------------------------------------- demographics


def _ages(n: int, mean: float, sd: float, rng: np.random.Generator) -> list[int]:
    """Whole-year ages in 18..99 whose mean and population SD match the given figures (±0.01)."""
    raw = rng.normal(size=n)
    raw = (raw - raw.mean()) / raw.std()
    ages = np.clip(np.round(mean + sd * raw), 18, 99).astype(int)
    for _ in range(100_000):
        err_m, err_s = ages.mean() - mean, ages.std() - sd
        if abs(err_m) < 0.01 and abs(err_s) < 0.01:
            return [int(a) for a in ages]
        if abs(err_m) >= 0.01:  # nudge one age towards the mean's target
            step = -1 if err_m > 0 else 1
            movable = np.flatnonzero((ages + step >= 18) & (ages + step <= 99))
            ages[rng.choice(movable)] += step
            continue
        widen = err_s < 0  # move one age up and one down: the sum (mean) stays
        if widen:
            up = np.flatnonzero((ages >= mean) & (ages < 99))
            down = np.flatnonzero((ages <= mean) & (ages > 18))
        else:
            up = np.flatnonzero(ages + 1 < mean)
            down = np.flatnonzero(ages - 1 > mean)
        if not up.size or not down.size:
            break
        ages[rng.choice(up)] += 1
        ages[rng.choice(down)] -= 1
    raise RuntimeError(f"cannot draw {n} ages with mean {mean} and SD {sd}")


def _demographics(
    cases: list[ManifestCase], seed: int, full: bool, published: Mapping[str, Demographics]
) -> dict[str, tuple[str, int]]:
    """Case id -> (sex, age) drawn from the ``published`` figures of each class.

    ``full`` (release scale, every case of a class present): the sex counts are exact and
    the ages match the published mean and population SD; otherwise each case is drawn alone.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[str, int]] = {}
    for key, figures in published.items():
        males, females = figures.male, figures.female
        mean, sd = figures.age_mean, figures.age_sd
        ids = [c.case_id for c in cases if c.class_key == key]
        if not ids:
            continue
        if full and len(ids) == males + females:
            sexes = ["M"] * males + ["F"] * females
            rng.shuffle(sexes)
            ages = _ages(len(ids), mean, sd, rng)
        else:
            sexes = [str(rng.choice(["M", "F"])) for _ in ids]
            ages = [int(a) for a in np.clip(rng.normal(mean, sd, len(ids)).round(), 18, 95)]
        out.update({cid: (s, a) for cid, s, a in zip(ids, sexes, ages, strict=True)})
    return out


# --------------------------------------------------------------------------- trees


def write_dataset(
    out: str | os.PathLike[str],
    *,
    scale: str = "small",
    layout: str = "readme",
    defects: Iterable[str] = (),
    seed: int = 0,
    jobs: int | None = None,
    profile: Profile | None = None,
    vendor: bool = False,
) -> Path:
    """Write a synthetic tree to ``out`` (created; must be empty or absent).

    ``vendor``: headers as heavy as the real release's (private blocks, sequences, CT
    acquisition attributes; see :func:`.headers._vendor_extras`), for benchmarks. Their
    private blocks are ``deid.private_tags`` findings unless the policy lists
    :data:`.headers.SYNTH_PRIVATE_CREATORS` as safe.
    """
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {sorted(LAYOUTS)}")
    profile = profile or load_profile("release")
    cases = select_cases(profile, scale)
    full = SCALES[scale] is None
    demo = _demographics(cases, seed, full, profile.published.demographics)
    case_jobs = [
        CaseJob(
            case_dir=class_dir(root, c.class_key, layout) / c.case_id,
            case=c,
            sex=demo[c.case_id][0],
            age=demo[c.case_id][1],
            seed=seed,
            n_slices=c.n_slices,
            vendor=vendor,
        )
        for c in cases
    ]
    root.mkdir(parents=True, exist_ok=True)
    workers = max(1, jobs or os.cpu_count() or 1)
    if workers == 1 or len(case_jobs) < 8:
        for job in case_jobs:
            write_case(job)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(write_case, case_jobs, chunksize=4))
    write_labels(root, profile, seed)
    for name in defects:
        apply_defect(root, name)
    return root


def tree_profile(scale: str = "tiny", seed: int = 0, base: Profile | None = None) -> Profile:
    """A ``subset`` profile whose expectations are exactly a clean synthetic tree's.

    Its classes hold as many cases as the tree, its manifest is the tree's cases and its
    published demographics are the tree's own, so the checks that need every case of a
    class (``demographics.*``) run, and pass, on a small tree.
    """
    base = base or load_profile("subset")
    cases = select_cases(base, scale)
    demo = _demographics(cases, seed, SCALES[scale] is None, base.published.demographics)
    classes = {
        key: dataclasses.replace(spec, expected_cases=sum(1 for c in cases if c.class_key == key))
        for key, spec in base.classes.items()
    }
    table: dict[str, Demographics] = {}
    for key in classes:
        of_class = [demo[c.case_id] for c in cases if c.class_key == key]
        if not of_class:
            continue
        ages = np.array([a for _s, a in of_class], dtype=float)
        table[key] = Demographics(
            male=sum(1 for s, _a in of_class if s == "M"),
            female=sum(1 for s, _a in of_class if s == "F"),
            age_mean=round(float(ages.mean()), 2),
            age_sd=round(float(ages.std()), 2),
        )
    return dataclasses.replace(
        base,
        name=f"synthetic-{scale}",
        description=f"exactly the clean synthetic {scale} tree (seed {seed})",
        classes=classes,
        manifest={c.case_id: c for c in cases},
        published=dataclasses.replace(base.published, demographics=table),
    )


def write_archive(tree: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Zip ``tree`` (members relative to it, folders included, deflated) to ``out``.

    The archive defects (``DEFECTS[name].archive``) break such a zip.
    """
    tree, out = Path(tree), Path(out)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(tree.rglob("*")):
            rel = path.relative_to(tree).as_posix()
            if path.is_dir():
                zf.writestr(rel + "/", b"")
            else:
                zf.write(path, rel)
    return out
