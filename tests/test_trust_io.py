"""Trust tests of issue 9: what the tool writes, and what it prints.

A. Every command that can touch a dataset runs (as a subprocess of the installed console
   script, or of ``python -m pytest`` for the plugin) on a read-only copy; afterwards every
   file's SHA-256, every path (hidden ones included), every entry's mtime, ctime, mode, size
   and link target are unchanged, and nothing was created in or beside the dataset. Tests may
   run as root, where ``chmod a-w`` stops nothing: the snapshot comparison is the proof.
B. Real DICOM files of the public sample, damaged in several ways, are validated by the CLI
   and by the plugin; stdout, stderr and both JSON reports are searched (case-insensitively)
   for every identifying value of the undamaged files and of their names. None may appear.
   With ``--show-values`` the Patient ID does appear: the search can find what it looks for.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from conftest import LABEL_FILES, sample_root_path
from ctmd_validate import synth

EXIT_OK, EXIT_FINDINGS, EXIT_CANNOT_RUN = 0, 1, 2
PYTEST_FAILED, PYTEST_USAGE = 1, 4
TIMEOUT = 300


# --------------------------------------------------------------------------- processes


def cli_command() -> list[str]:
    """The installed console script (beside this interpreter, else on PATH, else ``-m``)."""
    name = "ctmd-validate.exe" if os.name == "nt" else "ctmd-validate"
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return [str(beside)]
    found = shutil.which(name)
    if found:
        return [found]
    return [sys.executable, "-m", "ctmd_validate"]


def child_env(tmpdir: Path) -> dict[str, str]:
    """The environment of a child: no pytest settings of the outer run, temp files in ``tmpdir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONDONTWRITE"))}
    tmpdir.mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(tmpdir)
    return env


@dataclass
class Run:
    label: str
    returncode: int
    stdout: str
    stderr: str

    def tail(self) -> str:
        return f"--- stdout (end)\n{self.stdout[-1500:]}\n--- stderr (end)\n{self.stderr[-1500:]}"


def run(label: str, argv: list[str], cwd: Path, env: dict[str, str]) -> Run:
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="backslashreplace",
        timeout=TIMEOUT,
    )
    return Run(label, proc.returncode, proc.stdout, proc.stderr)


def run_cli(label: str, args: list[object], cwd: Path, env: dict[str, str]) -> Run:
    return run(label, [*cli_command(), *map(str, args)], cwd, env)


def run_plugin(label: str, args: list[object], cwd: Path, env: dict[str, str]) -> Run:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *map(str, args)]
    return run(label, argv, cwd, env)


# --------------------------------------------------------------------------- snapshots


def snapshot(top: Path) -> dict[str, tuple[object, ...]]:
    """Every entry below ``top`` (and ``top``): type and mode, size, mtime, ctime, inode,
    links, owner, plus the SHA-256 of a regular file and the target of a link."""
    out: dict[str, tuple[object, ...]] = {}

    def record(path: str, rel: str) -> None:
        st = os.lstat(path)
        content: object = None
        if stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            content = digest.hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            content = os.readlink(path)
        out[rel] = (
            st.st_mode,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            st.st_nlink,
            st.st_uid,
            st.st_gid,
            content,
        )

    top_s = os.fspath(top)
    record(top_s, ".")
    for dirpath, dirs, files in os.walk(top_s):  # links to folders are not followed
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            record(path, os.path.relpath(path, top_s))
    return out


FIELDS = ("mode", "size", "mtime_ns", "ctime_ns", "inode", "nlink", "uid", "gid", "content")


