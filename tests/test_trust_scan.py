"""Trust (issue 9), the scan's side: bounded header parses, names masked from every file's
own bytes, no value that is not a UID echoed as one, stray folders walked without links.

Each test breaks a copy of the tiny synthetic tree (or one file) in exactly one way and
asserts the documented outcome; each failed on the code before its fix.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
import struct
import sys
import warnings
from pathlib import Path

import pydicom
import pytest

import ctmd_validate.checks  # noqa: F401  (registers every check id)
from conftest import recorded
from ctmd_validate import Report, run_validation, validate
from ctmd_validate.checks import REGISTRY
from ctmd_validate.checks.dicom import describe_uid
from ctmd_validate.identifying import identifying_values
from ctmd_validate.policy import load_policy
from ctmd_validate.report import validate_report
from ctmd_validate.scan import read_header

scan_module = importlib.import_module("ctmd_validate.scan")  # the package exports scan()
SECRET = "JSMITH77"


def _case(root: Path, folder: str = "CAP subjects") -> Path:
    return next(p for p in sorted((root / folder).iterdir()) if p.is_dir())


def _slice(root: Path) -> Path:
    return sorted(_case(root).glob("*.dcm"))[0]


def _meta_end(data: bytes) -> int:
    """Offset of the first dataset element: after the file meta group (its group length)."""
    assert data[132:136] == b"\x02\x00\x00\x00"  # (0002,0000) UL
    (length,) = struct.unpack("<I", data[140:144])
    return 144 + length


def _whole(report: Report) -> str:
    text = report.dumps()
    validate_report(report.to_json())
    return text + "\n" + report.summary()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many data elements every pydicom parse yields meanwhile (one count per parse)."""
    generator = pydicom.filereader.data_element_generator
    counts: list[int] = []

    def counting(*args, **kwargs):
        counts.append(0)
        slot = len(counts) - 1
        for elem in generator(*args, **kwargs):
            counts[slot] += 1
            yield elem

    monkeypatch.setattr(pydicom.filereader, "data_element_generator", counting)
    return counts


# --------------------------------------------------------------------------- bounded parse


def test_zero_fill_right_after_the_file_meta_stops_at_once(clean_tiny, tmp_path, counted):
    """The first (0000,0000) may repeat once (pydicom's VR probe), never a thousand times."""
    data = _slice(clean_tiny).read_bytes()
    path = tmp_path / "zeros.dcm"
    path.write_bytes(data[: _meta_end(data)] + bytes(4 << 20))
    row, elements = read_header(str(path))
    assert row["status"] == "unreadable" and elements == []
    assert sum(counted) < 50, counted


def test_zero_fill_inside_an_undefined_length_item_is_bounded(clean_tiny, tmp_path, counted):
    """Nested reads have no stop rule of their own: the read budget ends them."""
    data = _slice(clean_tiny).read_bytes()
    end = _meta_end(data)
    seq = struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF)
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    path = tmp_path / "item.dcm"
    path.write_bytes(data[:end] + seq + item + bytes(8 << 20))
    row, elements = read_header(str(path))
    assert row["status"] == "unreadable" and elements == []
    assert sum(counted) <= scan_module.MAX_HEADER_READS + 10, sum(counted)


def test_huge_value_in_the_file_meta_is_refused_unread(clean_tiny, tmp_path) -> None:
    """A 400 MiB OB element in the file meta: refused before a byte of it is read."""
    data = _slice(clean_tiny).read_bytes()
    end = _meta_end(data)
    big = 400 << 20
    element = struct.pack("<HH2sHI", 0x0002, 0x0102, b"OB", 0, big)
    meta = bytearray(data[132:end])
    (length,) = struct.unpack("<I", meta[8:12])
    meta[8:12] = struct.pack("<I", length + len(element) + big)
    path = tmp_path / "meta.dcm"
    with path.open("wb") as fh:
        fh.write(data[:132] + bytes(meta) + element)
        fh.truncate(fh.tell() + big)  # sparse
        fh.seek(0, 2)
        fh.write(data[end:])
    read = []
    real_read = scan_module._Bounded.read

    def spy(self, size=-1):
        out = real_read(self, size)
        read.append(len(out))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scan_module._Bounded, "read", spy)
        row, _ = read_header(str(path))
    assert row["status"] == "unreadable"
    assert row["error"].startswith("header too large: more than 64 MiB")
    assert max(read) < 1 << 20


