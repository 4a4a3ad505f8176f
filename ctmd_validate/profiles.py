"""Expectation profiles: what a dataset should look like (data in ``schemas/profiles``)."""

from __future__ import annotations

import csv
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ProfileError
from .resources import schema_dir

__all__ = [
    "BUILTIN_PROFILES",
    "ClassSpec",
    "Conformance",
    "Demographics",
    "Geometry",
    "LabelSpec",
    "LabelVersion",
    "ManifestCase",
    "Profile",
    "Published",
    "load_profile",
]

BUILTIN_PROFILES = ("release", "subset")


@dataclass(frozen=True)
class ClassSpec:
    """One diagnostic class: its documented folder name, known spellings and case names."""

    key: str
    label: str
    documented: str
    aliases: tuple[str, ...]
    case_pattern: re.Pattern[str]
    expected_cases: int

    def matches_dir(self, name: str) -> bool:
        """True when ``name`` is any known spelling of this class's folder (any letter case)."""
        folded = name.casefold()
        return any(folded == a.casefold() for a in (self.documented, *self.aliases))


@dataclass(frozen=True)
class ManifestCase:
    case_id: str
    class_key: str
    n_slices: int


@dataclass(frozen=True)
class Conformance:
    """Which attributes every image must carry (names are DICOM keywords)."""

    sop_classes: tuple[str, ...] = ("1.2.840.10008.5.1.4.1.1.2",)
    file_meta: tuple[str, ...] = ()
    type1: tuple[str, ...] = ()
    type2: tuple[str, ...] = ()


@dataclass(frozen=True)
class Geometry:
    """Tolerances of the slice-stack geometry checks."""

    orientation_tol: float = 1e-4
    position_tol_mm: float = 0.01
    spacing_abs_tol_mm: float = 0.2
    spacing_rel_tol: float = 0.01


@dataclass(frozen=True)
class LabelVersion:
    """One version of the label arrays: its slice-level and lobe-level file names."""

    name: str
    slice_file: str
    lobe_file: str
    announced_changes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class LabelSpec:
    """Where the label files are and how they are laid out."""

    index: str = "Index.csv"
    index_columns: tuple[str, ...] = ("Label Index", "Diagnosis", "Relative Path", "Folder/ID")
    index_relative_paths: dict[str, str] = field(default_factory=dict)
    lobes: tuple[str, ...] = ("LLL", "LUL", "RLL", "RML", "RUL")
    upper_lobes: tuple[str, ...] = ("LUL", "RUL")
    lower_lobes: tuple[str, ...] = ("LLL", "RLL")
    reference_version: str = "original"
    versions: tuple[LabelVersion, ...] = ()

    @property
    def file_names(self) -> tuple[str, ...]:
        return (self.index, *(n for v in self.versions for n in (v.slice_file, v.lobe_file)))


@dataclass(frozen=True)
class Demographics:
    """A class's published sex counts and age mean / population SD."""

    male: int
    female: int
    age_mean: float
    age_sd: float


@dataclass(frozen=True)
class Published:
    """The dataset's published figures, each compared by a check."""

    source: str = ""
    labelled: dict[str, int] = field(default_factory=dict)
    infected_slices: dict[str, int] = field(default_factory=dict)
    non_infected_slices: int | None = None
    non_infected_classes: tuple[str, ...] = ()
    age_tolerance: float = 0.1
    demographics: dict[str, Demographics] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    """Everything the checks compare the data against."""

    name: str
    description: str
    complete: bool
    classes: dict[str, ClassSpec]
    manifest: dict[str, ManifestCase]
    container_depth: int
    root_files_allowed: tuple[str, ...]
    dicom_suffix: str
    source: str
    conformance: Conformance = field(default_factory=Conformance)
    geometry: Geometry = field(default_factory=Geometry)
    labels: LabelSpec = field(default_factory=LabelSpec)
    published: Published = field(default_factory=Published)
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    def class_of_label(self, label: str) -> str | None:
        for spec in self.classes.values():
            if spec.label.casefold() == label.casefold():
                return spec.key
        return None

    def class_of_case_name(self, name: str) -> str | None:
        """The class whose case-name pattern ``name`` matches, if any."""
        for spec in self.classes.values():
            if spec.case_pattern.match(name):
                return spec.key
        return None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_toml(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Path]:
    if path in seen:
        raise ProfileError(f"profile {path} extends itself")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from exc
    parent = data.pop("extends", None)
    if parent is None:
        return data, path
    parent_path = _resolve(str(parent), path.parent)
    base, _ = _read_toml(parent_path, (*seen, path))
    return _merge(base, data), path


def _resolve(name: str, here: Path | None = None) -> Path:
    if name in BUILTIN_PROFILES:
        return schema_dir() / "profiles" / f"{name}.toml"
    path = Path(name)
    if not path.is_absolute() and here is not None and not path.exists():
        path = here / path
    return path


def _read_manifest(path: Path, classes: dict[str, ClassSpec]) -> dict[str, ManifestCase]:
    by_label = {spec.label.casefold(): key for key, spec in classes.items()}
    out: dict[str, ManifestCase] = {}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                key = by_label.get(row["diagnosis"].strip().casefold())
                if key is None:
                    raise ProfileError(f"{path}: unknown diagnosis {row['diagnosis']!r}")
                out[row["case_id"].strip()] = ManifestCase(
                    row["case_id"].strip(), key, int(row["n_slices"])
                )
    except (OSError, KeyError, ValueError) as exc:
        raise ProfileError(f"cannot read manifest {path}: {exc}") from exc
    return out


