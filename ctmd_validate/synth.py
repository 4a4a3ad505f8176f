"""Synthetic COVID-CT-MD trees: realistic DICOM headers, tiny pixels, consistent labels.

``write_dataset`` builds a clean tree (the release's case ids and slice counts, 2 mm axial
stacks, CT Image Storage, de-identified headers that keep only sex and age) plus
``Index.csv`` and the four label arrays. ``apply_defect`` then breaks it in exactly one
named way; every check of the project has at least one defect that must trigger it
(``DEFECTS[name].fires``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pydicom.filebase
import pydicom.filewriter
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from .profiles import Demographics, ManifestCase, Profile, load_profile

__all__ = [
    "DEFECTS",
    "LAYOUTS",
    "SCALES",
    "Defect",
    "apply_defect",
    "select_cases",
    "tree_profile",
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

MATRIX = 16  # pixels per side: the headers are real, the pixels are tiny
FOV_MM = 383.0
SLICE_MM = 2.0
LABEL_SLICES = 200  # width of the released label arrays' slice axis
LOBES = ("LLL", "LUL", "RLL", "RML", "RUL")
LABELLED = {"covid": 54, "cap": 25}  # P001-P054 and cap001-cap025 carry labels
# Published figures reproduced by a release-scale tree (see schemas/profiles/release.toml).
INFECTED_ORIGINAL = 4957
INFECTED_UPDATED = 4993
DEMOGRAPHICS = {  # males, females, age mean, age population SD
    "covid": (108, 61, 51.96, 14.39),
    "cap": (35, 25, 57.7, 21.7),
    "normal": (40, 36, 43.4, 14.1),
}
UID_PREFIX = "1.2.826.0.1.3680043.10.1145."  # synthetic data only


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


# --------------------------------------------------------------------------- DICOM


def _uid(*parts: object) -> str:
    return generate_uid(UID_PREFIX, entropy_srcs=[str(p) for p in parts])


def _template(case: ManifestCase, sex: str, age: int, seed: int) -> Dataset:  # noqa: PLR0915  (one CT header, attribute by attribute)
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "CTMD_SYNTH"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = "SIEMENS"
    ds.ReferringPhysicianName = ""
    ds.ManufacturerModelName = "SOMATOM Scope"
    ds.PatientName = ""
    ds.PatientID = case.case_id  # the pseudonym: the case id
    ds.PatientBirthDate = ""
    ds.PatientSex = sex
    ds.PatientAge = f"{age:03d}Y"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "PS3.15 Basic Profile; Retain Patient Characteristics (sex, age)"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = SLICE_MM
    ds.KVP = 110
    ds.GantryDetectorTilt = 0
    ds.ConvolutionKernel = "D40s"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = _uid(seed, case.case_id, "study")
    ds.SeriesInstanceUID = _uid(seed, case.case_id, "series")
    ds.StudyID = ""
    ds.SeriesNumber = 4
    ds.AcquisitionNumber = 2
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = _uid(seed, case.case_id, "frame")
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = MATRIX
    ds.Columns = MATRIX
    ds.PixelSpacing = [FOV_MM / MATRIX, FOV_MM / MATRIX]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = [50, -600]
    ds.WindowWidth = [350, 1200]
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    return ds


def _pixels(i: int, n: int) -> bytes:
    """A small disc whose radius follows the slice position: cheap, but not constant."""
    yy, xx = np.mgrid[:MATRIX, :MATRIX] - (MATRIX - 1) / 2
    radius = 2 + (MATRIX / 2 - 2) * np.sin(np.pi * (i + 0.5) / n)
    img = np.where(xx**2 + yy**2 <= radius**2, 1024 + 40, 24).astype("<u2")
    return img.tobytes()


def _write_case(args: tuple[Path, ManifestCase, str, int, int, int]) -> int:
    """Write one case's stack: IM0001 is the cranial end, 2 mm steps caudally."""
    case_dir, case, sex, age, seed, n_slices = args
    case_dir.mkdir(parents=True, exist_ok=True)
    ds = _template(case, sex, age, seed)
    rng = np.random.default_rng([seed, zlib.crc32(case.case_id.encode())])
    top = -40.0 - round(float(rng.uniform(0, 30)), 1)
    x0 = y0 = -FOV_MM / 2
    for i in range(n_slices):
        z = round(top - SLICE_MM * i, 1)
        sop = _uid(seed, case.case_id, i)
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SOPInstanceUID = sop
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [x0, y0, z]
        ds.SliceLocation = z
        ds.PixelData = _pixels(i, n_slices)
        ds.save_as(case_dir / f"IM{i + 1:04d}.dcm", enforce_file_format=True)
    return n_slices


# --------------------------------------------------------------------------- labels


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


def _demographics(cases: list[ManifestCase], seed: int, full: bool) -> dict[str, tuple[str, int]]:
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[str, int]] = {}
    for key, (males, females, mean, sd) in DEMOGRAPHICS.items():
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


def _labelled(profile: Profile) -> list[ManifestCase]:
    out: list[ManifestCase] = []
    for key, count in LABELLED.items():
        out.extend([c for c in profile.manifest.values() if c.class_key == key][:count])
    return out


def _lobe_labels(labelled: list[ManifestCase], seed: int) -> np.ndarray:
    """Lobe labels with index 0 at the cranial end: upper lobes first, lower lobes last."""
    rng = np.random.default_rng(seed + 1)
    lobes = np.zeros((len(labelled), LABEL_SLICES, len(LOBES)), dtype=np.float64)
    for row, case in enumerate(labelled):
        n = case.n_slices
        lung_top, lung_bottom = int(n * 0.15), int(n * 0.85)
        span = lung_bottom - lung_top
        extents = {  # lobe -> (start, stop) as fractions of the lung span, cranial first
            "RUL": (0.0, 0.40),
            "LUL": (0.0, 0.50),
            "RML": (0.35, 0.65),
            "RLL": (0.45, 1.0),
            "LLL": (0.50, 1.0),
        }
        for lobe, (a, b) in extents.items():
            if rng.random() < 0.3:
                continue
            start = lung_top + int(span * a)
            stop = lung_top + int(span * b)
            length = max(1, int((stop - start) * rng.uniform(0.2, 0.6)))
            first = int(rng.integers(start, max(start + 1, stop - length)))
            lobes[row, first : first + length, LOBES.index(lobe)] = 1
    return lobes


