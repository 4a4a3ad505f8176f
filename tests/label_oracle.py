"""An independent oracle for the label, count and demographics checks on the real sample.

Everything here is computed from the raw files only: ``Index.csv`` with the csv module, the
four label arrays with numpy (``allow_pickle=False``), the image headers with pydicom and
the release manifest with csv. Nothing is imported from ``ctmd_validate``: the facts the
oracle needs (file names, lobe order, announced changes, published figures, folder
spellings) are restated below from ``shared/reference/dataset-facts.md``. No defect of the
real data is written down here; the tests assert that the tool finds exactly what this
module computes.
"""

from __future__ import annotations

import csv
import functools
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "schemas" / "release-case-manifest.csv"

# ----------------------------------------------------------- facts from dataset-facts.md

INDEX_NAME = "Index.csv"
INDEX_COLUMNS = ["Label Index", "Diagnosis", "Relative Path", "Folder/ID"]
#: version -> level -> file name; "original" is the version the published figures use.
LABEL_FILES = {
    "original": {"slice": "Slice-level-labels.npy", "lobe": "Lobe-level-labels.npy"},
    "updated-1": {
        "slice": "Slice-level-labels-updated-1.npy",
        "lobe": "Lobe-level-labels-updated-1.npy",
    },
}
REFERENCE = "original"
#: Update 1 (2021-09-08) revised the labels of these cases only.
ANNOUNCED = {"updated-1": {"P001", "P006"}}
LOBES = ("LLL", "LUL", "RLL", "RML", "RUL")
UPPER = (LOBES.index("LUL"), LOBES.index("RUL"))  # 1, 4
LOWER = (LOBES.index("LLL"), LOBES.index("RLL"))  # 0, 2
PUBLISHED_INFECTED = {"original": 4957}
PUBLISHED_NON_INFECTED = 18392
PUBLISHED_LABELLED = {"COVID-19": 54, "CAP": 25}
#: Every spelling of the class folders (README tree, sample, Figshare, Index.csv column).
CLASS_SPELLINGS = {
    "COVID-19": ("COVID-19 subjects", "COVID-19 Cases", "./COVID-19/"),
    "CAP": ("CAP subjects", "Cap subjects", "CAP Cases", "Cap Cases", "./CAP/"),
    "Normal": ("Normal subjects", "Normal Cases"),
}
CASE_PATTERNS = {"COVID-19": r"P\d{3}", "CAP": r"cap\d{3}", "Normal": r"normal\d{3}"}
AGE_IN_YEARS = re.compile(r"\d{3}Y")


def norm_path(text: str) -> str:
    """A folder spelling compared loosely: no './', no slashes at the ends, any case."""
    text = text.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return text.strip("/").casefold()


CLASS_OF_FOLDER = {
    norm_path(s): label for label, spellings in CLASS_SPELLINGS.items() for s in spellings
}

# --------------------------------------------------------------------------- raw reading


@dataclass(frozen=True)
class IndexRow:
    line: int
    position: int  # among the data lines (malformed ones keep their place): the array row
    raw_index: str
    diagnosis: str
    relative_path: str
    case_id: str

    @property
    def value(self) -> int | None:
        """The Label Index as a number (None when the cell is not a non-negative integer)."""
        text = self.raw_index.strip()
        return int(text) if text.isascii() and text.isdigit() else None


@dataclass(frozen=True)
class PresentCase:
    case_id: str
    case_key: str  # folder relative to the root, posix
    label: str | None  # class label of its class folder (None: unknown folder name)
    files: tuple[str, ...]  # .dcm paths relative to the root
    headers: tuple[Any, ...]  # pydicom datasets (selected tags), same order as files


def read_manifest() -> dict[str, tuple[str, int]]:
    with MANIFEST.open(newline="", encoding="utf-8") as fh:
        return {r["case_id"]: (r["diagnosis"], int(r["n_slices"])) for r in csv.DictReader(fh)}


