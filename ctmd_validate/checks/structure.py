"""Structure: class folders, case folders and files that do not belong."""

from __future__ import annotations

from collections import defaultdict
from pathlib import PurePosixPath

from ..findings import Severity
from .registry import CheckContext, Sink, check


@check("structure.class_dir.missing", Severity.ERROR)
def class_dir_missing(ctx: CheckContext, sink: Sink) -> int:
    """A diagnostic class has no folder under the dataset root.

    Without the folder none of that class's cases can be found. Fix: restore the folder
    (e.g. ``CAP subjects/``) from the archive; for a partial download use ``--profile subset``,
    which reports absent classes as info.
    """
    found = set(ctx.scan.class_dirs["class_key"])
    for key, spec in ctx.profile.classes.items():
        if key not in found:
            sink.add(
                f"no folder for class {spec.label}",
                expected=spec.documented,
                actual=None,
                severity=ctx.absent,
            )
    return len(ctx.profile.classes)


@check("structure.class_dir.alias", Severity.WARNING)
def class_dir_alias(ctx: CheckContext, sink: Sink) -> int:
    """A class folder is spelled differently from the README's documented tree.

    Letter case counts: code written for ``CAP subjects`` does not find ``Cap subjects`` on
    a case-sensitive file system. Fix: rename the folder, or make your loader accept every
    spelling listed in the profile.
    """
    for row in ctx.scan.class_dirs.itertuples():
        spec = ctx.profile.classes[row.class_key]
        if row.name != spec.documented:
            sink.add(
                f"class {spec.label} is in folder '{row.name}', the README documents "
                f"'{spec.documented}'",
                path=row.path,
                expected=spec.documented,
                actual=row.name,
            )
    return len(ctx.scan.class_dirs)


@check("structure.class_dir.duplicate", Severity.ERROR)
def class_dir_duplicate(ctx: CheckContext, sink: Sink) -> int:
    """More than one folder holds the same class (e.g. ``CAP subjects`` and ``Cap Cases``).

    Usually two extractions or two versions merged into one tree; cases may then be counted
    twice. Fix: keep one folder per class.
    """
    dirs = ctx.scan.class_dirs
    for key, group in dirs.groupby("class_key"):
        if len(group) > 1:
            spec = ctx.profile.classes[str(key)]
            sink.add(
                f"{len(group)} folders hold class {spec.label}",
                path=str(group["path"].iloc[1]),
                expected=1,
                actual=sorted(group["path"]),
            )
    return len(dirs)


@check("structure.case_dir.name", Severity.ERROR, scope="case")
def case_dir_name(ctx: CheckContext, sink: Sink) -> int:
    """A case folder's name does not follow its class pattern: ``P###``, ``cap###``, ``normal###``.

    Labels, Index.csv and the published tables address cases by these names. Fix: rename
    the folder to its release id; a name of another class's pattern means the case sits in
    the wrong class folder.
    """
    profile = ctx.profile
    for row in ctx.scan.cases.itertuples():
        spec = profile.classes[row.class_key]
        if spec.case_pattern.match(row.case_id):
            continue
        other = profile.class_of_case_name(row.case_id)
        hint = (
            f"; the name is a {profile.classes[other].label} case id: wrong class folder?"
            if other
            else ""
        )
        sink.add(
            f"case folder '{row.case_id}' does not match the {spec.label} pattern{hint}",
            case=row.case_id,
            path=row.case_key,
            expected=spec.case_pattern.pattern,
            actual=row.case_id,
        )
    return len(ctx.scan.cases)


@check("structure.case_dir.duplicate", Severity.ERROR)
def case_dir_duplicate(ctx: CheckContext, sink: Sink) -> int:
    """The same case id appears in more than one folder (letter case ignored).

    A duplicated case is counted, trained on and evaluated twice. Fix: keep one copy.
    """
    by_id: dict[str, list[str]] = defaultdict(list)
    for row in ctx.scan.cases.itertuples():
        by_id[row.case_id.casefold()].append(row.case_key)
    for paths in by_id.values():
        if len(paths) > 1:
            case_id = paths[0].rsplit("/", 1)[-1]
            sink.add(
                f"case {case_id} is present {len(paths)} times",
                case=case_id,
                path=paths[1],
                expected=1,
                actual=sorted(paths),
            )
    return len(ctx.scan.cases)


@check("structure.case_dir.empty", Severity.ERROR, scope="case")
def case_dir_empty(ctx: CheckContext, sink: Sink) -> int:
    """A case folder holds no image files.

    Often an interrupted download or slices moved into a nested folder. Fix: re-download
    the case.
    """
    for row in ctx.scan.cases.itertuples():
        if row.n_files == 0:
            sink.add(
                f"case folder '{row.case_id}' holds no image files",
                case=row.case_id,
                path=row.case_key,
                expected=">= 1 DICOM file",
                actual=0,
            )
    return len(ctx.scan.cases)