def test_header_read_budget_is_enforced(clean_tiny, monkeypatch) -> None:
    """The element cap itself: a budget smaller than a real header stops it, with a reason."""
    monkeypatch.setattr(scan_module, "MAX_HEADER_READS", 20)
    row, elements = read_header(str(_slice(clean_tiny)))
    assert row["status"] == "unreadable" and elements == []
    assert row["error"] == (
        "header too large: more than 20 data element reads before the Pixel Data; "
        "not parsed further"
    )


def test_clean_slices_stay_within_the_budget(clean_tiny) -> None:
    for path in sorted(clean_tiny.rglob("*.dcm")):
        row, _ = read_header(str(path))
        assert row["status"] == "ok", (path.name, row["error"])


# --------------------------------------------------------------------------- names masked


def test_not_dicom_file_named_after_its_patient_is_masked(make_tree) -> None:
    root = make_tree()
    case = _case(root)
    (case / f"{SECRET}_9.dcm").write_bytes(b"Patient " + SECRET.encode() + b" notes\n")
    text = _whole(validate(root, "subset", jobs=1))
    assert "dicom.unreadable" in text
    assert SECRET not in text


@pytest.mark.parametrize("where", ["root", "class", "case"])
def test_stray_file_named_after_its_patient_is_masked(make_tree, where: str) -> None:
    root = make_tree()
    folder = {"root": root, "class": root / "CAP subjects", "case": _case(root)}[where]
    name = f"{SECRET}.docx" if where != "case" else f".{SECRET}.docx"
    (folder / name).write_bytes(b"referral for " + SECRET.encode())
    report = validate(root, "subset", jobs=1)
    text = _whole(report)
    assert any(f.check_id.startswith("structure.") for f in report.active)
    assert SECRET not in text


def test_case_folder_named_after_its_patient_is_not_a_pseudonym(make_tree) -> None:
    """Only names of the case pattern (or the manifest) are public case ids."""
    root = make_tree()
    case = _case(root)
    for path in case.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.PatientID = "Smith_John"
        ds.save_as(path)
    case.rename(case.with_name("Smith_John"))
    run = run_validation(root, "subset", jobs=1)
    report = run.report
    assert "Smith_John" in identifying_values(run.scan, load_policy())
    text = _whole(report)
    assert "structure.case_dir.name" in text
    assert "Smith_John" not in text


def test_public_case_ids_stay_readable(clean_tiny_report: Report, clean_tiny_run) -> None:
    values = identifying_values(clean_tiny_run.scan, load_policy())
    for case_id in clean_tiny_run.scan.cases["case_id"]:
        assert case_id not in values
        assert clean_tiny_report.scrub(f"{case_id}/IM0001.dcm") == f"{case_id}/IM0001.dcm"


def test_utf8_names_are_masked_as_written(make_tree) -> None:
    """A UTF-8 name is read as Latin-1 ("MÃ¼ller") but spelt "Müller" in a file name."""
    root = make_tree()
    case = _case(root)
    for path in case.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = "Müllerová^Hana"
        ds.save_as(path)
    first = sorted(case.glob("*.dcm"))[0]
    first.rename(first.with_name(f"Müllerová-{first.name}"))
    run = run_validation(root, "subset", jobs=1)
    report = run.report
    values = identifying_values(run.scan, load_policy())
    assert {"Müllerová", "MÃ¼llerovÃ¡"} <= values
    text = _whole(report)
    assert "deid.filename" in text
    assert "Müllerová" not in text and "MÃ¼llerovÃ¡" not in text


