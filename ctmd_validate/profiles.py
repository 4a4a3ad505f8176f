"""Expectation profiles: what a dataset should look like (data in ``schemas/profiles``).

A profile may ``extends = "release"`` (or another file) and override any part of it. Each
file of the chain is checked alone against ``schemas/profile.schema.json`` (unknown keys and
wrong types, so a typo in a user profile is an error, never ignored), then the merged
profile is checked for required keys and cross-references (DICOM keywords, class, lobe and
label-version names). Every error names the file, the line and the key path.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import ProfileError
from .resources import schema_dir
from .settings import Problem, SettingsFile, raise_problems, read_settings, schema_problems

__all__ = [
    "BUILTIN_PROFILES",
    "TRANSFER_SYNTAXES",
    "TYPE1_ITEMS",
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
SCHEMA = "profile.schema.json"

#: Transfer syntaxes accepted without a warning (PS3.5 Section 10, PS3.6 Table A-1):
#: Implicit VR Little Endian, Explicit VR Little Endian, JPEG Lossless SV1 (the release's
#: own), JPEG Lossless, JPEG 2000 lossless, RLE Lossless.
TRANSFER_SYNTAXES: tuple[str, ...] = (
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.5",
)
_SOP_INSTANCE_REFERENCE = ("ReferencedSOPClassUID", "ReferencedSOPInstanceUID")
#: Sequence keyword -> keywords that are Type 1 inside each of its items: the SOP Instance
#: Reference Macro (PS3.3 Table 10-11) that every one of these sequences' items includes.
TYPE1_ITEMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "ReferencedImageSequence": _SOP_INSTANCE_REFERENCE,
        "SourceImageSequence": _SOP_INSTANCE_REFERENCE,
        "ReferencedStudySequence": _SOP_INSTANCE_REFERENCE,
        "ReferencedPerformedProcedureStepSequence": _SOP_INSTANCE_REFERENCE,
    }
)


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
    """Which attributes every image must carry (names are DICOM keywords).

    ``transfer_syntaxes``: UIDs accepted without a warning. ``type1_items``: sequence
    keyword -> keywords that must be present and non-empty in each of its items.
    """

    sop_classes: tuple[str, ...] = ("1.2.840.10008.5.1.4.1.1.2",)
    file_meta: tuple[str, ...] = ()
    type1: tuple[str, ...] = ()
    type2: tuple[str, ...] = ()
    transfer_syntaxes: tuple[str, ...] = TRANSFER_SYNTAXES
    type1_items: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(TYPE1_ITEMS))


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
    #: the archive as published (``check ARCHIVE.zip --archive-md5``): MD5 and size
    archive_md5: str | None = None
    archive_size: int | None = None


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


def _exists(path: Path, kind: str = "any") -> bool:
    """``path.exists()`` / ``is_file()`` that says False for names no OS accepts (NUL)."""
    try:
        return path.is_file() if kind == "file" else path.exists()
    except (OSError, ValueError):
        return False


def _resolve(name: str, here: Path | None = None) -> Path:
    if name in BUILTIN_PROFILES:
        return schema_dir() / "profiles" / f"{name}.toml"
    path = Path(name)
    if not path.is_absolute() and here is not None and not _exists(path):
        path = here / path
    return path


def _read_chain(path: Path) -> list[SettingsFile]:
    """The profile file and every file it extends, most specific first; each checked alone."""
    chain: list[SettingsFile] = []
    seen: list[Path] = []
    while True:
        real = path.resolve()
        if real in seen:
            loop = " -> ".join(sf.label for sf in chain[seen.index(real) :])
            raise ProfileError(f"{chain[-1].where(('extends',))}extends loop: {loop} -> {path}")
        seen.append(real)
        sf = read_settings(path, "profile", ProfileError)
        raise_problems(schema_problems(sf.data, SCHEMA, partial=True), [sf], ProfileError)
        chain.append(sf)
        parent = sf.data.get("extends")
        if parent is None:
            return chain
        path = _resolve(parent, path.parent)
        if not _exists(path, "file"):
            raise ProfileError(f"{sf.where(('extends',))}no such profile: {parent}")


def _read_manifest(path: Path, classes: dict[str, ClassSpec]) -> dict[str, ManifestCase]:
    """The release's cases; raises ValueError saying what is wrong with the CSV."""
    by_label = {spec.label.casefold(): key for key, spec in classes.items()}
    out: dict[str, ManifestCase] = {}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"case_id", "diagnosis", "n_slices"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"no column(s) {sorted(missing)}")
            for row in reader:
                case_id, label, count = (row.get(k) for k in ("case_id", "diagnosis", "n_slices"))
                if case_id is None or label is None or count is None:
                    raise ValueError(f"line {reader.line_num}: too few fields")
                key = by_label.get(label.strip().casefold())
                if key is None:
                    raise ValueError(f"line {reader.line_num}: unknown diagnosis {label!r}")
                if not re.fullmatch(r"[0-9]+", count.strip()):
                    raise ValueError(f"line {reader.line_num}: n_slices {count!r} is not a count")
                case_id = case_id.strip()
                if case_id in out:
                    raise ValueError(f"line {reader.line_num}: case {case_id!r} listed twice")
                out[case_id] = ManifestCase(case_id, key, int(count))
    except (OSError, csv.Error) as exc:  # UnicodeDecodeError is a ValueError: passes through
        raise ValueError(str(exc)) from exc
    return out