def _fit_total(lobes: np.ndarray, rows: Iterable[int], counts: list[int], target: int) -> None:
    """Grow or shrink infected runs of ``rows`` until exactly ``target`` slices are infected."""
    rows = list(rows)
    for _ in range(100_000):
        total = int(lobes.any(axis=2).sum())
        if total == target:
            return
        for row in rows:
            infected = np.flatnonzero(lobes[row].any(axis=1))
            if total < target:
                cand = np.flatnonzero(~lobes[row].any(axis=1)[: counts[row]])
                if infected.size:
                    edge = [
                        s
                        for s in (infected.max() + 1, infected.min() - 1)
                        if 0 <= s < counts[row] and s in cand
                    ]
                    if edge:
                        # grow with the lobe at that end, so upper lobes stay cranial
                        end = infected.max() if edge[0] > infected.max() else infected.min()
                        at_end = np.flatnonzero(lobes[row, end])
                        lobe = int(at_end[-1 if end > infected.min() else 0])
                        lobes[row, edge[0], lobe] = 1
                        total += 1
            elif infected.size:
                lobes[row, infected.max(), :] = 0
                total -= 1
            if total == target:
                return
    raise RuntimeError("could not fit the infected-slice total")


@functools.cache
def _label_arrays(labelled: tuple[ManifestCase, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Original and updated-1 lobe labels of the 79 labelled cases (index 0 cranial).

    The labels cover every labelled case whatever the scale (as in the public sample), and
    reproduce the published totals: 4,957 infected slices originally, 4,993 after update 1,
    which revises P001 and P006 only.
    """
    counts = [c.n_slices for c in labelled]
    lobes = _lobe_labels(list(labelled), seed)
    _fit_total(lobes, range(len(labelled)), counts, INFECTED_ORIGINAL)
    updated = lobes.copy()
    revised = [i for i, c in enumerate(labelled) if c.case_id in {"P001", "P006"}]
    _fit_total(updated, revised, counts, INFECTED_UPDATED)
    lobes.flags.writeable = False
    updated.flags.writeable = False
    return lobes, updated


def _write_labels(out: Path, profile: Profile, seed: int) -> None:
    """The label files, with clean dtypes (int64); ``labels-dtype`` restores the release's."""
    labelled = _labelled(profile)
    lobes, updated = _label_arrays(tuple(labelled), seed)
    np.save(out / "Slice-level-labels.npy", lobes.any(axis=2).astype(np.int64))
    np.save(out / "Lobe-level-labels.npy", lobes.astype(np.int64))
    np.save(out / "Slice-level-labels-updated-1.npy", updated.any(axis=2).astype(np.int64))
    np.save(out / "Lobe-level-labels-updated-1.npy", updated.astype(np.int64))
    lines = ["Label Index,Diagnosis,Relative Path,Folder/ID"]
    for i, case in enumerate(labelled):
        label = profile.classes[case.class_key].label
        lines.append(f"{i},{label},./{label}/,{case.case_id}")
    (out / "Index.csv").write_bytes("\r\n".join(lines).encode("ascii"))


# --------------------------------------------------------------------------- dataset


def class_dir(root: Path, class_key: str, layout: str = "readme") -> Path:
    container, names = LAYOUTS[layout]
    base = root / container if container else root
    return base / names[class_key]


def write_dataset(
    out: str | os.PathLike[str],
    *,
    scale: str = "small",
    layout: str = "readme",
    defects: Iterable[str] = (),
    seed: int = 0,
    jobs: int | None = None,
    profile: Profile | None = None,
) -> Path:
    """Write a synthetic tree to ``out`` (created; must be empty or absent)."""
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {sorted(LAYOUTS)}")
    profile = profile or load_profile("release")
    cases = select_cases(profile, scale)
    full = SCALES[scale] is None
    demo = _demographics(cases, seed, full)
    jobs_ = [
        (class_dir(root, c.class_key, layout) / c.case_id, c, *demo[c.case_id], seed, c.n_slices)
        for c in cases
    ]
    root.mkdir(parents=True, exist_ok=True)
    workers = max(1, jobs or os.cpu_count() or 1)
    if workers == 1 or len(jobs_) < 8:
        for job in jobs_:
            _write_case(job)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_write_case, jobs_, chunksize=4))
    _write_labels(root, profile, seed)
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
    demo = _demographics(cases, seed, SCALES[scale] is None)
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


# --------------------------------------------------------------------------- defects


@dataclass(frozen=True)
class Defect:
    """A named way to break a clean tree, and the check ids it must make fire."""

    name: str
    description: str
    apply: Callable[[Path], None]
    fires: frozenset[str]
    #: the profile to validate with: "subset", or "tree" (:func:`tree_profile`, for checks
    #: that need every case of a class, such as the demographics)
    profile: str = "subset"
    #: only a deep scan (``--deep``: every frame decoded) can see it
    deep: bool = False
    #: judged against a manifest of the clean tree, built before the defect is applied
    manifest: bool = False
    #: applied to the tree zipped (:func:`write_archive`), judged with the clean zip's MD5
    archive: bool = False


DEFECTS: dict[str, Defect] = {}


def _defect(
    name: str,
    description: str,
    fires: Iterable[str],
    profile: str = "subset",
    *,
    deep: bool = False,
    manifest: bool = False,
    archive: bool = False,
) -> Callable[[Callable[[Path], None]], Callable[[Path], None]]:
    def register(func: Callable[[Path], None]) -> Callable[[Path], None]:
        DEFECTS[name] = Defect(
            name, description, func, frozenset(fires), profile, deep, manifest, archive
        )
        return func

    return register


def apply_defect(root: str | os.PathLike[str], name: str) -> None:
    """Break the synthetic tree at ``root`` in the named way (see ``DEFECTS``)."""
    if name not in DEFECTS:
        raise KeyError(f"unknown defect {name!r}; choose from {sorted(DEFECTS)}")
    DEFECTS[name].apply(Path(root))


def _class_dirs(root: Path) -> dict[str, Path]:
    profile = load_profile("release")
    found: dict[str, Path] = {}
    for base in (root, *[p for p in root.iterdir() if p.is_dir()]):
        for entry in sorted(base.iterdir()) if base.is_dir() else []:
            if not entry.is_dir():
                continue
            for key, spec in profile.classes.items():
                if spec.matches_dir(entry.name) and key not in found:
                    found[key] = entry
    return found