@check("structure.case_dir.missing", Severity.ERROR)
def case_dir_missing(ctx: CheckContext, sink: Sink) -> int:
    """A case of the release is not present.

    With the ``release`` profile each missing case is an error; with ``subset`` one info
    finding per class lists what is absent. Fix: download the missing cases.
    """
    present = {(r.class_key, r.case_id) for r in ctx.scan.cases.itertuples()}
    missing: dict[str, list[str]] = defaultdict(list)
    for case in ctx.profile.manifest.values():
        if (case.class_key, case.case_id) not in present:
            missing[case.class_key].append(case.case_id)
    for key, ids in missing.items():
        spec = ctx.profile.classes[key]
        if ctx.profile.complete:
            for case_id in ids:
                sink.add(
                    f"{spec.label} case {case_id} is missing",
                    case=case_id,
                    path=None,
                    expected=case_id,
                    actual=None,
                )
        else:
            sink.add(
                f"{len(ids)} of {spec.expected_cases} {spec.label} cases are not present (subset)",
                expected=spec.expected_cases,
                actual=spec.expected_cases - len(ids),
                severity=Severity.INFO,
            )
    return len(ctx.profile.manifest)


@check("structure.case_dir.unexpected", Severity.ERROR, scope="case")
def case_dir_unexpected(ctx: CheckContext, sink: Sink) -> int:
    """A case folder is named like a release case but the release has no such case.

    For example ``P170`` (the release ends at ``P169``). Fix: check where the folder came
    from; remove it or rename it to its real id.
    """
    manifest = ctx.profile.manifest
    examined = 0
    for row in ctx.scan.cases.itertuples():
        spec = ctx.profile.classes[row.class_key]
        if not spec.case_pattern.match(row.case_id):
            continue  # structure.case_dir.name reports it
        examined += 1
        known = manifest.get(row.case_id)
        if known is None or known.class_key != row.class_key:
            sink.add(
                f"{spec.label} case {row.case_id} is not part of the release",
                case=row.case_id,
                path=row.case_key,
                expected="a case id of the release manifest",
                actual=row.case_id,
            )
    return examined if manifest else 0


@check("structure.stray_file", Severity.WARNING)
def stray_file(ctx: CheckContext, sink: Sink) -> int:
    """A file or folder that is not part of the dataset (``.DS_Store``, notes, nested folders).

    Loaders that glob a case folder may try to read it as a slice, and it may carry
    information that should not be shared. Fix: delete it (or waive it in a config file).
    """
    entries = ctx.scan.entries
    stray = entries[entries["role"] == "stray"]
    for row in stray.itertuples():
        case = row.case_key.rsplit("/", 1)[-1] if isinstance(row.case_key, str) else None
        sink.add(
            f"stray {row.kind}: {row.reason}",
            case=case,
            path=row.path,
            expected="no such " + row.kind,
            actual=row.kind,
        )
    return len(entries) + len(ctx.scan.files)


@check("structure.file.extension", Severity.WARNING, scope="case")
def file_extension(ctx: CheckContext, sink: Sink) -> int:
    """A DICOM file in a case folder does not end in ``.dcm``.

    Loaders that glob ``*.dcm`` silently drop the slice. Fix: rename the file.
    """
    files = ctx.scan.files
    cases = ctx.scan.case_ids
    for row in files[~files["suffix_ok"]].itertuples():
        sink.add(
            "DICOM file without the profile's suffix",
            case=str(cases.get(row.case_key, row.case_key)),
            path=row.path,
            expected=ctx.profile.dicom_suffix,
            actual=PurePosixPath(row.path).suffix or "(no suffix)",
        )
    return len(files)


def _no_dataset_hint(ctx: CheckContext) -> str:
    """Where the dataset probably is, judged from what ROOT holds."""
    scan = ctx.scan
    root = scan.root
    profile = ctx.profile
    if any(spec.matches_dir(root.name) for spec in profile.classes.values()):
        return (
            f"ROOT is itself the class folder '{root.name}': did you mean the folder above it "
            f"({root.parent})?"
        )
    at_root = scan.entries[~scan.entries["path"].str.contains("/", regex=False)]
    names = [str(p) for p in at_root["path"]]
    if profile.class_of_case_name(root.name) or any(
        n.lower().endswith(profile.dicom_suffix) for n in names
    ):
        return (
            "ROOT looks like a single case folder (it holds image files): did you mean the "
            f"folder two levels above it ({root.parent.parent})?"
        )
    case_like = [n for n in names if profile.class_of_case_name(n)]
    if case_like:
        return (
            f"ROOT holds case folders ({', '.join(case_like[:3])}) but no class folder: is it a "
            f"class folder under another name? Did you mean the folder above it ({root.parent})?"
        )
    if scan.deeper_class_dirs:
        where = scan.deeper_class_dirs[0].rsplit("/", 1)[0]
        return (
            f"class folders lie deeper than the layout allows (e.g. '{scan.deeper_class_dirs[0]}'"
            f"): did you mean ROOT/{where}?"
        )
    return "is this the folder you downloaded the dataset into?"