def _unknown(path: tuple[str | int, ...], name: object, what: str, known: Sequence[str]) -> Problem:
    return Problem(path, f"unknown {what} {name!r} (known: {', '.join(known)})")


def _conformance(data: dict[str, Any], problems: list[Problem]) -> Conformance:
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    def keywords(path: tuple[str | int, ...], names: Sequence[str]) -> tuple[str, ...]:
        for i, kw in enumerate(names):
            if tag_for_keyword(kw) is None:
                problems.append(Problem((*path, i), f"{kw!r} is not a DICOM keyword"))
        return tuple(names)

    fields: dict[str, Any] = {"sop_classes": tuple(data.get("sop_classes", ()))}
    for key in ("file_meta", "type1", "type2"):
        fields[key] = keywords(("conformance", key), data.get(key, ()))
    if "transfer_syntaxes" in data:
        fields["transfer_syntaxes"] = tuple(data["transfer_syntaxes"])
    if "type1_items" in data:
        items: dict[str, tuple[str, ...]] = {}
        for seq, names in data["type1_items"].items():
            path = ("conformance", "type1_items", seq)
            tag = tag_for_keyword(seq)
            if tag is None:
                problems.append(Problem(path, f"{seq!r} is not a DICOM keyword"))
            elif (vr := dictionary_VR(tag)) != "SQ":
                problems.append(Problem(path, f"{seq} is not a sequence (VR {vr}, not SQ)"))
            items[seq] = keywords(path, names)
        fields["type1_items"] = items
    return Conformance(**fields)


def _labels(
    data: dict[str, Any], classes: dict[str, ClassSpec], problems: list[Problem]
) -> LabelSpec:
    versions = tuple(
        LabelVersion(
            name=name,
            slice_file=v["slice"],
            lobe_file=v["lobe"],
            announced_changes=None
            if "announced_changes" not in v
            else tuple(v["announced_changes"]),
        )
        for name, v in data.get("versions", {}).items()
    )
    spec = LabelSpec(
        index=data.get("index", "Index.csv"),
        index_columns=tuple(data.get("index_columns", LabelSpec.index_columns)),
        index_relative_paths=dict(data.get("index_relative_paths", {})),
        lobes=tuple(data.get("lobes", LabelSpec.lobes)),
        upper_lobes=tuple(data.get("upper_lobes", LabelSpec.upper_lobes)),
        lower_lobes=tuple(data.get("lower_lobes", LabelSpec.lower_lobes)),
        reference_version=data.get("reference_version", "original"),
        versions=versions,
    )
    for key in spec.index_relative_paths:
        if key not in classes:
            problems.append(
                _unknown(("labels", "index_relative_paths", key), key, "class", list(classes))
            )
    for group in ("upper_lobes", "lower_lobes"):
        for i, lobe in enumerate(getattr(spec, group)):
            if lobe not in spec.lobes:
                problems.append(_unknown(("labels", group, i), lobe, "lobe", spec.lobes))
    names = [v.name for v in versions]
    if versions and spec.reference_version not in names:
        problems.append(
            _unknown(("labels", "reference_version"), spec.reference_version, "version", names)
        )
    return spec