def _first_case(root: Path, class_key: str = "covid") -> Path:
    return sorted(p for p in _class_dirs(root)[class_key].iterdir() if p.is_dir())[0]


def _slices(case: Path) -> list[Path]:
    return sorted(case.glob("*.dcm"))


@_defect(
    "class-dir-missing",
    "delete the Normal class folder",
    {"structure.class_dir.missing", "structure.case_dir.missing", "counts.class"},
)
def _class_dir_missing(root: Path) -> None:
    shutil.rmtree(_class_dirs(root)["normal"])


@_defect(
    "class-dir-alias", "rename 'CAP subjects' to 'Cap subjects'", {"structure.class_dir.alias"}
)
def _class_dir_alias(root: Path) -> None:
    cap = _class_dirs(root)["cap"]
    cap.rename(cap.with_name("Cap subjects" if cap.name != "Cap subjects" else "CAP Cases"))


@_defect(
    "class-dir-duplicate",
    "add a second COVID-19 folder ('COVID-19 Cases') with one case",
    {
        "structure.class_dir.duplicate",
        "structure.class_dir.alias",
        "structure.case_dir.duplicate",
        "counts.class",
        "dicom.uid.duplicate",
    },
)
def _class_dir_duplicate(root: Path) -> None:
    case = _first_case(root)
    shutil.copytree(case, case.parent.with_name("COVID-19 Cases") / case.name)


@_defect(
    "case-dir-name",
    "rename the first COVID-19 case folder to lower case ('p001')",
    {"structure.case_dir.name", "structure.case_dir.missing", "labels.index.case_missing"},
)
def _case_dir_name(root: Path) -> None:
    case = _first_case(root)
    case.rename(case.with_name(case.name.lower()))


@_defect(
    "case-dir-duplicate",
    "copy the first COVID-19 case into the CAP folder",
    {
        "structure.case_dir.duplicate",
        "structure.case_dir.name",
        "counts.class",
        "dicom.uid.duplicate",
        "labels.index.diagnosis_mismatch",
    },
)
def _case_dir_duplicate(root: Path) -> None:
    case = _first_case(root)
    shutil.copytree(case, _class_dirs(root)["cap"] / case.name)


@_defect(
    "case-dir-empty",
    "delete every slice of the first CAP case, keep its folder",
    {"structure.case_dir.empty", "counts.case_slices"},
)
def _case_dir_empty(root: Path) -> None:
    for f in _slices(_first_case(root, "cap")):
        f.unlink()


@_defect(
    "case-dir-missing",
    "delete the first Normal case folder",
    {"structure.case_dir.missing", "counts.class"},
)
def _case_dir_missing(root: Path) -> None:
    shutil.rmtree(_first_case(root, "normal"))


@_defect(
    "case-dir-unexpected",
    "add a COVID-19 case P170 that the release does not have",
    {"structure.case_dir.unexpected", "counts.class"},
)
def _case_dir_unexpected(root: Path) -> None:
    extra = ManifestCase("P170", "covid", 12)
    _write_case((_class_dirs(root)["covid"] / "P170", extra, "F", 40, 99, 12))


@_defect(
    "stray-file",
    "add .DS_Store to a case folder and notes.txt to a class folder",
    {"structure.stray_file"},
)
def _stray_file(root: Path) -> None:
    case = _first_case(root)
    (case / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 64)
    (case.parent / "notes.txt").write_text("reviewed by J. Doe\n")


@_defect(
    "file-extension",
    "rename one slice of the first COVID-19 case to drop '.dcm'",
    {"structure.file.extension"},
)
def _file_extension(root: Path) -> None:
    f = _slices(_first_case(root))[4]
    f.rename(f.with_suffix(""))


@_defect(
    "missing-slice",
    "delete one interior slice of the first COVID-19 case",
    {"counts.case_slices", "geometry.spacing.missing_slice", "geometry.instance_number"},
)
def _missing_slice(root: Path) -> None:
    files = _slices(_first_case(root))
    files[len(files) // 2].unlink()


@_defect(
    "truncated-file",
    "cut the last slice of the first CAP case inside its Pixel Data",
    {"dicom.unreadable"},
)
def _truncated_file(root: Path) -> None:
    f = _slices(_first_case(root, "cap"))[-1]
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - MATRIX])


@_defect(
    "truncated-header",
    "cut one slice of the first CAP case inside its header",
    {"dicom.unreadable", "geometry.spacing.missing_slice", "geometry.instance_number"},
)
def _truncated_header(root: Path) -> None:
    f = _slices(_first_case(root, "cap"))[1]
    f.write_bytes(f.read_bytes()[:700])


@_defect(
    "empty-file",
    "empty one slice of the first Normal case (0 bytes)",
    {"dicom.unreadable", "geometry.spacing.missing_slice", "geometry.instance_number"},
)
def _empty_file(root: Path) -> None:
    _slices(_first_case(root, "normal"))[2].write_bytes(b"")


@_defect(
    "not-dicom",
    "overwrite one slice of the first Normal case with text",
    {"dicom.unreadable", "geometry.spacing.missing_slice", "geometry.instance_number"},
)
def _not_dicom(root: Path) -> None:
    _slices(_first_case(root, "normal"))[3].write_text("this is not a DICOM file\n" * 20)


# --------------------------------------------------------------------------- header defects


def _edit(path: Path, change: Callable[[Dataset], None], *, enforce: bool = True) -> None:
    """Rewrite one file after ``change``; ``enforce=False`` keeps a broken file meta as is."""
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path, enforce_file_format=enforce)


def _set(**values: object) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        for keyword, value in values.items():
            setattr(ds, keyword, value)

    return change


def _delete(*keywords: str) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        for keyword in keywords:
            delattr(ds, keyword)

    return change


@_defect(
    "file-meta-incomplete",
    "drop File Meta Information Version and Implementation Class UID from a CAP case",
    {"dicom.file_meta"},
)
def _file_meta_incomplete(root: Path) -> None:
    def change(ds: Dataset) -> None:
        del ds.file_meta.FileMetaInformationVersion
        del ds.file_meta.ImplementationClassUID

    for f in _slices(_first_case(root, "cap")):
        _edit(f, change, enforce=False)