def snapshot_diff(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    problems = [f"created: {p!r}" for p in sorted(set(after) - set(before))]
    problems += [f"removed: {p!r}" for p in sorted(set(before) - set(after))]
    for path in sorted(set(before) & set(after)):
        for name, old, new in zip(FIELDS, before[path], after[path], strict=True):
            if old != new:
                problems.append(f"changed {name} of {path!r}: {old!r} -> {new!r}")
    return problems


def set_writable(top: Path, writable: bool) -> None:
    """``chmod -R a-w`` (or ``u+w`` back), links left alone; files first, folders last."""
    for dirpath, dirs, files in os.walk(top, topdown=False):
        for name in files + dirs:
            _chmod(Path(dirpath) / name, writable)
    _chmod(top, writable)


def _chmod(path: Path, writable: bool) -> None:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return
    mode = stat.S_IMODE(st.st_mode)
    os.chmod(path, mode | stat.S_IWUSR if writable else mode & ~0o222)


def test_snapshot_sees_every_kind_of_change(tmp_path):
    """The comparison used below catches what a careless writer would leave behind."""
    base = tmp_path / "base"
    (base / "case").mkdir(parents=True)
    (base / "case" / "a.dcm").write_bytes(b"A" * 64)
    (base / "Index.csv").write_text("x\n")

    def same_size_same_mtime(top: Path) -> None:
        f = top / "case" / "a.dcm"
        st = os.stat(f)
        f.write_bytes(b"B" * 64)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))

    def replaced(top: Path) -> None:
        f = top / "Index.csv"
        (top / "tmp").write_text("x\n")
        os.replace(top / "tmp", f)

    changes: dict[str, Callable[[Path], None]] = {
        "content, size and mtime kept": same_size_same_mtime,
        "hidden file": lambda top: (top / "case" / ".pytest_cache").mkdir(),
        "mode": lambda top: os.chmod(top / "Index.csv", 0o600),
        "mtime": lambda top: os.utime(top / "case", ns=(0, 0)),
        "replaced by rename": replaced,
    }
    for label, change in changes.items():
        top = tmp_path / label.replace(" ", "-").replace(",", "")
        shutil.copytree(base, top)
        before = snapshot(top)
        assert snapshot_diff(before, snapshot(top)) == []
        change(top)
        assert snapshot_diff(before, snapshot(top)), f"snapshot missed: {label}"


# --------------------------------------------------------------------------- the read-only copy


@dataclass
class ReadOnlyCopy:
    box: Path  # holds the dataset and nothing else (a link target of the dataset lives here)
    root: Path  # the dataset root
    out: Path  # writable: reports, synth output, temp files
    cwd: Path  # an empty working folder for the plugin runs
    env: dict[str, str]
    real: bool  # real sample files are part of the copy
    before: dict[str, tuple] | None = None

    def check_untouched(self, label: str) -> list[str]:
        assert self.before is not None
        return [f"{label}: {p}" for p in snapshot_diff(self.before, snapshot(self.box))]


def add_real_sample(root: Path, sample: Path) -> None:
    """The real label files, the sample's .DS_Store files and 2 real slices per case."""
    for name in LABEL_FILES:
        shutil.copyfile(sample / name, root / name)
    for ds_store in sorted(sample.rglob(".DS_Store")):
        rel = ds_store.relative_to(sample)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ds_store, root / rel)
    for case in sorted(p for p in (sample / "Sample data").glob("*/*") if p.is_dir()):
        dest = root / case.relative_to(sample)
        dest.mkdir(parents=True)
        for f in sorted(case.glob("*.dcm"))[:2]:
            shutil.copyfile(f, dest / f.name)


def add_odd_entries(root: Path) -> None:
    """Hidden and oddly named entries that no defect writes."""
    hidden = root / ".hidden-folder"
    hidden.mkdir()
    (hidden / ".notes").write_text("private remark\n")
    normal = next(root.glob("*/Normal subjects"))
    odd = os.fsencode(normal) + b"/odd \xff name \xe9\n.txt"  # not UTF-8, with a newline
    with open(odd, "wb") as fh:
        fh.write(b"stray\n")
    case = next(p for p in normal.iterdir() if p.is_dir())
    (case / "nested folder").mkdir()
    (case / "nested folder" / "copy.dcm").write_bytes(b"not really DICOM\n")