def _published(
    data: dict[str, Any],
    classes: dict[str, ClassSpec],
    versions: Sequence[str],
    problems: list[Problem],
) -> Published:
    demo = {
        k: Demographics(int(v["male"]), int(v["female"]), float(v["age_mean"]), float(v["age_sd"]))
        for k, v in data.get("demographics", {}).items()
    }
    non_inf = data.get("non_infected_slices")
    pub = Published(
        source=data.get("source", ""),
        labelled={k: int(v) for k, v in data.get("labelled", {}).items()},
        infected_slices={k: int(v) for k, v in data.get("infected_slices", {}).items()},
        non_infected_slices=None if non_inf is None else int(non_inf),
        non_infected_classes=tuple(data.get("non_infected_classes", ())),
        age_tolerance=float(data.get("age_tolerance", 0.1)),
        demographics=demo,
        archive_md5=data.get("archive_md5"),
        archive_size=None if data.get("archive_size") is None else int(data["archive_size"]),
    )
    known = list(classes)
    for table in ("labelled", "demographics"):
        for key in getattr(pub, table):
            if key not in classes:
                problems.append(_unknown(("published", table, key), key, "class", known))
    for i, key in enumerate(pub.non_infected_classes):
        if key not in classes:
            problems.append(_unknown(("published", "non_infected_classes", i), key, "class", known))
    for key in pub.infected_slices:
        if versions and key not in versions:
            problems.append(
                _unknown(("published", "infected_slices", key), key, "label version", versions)
            )
    return pub


def _manifest(
    data: dict[str, Any], here: Path, classes: dict[str, ClassSpec], problems: list[Problem]
) -> dict[str, ManifestCase]:
    name = data.get("manifest")
    if not name:
        return {}
    path = Path(name)
    if not path.is_absolute():
        local = here / path
        path = local if _exists(local) else schema_dir() / path
    try:
        return _read_manifest(path, classes)
    except ValueError as exc:
        problems.append(Problem(("manifest",), f"cannot read manifest {path}: {exc}"))
        return {}


def load_profile(name_or_path: str = "release") -> Profile:
    """Load a built-in profile (``release``, ``subset``) or a TOML file that may extend one.

    Raises :class:`ProfileError` naming the file, line and key of every problem found.
    """
    path = _resolve(name_or_path)
    if not _exists(path, "file"):
        raise ProfileError(f"no such profile: {name_or_path}")
    chain = _read_chain(path)
    data: dict[str, Any] = {}
    for sf in reversed(chain):
        data = _merge(data, {k: v for k, v in sf.data.items() if k != "extends"})
    raise_problems(schema_problems(data, SCHEMA), chain, ProfileError)
    problems: list[Problem] = []
    try:
        classes = {
            key: ClassSpec(
                key=key,
                label=c["label"],
                documented=c["documented"],
                aliases=tuple(c.get("aliases", [])),
                case_pattern=re.compile(c["case_pattern"]),
                expected_cases=int(c["expected_cases"]),
            )
            for key, c in data["classes"].items()
        }
        layout = data.get("layout", {})
        labels = _labels(data.get("labels", {}), classes, problems)
        profile = Profile(
            name=data.get("name", path.stem),
            description=data.get("description", ""),
            complete=data.get("complete", True),
            classes=classes,
            manifest=_manifest(data, path.parent, classes, problems),
            container_depth=int(layout.get("container_depth", 1)),
            root_files_allowed=tuple(layout.get("root_files_allowed", [])),
            dicom_suffix=layout.get("dicom_suffix", ".dcm").lower(),
            source=str(path),
            conformance=_conformance(data.get("conformance", {}), problems),
            geometry=Geometry(**{k: float(v) for k, v in data.get("geometry", {}).items()}),
            labels=labels,
            published=_published(
                data.get("published", {}), classes, [v.name for v in labels.versions], problems
            ),
            raw=data,
        )
    except (KeyError, TypeError, ValueError, re.error) as exc:  # the schema should prevent these
        raise ProfileError(f"malformed profile {path}: {exc!r}") from exc
    raise_problems(problems, chain, ProfileError)
    return profile