@check("structure.no_dataset", Severity.ERROR)
def no_dataset(ctx: CheckContext, sink: Sink) -> int:
    """No COVID-CT-MD dataset was found under ROOT: no class folder, no case, or no image.

    An empty folder, a single class or case folder, or a wrong path must never pass as a
    valid dataset, whatever the profile (``subset`` included) and whatever the config: this
    check cannot be waived or re-levelled. The message says where the dataset probably
    is. Fix: pass the folder that holds the class folders (or the folder one above it).
    """
    spellings = ", ".join(f"'{spec.documented}'" for spec in ctx.profile.classes.values())
    if ctx.scan.class_dirs.empty:
        sink.add(
            f"no dataset under ROOT: no class folder ({spellings} or a known spelling) in it "
            f"or up to {ctx.profile.container_depth} folder(s) below; {_no_dataset_hint(ctx)}",
            expected="class folders holding case folders",
            actual="no class folder",
        )
    elif ctx.scan.cases.empty:
        dirs = sorted(ctx.scan.class_dirs["path"])
        sink.add(
            f"no dataset under ROOT: the class folders ({', '.join(dirs)}) hold no case folder",
            path=dirs[0],
            expected="case folders (P001, cap001, normal001, ...) in the class folders",
            actual="no case folder",
        )
    elif ctx.scan.readable.empty:
        files = ctx.scan.files
        sink.add(
            f"no dataset under ROOT: the {len(ctx.scan.cases)} case folder(s) hold no readable "
            f"DICOM image ({len(files)} file(s), none readable)",
            expected="readable DICOM images in the case folders",
            actual=f"{len(files)} files, 0 readable",
        )
    return 1


def _links(ctx: CheckContext, sink: Sink, role: str, expected: str, actual: str) -> int:
    """One finding per link of ``role`` that the walk did not follow."""
    entries = ctx.scan.entries
    for row in entries[entries["role"] == role].itertuples():
        sink.add(
            f"link not followed: {row.reason}",
            case=_case_of(row.case_key),
            path=row.path,
            expected=expected,
            actual=actual,
        )
    return len(entries)


@check("structure.symlink_outside", Severity.ERROR)
def symlink_outside(ctx: CheckContext, sink: Sink) -> int:
    """A symbolic link in the dataset points outside the dataset root.

    The validator never reads outside the root it was given, so what the link points at is
    not validated (nor even looked at); and a copy that depends on files elsewhere is not
    self-contained: archiving or moving it breaks it. Fix: replace the link with the file
    or folder itself.
    """
    where = "a file or folder inside the dataset root"
    return _links(ctx, sink, "symlink_outside", where, "a link to outside the root")


@check("structure.symlink_loop", Severity.ERROR)
def symlink_loop(ctx: CheckContext, sink: Sink) -> int:
    """A symbolic link loops: to itself, to a folder above it, or through a cycle of links.

    Tools that follow links (``find -L``, ``os.walk(followlinks=True)``, many loaders) never
    finish or fail on it, and whatever it was meant to point at is missing. Fix: remove the
    link or point it at the real file or folder.
    """
    return _links(ctx, sink, "symlink_loop", "a link to a file or folder", "a link loop")


def _case_of(case_key: object) -> str | None:
    return case_key.rsplit("/", 1)[-1] if isinstance(case_key, str) else None


@check("structure.file.name_order", Severity.INFO, scope="case")
def file_name_order(ctx: CheckContext, sink: Sink) -> int:
    """Sorted by name, a case's files are not in slice order.

    Names such as ``<id>_1.dcm`` … ``<id>_154.dcm`` are not zero-padded, so they sort
    1, 10, 100, 101 …; a loader that stacks ``sorted(glob('*.dcm'))`` builds a scrambled
    volume and misaligns every slice label. Info, because no document promises name order;
    it is still the most common loading mistake. Fix: (for users) sort slices by Slice
    Location (or Instance Number), never by file name.
    """
    files = ctx.scan.readable
    examined = 0
    for case_key, group in files.groupby("case_key"):
        for column, label in (
            ("slice_location", "Slice Location"),
            ("instance_number", "Instance Number"),
        ):
            values = group[column]
            if len(group) < 2 or values.isna().any():
                continue
            examined += 1
            ordered = values.to_numpy()[group["path"].to_numpy().argsort(kind="stable")]
            steps = ordered[1:] - ordered[:-1]
            if (steps >= 0).all() or (steps <= 0).all():
                break
            first = int(((steps > 0) != (steps[0] > 0)).argmax()) + 1
            sink.add(
                f"sorted by file name, the {len(group)} files are not in {label} order (the "
                f"order first turns after file {first}); sort slices by {label}, not by name",
                case=str(ctx.scan.case_ids[case_key]),
                path=str(case_key),
                expected=f"name order = {label} order",
                actual=f"name order turns after file {first} of {len(group)}",
            )
            break
    return examined