@pytest.fixture
def read_only_copy(make_tree, tmp_path) -> Iterator[ReadOnlyCopy]:
    tree = make_tree(
        ["stray-file", "file-extension", "symlink-inside", "truncated-header"], layout="sample"
    )
    box = tmp_path / "read-only"
    box.mkdir()
    root = box / "COVID-CT-MD"
    tree.rename(root)
    synth.apply_defect(root, "symlink-outside")  # its target goes beside the root, into box
    add_odd_entries(root)
    sample = sample_root_path()
    real = (sample / "Index.csv").is_file()
    if real:
        add_real_sample(root, sample)
    out = tmp_path / "out"
    out.mkdir()
    cwd = tmp_path / "empty-cwd"
    cwd.mkdir()
    copy = ReadOnlyCopy(box, root, out, cwd, child_env(out / "tmp"), real)
    set_writable(box, False)
    copy.before = snapshot(box)
    assert all(
        stat.S_IMODE(v[0]) & 0o222 == 0 for v in copy.before.values() if not stat.S_ISLNK(v[0])
    )
    try:
        yield copy
    finally:
        set_writable(box, True)


def expect(problems: list[str], r: Run, code: int) -> None:
    if r.returncode != code:
        problems.append(f"{r.label}: exit code {r.returncode}, expected {code}\n{r.tail()}")


# --------------------------------------------------------------------------- A: read-only copy


def test_every_check_run_leaves_the_read_only_copy_untouched(read_only_copy):
    c = read_only_copy
    root, out = c.root, c.out
    out_link = out / "link-to-dataset"
    out_link.symlink_to(root, target_is_directory=True)
    config = out / "config.toml"
    config.write_text('[severity]\n"structure.stray_file" = "info"\n', encoding="utf-8")
    S = ["--profile", "subset"]
    runs = [
        # (label, args, cwd, expected exit code)
        ("check release", ["check", root, "--profile", "release", "--jobs", "1"], c.cwd, 1),
        ("check subset", ["check", root, *S, "--jobs", "2"], c.cwd, 1),
        ("check --report outside", ["check", root, *S, "--report", out / "r" / "s.json"], c.cwd, 1),
        ("check release --report", ["check", root, "--report", out / "release.json"], c.cwd, 1),
        ("check --report -", ["check", root, *S, "--report", "-", "--jobs", "1"], c.cwd, 1),
        (
            "check --show-values",
            ["check", root, *S, "--show-values", "--report", out / "sv.json"],
            c.cwd,
            1,
        ),
        ("check --labels ROOT", ["check", root, *S, "--labels", root, "--jobs", "2"], c.cwd, 1),
        (
            "check --jobs 1 --config --quiet",
            ["check", root, *S, "--jobs", "1", "--config", config, "--quiet"],
            c.cwd,
            1,
        ),
        ("check . from inside", ["check", ".", *S, "--report", out / "inside-cwd.json"], root, 1),
        # refused: the report would land inside the dataset
        (
            "--report ROOT/report.json",
            ["check", root, *S, "--report", root / "report.json"],
            c.cwd,
            2,
        ),
        (
            "--report ROOT/new/report.json",
            ["check", root, *S, "--report", root / "new-folder" / "report.json"],
            c.cwd,
            2,
        ),
        (
            "--report class folder",
            ["check", root, *S, "--report", root / "Sample data" / "Cap subjects" / "r.json"],
            c.cwd,
            2,
        ),
        ("--report relative, cwd ROOT", ["check", root, *S, "--report", "report.json"], root, 2),
        (
            "--report ROOT/x/../r.json",
            ["check", root, *S, "--report", f"{root}/Sample data/../r.json"],
            c.cwd,
            2,
        ),
        (
            "--report through a link to ROOT",
            ["check", root, *S, "--report", out_link / "report.json"],
            c.cwd,
            2,
        ),
        (
            "--report via a linked root",
            ["check", out_link, *S, "--report", out_link / "report.json"],
            c.cwd,
            2,
        ),
        ("synth into ROOT", ["synth", root, "--scale", "tiny", "--jobs", "1"], c.cwd, 2),
    ]
    problems: list[str] = []
    for label, args, cwd, code in runs:
        r = run_cli(label, args, cwd, c.env)
        expect(problems, r, code)
        problems += c.check_untouched(label)
        if code == EXIT_CANNOT_RUN and not r.stderr.startswith("ctmd-validate: error:"):
            problems.append(f"{label}: no 'ctmd-validate: error:' on stderr\n{r.tail()}")
        if label.startswith("--report") and "inside the dataset" not in r.stderr:
            problems.append(f"{label}: refusal does not say 'inside the dataset'\n{r.tail()}")
        if label == "check --report -" and r.returncode == EXIT_FINDINGS:
            try:
                assert json.loads(r.stdout)["valid"] is False
            except (ValueError, AssertionError, KeyError) as exc:
                problems.append(f"{label}: stdout is not one invalid-report JSON ({exc!r})")
    for name in ("r/s.json", "release.json", "sv.json", "inside-cwd.json"):
        if not (out / name).is_file():
            problems.append(f"report {name} was not written outside the dataset")
    if (out / "r" / "s.json").is_file():  # the real cases (when present) were scanned too
        cases = json.loads((out / "r" / "s.json").read_text(encoding="utf-8"))["summary"]
        if cases["cases"] != (6 if c.real else 3):
            problems.append(f"expected {6 if c.real else 3} cases, the report has {cases}")
    assert not problems, "\n".join(problems)