@_defect(
    "media-uid-mismatch",
    "give one slice a Media Storage SOP Instance UID that differs from its SOP Instance UID",
    {"dicom.file_meta"},
)
def _media_uid_mismatch(root: Path) -> None:
    def change(ds: Dataset) -> None:
        ds.file_meta.MediaStorageSOPInstanceUID = _uid("media-mismatch")

    _edit(_slices(_first_case(root, "cap"))[3], change, enforce=False)


@_defect(
    "sop-class",
    "turn one slice of the first CAP case into a Secondary Capture",
    {"dicom.sop_class"},
)
def _sop_class(root: Path) -> None:
    def change(ds: Dataset) -> None:
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage

    _edit(_slices(_first_case(root, "cap"))[5], change)


@_defect(
    "type1-missing",
    "delete Rescale Intercept (Type 1) from one slice",
    {"dicom.required_attribute"},
)
def _type1_missing(root: Path) -> None:
    _edit(_slices(_first_case(root, "normal"))[6], _delete("RescaleIntercept"))


@_defect(
    "type2-missing",
    "delete Patient's Name (Type 2) from every slice of the Normal case",
    {"dicom.required_attribute"},
)
def _type2_missing(root: Path) -> None:
    for f in _slices(_first_case(root, "normal")):
        _edit(f, _delete("PatientName"))


@_defect(
    "uid-invalid-nested",
    "add a Referenced Image Sequence whose item holds a UID with a leading zero",
    {"dicom.uid.invalid"},
)
def _uid_invalid_nested(root: Path) -> None:
    def change(ds: Dataset) -> None:
        item = Dataset()
        item.ReferencedSOPClassUID = CTImageStorage
        with warnings.catch_warnings():  # pydicom rightly warns: this UID is the defect
            warnings.simplefilter("ignore", UserWarning)
            item.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.10.1145.07"
        ds.ReferencedImageSequence = Sequence([item])

    _edit(_slices(_first_case(root))[7], change)


@_defect(
    "uid-duplicate-sop",
    "give slice 2 of the first COVID-19 case slice 1's SOP Instance UID",
    {"dicom.uid.duplicate"},
)
def _uid_duplicate_sop(root: Path) -> None:
    first, second = _slices(_first_case(root))[:2]
    uid = pydicom.dcmread(first, stop_before_pixels=True).SOPInstanceUID

    def change(ds: Dataset) -> None:
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid

    _edit(second, change)


@_defect(
    "uid-duplicate-study",
    "give the Normal case the COVID-19 case's Study Instance UID",
    {"dicom.uid.duplicate"},
)
def _uid_duplicate_study(root: Path) -> None:
    study = pydicom.dcmread(_slices(_first_case(root))[0], stop_before_pixels=True)
    for f in _slices(_first_case(root, "normal")):
        _edit(f, _set(StudyInstanceUID=study.StudyInstanceUID))


