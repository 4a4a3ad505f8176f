"""Defects of the folder structure: class and case folders, file names, strays, links."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ...profiles import ManifestCase
from ..headers import CaseJob, write_case
from . import defect
from ._tree import class_dirs, first_case, link_inside, slices


@defect(
    "class-dir-missing",
    "delete the Normal class folder",
    {"structure.class_dir.missing"},
)
def _class_dir_missing(root: Path) -> None:
    shutil.rmtree(class_dirs(root)["normal"])


@defect("class-dir-alias", "rename 'CAP subjects' to 'Cap subjects'", {"structure.class_dir.alias"})
def _class_dir_alias(root: Path) -> None:
    cap = class_dirs(root)["cap"]
    cap.rename(cap.with_name("Cap subjects" if cap.name != "Cap subjects" else "CAP Cases"))


@defect(
    "class-dir-duplicate",
    "add a second COVID-19 folder ('COVID-19 Cases') with one case",
    {"structure.class_dir.duplicate"},
)
def _class_dir_duplicate(root: Path) -> None:
    case = first_case(root)
    shutil.copytree(case, case.parent.with_name("COVID-19 Cases") / case.name)


@defect(
    "case-dir-name",
    "rename the first COVID-19 case folder to lower case ('p001')",
    {"structure.case_dir.name", "labels.index.case_missing"},
)
def _case_dir_name(root: Path) -> None:
    case = first_case(root)
    case.rename(case.with_name(case.name.lower()))


@defect(
    "case-dir-duplicate",
    "copy the first COVID-19 case into the CAP folder",
    {"structure.case_dir.duplicate"},
)
def _case_dir_duplicate(root: Path) -> None:
    case = first_case(root)
    shutil.copytree(case, class_dirs(root)["cap"] / case.name)


@defect(
    "case-dir-empty",
    "delete every slice of the first CAP case, keep its folder",
    {"structure.case_dir.empty"},
)
def _case_dir_empty(root: Path) -> None:
    for f in slices(first_case(root, "cap")):
        f.unlink()


@defect(
    "case-dir-missing",
    "delete the first Normal case folder",
    {"structure.case_dir.missing", "counts.class"},
)
def _case_dir_missing(root: Path) -> None:
    shutil.rmtree(first_case(root, "normal"))


@defect(
    "case-dir-unexpected",
    "add a COVID-19 case P170 that the release does not have",
    {"structure.case_dir.unexpected", "counts.class"},
)
def _case_dir_unexpected(root: Path) -> None:
    extra = ManifestCase("P170", "covid", 12)
    write_case(
        CaseJob(
            case_dir=class_dirs(root)["covid"] / "P170",
            case=extra,
            sex="F",
            age=40,
            seed=99,
            n_slices=12,
        )
    )


@defect(
    "stray-file",
    "add .DS_Store to a case folder and notes.txt to a class folder",
    {"structure.stray_file"},
)
def _stray_file(root: Path) -> None:
    case = first_case(root)
    (case / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 64)
    (case.parent / "notes.txt").write_text("reviewed by J. Doe\n")


@defect(
    "file-extension",
    "rename one slice of the first COVID-19 case to drop '.dcm'",
    {"structure.file.extension"},
)
def _file_extension(root: Path) -> None:
    f = slices(first_case(root))[4]
    f.rename(f.with_suffix(""))


@defect(
    "name-order",
    "rename the first COVID-19 case's files <id>_<n>.dcm, not zero-padded (the sample's names)",
    {"structure.file.name_order"},
)
def _name_order(root: Path) -> None:
    case = first_case(root)
    for i, f in enumerate(slices(case), start=1):
        f.rename(case / f"{case.name}_{i}.dcm")


@defect(
    "no-case-folders",
    "move every case folder out of its class folder (class folders left empty)",
    {"structure.no_dataset"},
)
def _no_case_folders(root: Path) -> None:
    aside = root / "moved-aside"
    aside.mkdir()
    for folder in class_dirs(root).values():
        for case in sorted(p for p in folder.iterdir() if p.is_dir()):
            case.rename(aside / case.name)


@defect(
    "symlink-outside",
    "replace a slice of the first CAP case with a link to a copy outside the dataset root",
    {"structure.symlink_outside"},
)
def _symlink_outside(root: Path) -> None:
    f = slices(first_case(root, "cap"))[2]
    outside = root.parent / f"outside-{root.name}-{f.name}"
    shutil.move(f, outside)
    os.symlink(outside.absolute(), f)


@defect(
    "symlink-loop",
    "add a folder link to itself inside the first Normal case",
    {"structure.symlink_loop"},
)
def _symlink_loop(root: Path) -> None:
    os.symlink(".", first_case(root, "normal") / "again")


@defect(
    "symlink-inside",
    "replace a slice with a link to a copy elsewhere inside the dataset (followed: valid)",
    {"structure.stray_file"},
)
def _symlink_inside(root: Path) -> None:
    link_inside(root)