def read_index(root: Path) -> tuple[list[str], list[IndexRow], list[tuple[int, int]]]:
    """Header, rows of 4 fields and (line, n fields) of the other non-blank lines."""
    with (root / INDEX_NAME).open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        rows, ragged = [], []
        position = 0
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(INDEX_COLUMNS):
                ragged.append((reader.line_num, len(fields)))
            else:
                rows.append(IndexRow(reader.line_num, position, *fields))
            position += 1
    return header, rows, ragged


def load_arrays(root: Path) -> tuple[dict[tuple[str, str], np.ndarray], dict[str, str]]:
    """Every label array numpy can load safely, and why the others could not be loaded."""
    arrays, errors = {}, {}
    for version, files in LABEL_FILES.items():
        for level, name in files.items():
            path = root / name
            if not path.is_file():
                continue
            try:
                arrays[(version, level)] = np.load(path, allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:  # pragma: no cover - real files load
                errors[name] = f"{type(exc).__name__}: {exc}"
    return arrays, errors


def find_cases(root: Path) -> list[PresentCase]:
    """Every folder holding .dcm files is a case; its parent names the class."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        names = sorted(n for n in files if n.lower().endswith(".dcm"))
        if not names:
            continue
        folder = Path(dirpath)
        key = folder.relative_to(root).as_posix()
        headers = tuple(
            pydicom.dcmread(
                folder / n,
                stop_before_pixels=True,
                specific_tags=["SliceLocation", "ImagePositionPatient", "PatientAge"],
            )
            for n in names
        )
        out.append(
            PresentCase(
                folder.name,
                key,
                CLASS_OF_FOLDER.get(norm_path(folder.parent.name)),
                tuple(f"{key}/{n}" for n in names),
                headers,
            )
        )
    return out


# --------------------------------------------------------------------------- the oracle


@dataclass
class Oracle:
    root: Path  # the dataset (images)
    labels: Path  # where Index.csv and the arrays were read
    header: list[str]
    rows: list[IndexRow]
    ragged: list[tuple[int, int]]
    arrays: dict[tuple[str, str], np.ndarray]
    load_errors: dict[str, str]
    cases: list[PresentCase]
    manifest: dict[str, tuple[str, int]]

    # ---------------------------------------------------------------- Index and mapping

    @property
    def n_lines(self) -> int:
        """Data lines of the Index, malformed ones included: one array row each."""
        return len(self.rows) + len(self.ragged)

    @property
    def values(self) -> list[int | None]:
        return [r.value for r in self.rows]

    @property
    def missing(self) -> list[int]:
        return sorted(set(range(self.n_lines)) - {v for v in self.values if v is not None})

    @property
    def repeated(self) -> list[int]:
        counts = Counter(v for v in self.values if v is not None)
        return sorted(v for v, c in counts.items() if c > 1)

    @property
    def not_a_number_lines(self) -> list[int]:
        return [r.line for r in self.rows if r.value is None]

    @property
    def exact(self) -> bool:
        """Label Index is a permutation of 0..n-1 (a malformed line leaves its value missing)."""
        return not (self.missing or self.repeated or self.not_a_number_lines)

    @property
    def mapping(self) -> str:
        return "label_index" if self.exact else "position"

    def reference(self, level: str) -> np.ndarray:
        """The reference version's array of ``level``, else the first other version's."""
        for version in (REFERENCE, *LABEL_FILES):
            if (version, level) in self.arrays:
                return self.arrays[(version, level)]
        raise LookupError(f"no {level}-level array could be loaded")  # pragma: no cover

    @property
    def n_array_rows(self) -> int:
        try:
            return int(self.reference("slice").shape[0])
        except LookupError:  # pragma: no cover
            return int(self.reference("lobe").shape[0])

    @property
    def width(self) -> int:
        return int(self.reference("slice").shape[1])

    @property
    def off_position(self) -> list[str]:
        """Cases whose row carries a Label Index other than its position in the file."""
        return [r.case_id for r in self.rows if r.value != r.position]

    @property
    def out_of_range(self) -> list[tuple[str, int, int]]:
        """(case, line, Label Index) of rows pointing past the arrays' rows."""
        return [
            (r.case_id, r.line, r.value)
            for r in self.rows
            if r.value is not None and r.value >= self.n_array_rows
        ]

    def rows_by_label_index(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            if r.value is not None and r.value < self.n_array_rows:
                out[r.case_id] = r.value
        return out

    def rows_by_position(self) -> dict[str, int]:
        return {r.case_id: r.position for r in self.rows}

    @functools.cached_property
    def row_of(self) -> dict[str, int]:
        """case -> array row under the mapping the rule prescribes (first row of a case)."""
        out: dict[str, int] = {}
        for r in self.rows:
            row = r.value if self.exact else r.position
            assert row is not None
            if row < self.n_array_rows and r.case_id not in out:
                out[r.case_id] = row
        return out

    @functools.cached_property
    def case_of_row(self) -> dict[int, str]:
        return {row: case for case, row in self.row_of.items()}

    # ------------------------------------------------------------------ images, counts

    @functools.cached_property
    def present(self) -> dict[str, PresentCase]:
        return {c.case_id: c for c in self.cases}

    @functools.cached_property
    def slice_counts(self) -> dict[str, int]:
        """The release manifest's counts, replaced by the images' for present cases."""
        out = {case: n for case, (_d, n) in self.manifest.items()}
        out.update({c.case_id: len(c.files) for c in self.cases})
        return out

    def past_last_slice(self, row_of: dict[str, int], array: np.ndarray) -> dict[str, list[int]]:
        """Cases with positive labels at or past their slice count (lobe level: any lobe)."""
        counts = self.slice_counts
        out = {}
        for case, row in row_of.items():
            if case not in counts or row >= array.shape[0]:
                continue
            n = counts[case]
            tail = np.asarray(array[row, n:]) != 0
            if tail.ndim == 2:
                tail = tail.any(axis=1)
            hits = [n + int(i) for i in np.flatnonzero(tail)]
            if hits:
                out[case] = hits
        return out

    @property
    def evidence(self) -> dict[str, list[str]]:
        """Under each reading of the Index, which cases get labels past their last slice."""
        ref = self.reference("slice")
        return {
            "label_index": sorted(self.past_last_slice(self.rows_by_label_index(), ref)),
            "position": sorted(self.past_last_slice(self.rows_by_position(), ref)),
        }

    @property
    def padding(self) -> dict[str, dict[str, list[int]]]:
        """case -> file name -> positive slices past the case's end, over every array."""
        out: dict[str, dict[str, list[int]]] = {}
        for (_version, _level), array in self.arrays.items():
            name = LABEL_FILES[_version][_level]
            for case, hits in self.past_last_slice(self.row_of, array).items():
                out.setdefault(case, {})[name] = hits
        return out

    @property
    def capacity(self) -> dict[str, int]:
        counts = self.slice_counts
        return {c: counts[c] for c in self.row_of if c in counts and counts[c] > self.width}

    # ---------------------------------------------------------------- arrays themselves

    @property
    def shape_problems(self) -> set[str]:
        """Names of the arrays whose shape is not (n, S) / (n, S, 5) with one S everywhere."""
        widths = [a.shape[1] for a in self.arrays.values() if a.ndim >= 2]
        common = Counter(widths).most_common(1)[0][0]
        bad = set()
        for (version, level), a in self.arrays.items():
            want = 2 if level == "slice" else 3
            if (
                a.ndim != want
                or a.shape[0] != self.n_lines
                or a.shape[1] != common
                or (level == "lobe" and a.shape[2] != len(LOBES))
            ):
                bad.add(LABEL_FILES[version][level])
        return bad

    @property
    def bad_values(self) -> dict[str, int]:
        """Array name -> number of cells that are not exactly 0 or 1 (NaN included)."""
        out = {}
        for (version, level), a in self.arrays.items():
            n = int(a.size - np.count_nonzero((a == 0) | (a == 1)))
            if n:
                out[LABEL_FILES[version][level]] = n
        return out

    @property
    def lobe_slice_mismatch(self) -> set[tuple[str, str | None, tuple[int, ...]]]:
        """(version, case, slices) where the slice label differs from 'any lobe'."""
        out = set()
        for version in LABEL_FILES:
            s, lobe = self.arrays.get((version, "slice")), self.arrays.get((version, "lobe"))
            if s is None or lobe is None or s.ndim != 2 or lobe.ndim != 3:
                continue
            if s.shape != lobe.shape[:2]:
                continue
            differs = (s != 0) != (lobe != 0).any(axis=2)
            for row in range(s.shape[0]):
                where = tuple(int(i) for i in np.flatnonzero(differs[row]))
                if where:
                    out.add((version, self.case_of_row.get(row), where))
        return out

    @property
    def dtype_warnings(self) -> tuple[set[tuple[str, str]], set[tuple[str, tuple]]]:
        """(name, dtype) of non-integer arrays; (level, (version, dtype)...) mixing dtypes."""
        not_integer = {
            (LABEL_FILES[v][lvl], str(a.dtype))
            for (v, lvl), a in self.arrays.items()
            if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_)
        }
        mixed = set()
        for level in ("slice", "lobe"):
            dtypes = tuple(
                (v, str(self.arrays[(v, level)].dtype))
                for v in LABEL_FILES
                if (v, level) in self.arrays
            )
            if len({d for _v, d in dtypes}) > 1:
                mixed.add((level, dtypes))
        return not_integer, mixed

    @property
    def version_diff(self) -> dict[tuple[str, str, str | None], dict[str, Any]]:
        """(version, level, case) -> slices (and lobes) that differ from the reference."""
        out = {}
        for version in LABEL_FILES:
            if version == REFERENCE:
                continue
            for level in ("slice", "lobe"):
                a = self.arrays.get((REFERENCE, level))
                b = self.arrays.get((version, level))
                if a is None or b is None or a.shape != b.shape:
                    continue
                for row in range(a.shape[0]):
                    d = a[row] != b[row]
                    if not d.any():
                        continue
                    case = self.case_of_row.get(row)
                    per_slice = d if d.ndim == 1 else d.any(axis=1)
                    entry: dict[str, Any] = {
                        "slices": [int(i) for i in np.flatnonzero(per_slice)],
                        "announced": case in ANNOUNCED.get(version, set()),
                    }
                    if d.ndim == 2:
                        entry["lobes"] = [LOBES[i] for i in np.flatnonzero(d.any(axis=0))]
                    out[(version, level, case)] = entry
        return out

    @property
    def totals(self) -> dict[str, int]:
        return {
            v: int(np.count_nonzero(self.arrays[(v, "slice")]))
            for v in LABEL_FILES
            if (v, "slice") in self.arrays
        }

    @property
    def total_mismatches(self) -> dict[str, tuple[int, int]]:
        """version -> (published, counted) where a published total is not reproduced."""
        return {
            v: (PUBLISHED_INFECTED[v], n)
            for v, n in self.totals.items()
            if v in PUBLISHED_INFECTED and n != PUBLISHED_INFECTED[v]
        }

    @property
    def non_infected(self) -> int | None:
        """Normal + labelled slices (images) - original infected; None unless all present."""
        present = self.present
        normal = [c for c, (d, _n) in self.manifest.items() if d == "Normal"]
        labelled = list(dict.fromkeys(r.case_id for r in self.rows))
        if any(c not in present for c in normal + labelled):
            return None
        images = sum(len(present[c].files) for c in normal + labelled)
        infected = self.totals.get(REFERENCE)
        return None if infected is None else images - infected

    # ------------------------------------------------------------------ orientation

    @property
    def votes(self) -> tuple[dict[str, str], int]:
        """Per case with both lobe groups: 'cranial' when upper lobes sit at lower indices."""
        lobes = self.reference("lobe")
        votes, without = {}, 0
        for case, row in self.row_of.items():
            cells = lobes[row] != 0
            up = np.flatnonzero(cells[:, list(UPPER)].any(axis=1))
            low = np.flatnonzero(cells[:, list(LOWER)].any(axis=1))
            if not up.size or not low.size or up.mean() == low.mean():
                without += 1
                continue
            votes[case] = "cranial" if up.mean() < low.mean() else "caudal"
        return votes, without

    @property
    def slice_location_direction(self) -> dict[str, Any]:
        """Per present case, does Slice Location grow with patient z (towards the head)?"""
        head = feet = 0
        for case in self.cases:
            pairs = [
                (float(h.SliceLocation), float(h.ImagePositionPatient[2]))
                for h in case.headers
                if "SliceLocation" in h and "ImagePositionPatient" in h
            ]
            if len(pairs) < 2 or len({p[0] for p in pairs}) < 2:
                continue
            corr = float(np.corrcoef(np.array(pairs).T)[0, 1])
            if not math.isfinite(corr):
                continue
            head, feet = head + (corr > 0), feet + (corr <= 0)
        # a tie (or nothing measured) falls back on DICOM: patient z grows towards the head
        return {"increases_towards": "feet" if feet > head else "head", "head": head, "feet": feet}

    @property
    def slice_order(self) -> dict[str, Any]:
        votes, without = self.votes
        tally = Counter(votes.values())
        if tally["cranial"] == tally["caudal"]:
            return {
                "value": "undetermined",
                "index_0": None,
                "cases_agreeing": 0,
                "cases_disagreeing": [],
                "cases_without_evidence": without,
            }
        index0 = "cranial" if tally["cranial"] > tally["caudal"] else "caudal"
        head_up = self.slice_location_direction["increases_towards"] == "head"
        # index 0 at the head and Slice Location growing towards the head: descending
        descending = (index0 == "cranial") == head_up
        value = "slice_location_descending" if descending else "slice_location_ascending"
        return {
            "value": value,
            "index_0": index0,
            "cases_agreeing": sum(v == index0 for v in votes.values()),
            "cases_disagreeing": sorted(c for c, v in votes.items() if v != index0),
            "cases_without_evidence": without,
        }

    # ------------------------------------------------------------ index vs the images

    @property
    def schema_cells(self) -> set[tuple[int, str]]:
        """(line, column) of every cell breaking the Index schema."""
        bad = set()
        raw = Counter(r.raw_index for r in self.rows)
        ids = Counter(r.case_id for r in self.rows)
        for r in self.rows:
            if not re.fullmatch(r"[0-9]+", r.raw_index) or raw[r.raw_index] > 1:
                bad.add((r.line, "Label Index"))
            if r.diagnosis not in PUBLISHED_LABELLED:
                bad.add((r.line, "Diagnosis"))
            if not r.relative_path:
                bad.add((r.line, "Relative Path"))
            wrong_class = r.diagnosis in PUBLISHED_LABELLED and not re.fullmatch(
                CASE_PATTERNS[r.diagnosis], r.case_id
            )
            if not r.case_id or ids[r.case_id] > 1 or wrong_class:
                bad.add((r.line, "Folder/ID"))
        return bad

    @property
    def labelled_counts(self) -> dict[str, int]:
        counts = Counter(r.diagnosis for r in self.rows)
        return {d: counts.get(d, 0) for d in PUBLISHED_LABELLED}

    @property
    def labelled_present(self) -> dict[str, tuple[int, int]]:
        """diagnosis -> (labelled cases, of which with an image folder here)."""
        present = self.present
        out = {}
        for diagnosis in CLASS_SPELLINGS:
            ids = [r.case_id for r in self.rows if r.diagnosis == diagnosis]
            if ids:
                out[diagnosis] = (len(ids), sum(c in present for c in ids))
        return out

    @property
    def diagnosis_mismatch(self) -> set[tuple[str, str, str, str | None]]:
        """(case, folder, Index diagnosis, folder's class) of labelled cases filed elsewhere."""
        return {
            (r.case_id, c.case_key, r.diagnosis, c.label)
            for r in self.rows
            if r.diagnosis in CLASS_SPELLINGS
            for c in self.cases
            if c.case_id == r.case_id and c.label != r.diagnosis
        }

    @property
    def relative_path_problems(self) -> set[tuple[str, str]]:
        """(case, Relative Path) of rows whose path names no spelling of their own class."""
        out = set()
        for r in self.rows:
            if r.diagnosis not in CLASS_SPELLINGS:
                continue
            known = {norm_path(s) for s in CLASS_SPELLINGS[r.diagnosis]}
            literal = self.root / r.relative_path.strip() / r.case_id
            if norm_path(r.relative_path) not in known and not literal.is_dir():
                out.add((r.case_id, r.relative_path))
        return out

    # ------------------------------------------------------------------ demographics

    @property
    def age_not_in_years(self) -> set[tuple[str, tuple[str, ...]]]:
        """(case, files) whose Patient's Age is present but not nnnY."""
        out = set()
        for c in self.cases:
            bad = tuple(
                path
                for path, h in zip(c.files, c.headers, strict=True)
                if str(h.get("PatientAge", "") or "").strip()
                and not AGE_IN_YEARS.fullmatch(str(h.PatientAge).strip())
            )
            if bad:
                out.add((c.case_id, bad))
        return out

    @property
    def complete_classes(self) -> list[str]:
        """Classes whose every release case has its folder here."""
        release = Counter(d for d, _n in self.manifest.values())
        here = Counter(c.label for c in self.cases)
        return [d for d, n in release.items() if here.get(d, 0) == n]

    # -------------------------------------------------------------- which errors fire

    def errors(self, complete: bool) -> dict[str, bool]:
        """Which label / count / demographics checks must report an error."""
        if self.complete_classes:  # pragma: no cover - no class of the sample is complete
            raise NotImplementedError("a complete class: add demographics.sex/age to the oracle")
        ni = self.non_infected
        present = self.present
        return {
            "labels.file.missing": complete
            and not all((self.labels / n).is_file() for n in self.all_label_files),
            "labels.file.unreadable": bool(self.load_errors),
            "labels.index.schema": self.header != INDEX_COLUMNS
            or bool(self.ragged or self.schema_cells),
            "labels.index.gap": not self.exact,
            "labels.index.out_of_range": bool(self.out_of_range),
            "labels.index.case_missing": complete
            and any(r.case_id not in present for r in self.rows),
            "labels.index.diagnosis_mismatch": bool(self.diagnosis_mismatch),
            "labels.index.relative_path": bool(self.relative_path_problems),
            "labels.shape": bool(self.shape_problems),
            "labels.values": bool(self.bad_values),
            "labels.lobe_slice.mismatch": bool(self.lobe_slice_mismatch),
            "labels.capacity": bool(self.capacity),
            "labels.padding": bool(self.padding),
            "labels.total": bool(self.total_mismatches)
            or (ni is not None and ni != PUBLISHED_NON_INFECTED),
            "counts.labelled": self.labelled_counts != PUBLISHED_LABELLED,
        }

    @property
    def all_label_files(self) -> list[str]:
        return [INDEX_NAME, *(n for files in LABEL_FILES.values() for n in files.values())]


@functools.cache
def build(root: Path, labels: Path | None = None) -> Oracle:
    """The oracle over the sample at ``root``, label files from ``labels`` (default: root)."""
    labels = root if labels is None else labels
    header, rows, ragged = read_index(labels)
    arrays, errors = load_arrays(labels)
    return Oracle(root, labels, header, rows, ragged, arrays, errors, _cases(root), read_manifest())


@functools.cache
def _cases(root: Path) -> list[PresentCase]:
    return find_cases(root)