@_defect(
    "series-multiple",
    "give the second half of the CAP case a new Series Instance UID",
    {"geometry.series.multiple"},
)
def _series_multiple(root: Path) -> None:
    files = _slices(_first_case(root, "cap"))
    for f in files[len(files) // 2 :]:
        _edit(f, _set(SeriesInstanceUID=_uid("second-series")))


@_defect(
    "orientation-tilt",
    "tilt the orientation of one slice by 0.01",
    {"geometry.orientation.inconsistent"},
)
def _orientation_tilt(root: Path) -> None:
    _edit(
        _slices(_first_case(root))[10],
        _set(ImageOrientationPatient=[1, 0, 0, 0, 0.99995, 0.0099998]),
    )


@_defect(
    "pixel-spacing", "give one slice a different Pixel Spacing", {"geometry.shape.inconsistent"}
)
def _pixel_spacing(root: Path) -> None:
    _edit(_slices(_first_case(root))[11], _set(PixelSpacing=[0.5, 0.5]))


@_defect(
    "slice-location-missing",
    "delete Slice Location from one slice",
    {"geometry.slice_location.missing", "dicom.required_attribute"},
)
def _slice_location_missing(root: Path) -> None:
    _edit(_slices(_first_case(root))[12], _delete("SliceLocation"))


def _stack(case: Path) -> list[tuple[Path, Dataset]]:
    """A case's slices with headers, in stack order (cranial first, as written)."""
    pairs = [(f, pydicom.dcmread(f, stop_before_pixels=True)) for f in _slices(case)]
    return sorted(pairs, key=lambda p: -float(p[1].ImagePositionPatient[2]))


@_defect(
    "slice-location-duplicate",
    "copy one slice's Slice Location onto its neighbour",
    {"geometry.slice_location.duplicate", "geometry.position.mismatch"},
)
def _slice_location_duplicate(root: Path) -> None:
    stack = _stack(_first_case(root, "normal"))
    _edit(stack[20][0], _set(SliceLocation=stack[21][1].SliceLocation))


@_defect(
    "instance-order",
    "swap the Instance Numbers of two slices",
    {"geometry.slice_location.non_monotonic"},
)
def _instance_order(root: Path) -> None:
    stack = _stack(_first_case(root, "normal"))
    (fa, a), (fb, b) = stack[30], stack[40]
    _edit(fa, _set(InstanceNumber=b.InstanceNumber))
    _edit(fb, _set(InstanceNumber=a.InstanceNumber))


@_defect(
    "slice-location-shift",
    "shift one slice's Slice Location by 0.5 mm",
    {"geometry.position.mismatch"},
)
def _slice_location_shift(root: Path) -> None:
    path, ds = _stack(_first_case(root, "normal"))[50]
    _edit(path, _set(SliceLocation=round(float(ds.SliceLocation) + 0.5, 1)))


@_defect(
    "uneven-spacing",
    "move one interior slice 0.6 mm along z (position and location)",
    {"geometry.spacing.irregular"},
)
def _uneven_spacing(root: Path) -> None:
    path, ds = _stack(_first_case(root, "cap"))[40]
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    z = round(z + 0.6, 1)
    _edit(path, _set(ImagePositionPatient=[x, y, z], SliceLocation=z))


@_defect(
    "instance-number-gap",
    "renumber the last slice of the CAP case (a gap of 5)",
    {"geometry.instance_number"},
)
def _instance_number_gap(root: Path) -> None:
    path, ds = _stack(_first_case(root, "cap"))[-1]
    _edit(path, _set(InstanceNumber=int(ds.InstanceNumber) + 5))


@_defect(
    "gantry-tilt",
    "tilt the gantry by 5 degrees on every slice of the Normal case",
    {"geometry.instance_number"},
)
def _gantry_tilt(root: Path) -> None:
    for f in _slices(_first_case(root, "normal")):
        _edit(f, _set(GantryDetectorTilt=5))


# --------------------------------------------------------------------------- de-identification


def _all(case: Path, change: Callable[[Dataset], None]) -> None:
    for f in _slices(case):
        _edit(f, change)


@_defect(
    "deid-patient-name",
    "put a patient name into every slice of the COVID-19 case",
    {"deid.attribute.present"},
)
def _deid_patient_name(root: Path) -> None:
    _all(_first_case(root), _set(PatientName="Zyxwvut^Qwerty"))


@_defect(
    "deid-birth-date",
    "put a birth date into every slice of the CAP case",
    {"deid.attribute.present"},
)
def _deid_birth_date(root: Path) -> None:
    _all(_first_case(root, "cap"), _set(PatientBirthDate="19630412"))


@_defect(
    "deid-institution",
    "put an institution name into one slice of the Normal case",
    {"deid.attribute.present"},
)
def _deid_institution(root: Path) -> None:
    _edit(_slices(_first_case(root, "normal"))[0], _set(InstitutionName="Secret Hospital"))


@_defect(
    "deid-private-block",
    "add a private block (creator 'ACME 1.0') to one slice",
    {"deid.private_tags"},
)
def _deid_private_block(root: Path) -> None:
    def change(ds: Dataset) -> None:
        block = ds.private_block(0x0029, "ACME 1.0", create=True)
        block.add_new(0x01, "LO", "site note")

    _edit(_slices(_first_case(root))[1], change)


@_defect(
    "deid-nested-uid",
    "record a Device Serial Number and nest a UID that embeds it in a sequence item",
    {"deid.uid.not_remapped", "deid.attribute.present"},
)
def _deid_nested_uid(root: Path) -> None:
    def change(ds: Dataset) -> None:
        ds.DeviceSerialNumber = "93005"
        item = Dataset()
        item.ReferencedSOPClassUID = CTImageStorage
        item.ReferencedSOPInstanceUID = "1.3.12.2.1107.5.1.4.93005.3000002003050728310"
        ds.ReferencedImageSequence = Sequence([item])

    _edit(_slices(_first_case(root, "cap"))[2], change)


@_defect(
    "deid-sex-missing",
    "delete Patient's Sex from one slice",
    {"deid.kept_attribute.missing", "dicom.required_attribute"},
)
def _deid_sex_missing(root: Path) -> None:
    _edit(_slices(_first_case(root, "normal"))[4], _delete("PatientSex"))


@_defect(
    "deid-age-malformed",
    "write Patient's Age as '39' (not AS form) in the CAP case",
    {"deid.kept_attribute.missing", "demographics.age_format"},
)
def _deid_age_malformed(root: Path) -> None:
    def change(ds: Dataset) -> None:
        with warnings.catch_warnings():  # pydicom rightly warns: this value is the defect
            warnings.simplefilter("ignore", UserWarning)
            ds.PatientAge = "39"

    _all(_first_case(root, "cap"), change)


@_defect(
    "deid-identity-flag",
    "delete Patient Identity Removed from the Normal case",
    {"deid.patient_identity_removed"},
)
def _deid_identity_flag(root: Path) -> None:
    _all(_first_case(root, "normal"), _delete("PatientIdentityRemoved"))


@_defect(
    "deid-patient-id",
    "set a hospital-style Patient ID in the CAP case",
    {"deid.patient_id", "deid.attribute.present"},
)
def _deid_patient_id(root: Path) -> None:
    _all(_first_case(root, "cap"), _set(PatientID="MRN77001234"))


@_defect(
    "deid-filename",
    "name the COVID-19 case's files after a Patient ID they carry",
    {"deid.filename", "deid.patient_id", "deid.attribute.present", "structure.file.name_order"},
)
def _deid_filename(root: Path) -> None:
    for i, f in enumerate(_slices(_first_case(root)), start=1):
        _edit(f, _set(PatientID="98Z14734-QWRT"))
        f.rename(f.with_name(f"98Z14734-QWRT_{i}.dcm"))


@_defect(
    "demographics-inconsistent",
    "flip Patient's Sex on one slice of the COVID-19 case",
    {"demographics.inconsistent"},
)
def _demographics_inconsistent(root: Path) -> None:
    path = _slices(_first_case(root))[6]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    _edit(path, _set(PatientSex="F" if ds.PatientSex == "M" else "M"))


# --------------------------------------------------------------------------- label defects

_SLICE, _LOBE = "Slice-level-labels.npy", "Lobe-level-labels.npy"
_SLICE1, _LOBE1 = "Slice-level-labels-updated-1.npy", "Lobe-level-labels-updated-1.npy"
_ALL_ARRAYS = (_SLICE, _LOBE, _SLICE1, _LOBE1)


def _load(root: Path, name: str) -> np.ndarray:
    return np.load(root / name, allow_pickle=False)


def _index_lines(root: Path) -> list[str]:
    return (root / "Index.csv").read_bytes().decode("ascii").split("\r\n")


def _write_index(root: Path, lines: list[str]) -> None:
    (root / "Index.csv").write_bytes("\r\n".join(lines).encode("ascii"))


def _edit_index(root: Path, case_id: str, column: int, value: str) -> None:
    lines = _index_lines(root)
    for i, line in enumerate(lines):
        fields = line.split(",")
        if fields[-1] == case_id:
            fields[column] = value
            lines[i] = ",".join(fields)
    _write_index(root, lines)


def _label_row(root: Path, case_id: str) -> int:
    ids = [line.split(",")[-1] for line in _index_lines(root)[1:]]
    return ids.index(case_id)


def _present_labelled(root: Path) -> tuple[str, int]:
    """The labelled case whose images are in the tree (P017 in tiny) and its slice count."""
    case = _first_case(root)
    return case.name, len(_slices(case))


def _edit_arrays(
    root: Path, change: Callable[[np.ndarray, str], None], names: Iterable[str]
) -> None:
    for name in names:
        array = _load(root, name).copy()
        change(array, name)
        np.save(root / name, array)


@_defect(
    "labels-missing",
    "delete the updated-1 lobe-level label array",
    {"labels.file.missing"},
)
def _labels_missing(root: Path) -> None:
    (root / _LOBE1).unlink()


@_defect(
    "labels-pickled",
    "replace the original slice-level array with a pickled object array",
    {"labels.file.unreadable"},
)
def _labels_pickled(root: Path) -> None:
    objects = np.empty(2, dtype=object)
    objects[:] = [{"labels": [0, 1]}, "not an array of labels"]
    np.save(root / _SLICE, objects, allow_pickle=True)


@_defect(
    "labels-truncated",
    "cut the original lobe-level array in the middle of its data",
    {"labels.file.unreadable"},
)
def _labels_truncated(root: Path) -> None:
    path = root / _LOBE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@_defect(
    "labels-not-npy",
    "overwrite the updated-1 slice-level array with CSV text",
    {"labels.file.unreadable"},
)
def _labels_not_npy(root: Path) -> None:
    (root / _SLICE1).write_text("0,1,0\n1,1,0\n")


@_defect(
    "index-header",
    "rename the Index.csv column 'Folder/ID' to 'Folder ID'",
    {"labels.index.schema"},
)
def _index_header(root: Path) -> None:
    lines = _index_lines(root)
    lines[0] = lines[0].replace("Folder/ID", "Folder ID")
    _write_index(root, lines)


@_defect(
    "index-bad-id",
    "write case P030 as 'P30' in Index.csv",
    {"labels.index.schema"},
)
def _index_bad_id(root: Path) -> None:
    _edit_index(root, "P030", 3, "P30")


@_defect(
    "index-ragged",
    "add a fifth field to the Index.csv line of P031",
    {
        "labels.index.schema",
        "labels.index.gap",
        "labels.index.case_missing",
        "counts.labelled",
    },
)
def _index_ragged(root: Path) -> None:
    _edit_index(root, "P031", 2, "./COVID-19/,extra")


@_defect(
    "index-gap",
    "skip Label Index 43: rows from P044 on carry their position + 1 (as the real Index.csv)",
    {"labels.index.gap", "labels.index.out_of_range"},
)
def _index_gap(root: Path) -> None:
    lines = _index_lines(root)
    for i in range(44, len(lines)):
        fields = lines[i].split(",")
        fields[0] = str(int(fields[0]) + 1)
        lines[i] = ",".join(fields)
    _write_index(root, lines)


@_defect(
    "index-diagnosis",
    "file the present COVID-19 case under CAP in Index.csv (Diagnosis and Relative Path)",
    {
        "labels.index.schema",
        "labels.index.diagnosis_mismatch",
        "labels.index.case_missing",
        "counts.labelled",
    },
)
def _index_diagnosis(root: Path) -> None:
    case_id, _n = _present_labelled(root)
    _edit_index(root, case_id, 1, "CAP")
    _edit_index(root, case_id, 2, "./CAP/")


@_defect(
    "index-relative-path",
    "give P020 the Relative Path './CAP/' in Index.csv",
    {"labels.index.relative_path"},
)
def _index_relative_path(root: Path) -> None:
    _edit_index(root, "P020", 2, "./CAP/")


@_defect(
    "labels-shape",
    "drop the last slice column of the updated-1 slice-level array",
    {"labels.shape"},
)
def _labels_shape(root: Path) -> None:
    np.save(root / _SLICE1, _load(root, _SLICE1)[:, :-1].copy())


@_defect(
    "labels-dtype",
    "store the arrays in the release's dtypes: float64 lobes, int32 updated-1 slices",
    {"labels.dtype"},
)
def _labels_dtype(root: Path) -> None:
    for name, dtype in ((_LOBE, np.float64), (_LOBE1, np.float64), (_SLICE1, np.int32)):
        np.save(root / name, _load(root, name).astype(dtype))


@_defect(
    "labels-values",
    "set one infected cell of P020 to 2 in both slice-level arrays",
    {"labels.values"},
)
def _labels_values(root: Path) -> None:
    row = _label_row(root, "P020")

    def change(array: np.ndarray, _name: str) -> None:
        array[row, int(np.flatnonzero(array[row])[0])] = 2

    _edit_arrays(root, change, (_SLICE, _SLICE1))


@_defect(
    "labels-lobe-mismatch",
    "clear every lobe of one infected P020 slice in both lobe-level arrays",
    {"labels.lobe_slice.mismatch"},
)
def _labels_lobe_mismatch(root: Path) -> None:
    row = _label_row(root, "P020")
    first = int(np.flatnonzero(_load(root, _SLICE)[row])[0])

    def change(array: np.ndarray, _name: str) -> None:
        array[row, first, :] = 0

    _edit_arrays(root, change, (_LOBE, _LOBE1))


@_defect(
    "labels-padding",
    "move one infected slice of the present COVID-19 case past its last slice (all arrays)",
    {"labels.padding"},
)
def _labels_padding(root: Path) -> None:
    case_id, n = _present_labelled(root)
    row = _label_row(root, case_id)
    first = int(np.flatnonzero(_load(root, _SLICE)[row])[0])

    def change(array: np.ndarray, _name: str) -> None:
        array[row, n + 3] = array[row, first]
        array[row, first] = 0

    _edit_arrays(root, change, _ALL_ARRAYS)


@_defect(
    "labels-capacity",
    "cut every label array to 170 slice columns (release scans reach 195 slices)",
    {"labels.capacity"},
)
def _labels_capacity(root: Path) -> None:
    for name in _ALL_ARRAYS:
        np.save(root / name, _load(root, name)[:, :170].copy())


@_defect(
    "labels-unannounced-change",
    "add an infected slice to P020 in the updated-1 labels only (not announced)",
    {"labels.version_diff"},
)
def _labels_unannounced(root: Path) -> None:
    row = _label_row(root, "P020")
    first = int(np.flatnonzero(_load(root, _SLICE1)[row])[0])

    def change(array: np.ndarray, _name: str) -> None:
        array[row, first - 1] = array[row, first]

    _edit_arrays(root, change, (_SLICE1, _LOBE1))


@_defect(
    "labels-reversed",
    "reverse the slice order of the present COVID-19 case's labels (all arrays)",
    {"labels.orientation"},
)
def _labels_reversed(root: Path) -> None:
    case_id, n = _present_labelled(root)
    row = _label_row(root, case_id)

    def change(array: np.ndarray, _name: str) -> None:
        array[row, :n] = array[row, :n][::-1].copy()

    _edit_arrays(root, change, _ALL_ARRAYS)


@_defect(
    "labels-total",
    "add one infected slice to P020 in the original labels only",
    {"labels.total", "labels.version_diff"},
)
def _labels_total(root: Path) -> None:
    row = _label_row(root, "P020")
    first = int(np.flatnonzero(_load(root, _SLICE)[row])[0])

    def change(array: np.ndarray, _name: str) -> None:
        array[row, first - 1] = array[row, first]

    _edit_arrays(root, change, (_SLICE, _LOBE))


@_defect(
    "age-months",
    "write Patient's Age in months ('540M', valid DICOM) in the Normal case",
    {"demographics.age_format"},
)
def _age_months(root: Path) -> None:
    _all(_first_case(root, "normal"), _set(PatientAge="540M"))


@_defect(
    "demographics-sex",
    "flip Patient's Sex on every slice of the Normal case (validated with tree_profile)",
    {"demographics.sex"},
    profile="tree",
)
def _demographics_sex(root: Path) -> None:
    path = _slices(_first_case(root, "normal"))[0]
    sex = pydicom.dcmread(path, stop_before_pixels=True).PatientSex
    _all(_first_case(root, "normal"), _set(PatientSex="F" if sex == "M" else "M"))


@_defect(
    "demographics-age",
    "add ten years to Patient's Age in the CAP case (validated with tree_profile)",
    {"demographics.age"},
    profile="tree",
)
def _demographics_age(root: Path) -> None:
    path = _slices(_first_case(root, "cap"))[0]
    age = int(str(pydicom.dcmread(path, stop_before_pixels=True).PatientAge)[:3])
    _all(_first_case(root, "cap"), _set(PatientAge=f"{age + 10:03d}Y"))


# --------------------------------------------------------------------------- trust defects


@_defect(
    "no-case-folders",
    "move every case folder out of its class folder (class folders left empty)",
    {
        "structure.no_dataset",
        "structure.case_dir.missing",
        "labels.index.case_missing",
        "structure.stray_file",
        "counts.class",
    },
)
def _no_case_folders(root: Path) -> None:
    aside = root / "moved-aside"
    aside.mkdir()
    for class_dir in _class_dirs(root).values():
        for case in sorted(p for p in class_dir.iterdir() if p.is_dir()):
            case.rename(aside / case.name)


@_defect(
    "symlink-outside",
    "replace a slice of the first CAP case with a link to a copy outside the dataset root",
    {
        "structure.symlink_outside",
        "counts.case_slices",
        "geometry.spacing.missing_slice",
        "geometry.instance_number",
    },
)
def _symlink_outside(root: Path) -> None:
    f = _slices(_first_case(root, "cap"))[2]
    outside = root.parent / f"outside-{root.name}-{f.name}"
    shutil.move(f, outside)
    os.symlink(outside.absolute(), f)


@_defect(
    "symlink-loop",
    "add a folder link to itself inside the first Normal case",
    {"structure.symlink_loop"},
)
def _symlink_loop(root: Path) -> None:
    os.symlink(".", _first_case(root, "normal") / "again")


@_defect(
    "symlink-inside",
    "replace a slice with a link to a copy elsewhere inside the dataset (followed: valid)",
    {"structure.stray_file"},
)
def _symlink_inside(root: Path) -> None:
    f = _slices(_first_case(root, "cap"))[2]
    spare = root / "spare-slice.dcm"
    shutil.move(f, spare)
    os.symlink(os.path.relpath(spare, f.parent), f)


@_defect(
    "vr-mismatch",
    "write one slice's dataset in implicit VR while its file meta says explicit VR",
    {"dicom.parser_warning"},
)
def _vr_mismatch(root: Path) -> None:
    f = _slices(_first_case(root, "covid"))[4]
    ds = pydicom.dcmread(f)
    head = f.read_bytes()
    end = len(head) - len(_encoded(ds, implicit=False))
    f.write_bytes(head[:end] + _encoded(ds, implicit=True))


def _encoded(ds: Dataset, *, implicit: bool) -> bytes:
    """The dataset (file meta excluded) encoded little endian, implicit or explicit VR."""
    buffer = pydicom.filebase.DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = implicit
    pydicom.filewriter.write_dataset(buffer, ds)
    return buffer.getvalue()


@_defect(
    "big-endian",
    "rewrite one slice of the first Normal case in Explicit VR Big Endian (valid, retired)",
    {"dicom.transfer_syntax"},
)
def _big_endian(root: Path) -> None:
    f = _slices(_first_case(root, "normal"))[1]
    ds = pydicom.dcmread(f)
    ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    pydicom.dcmwrite(f, ds, little_endian=False, implicit_vr=False, enforce_file_format=True)


@_defect(
    "deflated",
    "rewrite one slice of the first Normal case in Deflated Explicit VR Little Endian",
    {"dicom.transfer_syntax"},
)
def _deflated(root: Path) -> None:
    f = _slices(_first_case(root, "normal"))[2]
    ds = pydicom.dcmread(f)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(f, enforce_file_format=True)


@_defect(
    "zero-filled",
    "replace the Pixel Data of one CAP slice with 4 MiB of zeros (a zero-filled download)",
    {"dicom.unreadable"},
)
def _zero_filled(root: Path) -> None:
    f = _slices(_first_case(root, "cap"))[-1]
    data = f.read_bytes()
    f.write_bytes(data[: data.rindex(b"\xe0\x7f\x10\x00")] + bytes(4 << 20))


@_defect(
    "name-order",
    "rename the first COVID-19 case's files <id>_<n>.dcm, not zero-padded (the sample's names)",
    {"structure.file.name_order"},
)
def _name_order(root: Path) -> None:
    case = _first_case(root, "covid")
    for i, f in enumerate(_slices(case), start=1):
        f.rename(case / f"{case.name}_{i}.dcm")


@_defect(
    "deid-empty-removed",
    "add an empty Patient's Address (action X) to every slice of the CAP case",
    {"deid.attribute.empty"},
)
def _deid_empty_removed(root: Path) -> None:
    for f in _slices(_first_case(root, "cap")):
        _edit(f, _set(PatientAddress=""))


@_defect(
    "sop-uid-empty",
    "empty every SOP Instance UID of the Normal case, keeping the file meta's (hold-out style)",
    {"dicom.file_meta", "dicom.required_attribute", "dicom.uid.duplicate"},
)
def _sop_uid_empty(root: Path) -> None:
    for f in _slices(_first_case(root, "normal")):
        _edit(f, _set(SOPInstanceUID=""), enforce=False)


@_defect(
    "nested-type1-empty",
    "add a Referenced Image Sequence whose item has an empty Referenced SOP Instance UID",
    {"dicom.required_attribute"},
)
def _nested_type1_empty(root: Path) -> None:
    def change(ds: Dataset) -> None:
        item = Dataset()
        item.ReferencedSOPClassUID = CTImageStorage
        item.ReferencedSOPInstanceUID = ""
        ds.ReferencedImageSequence = Sequence([item])

    for f in _slices(_first_case(root))[:3]:
        _edit(f, change)


@_defect(
    "meta-group-length",
    "overwrite File Meta Information Group Length of one CAP slice with a wrong size",
    {"dicom.file_meta"},
)
def _meta_group_length(root: Path) -> None:
    f = _slices(_first_case(root, "cap"))[4]
    data = bytearray(f.read_bytes())
    assert data[132:138] == b"\x02\x00\x00\x00UL"  # (0002,0000) UL, first after 'DICM'
    (length,) = struct.unpack("<I", data[140:144])
    data[140:144] = struct.pack("<I", length + 40)
    f.write_bytes(bytes(data))


# --------------------------------------------------------------------------- pixel defects
# Seen only by a deep scan: header and framing stay intact.


@_defect(
    "pixel-short",
    "cut the Pixel Data of one Normal slice to half its bytes (element length kept right)",
    {"integrity.pixel.decode"},
    deep=True,
)
def _pixel_short(root: Path) -> None:
    def change(ds: Dataset) -> None:
        ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]

    _edit(_slices(_first_case(root, "normal"))[4], change)