def test_study_time_is_identifying(make_tree) -> None:
    root = make_tree()
    for path in _case(root).glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.StudyTime = "134501.123"
        ds.save_as(path)
    run = run_validation(root, "subset", jobs=1)
    assert "134501.123" in identifying_values(run.scan, load_policy())


# --------------------------------------------------------------------------- UIDs


def test_describe_uid() -> None:
    assert describe_uid("1.2.840.10008.1.2.2") == ("Explicit VR Big Endian", "1.2.840.10008.1.2.2")
    assert describe_uid("1.2.3.4") == ("1.2.3.4", "1.2.3.4")
    name, shown = describe_uid(f"1.2.3 {SECRET}")
    assert SECRET not in name + shown and "invalid UID" in name


@pytest.mark.parametrize("keyword", ["SOPClassUID", "TransferSyntaxUID"])
def test_a_value_that_is_no_uid_is_never_echoed(make_tree, keyword: str) -> None:
    """A damaged UID may hold the elements it swallowed: described, never shown or warned."""
    root = make_tree()
    path = _slice(root)
    ds = pydicom.dcmread(path)
    bad = f"1.2.840.10008.5.1.4.1.1.2{SECRET}19871110"
    if keyword == "SOPClassUID":
        with warnings.catch_warnings():  # pydicom rightly warns about writing it
            warnings.simplefilter("ignore")
            ds.SOPClassUID = bad
            ds.save_as(path)
    else:  # pydicom refuses to write it: overwrite the value in place (same length)
        data = path.read_bytes()
        old = str(ds.file_meta.TransferSyntaxUID).encode()
        old += b"\0" * (len(old) % 2)
        new = (b"1.2." + SECRET.encode() + b"19871110").ljust(len(old), b"9")[: len(old)]
        assert data.count(old) == 1
        path.write_bytes(data.replace(old, new))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = validate(root, "subset", jobs=1)
        text = report.dumps() + report.summary()
    check_id = "dicom.sop_class" if keyword == "SOPClassUID" else "dicom.transfer_syntax"
    (finding,) = [f for f in report.active if f.check_id == check_id]
    assert "an invalid UID" in finding.message
    assert finding.actual == "[not a valid UID: not shown]"
    assert SECRET not in text and "19871110" not in text
    escaped = " ".join(str(w.message) for w in caught)
    assert SECRET not in escaped and "19871110" not in escaped


def test_library_warnings_raised_by_checks_are_sanitised(clean_tiny, monkeypatch) -> None:
    """A check whose library call warns with a data value: the warning leaves sanitised."""
    from ctmd_validate.checks import REGISTRY

    def noisy(ctx, sink):
        warnings.warn(f"Invalid value for VR UI: '{SECRET}'", UserWarning, stacklevel=1)
        return 1

    spec = dataclasses.replace(REGISTRY["dicom.sop_class"], func=noisy)
    monkeypatch.setitem(REGISTRY, "dicom.sop_class", spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        validate(clean_tiny, "subset", jobs=1)
    texts = [str(w.message) for w in caught]
    assert any(t.startswith("dicom.sop_class: Invalid value for VR UI") for t in texts), texts
    assert not any(SECRET in t for t in texts)


# --------------------------------------------------------------------------- stray folders


def test_links_in_a_stray_folder_are_reported_not_followed(make_tree, tmp_path) -> None:
    root = make_tree()
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "x.txt").write_text("x")
    (outside / "y.txt").write_text("y")
    stray = root / "extras"
    (stray / "sub").mkdir(parents=True)
    (stray / "sub" / "a.txt").write_text("a")
    os.symlink(outside / "deep", stray / "to-dir")
    os.symlink(outside / "y.txt", stray / "sub" / "to-file")
    os.symlink("..", stray / "sub" / "up")  # a loop
    with recorded() as events:
        run = run_validation(root, "subset", jobs=1)
        report = run.report
    opened = [path for _event, path in events]
    entries = run.scan.entries.set_index("path")
    assert entries.loc["extras", "reason"] == "unexpected folder (1 files inside)"
    assert entries.loc["extras/to-dir", "role"] == "symlink_outside"
    assert entries.loc["extras/sub/to-file", "role"] == "symlink_outside"
    assert entries.loc["extras/sub/up", "role"] == "symlink_loop"
    assert not [p for p in opened if p.startswith(str(outside))]
    fired = {f.check_id for f in report.active}
    assert {"structure.symlink_outside", "structure.symlink_loop", "structure.stray_file"} <= fired