def test_every_plugin_run_leaves_the_read_only_copy_untouched(read_only_copy):
    c = read_only_copy
    root, out = c.root, c.out
    base = [f"--dataset-root={root}", "--ctmd-profile=subset", "-q"]
    runs = [
        ("plugin -q", base, c.cwd, PYTEST_FAILED),
        (
            "plugin --ctmd-report outside",
            [*base, f"--ctmd-report={out / 'plugin' / 'r.json'}", "--ctmd-jobs=2"],
            c.cwd,
            PYTEST_FAILED,
        ),
        (
            "plugin --ctmd-labels ROOT --ctmd-jobs 1",
            [*base, f"--ctmd-labels={root}", "--ctmd-jobs=1"],
            c.cwd,
            PYTEST_FAILED,
        ),
        (
            "plugin --ctmd-report inside",
            [*base, f"--ctmd-report={root / 'plugin.json'}"],
            c.cwd,
            PYTEST_USAGE,
        ),
        (
            "plugin run from inside the dataset",
            ["--dataset-root=.", "--ctmd-profile=subset", "-q"],
            root,
            PYTEST_FAILED,
        ),
    ]
    problems: list[str] = []
    for label, args, cwd, code in runs:
        r = run_plugin(label, args, cwd, c.env)
        expect(problems, r, code)
        problems += c.check_untouched(label)
        if code == PYTEST_FAILED and not re.search(r"\d+ failed", r.stdout):
            problems.append(f"{label}: no failed items in the summary\n{r.tail()}")
    if not (out / "plugin" / "r.json").is_file():
        problems.append("the plugin's --ctmd-report was not written")
    leftovers = sorted(p.name for p in c.cwd.iterdir())
    if leftovers:
        problems.append(f"the plugin runs left {leftovers} in their working folder")
    assert not problems, "\n".join(problems)