@_defect(
    "pixel-out-of-range",
    "store 5000 in one pixel of a CAP slice whose Bits Stored is 12 (at most 4095)",
    {"integrity.pixel.range"},
    deep=True,
)
def _pixel_out_of_range(root: Path) -> None:
    def change(ds: Dataset) -> None:
        pixels = bytearray(ds.PixelData)
        pixels[0:2] = (5000).to_bytes(2, "little")
        ds.PixelData = bytes(pixels)

    _edit(_slices(_first_case(root, "cap"))[2], change)


@_defect(
    "rescale-implausible",
    "set Rescale Intercept -10000 on one COVID-19 slice (air would be -11000 HU)",
    {"integrity.pixel.range"},
    deep=True,
)
def _rescale_implausible(root: Path) -> None:
    _edit(_slices(_first_case(root, "covid"))[3], _set(RescaleIntercept=-10000))


# --------------------------------------------------------------------------- fixity defects
# Judged against a manifest of the clean tree (``manifest build`` before the damage).


@_defect(
    "fixity-flip",
    "flip one byte inside the Pixel Data of a CAP slice (same size, still decodes)",
    {"integrity.checksum"},
    manifest=True,
)
def _fixity_flip(root: Path) -> None:
    f = _slices(_first_case(root, "cap"))[4]
    data = bytearray(f.read_bytes())
    data[-MATRIX // 2] ^= 0x01
    f.write_bytes(bytes(data))


@_defect(
    "fixity-missing",
    "delete the last slice of the first Normal case (the stack stays regular)",
    {"integrity.missing_file", "counts.case_slices"},
    manifest=True,
)
def _fixity_missing(root: Path) -> None:
    _slices(_first_case(root, "normal"))[-1].unlink()


@_defect(
    "fixity-extra",
    "add a converted volume (volume.nii) beside the class folders",
    {"integrity.extra_file", "structure.stray_file"},
    manifest=True,
)
def _fixity_extra(root: Path) -> None:
    (root / "volume.nii").write_bytes(b"\0" * 352)


@_defect(
    "fixity-truncated",
    "cut the last slice of the first Normal case inside its Pixel Data",
    {"integrity.size", "dicom.unreadable"},
    manifest=True,
)
def _fixity_truncated(root: Path) -> None:
    f = _slices(_first_case(root, "normal"))[-1]
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - MATRIX])