def test_a_huge_stray_folder_is_counted_within_the_cap(make_tree, monkeypatch) -> None:
    monkeypatch.setattr(scan_module, "MAX_COUNTED", 5)
    root = make_tree()
    stray = root / "backup"
    for i in range(3):
        (stray / f"d{i}").mkdir(parents=True)
        for j in range(4):
            (stray / f"d{i}" / f"{j}.txt").write_text("x")
    shutil.copytree(_case(root).parent, stray / "d1" / "CAP subjects")
    run = run_validation(root, "subset", jobs=1)
    entries = run.scan.entries.set_index("path")
    assert entries.loc["backup", "reason"] == "unexpected folder (more than 5 entries inside)"


# --------------------------------------------------------------------------- no image at all


def test_cases_without_a_readable_image_are_no_dataset(make_tree, tmp_path) -> None:
    """Every slice damaged and every other check silenced by config: still never valid."""
    from ctmd_validate.config import load_config

    root = make_tree()
    for path in root.rglob("*.dcm"):
        path.write_bytes(b"\0" * 64)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[severity]\n"*" = "ignore"\n')
    report = validate(root, "subset", jobs=1, config=load_config(cfg, REGISTRY))
    (finding,) = [f for f in report.active if f.check_id == "structure.no_dataset"]
    assert "hold no readable DICOM image" in finding.message
    assert report.exit_code == 1 and not report.valid


# --------------------------------------------------------------------------- empty vs absent


def _edit_first_slice(root: Path, change) -> Path:
    path = _slice(root)
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)
    return path