def test_synth_demo_catalogue_leave_the_read_only_copy_untouched(read_only_copy):
    c = read_only_copy
    out = c.out
    readme = out / "README.md"
    shutil.copyfile(Path(__file__).resolve().parent.parent / "README.md", readme)
    runs = [
        ("synth", ["synth", out / "synth", "--scale", "tiny", "--jobs", "1"], 0),
        (
            "synth --defect",
            ["synth", out / "synth2", "--scale", "tiny", "--defect", "stray-file", "--jobs", "1"],
            0,
        ),
        ("demo", ["demo", "--jobs", "1"], 0),
        ("catalogue", ["catalogue"], 0),
        ("catalogue --update", ["catalogue", "--update", readme], 0),
    ]
    problems: list[str] = []
    results = {}
    for label, args, code in runs:
        r = run_cli(label, args, c.cwd, c.env)
        results[label] = r
        expect(problems, r, code)
        problems += c.check_untouched(label)
    demo_reports = [
        Path(line.removeprefix("report: "))
        for line in results["demo"].stdout.splitlines()
        if line.startswith("report: ")
    ]
    if not (len(demo_reports) == 1 and (out / "tmp") in demo_reports[0].parents):
        problems.append(f"demo report not under $TMPDIR ({out / 'tmp'}): {demo_reports}")
    if not any((out / "synth").rglob("*.dcm")):
        problems.append("synth wrote no DICOM file")
    assert not problems, "\n".join(problems)
    assert sorted(p.name for p in c.cwd.iterdir()) == []


# --------------------------------------------------------------------------- B: no value leaks

#: Kept by design: the dataset retains Patient's Sex and Age (Retain Patient Characteristics).
KEPT_BY_DESIGN = {"PatientSex", "PatientAge"}
#: Text elements whose values describe the scanner, the standard or the image type, never the
#: patient, the site or the visit: the manufacturer's constants (Manufacturer, model, software
#: version, reconstruction kernel, filter, exposure modulation, window names) and the
#: standard's defined terms (character set, image type, modality, body part, patient
#: position, rotation, photometric interpretation, lossy flag). Their values ("SIEMENS",
#: "ORIGINAL", "AXIAL", "CHEST", "MONOCHROME2", "ISO_IR 100" ...) are common words that the
#: tool's own wording may contain ("axial"). Private creator names are listed by design in
#: the deid.private_tags finding (README). Everything else counts as identifying, including
#: descriptions, protocol names and the other private values.
NON_IDENTIFYING_KEYWORDS = {
    "SpecificCharacterSet",
    "ImageType",
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "BodyPartExamined",
    "PatientPosition",
    "RotationDirection",
    "ExposureModulationType",
    "ConvolutionKernel",
    "FilterType",
    "PhotometricInterpretation",
    "WindowCenterWidthExplanation",
    "LossyImageCompression",
    "LossyImageCompressionMethod",
    "PositionReferenceIndicator",
}
TEXT_VRS = {"PN", "LO", "SH", "DA", "TM", "DT", "AS", "CS", "ST", "LT", "UT", "UC", "AE"}
ALWAYS = {"PatientID", "StationName", "DeviceSerialNumber"}
CASE_IDS = {"p001", "cap001", "normal001"}
MIN_LENGTH = 4


def _components(value: object, vr: str) -> list[str]:
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    parts: list[str] = []
    for v in values:
        text = v.decode("latin-1") if isinstance(v, bytes) else str(v)
        parts.append(text)
        if vr == "PN":
            parts += re.split(r"[\^=]", text)
    return [p.strip(" \x00") for p in parts]


def identifying_values(files: list[Path]) -> dict[str, str]:
    """Every identifying value of the (undamaged) files and of their names: value -> source."""
    found: dict[str, str] = {}

    def add(value: str, source: str, *, always: bool = False) -> None:
        if not value or value.casefold() in CASE_IDS:
            return
        if always or len(value) >= MIN_LENGTH:
            found.setdefault(value, source)

    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for el in [*ds.file_meta.iterall(), *ds.iterall()]:
            keyword = el.keyword or f"private {el.tag}"
            if el.VR not in TEXT_VRS or el.value is None or keyword in KEPT_BY_DESIGN:
                continue
            if keyword in NON_IDENTIFYING_KEYWORDS or el.tag.is_private_creator:
                continue
            for part in _components(el.value, el.VR):
                add(
                    part,
                    f"{keyword} of {path.name}",
                    always=keyword in ALWAYS or el.VR in ("DA", "TM", "DT"),
                )
        stem = path.stem
        add(stem, f"file name stem of {path.name}", always=True)
        for part in re.split(r"[-_]", stem):
            add(part, f"part of the file name {path.name}")
    return found