@_defect(
    "fixity-link",
    "replace a slice with a link to a copy elsewhere inside the dataset (not compared)",
    {
        "integrity.manifest",
        "integrity.missing_file",
        "integrity.extra_file",
        "structure.stray_file",
    },
    manifest=True,
)
def _fixity_link(root: Path) -> None:
    _symlink_inside(root)


# --------------------------------------------------------------------------- archive defects
# Applied to the tree zipped as the publisher would (write_archive), judged with the MD5 of
# the clean zip: any change to the archive also changes its MD5 (archive.md5).


def write_archive(tree: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Zip ``tree`` (members relative to it, folders included, deflated) to ``out``."""
    tree, out = Path(tree), Path(out)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(tree.rglob("*")):
            rel = path.relative_to(tree).as_posix()
            if path.is_dir():
                zf.writestr(rel + "/", b"")
            else:
                zf.write(path, rel)
    return out


@_defect(
    "archive-zip-slip",
    "add a member '../evil.dcm' to the archive (an extraction would write outside)",
    {"archive.unsafe_member", "archive.md5"},
    archive=True,
)
def _archive_zip_slip(archive: Path) -> None:
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("../evil.dcm", b"DICM" * 64)


@_defect(
    "archive-truncated",
    "cut the archive in half, as a download that stopped early",
    {
        "archive.unreadable",
        "archive.md5",
        "structure.no_dataset",
        "structure.class_dir.missing",
        "structure.case_dir.missing",
        "counts.class",
        "labels.file.missing",
    },
    archive=True,
)
def _archive_truncated(archive: Path) -> None:
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])


@_defect(
    "archive-comment",
    "change the archive's comment: every member intact, the file not the published one",
    {"archive.md5"},
    archive=True,
)
def _archive_comment(archive: Path) -> None:
    with zipfile.ZipFile(archive, "a") as zf:
        zf.comment = b"repacked"