def test_an_item_without_elements_misses_its_type1_attributes(make_tree) -> None:
    """dciodvfy: a Referenced Image Sequence item must hold Referenced SOP Class/Instance UID."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    root = make_tree()

    def change(ds) -> None:
        ds.ReferencedImageSequence = Sequence([Dataset()])

    _edit_first_slice(root, change)
    run = run_validation(root, "subset", jobs=1)
    report = run.report
    messages = [f.message for f in report.active if f.check_id == "dicom.required_attribute"]
    assert any("ReferencedImageSequence[*].ReferencedSOPInstanceUID" in m for m in messages)
    assert any("absent" in m for m in messages), messages
    elements = run.scan.elements
    seq = elements[elements["tag"] == 0x00081140]
    assert list(seq["value"]) == ["1"]  # the item is counted though it holds nothing


def test_a_removed_attribute_holding_only_padding_is_empty(make_tree) -> None:
    root = make_tree()
    path = _slice(root)
    data = path.read_bytes()
    _edit_first_slice(root, lambda ds: setattr(ds, "ImageComments", "XX"))
    data = path.read_bytes()
    tag = struct.pack("<HH", 0x0020, 0x4000) + b"LT" + struct.pack("<H", 2)
    assert data.count(tag + b"XX") == 1
    path.write_bytes(data.replace(tag + b"XX", tag + b"  "))
    report = validate(root, "subset", jobs=1)
    fired = {f.check_id for f in report.active if "ImageComments" in f.message}
    assert fired == {"deid.attribute.empty"}, fired


def test_no_dataset_gives_no_profile_hint(tmp_path) -> None:
    """An empty root under ``release``: the finding says where to look, not "use subset"."""
    root = tmp_path / "empty"
    root.mkdir()
    report = validate(root, "release", jobs=1)
    assert {f.check_id for f in report.active} >= {"structure.no_dataset"}
    assert report.hints == [] and "hint:" not in report.summary()


# --------------------------------------------------------------------------- names, whole


def _with_patient(root: Path, **values: str) -> Path:
    case = _case(root)
    for path in case.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        ds.save_as(path)
    return case


@pytest.mark.parametrize("sep", [" ", "(", "=", "\x01", "'"])
def test_a_name_holding_a_value_is_masked_whole_whatever_its_separators(make_tree, sep) -> None:
    """``99C628 ASAD_1.dcm`` must not keep ``99C628`` once ``ASAD`` (Operators' Name) is masked."""
    root = make_tree()
    case = _with_patient(root, PatientID="QX99C628-QASAD", OperatorsName="QASAD")
    first = sorted(case.glob("*.dcm"))[0]
    first.rename(first.with_name(f"QX99C628{sep}QASAD_1.dcm"))
    text = _whole(validate(root, "subset", jobs=1))
    assert "deid.filename" in text
    assert "QX99C628" not in text and "QASAD" not in text
    assert "[redacted#" in text


def test_values_inside_sequences_are_masked(make_tree) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    root = make_tree()
    path = _slice(root)
    ds = pydicom.dcmread(path)
    item = Dataset()
    item.PatientID = "NESTEDQX77"
    ds.OtherPatientIDsSequence = Sequence([item])
    ds.save_as(path)
    path.rename(path.with_name("NESTEDQX77_1.dcm"))
    run = run_validation(root, "subset", jobs=1)
    report = run.report
    assert "NESTEDQX77" in identifying_values(run.scan, load_policy())
    assert "NESTEDQX77" not in _whole(report)
    assert "NESTEDQX77" not in report.scrub(f"{_case(root).name}/NESTEDQX77_1.dcm")


def test_other_spellings_of_a_name_are_masked(make_tree) -> None:
    """Decomposed (macOS), Latin-1 bytes, and a stray that spells itself in UTF-8."""
    import unicodedata

    root = make_tree()
    case = _with_patient(root, PatientName="Ødegård^Sigrún")
    (case.parent / unicodedata.normalize("NFD", "Ødegård.docx")).write_text("x")
    os.close(
        os.open(
            os.path.join(os.fsencode(case.parent), "Sigrún-l1.docx".encode("latin-1")),
            os.O_CREAT | os.O_WRONLY,
        )
    )
    (case.parent / "Jürgenthal.docx").write_text("Patient: Jürgenthal\n", encoding="utf-8")
    text = _whole(validate(root, "subset", jobs=1))
    for spelling in ("Ødegård", "gård", "Sigr", "Jürgenthal", "J\\xfcrgenthal"):
        assert spelling not in text
        assert unicodedata.normalize("NFD", spelling) not in text
    assert "\\xfan-l1" not in text


def test_a_worker_that_dies_leaves_its_files_unreadable_not_absent(make_tree, monkeypatch):
    """The kernel's OOM killer ends a worker: the run still reports, every file accounted."""
    scan_module = sys.modules["ctmd_validate.scan"]
    root = make_tree()
    victim = sorted(root.rglob("IM0030.dcm"))[0]
    real = scan_module.read_header

    def dying(path: str, *args, **kwargs):
        if os.path.basename(path) == victim.name and os.getpid() != parent:
            os._exit(9)  # as SIGKILL would: no exception, no cleanup
        return real(path, *args, **kwargs)

    parent = os.getpid()
    monkeypatch.setattr(scan_module, "read_header", dying)
    run = run_validation(root, "subset", jobs=2)
    report = run.report
    files = run.scan.files
    assert len(files) == sum(1 for _ in root.rglob("*.dcm"))
    lost = files[files["error"].fillna("").str.contains("worker process reading it died")]
    assert len(lost) >= 1
    assert not report.valid
    assert any(f.check_id == "dicom.unreadable" for f in report.active)
    report.dumps()


def TINY_FILES_COUNT(root) -> int:
    return sum(1 for _ in root.rglob("*.dcm"))