def find_leaks(values: dict[str, str], outputs: dict[str, str]) -> list[str]:
    """One line per value found: where it was found, and one place in context."""
    leaks = []
    for value, source in sorted(values.items()):
        places, example = [], ""
        for where, text in outputs.items():
            m = re.search(re.escape(value), text, re.IGNORECASE)
            if m:
                places.append(where)
                example = example or text[max(0, m.start() - 60) : m.end() + 40]
        if places:
            context = example.replace("\n", "⏎")
            leaks.append(f"{value!r} ({source}) in {', '.join(places)}: …{context}…")
    return leaks


def json_strings(text: str) -> str:
    """Every string of a JSON document (keys included), one a line: the decoded text."""
    out: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                out.append(str(k))
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif node is not None:
            out.append(str(node))

    walk(json.loads(text))
    return "\n".join(out)


# -- damage: each takes the bytes of a real slice and returns the damaged bytes

PREAMBLE = 132  # 128-byte preamble + "DICM"


def _header_at(data: bytes, tag: int, vr: str, start: int = PREAMBLE) -> int:
    """Offset of an explicit-VR little-endian element header (first one at/after ``start``)."""
    pattern = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    offset = data.find(pattern, start)
    assert offset >= 0, f"element {tag:08X} {vr} not found"
    return offset


def _dataset_start(data: bytes) -> int:
    group_length = struct.unpack_from("<I", data, _header_at(data, 0x00020000, "UL") + 8)[0]
    return PREAMBLE + 12 + group_length


def _patient_id(data: bytes) -> int:
    return _header_at(data, 0x00100020, "LO", _dataset_start(data))


def _before_patient_id(data: bytes, ds: Dataset) -> tuple[int, str]:
    """Header offset and VR of the top-level element just before Patient ID."""
    tags = list(ds.keys())
    prev = tags[tags.index(0x00100020) - 1]
    vr = ds[prev].VR
    return _header_at(data, int(prev), vr, _dataset_start(data)), vr