def _conformance(data: dict[str, Any]) -> Conformance:
    from pydicom.datadict import tag_for_keyword

    lists = {
        k: tuple(str(v) for v in data.get(k, ()))
        for k in ("sop_classes", "file_meta", "type1", "type2")
    }
    for key in ("file_meta", "type1", "type2"):
        unknown = [kw for kw in lists[key] if tag_for_keyword(kw) is None]
        if unknown:
            raise ProfileError(f"[conformance] {key}: not DICOM keywords: {unknown}")
    return Conformance(**lists)


def _labels(data: dict[str, Any], classes: dict[str, ClassSpec]) -> LabelSpec:
    versions = tuple(
        LabelVersion(
            name=str(name),
            slice_file=str(v["slice"]),
            lobe_file=str(v["lobe"]),
            announced_changes=None
            if "announced_changes" not in v
            else tuple(str(c) for c in v["announced_changes"]),
        )
        for name, v in data.get("versions", {}).items()
    )
    spec = LabelSpec(
        index=str(data.get("index", "Index.csv")),
        index_columns=tuple(str(c) for c in data.get("index_columns", LabelSpec.index_columns)),
        index_relative_paths={
            str(k): str(v) for k, v in data.get("index_relative_paths", {}).items()
        },
        lobes=tuple(str(x) for x in data.get("lobes", LabelSpec.lobes)),
        upper_lobes=tuple(str(x) for x in data.get("upper_lobes", LabelSpec.upper_lobes)),
        lower_lobes=tuple(str(x) for x in data.get("lower_lobes", LabelSpec.lower_lobes)),
        reference_version=str(data.get("reference_version", "original")),
        versions=versions,
    )
    unknown = [k for k in spec.index_relative_paths if k not in classes]
    unknown += [x for x in (*spec.upper_lobes, *spec.lower_lobes) if x not in spec.lobes]
    if versions and spec.reference_version not in {v.name for v in versions}:
        unknown.append(spec.reference_version)
    if unknown:
        raise ProfileError(f"[labels] names unknown classes, lobes or versions: {unknown}")
    return spec


def _published(data: dict[str, Any], classes: dict[str, ClassSpec]) -> Published:
    demo = {
        str(k): Demographics(
            int(v["male"]), int(v["female"]), float(v["age_mean"]), float(v["age_sd"])
        )
        for k, v in data.get("demographics", {}).items()
    }
    non_inf = data.get("non_infected_slices")
    pub = Published(
        source=str(data.get("source", "")),
        labelled={str(k): int(v) for k, v in data.get("labelled", {}).items()},
        infected_slices={str(k): int(v) for k, v in data.get("infected_slices", {}).items()},
        non_infected_slices=None if non_inf is None else int(non_inf),
        non_infected_classes=tuple(str(c) for c in data.get("non_infected_classes", ())),
        age_tolerance=float(data.get("age_tolerance", 0.1)),
        demographics=demo,
    )
    unknown = [
        k for k in (*pub.labelled, *pub.demographics, *pub.non_infected_classes) if k not in classes
    ]
    if unknown:
        raise ProfileError(f"[published] names unknown classes: {unknown}")
    return pub


def load_profile(name_or_path: str = "release") -> Profile:
    """Load a built-in profile (``release``, ``subset``) or a TOML file that may extend one."""
    path = _resolve(name_or_path)
    if not path.is_file():
        raise ProfileError(f"no such profile: {name_or_path}")
    data, _ = _read_toml(path)
    try:
        classes = {
            key: ClassSpec(
                key=key,
                label=str(c["label"]),
                documented=str(c["documented"]),
                aliases=tuple(str(a) for a in c.get("aliases", [])),
                case_pattern=re.compile(str(c["case_pattern"])),
                expected_cases=int(c["expected_cases"]),
            )
            for key, c in data["classes"].items()
        }
        layout = data.get("layout", {})
        manifest_name = data.get("manifest")
        manifest: dict[str, ManifestCase] = {}
        if manifest_name:
            mpath = Path(manifest_name)
            if not mpath.is_absolute():
                local = path.parent / mpath
                mpath = local if local.exists() else schema_dir() / mpath
            manifest = _read_manifest(mpath, classes)
        return Profile(
            name=str(data.get("name", path.stem)),
            description=str(data.get("description", "")),
            complete=bool(data.get("complete", True)),
            classes=classes,
            manifest=manifest,
            container_depth=int(layout.get("container_depth", 1)),
            root_files_allowed=tuple(layout.get("root_files_allowed", [])),
            dicom_suffix=str(layout.get("dicom_suffix", ".dcm")).lower(),
            source=str(path),
            conformance=_conformance(data.get("conformance", {})),
            geometry=Geometry(**{k: float(v) for k, v in data.get("geometry", {}).items()}),
            labels=_labels(data.get("labels", {}), classes),
            published=_published(data.get("published", {}), classes),
            raw=data,
        )
    except (KeyError, TypeError, ValueError, re.error) as exc:
        raise ProfileError(f"malformed profile {path}: {exc!r}") from exc