def _replace(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def damage_vr_byte_patient_id(data: bytes, ds: Dataset) -> bytes:
    return _replace(data, _patient_id(data) + 4, b"\x01?")


def damage_vr_byte_before_patient_id(data: bytes, ds: Dataset) -> bytes:
    offset, _vr = _before_patient_id(data, ds)
    return _replace(data, offset + 4, b"\x01?")


def damage_vr_lo_to_cs_patient_id(data: bytes, ds: Dataset) -> bytes:
    """A valid VR that the value breaks: pydicom quotes invalid CS values in its warning."""
    return _replace(data, _patient_id(data) + 4, b"CS")


def damage_length_plus_one_station_name(data: bytes, ds: Dataset) -> bytes:
    offset = _header_at(data, 0x00081010, "SH", _dataset_start(data))
    length = struct.unpack_from("<H", data, offset + 6)[0]
    return _replace(data, offset + 6, struct.pack("<H", length + 1))


def damage_length_huge_before_patient_id(data: bytes, ds: Dataset) -> bytes:
    offset, vr = _before_patient_id(data, ds)
    assert vr in ("LO", "SH", "CS", "PN", "DS", "IS", "UI"), vr  # a 2-byte length field
    return _replace(data, offset + 6, struct.pack("<H", 0x7FF1))


def damage_truncated_in_patient_id(data: bytes, ds: Dataset) -> bytes:
    return data[: _patient_id(data) + 8 + 6]


def damage_zero_fill_after_header(data: bytes, ds: Dataset) -> bytes:
    pixel = data.rindex(b"\xe0\x7f\x10\x00OB") + 12
    return data[:pixel] + bytes(len(data) - pixel)


def damage_zero_fill_from_patient_id(data: bytes, ds: Dataset) -> bytes:
    start = _patient_id(data) + 8
    return data[:start] + bytes(len(data) - start)


def damage_meta_flip_group_length(data: bytes, ds: Dataset) -> bytes:
    offset = _header_at(data, 0x00020000, "UL") + 8 + 2
    return _replace(data, offset, bytes([data[offset] ^ 0xFF]))


def damage_meta_flip_transfer_syntax_vr(data: bytes, ds: Dataset) -> bytes:
    offset = _header_at(data, 0x00020010, "UI") + 5
    return _replace(data, offset, bytes([data[offset] ^ 0xFF]))


def damage_none(data: bytes, ds: Dataset) -> bytes:
    return data


DAMAGES: dict[str, Callable[[bytes, Dataset], bytes]] = {
    name.removeprefix("damage_").replace("_", "-"): func
    for name, func in sorted(globals().items())
    if name.startswith("damage_")
}


def real_case_files(sample: Path, case: str = "normal001", n: int = 3) -> list[Path]:
    """The first ``n`` slices of a real case, by the number at the end of their names."""
    folder = next(p for p in (sample / "Sample data").glob(f"*/{case}") if p.is_dir())
    return sorted(folder.glob("*.dcm"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))[:n]


def damaged_tree(tmp_path: Path, files: list[Path], damage: str) -> Path:
    """``<tmp>/COVID-CT-MD/Normal subjects/normal001/``: the first file damaged, the rest not."""
    root = tmp_path / "COVID-CT-MD"
    case = root / "Normal subjects" / "normal001"
    case.mkdir(parents=True)
    source, *others = files
    data = source.read_bytes()
    damaged = DAMAGES[damage](data, pydicom.dcmread(source, stop_before_pixels=True))
    assert (damaged != data) == (damage != "none")
    (case / source.name).write_bytes(damaged)
    for f in others:
        shutil.copyfile(f, case / f.name)
    return root


def outputs_of_runs(root: Path, tmp_path: Path, *extra: str) -> tuple[dict[str, str], Run, Run]:
    """Run the CLI and the plugin on ``root``; every text they produced, by where it was."""
    env = child_env(tmp_path / "tmp")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    report = tmp_path / "R.json"
    plugin_report = tmp_path / "plugin-R.json"
    cli = run_cli(
        "check", ["check", root, "--profile", "subset", "--report", report, *extra], cwd, env
    )
    plugin = run_plugin(
        "plugin",
        [
            f"--dataset-root={root}",
            "--ctmd-profile=subset",
            f"--ctmd-report={plugin_report}",
            "-v",
            "-rA",
        ],
        cwd,
        env,
    )
    outputs = {
        "check stdout": cli.stdout,
        "check stderr": cli.stderr,
        "plugin stdout": plugin.stdout,
        "plugin stderr": plugin.stderr,
    }
    for name, path in (("report", report), ("plugin report", plugin_report)):
        assert path.is_file(), f"{name} not written\n{cli.tail()}\n{plugin.tail()}"
        text = path.read_text(encoding="utf-8")
        outputs[name] = text
        outputs[f"{name} (decoded)"] = json_strings(text)
    return outputs, cli, plugin


@pytest.fixture(scope="module")
def normal001_files(sample_root: Path) -> list[Path]:
    files = real_case_files(sample_root)
    assert len(files) == 3
    return files


@pytest.mark.real_sample
def test_identifying_values_are_collected(normal001_files):
    """The search list holds what it must: IDs, station, serial, dates, times, name parts."""
    values = identifying_values(normal001_files)
    ds = pydicom.dcmread(normal001_files[0], stop_before_pixels=True)
    for keyword in ("PatientID", "StationName", "DeviceSerialNumber", "StudyDate", "StudyTime"):
        assert str(ds[keyword].value).strip() in values, keyword
    stem = normal001_files[0].stem
    assert stem in values
    assert all(p in values for p in re.split(r"[-_]", stem) if len(p) >= MIN_LENGTH)
    assert not {"SIEMENS", "CHEST", "ORIGINAL", "AXIAL", "F", "070Y"} & set(values)
    assert not CASE_IDS & {v.casefold() for v in values}


@pytest.mark.real_sample
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_real_file_leaks_no_identifying_value(normal001_files, tmp_path, damage):
    values = identifying_values(normal001_files)
    root = damaged_tree(tmp_path, normal001_files, damage)
    outputs, cli, plugin = outputs_of_runs(root, tmp_path)
    assert cli.returncode == EXIT_FINDINGS, cli.tail()
    assert plugin.returncode == PYTEST_FAILED, plugin.tail()
    leaks = find_leaks(values, outputs)
    assert not leaks, f"{len(leaks)} identifying values printed:\n" + "\n".join(leaks)


@pytest.mark.real_sample
@pytest.mark.parametrize("damage", ["zero-fill-after-header", "truncated-in-patient-id"])
def test_damaged_real_file_alone_leaks_no_identifying_value(normal001_files, tmp_path, damage):
    """The damaged file is the only slice of its case: no readable sibling tells the tool
    which values to mask. Its name still embeds the Patient ID (and the Operators' Name).
    With ``zero-fill-after-header`` its header is intact: the values are in the data."""
    values = identifying_values(normal001_files[:1])
    root = damaged_tree(tmp_path, normal001_files[:1], damage)
    outputs, cli, plugin = outputs_of_runs(root, tmp_path)
    assert cli.returncode == EXIT_FINDINGS, cli.tail()
    assert plugin.returncode == PYTEST_FAILED, plugin.tail()
    leaks = find_leaks(values, outputs)
    assert not leaks, f"{len(leaks)} identifying values printed:\n" + "\n".join(leaks)


@pytest.mark.real_sample
def test_show_values_does_print_them(normal001_files, tmp_path):
    """With --show-values the Patient ID appears: the search above can find what it seeks."""
    values = identifying_values(normal001_files)
    root = damaged_tree(tmp_path, normal001_files, "vr-byte-patient-id")
    outputs, cli, _plugin = outputs_of_runs(root, tmp_path, "--show-values")
    assert cli.returncode == EXIT_FINDINGS, cli.tail()
    patient_id = str(pydicom.dcmread(normal001_files[1]).PatientID).strip()
    shown = {k: v for k, v in outputs.items() if k.startswith(("check", "report"))}
    assert find_leaks({patient_id: "PatientID"}, shown), "--show-values shows no Patient ID"
    assert find_leaks(values, shown)


def test_header_value_over_one_mib_is_skipped_not_fatal(make_tree, tmp_path):
    """Found by the damaged headers above (a bad length makes the parser defer a "value"):
    the README promises that the header parse "skips values over 1 MiB instead of reading
    them". A valid slice with a 1.5 MiB private OB element must stay readable."""
    tree = make_tree()
    normal = next(tree.glob("*/normal*"))
    target = sorted(normal.glob("*.dcm"))[3]
    ds = pydicom.dcmread(target)
    ds.private_block(0x0029, "ACME BLOB", create=True).add_new(0x10, "OB", bytes(1_500_000))
    ds.save_as(target)
    report = tmp_path / "big.json"
    r = run_cli(
        "check",
        ["check", tree, "--profile", "subset", "--jobs", "1", "--report", report],
        tmp_path,
        child_env(tmp_path / "tmp"),
    )
    assert r.returncode == EXIT_FINDINGS, r.tail()  # the private block is a deid error
    data = json.loads(report.read_text(encoding="utf-8"))
    errors = [f for f in data["findings"] if f["severity"] == "error"]
    assert [f["id"] for f in errors] == ["deid.private_tags"], errors
