"""Config, profile and policy files: schema errors with file, key and line; config wildcards.

Every malformed file must end in exit code 2 with one line on stderr that says where the
problem is (``file:line: key.path: what``), never in a traceback.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ctmd_validate.checks  # noqa: F401  (registers every check id)
from ctmd_validate import config as config_module
from ctmd_validate import validate
from ctmd_validate.checks import REGISTRY
from ctmd_validate.cli import main
from ctmd_validate.config import PROTECTED_IDS, Config, Waiver, load_config
from ctmd_validate.errors import ConfigError, ProfileError
from ctmd_validate.findings import CheckResult, Finding, Severity
from ctmd_validate.policy import load_policy
from ctmd_validate.profiles import (
    BUILTIN_PROFILES,
    TRANSFER_SYNTAXES,
    TYPE1_ITEMS,
    Conformance,
    load_profile,
)
from ctmd_validate.resources import schema_file
from ctmd_validate.settings import format_key_path, key_lines

MARK = "# <-"  # marks the line a test expects an error message to name
RELEASE_TOML = schema_file("profiles/release.toml")
POLICY_TOML = schema_file("deid/ctmd-default.toml")


def marked_line(text: str) -> int:
    """The 1-based number of the line that carries ``MARK``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if MARK in line)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def cli_error(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    """Run the CLI, expect exit code 2 and one clean error line; return that line."""
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    assert "Traceback" not in err
    assert err.startswith("ctmd-validate: error: ")
    assert err.count("\n") == 1, err
    return err.strip()


def check_args(root: Path, *extra: object) -> list[object]:
    return ["check", root, "--profile", "subset", "--jobs", "1", "--quiet", *extra]


# --------------------------------------------------------------------------- config errors

CONFIG_CASES = {
    # the examples: each names its key path; MARK is on the line to report
    "waiver-path-int": (
        '[[waive]]\nid = "structure.stray_file"\nreason = "x"\npath = 5  # <-\n',
        "waive[0].path: 5 is not of type 'string'",
    ),
    "waiver-id-list": (
        '[[waive]]\nid = ["structure.stray_file"]  # <-\nreason = "x"\n',
        "waive[0].id: ['structure.stray_file'] is not of type 'string'",
    ),
    "level-list": (
        '[severity]\n"dicom.unreadable" = ["error"]  # <-\n',
        'severity."dicom.unreadable": level must be one of error, warning, info, ignore',
    ),
    "severity-list": ('severity = ["dicom.unreadable"]  # <-\n', "severity: ['dicom.unreadable']"),
    "level-unknown": (
        '[severity]\n"structure.stray_file" = "info"\n"dicom.unreadable" = "fatal"  # <-\n',
        "level must be one of error, warning, info, ignore (not 'fatal')",
    ),
    "waiver-typo-key": (
        '[[waive]]\nid = "dicom.unreadable"\nreason = "ok"\n\n'
        '[[waive]]\nid = "structure.stray_file"\npth = "*/.DS_Store"  # <-\nreason = "macOS"\n',
        "waive[1].pth: unknown key (allowed: id, reason, path, case, code)",
    ),
    "table-typo": (
        '[severity]\n"dicom.unreadable" = "info"\n\n[severty]  # <-\n"x" = "info"\n',
        "severty: unknown key (allowed: severity, waive)",
    ),
    "waiver-no-reason": (
        '[[waive]]  # <-\nid = "dicom.unreadable"\n',
        "waive[0].reason: every waiver needs an id and a reason",
    ),
    "waiver-empty-reason": (
        '[[waive]]\nid = "dicom.unreadable"\nreason = "  "  # <-\n',
        "waive[0].reason: every waiver needs an id and a reason",
    ),
    "unknown-id": (
        '[severity]\n"dicom.unreadabl" = "info"  # <-\n',
        "unknown check id 'dicom.unreadabl' (did you mean 'dicom.unreadable'?)",
    ),
    "pattern-matches-nothing": (
        '[[waive]]\nid = "dicom.unreadable"\nreason = "a"\n[[waive]]\nid = "deidd.*"  # <-\n'
        'reason = "b"\n',
        "waive[1].id: pattern 'deidd.*' matches no check id",
    ),
    "protected-id": (
        '[severity]\n"structure.no_dataset" = "info"  # <-\n',
        "structure.no_dataset cannot be re-levelled or waived: "
        "an empty or wrong root must never pass",
    ),
    "inline-table-waiver": (
        'waive = [\n  { id = "dicom.unreadable", reason = "r" },\n'
        '  { id = "dicom.unreadable", reason = "r", cas = "P001" },  # <-\n]\n',
        "waive[1].cas: unknown key",
    ),
    "dotted-keys": (
        'severity."dicom.unreadable" = "info"\nseverity."dicom.uid.invalid" = 3  # <-\n',
        'severity."dicom.uid.invalid": level must be one of',
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_malformed_config_exits_2_naming_key_and_line(clean_tiny, tmp_path, capsys, name):
    text, message = CONFIG_CASES[name]
    cfg = write(tmp_path, "myconfig.toml", text)
    err = cli_error(capsys, *check_args(clean_tiny, "--config", cfg))
    assert f"{cfg}:{marked_line(text)}: " in err
    assert message in err


def test_protected_id_in_a_waiver(tmp_path):
    cfg = write(tmp_path, "c.toml", '[[waive]]\nid = "structure.no_dataset"\nreason = "x"\n')
    # the id need not be registered to be refused
    with pytest.raises(ConfigError, match=r"c\.toml:2: waive\[0\]\.id: structure\.no_dataset"):
        load_config(cfg, known_ids={"dicom.unreadable"})


def test_several_problems_are_reported_together_in_file_order(tmp_path):
    text = (
        '[[waive]]\nid = "dicom.unreadable"\npth = "x"\nreason = "r"\n'
        '[severity]\n"dicom.unreadable" = 1\n'
    )
    cfg = write(tmp_path, "c.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(cfg, REGISTRY)
    message = str(info.value)
    assert "\n" not in message
    first, second = message.split("; ")
    assert first.startswith(f"{cfg}:3: waive[0].pth: unknown key")
    assert second.startswith(f'{cfg}:6: severity."dicom.unreadable": level must be one of')


def test_json_config_errors_name_the_json_line(clean_tiny, tmp_path, capsys):
    data = {
        "severity": {"structure.class_dir.alias": "info"},
        "waive": [
            {"id": "structure.stray_file", "reason": "ok"},
            {"id": "structure.stray_file", "reason": "ok", "path": 5},
        ],
    }
    text = json.dumps(data, indent=2)
    cfg = write(tmp_path, "cfg.json", text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if '"path": 5' in s)
    err = cli_error(capsys, *check_args(clean_tiny, "--config", cfg))
    assert f"{cfg}:{line}: waive[1].path: 5 is not of type 'string'" in err


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("bad.toml", '[severity]\n"dicom.unreadable" = \n', "line 2, column"),
        ("bad.toml", "[severity\n", "line 1, column"),
        ("bad.json", '{\n  "severity": {\n    "x": \n}', "line 4 column"),
    ],
)
def test_syntax_errors_keep_their_line(clean_tiny, tmp_path, capsys, name, text, where):
    cfg = write(tmp_path, name, text)
    err = cli_error(capsys, *check_args(clean_tiny, "--config", cfg))
    assert f"cannot read config {cfg}" in err
    assert where in err


def test_unreadable_config_files(clean_tiny, tmp_path, capsys):
    err = cli_error(capsys, *check_args(clean_tiny, "--config", tmp_path / "absent.toml"))
    assert "cannot read config" in err and "absent.toml" in err
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[severity]\n")
    assert "cannot read config" in cli_error(capsys, *check_args(clean_tiny, "--config", binary))
    deep = write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000)
    assert "cannot read config" in cli_error(capsys, *check_args(clean_tiny, "--config", deep))


def test_json_top_level_must_be_an_object(tmp_path):
    cfg = write(tmp_path, "c.json", "[]")
    with pytest.raises(ConfigError, match=r"c\.json: the config must be a table/object"):
        load_config(cfg, REGISTRY)


# --------------------------------------------------------------------------- wildcards


def finding(check_id: str, severity: Severity = Severity.WARNING, **kw: Any) -> Finding:
    return Finding(check_id, severity, f"{check_id} fired", **kw)


def applied(config: Config, *ids: str) -> dict[str, Finding]:
    results = [CheckResult(i, 1, [finding(i)]) for i in ids]
    return {r.check_id: r.findings[0] for r in config.apply(results)}


def config_from(tmp_path: Path, text: str, **kw: Any) -> Config:
    kw.setdefault("known_ids", REGISTRY)
    return load_config(write(tmp_path, "c.toml", text), **kw)


def test_pattern_relevels_exactly_the_matching_checks(tmp_path):
    config = config_from(tmp_path, '[severity]\n"deid.*" = "error"\n')
    out = applied(config, "deid.filename", "deid.uid.not_remapped", "dicom.unreadable")
    assert out["deid.filename"].severity is Severity.ERROR
    assert out["deid.uid.not_remapped"].severity is Severity.ERROR
    assert out["dicom.unreadable"].severity is Severity.WARNING


def test_exact_id_beats_every_pattern(tmp_path):
    text = '[severity]\n"deid.filename" = "info"\n"deid.*" = "error"\n"*" = "warning"\n'
    out = applied(config_from(tmp_path, text), "deid.filename", "deid.patient_id", "labels.dtype")
    assert out["deid.filename"].severity is Severity.INFO
    assert out["deid.patient_id"].severity is Severity.ERROR
    assert out["labels.dtype"].severity is Severity.WARNING


def test_longest_pattern_wins_whatever_the_order(tmp_path):
    text = '[severity]\n"labels.index.*" = "error"\n"*" = "info"\n"labels.*" = "ignore"\n'
    out = applied(
        config_from(tmp_path, text), "labels.index.gap", "labels.shape", "geometry.series.multiple"
    )
    assert (out["labels.index.gap"].severity, out["labels.index.gap"].waived) == (
        Severity.ERROR,
        None,
    )
    assert out["labels.shape"].waived == "ignored by config"
    assert out["geometry.series.multiple"].severity is Severity.INFO


def test_equally_long_patterns_with_different_levels_are_an_error(tmp_path):
    text = '[severity]\n"deid.fi*" = "info"\n"*ilename" = "error"  # <-\n'
    with pytest.raises(ConfigError, match=f"c.toml:{marked_line(text)}:.*deid.filename"):
        config_from(tmp_path, text)
    same = '[severity]\n"deid.fi*" = "info"\n"*ilename" = "info"\n'
    assert config_from(tmp_path, same).level_of("deid.filename") == "info"


def test_pattern_waiver_covers_every_matching_check_and_keeps_its_reason(tmp_path):
    text = (
        '[severity]\n"structure.stray_file" = "ignore"\n'
        '[[waive]]\nid = "structure.*"\nreason = "synthetic tree"\n'
    )
    out = applied(
        config_from(tmp_path, text),
        "structure.stray_file",
        "structure.file.extension",
        "dicom.unreadable",
    )
    assert out["structure.stray_file"].waived == "ignored by config"
    assert out["structure.file.extension"].waived == "synthetic tree"
    assert out["dicom.unreadable"].waived is None


def test_pattern_waiver_with_path_and_case(tmp_path):
    config = Config(waivers=(Waiver("structure.*", "notes", path="*/notes.txt", case=None),))
    hit = finding("structure.stray_file", path="COVID-19 subjects/notes.txt")
    miss = finding("structure.stray_file", path="COVID-19 subjects/P017/.DS_Store")
    [result] = config.apply([CheckResult("structure.stray_file", 2, [hit, miss])])
    assert [f.waived for f in result.findings] == ["notes", None]


def test_wildcards_on_a_damaged_tree(make_tree, tmp_path):
    tree = make_tree(["stray-file", "file-extension", "deid-patient-name"])
    text = (
        '[severity]\n"structure.*" = "error"\n"structure.stray_file" = "info"\n'
        '[[waive]]\nid = "deid.attribute.*"\nreason = "synthetic names"\n'
    )
    plain = validate(tree, "subset", jobs=1)
    report = validate(tree, "subset", jobs=1, config=write(tmp_path, "c.toml", text))
    by_id: dict[str, list[Finding]] = {}
    for f in report.findings:
        by_id.setdefault(f.check_id, []).append(f)
    assert {f.severity for f in by_id["structure.stray_file"]} == {Severity.INFO}
    assert {f.severity for f in by_id["structure.file.extension"]} == {Severity.ERROR}
    assert {f.waived for f in by_id["deid.attribute.present"]} == {"synthetic names"}
    # every other finding is exactly what it is without the config
    touched = ("structure.", "deid.attribute.")
    assert [f for f in report.findings if not f.check_id.startswith(touched)] == [
        f for f in plain.findings if not f.check_id.startswith(touched)
    ]
    assert len(report.findings) == len(plain.findings)


def test_patterns_never_match_protected_ids(monkeypatch, tmp_path):
    monkeypatch.setattr(config_module, "PROTECTED_IDS", frozenset({"dicom.unreadable"}))
    config = config_from(tmp_path, '[severity]\n"*" = "info"\n[[waive]]\nid = "*"\nreason = "r"\n')
    out = applied(config, "dicom.unreadable", "dicom.uid.invalid")
    assert (out["dicom.unreadable"].severity, out["dicom.unreadable"].waived) == (
        Severity.WARNING,
        None,
    )
    assert out["dicom.uid.invalid"].waived == "r"
    # even a hand-made Config cannot silence a protected check
    forced = Config({"dicom.unreadable": "ignore"}, (Waiver("dicom.unreadable", "r"),))
    assert applied(forced, "dicom.unreadable")["dicom.unreadable"].waived is None


def test_naming_a_protected_id_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setattr(config_module, "PROTECTED_IDS", frozenset({"dicom.unreadable"}))
    for text in (
        '[severity]\n"dicom.unreadable" = "error"\n',
        '[[waive]]\nid = "dicom.unreadable"\nreason = "r"\n',
    ):
        with pytest.raises(ConfigError, match=r"dicom\.unreadable cannot be re-levelled or waived"):
            config_from(tmp_path, text)
    # a pattern that only a protected id would match matches nothing
    with pytest.raises(ConfigError, match="matches no check id"):
        config_from(tmp_path, '[severity]\n"dicom.unread*" = "info"\n')


def test_protected_ids_default():
    assert frozenset({"structure.no_dataset"}) == PROTECTED_IDS
    silence_all = Config({"*": "ignore", "structure.*": "info"}, (Waiver("*", "r"),))
    [result] = silence_all.apply(
        [CheckResult("structure.no_dataset", 1, [finding("structure.no_dataset", Severity.ERROR)])]
    )
    assert [(f.severity, f.waived) for f in result.findings] == [(Severity.ERROR, None)]


def test_known_ids_are_passed_in(tmp_path):
    text = '[severity]\n"zz.*" = "info"\n'
    assert config_from(tmp_path, text, known_ids={"zz.a", "zz.b"}).level_of("zz.b") == "info"
    with pytest.raises(ConfigError, match="matches no check id"):
        config_from(tmp_path, text, known_ids={"dicom.unreadable"})


ID_PARTS = st.sampled_from(["deid", "labels", "index", "gap", "x"])
CHECK_IDS = st.lists(ID_PARTS, min_size=1, max_size=3).map(".".join)
PATTERNS = st.one_of(CHECK_IDS, CHECK_IDS.map(lambda s: s + ".*"), st.just("*"), st.just("*.gap"))
LEVELS = st.sampled_from(["error", "warning", "info", "ignore"])


@given(severity=st.dictionaries(PATTERNS, LEVELS, max_size=6), check_id=CHECK_IDS)
def test_level_of_follows_the_documented_precedence(severity, check_id):
    """Oracle: the exact id, else the level of the longest matching pattern."""
    import fnmatch

    level = Config(severity).level_of(check_id)
    if check_id in severity:
        assert level == severity[check_id]
        return
    hits = [p for p in severity if "*" in p and fnmatch.fnmatchcase(check_id, p)]
    if not hits:
        assert level is None
    else:
        longest = max(len(p) for p in hits)
        assert level in {severity[p] for p in hits if len(p) == longest}


# --------------------------------------------------------------------------- profiles

PROFILE_CASES = {
    "root-files-int": (
        'extends = "release"\n[layout]\nroot_files_allowed = [\n  "Index.csv",\n  5,  # <-\n]\n',
        "layout.root_files_allowed[1]: 5 is not of type 'string'",
    ),
    "depth-string": (
        'extends = "release"\n\n[layout]\ncontainer_depth = "1"  # <-\n',
        "layout.container_depth: '1' is not of type 'integer'",
    ),
    "complete-string": ('extends = "subset"\ncomplete = "no"  # <-\n', "complete: 'no' is not"),
    "typo-table": ('extends = "release"\n[layot]  # <-\ncontainer_depth = 1\n', "layot: unknown"),
    "typo-key": (
        'extends = "release"\n[classes.covid]\ncase_pattrn = "^P\\\\d{3}$"  # <-\n',
        "classes.covid.case_pattrn: unknown key (allowed: label, documented, aliases, "
        "case_pattern, expected_cases)",
    ),
    "bad-regex": (
        'extends = "release"\n[classes.cap]\ncase_pattern = "^cap(\\\\d{3}$"  # <-\n',
        "classes.cap.case_pattern: '^cap(\\\\d{3}$' is not a 'regex' (missing ), unterminated",
    ),
    "unknown-keyword": (
        'extends = "release"\n[conformance]\n'
        'type2 = [\n  "PatientName",\n  "PatientNme",  # <-\n]\n',
        "conformance.type2[1]: 'PatientNme' is not a DICOM keyword",
    ),
    "type1-items-not-sq": (
        'extends = "release"\n[conformance.type1_items]\n'
        'PatientName = ["ReferencedSOPClassUID"]  # <-\n',
        "conformance.type1_items.PatientName: PatientName is not a sequence (VR PN, not SQ)",
    ),
    "type1-items-unknown-item-keyword": (
        'extends = "release"\n[conformance]\n'
        'type1_items = { ReferencedImageSequence = ["ReferencedSOPClasUID"] }  # <-\n',
        "conformance.type1_items.ReferencedImageSequence[0]: 'ReferencedSOPClasUID' is not",
    ),
    "transfer-syntax-not-uid": (
        'extends = "release"\n[conformance]\ntransfer_syntaxes = ["1.2.840.10008.1.2", '
        '"1.2.840.10008.01.2"]  # <-\n',
        "conformance.transfer_syntaxes[1]: '1.2.840.10008.01.2' is not a valid UID",
    ),
    "demographics-string-count": (
        'extends = "release"\n[published.demographics.cap]\nmale = "35"  # <-\n',
        "published.demographics.cap.male: '35' is not of type 'integer'",
    ),
    "label-version-unknown-key": (
        'extends = "release"\n[labels.versions.updated-2]\nslice = "a.npy"\nlobe = "b.npy"\n'
        'slcie = "c.npy"  # <-\n',
        "labels.versions.updated-2.slcie: unknown key",
    ),
    "unknown-class": (
        'extends = "release"\n[published]\nlabelled = { covid = 54, kap = 25 }  # <-\n',
        "published.labelled.kap: unknown class 'kap' (known: covid, cap, normal)",
    ),
    "unknown-lobe": (
        'extends = "release"\n[labels]\nupper_lobes = ["LUL", "RUU"]  # <-\n',
        "labels.upper_lobes[1]: unknown lobe 'RUU'",
    ),
    "manifest-unreadable": (
        'extends = "release"\nmanifest = "no-such-manifest.csv"  # <-\n',
        "manifest: cannot read manifest",
    ),
    "extends-missing": ('extends = "no-such-profile.toml"  # <-\n', "extends: no such profile"),
    "extends-not-string": ("extends = 5  # <-\n", "extends: 5 is not of type 'string'"),
}


@pytest.mark.parametrize("name", sorted(PROFILE_CASES))
def test_malformed_profile_exits_2_naming_key_and_line(clean_tiny, tmp_path, capsys, name):
    text, message = PROFILE_CASES[name]
    prof = write(tmp_path, "profile.toml", text)
    rc = main(["check", str(clean_tiny), "--profile", str(prof), "--quiet"])
    _out, err = capsys.readouterr()
    assert rc == 2
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert f"{prof}:{marked_line(text)}: " in err
    assert message in err


def test_missing_required_keys_of_the_merged_profile(tmp_path):
    alone = write(tmp_path, "alone.toml", 'name = "alone"\n[layout]\ncontainer_depth = 0\n')
    with pytest.raises(ProfileError, match=r"alone\.toml: classes: required key is missing"):
        load_profile(str(alone))
    text = 'extends = "release"\n[classes.extra]  # <-\nlabel = "Extra"\n'
    partial = write(tmp_path, "partial.toml", text)
    with pytest.raises(ProfileError) as info:
        load_profile(str(partial))
    assert f"partial.toml:{marked_line(text)}: classes.extra.documented: required" in str(
        info.value
    )


def test_a_partial_child_profile_is_fine(tmp_path):
    text = (
        'extends = "release"\n[classes.covid]\nexpected_cases = 10\n'
        "[geometry]\nspacing_rel_tol = 1\n"
    )
    profile = load_profile(str(write(tmp_path, "child.toml", text)))
    assert profile.classes["covid"].expected_cases == 10
    assert profile.classes["covid"].label == "COVID-19"
    assert profile.geometry.spacing_rel_tol == 1.0


def test_errors_in_a_parent_profile_name_the_parent(tmp_path):
    parent = write(tmp_path, "parent.toml", 'extends = "release"\n[layout]\ndicom_sufix = ".dcm"\n')
    child = write(tmp_path, "child.toml", 'extends = "parent.toml"\nname = "child"\n')
    with pytest.raises(
        ProfileError, match=re.escape(f"{parent}:3: layout.dicom_sufix: unknown key")
    ):
        load_profile(str(child))


@pytest.mark.parametrize("spelling", ["a.toml", "./a.toml"])
def test_extends_loops_are_errors(tmp_path, spelling):
    write(tmp_path, "a.toml", 'extends = "b.toml"\nname = "a"\n')
    write(tmp_path, "b.toml", f'name = "b"\nextends = "{spelling}"\n')
    with pytest.raises(ProfileError, match=r"b\.toml:2: extends: extends loop: .*a\.toml"):
        load_profile(str(tmp_path / "a.toml"))
    write(tmp_path, "self.toml", 'extends = "self.toml"\n')
    with pytest.raises(ProfileError, match="extends loop"):
        load_profile(str(tmp_path / "self.toml"))


@pytest.mark.parametrize(
    ("csv_text", "problem"),
    [
        ("case_id,diagnosis\nP001,COVID-19\n", "no column(s) ['n_slices']"),
        ("case_id,diagnosis,n_slices\nP001,COVID-19\n", "line 2: too few fields"),
        ("case_id,diagnosis,n_slices\nP001,COVID-19,many\n", "line 2: n_slices 'many'"),
        ("case_id,diagnosis,n_slices\nP001,Flu,3\n", "line 2: unknown diagnosis 'Flu'"),
        ("case_id,diagnosis,n_slices\nP001,CAP,3\nP001,CAP,3\n", "line 3: case 'P001' listed"),
    ],
)
def test_malformed_manifest(tmp_path, csv_text, problem):
    write(tmp_path, "m.csv", csv_text)
    prof = write(tmp_path, "p.toml", 'extends = "release"\nmanifest = "m.csv"\n')
    with pytest.raises(ProfileError, match=r"p\.toml:2: manifest: cannot read manifest") as info:
        load_profile(str(prof))
    assert problem in str(info.value)


@pytest.mark.parametrize("name", BUILTIN_PROFILES)
def test_shipped_profiles_load_with_the_new_conformance_keys(name):
    conformance = load_profile(name).conformance
    assert conformance.transfer_syntaxes == (
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.5",
    )
    reference = ("ReferencedSOPClassUID", "ReferencedSOPInstanceUID")
    assert conformance.type1_items == {
        "ReferencedImageSequence": reference,
        "SourceImageSequence": reference,
        "ReferencedStudySequence": reference,
        "ReferencedPerformedProcedureStepSequence": reference,
    }


def test_conformance_defaults_equal_the_release_values():
    default = Conformance()
    assert default.transfer_syntaxes == TRANSFER_SYNTAXES
    assert default.type1_items == dict(TYPE1_ITEMS)
    assert default.type1_items is not Conformance().type1_items  # no shared mutable default


def test_release_toml_documents_the_new_keys():
    text = RELEASE_TOML.read_text(encoding="utf-8")
    assert "PS3.3 Table 10-11" in text
    assert "PS3.6 Table A-1" in text


def test_a_profile_can_override_the_new_keys(tmp_path):
    """Lists replace the parent's; tables (type1_items) extend it, like every other table."""
    text = (
        'extends = "release"\n[conformance]\ntransfer_syntaxes = ["1.2.840.10008.1.2.1"]\n'
        'type1_items = { ReferencedSeriesSequence = ["SeriesInstanceUID"] }\n'
    )
    conformance = load_profile(str(write(tmp_path, "p.toml", text))).conformance
    assert conformance.transfer_syntaxes == ("1.2.840.10008.1.2.1",)
    assert conformance.type1_items == {
        **TYPE1_ITEMS,
        "ReferencedSeriesSequence": ("SeriesInstanceUID",),
    }


# --------------------------------------------------------------------------- policies

POLICY_CASES = {
    "uids-string": ('[retain]\nuids = "no"  # <-\n', "retain.uids: 'no' is not of type 'boolean'"),
    "keyword": (
        '[retain]\nkeywords = ["PatientSex", "PatientAg"]  # <-\n',
        "retain.keywords[1]: 'PatientAg' is not a DICOM keyword",
    ),
    "kept-regex": ('[kept]\nPatientSex = "[MF"  # <-\n', "kept.PatientSex: '[MF' is not a 'regex'"),
    "kept-keyword": ('[kept]\nPatientSexx = "[MF]"  # <-\n', "kept.PatientSexx: 'PatientSexx'"),
    "dummy-vr": (
        '[dummies]\nXY = ["0+"]  # <-\n',
        "dummies.XY: invalid key: 'XY' is not a DICOM VR",
    ),
    "dummy-regex": (
        '[dummies]\nany = ["ok", "(x"]  # <-\n',
        "dummies.any[1]: '(x' is not a 'regex'",
    ),
    "typo": ("[retian]  # <-\nuids = true\n", "retian: unknown key (allowed: name, description"),
    "tables": ('standard_tables = "dicomfields_1999"  # <-\n', "has no table module"),
    "tables-path": ('standard_tables = "os.path"  # <-\n', "standard_tables: 'os.path' does not"),
    "tables-empty": ('standard_tables = "__init__"  # <-\n', "holds no PS3.15 table"),
}


@pytest.mark.parametrize("name", sorted(POLICY_CASES))
def test_malformed_policy_exits_2_naming_key_and_line(clean_tiny, tmp_path, capsys, name):
    text, message = POLICY_CASES[name]
    pol = write(tmp_path, "policy.toml", 'name = "mine"\n' + text)
    err = cli_error(capsys, *check_args(clean_tiny, "--policy", pol))
    assert f"{pol}:{marked_line(text) + 1}: " in err
    assert message in err


def test_shipped_policy_loads():
    policy = load_policy()
    assert policy.name == "ctmd-default"
    assert policy.standard_edition == "2026c"
    assert set(policy.kept) == {"PatientSex", "PatientAge"}
    assert not policy.retain_uids and not policy.retain_dates


def test_missing_policy(tmp_path):
    with pytest.raises(ProfileError, match="no such de-identification policy"):
        load_policy(str(tmp_path / "nope.toml"))


# --------------------------------------------------------------------------- the locator


def test_key_lines_of_tricky_toml():
    text = """\
title = "x"   # line 1
[a]
"b.c" = 1
d.e = [
  1,
  { f = 2 },
]
s = '''
[fake]
g = 3
'''
[[w]]
id = "one"
[w.sub]
k = 1
[[w]]
id = "two"
[[w.items]]
n = 1
[[w.items]]
n = 2
"""
    lines = key_lines(text)
    assert lines[("title",)] == 1
    assert lines[("a",)] == 2
    assert lines[("a", "b.c")] == 3
    assert lines[("a", "d")] == lines[("a", "d", "e")] == 4
    assert lines[("a", "d", "e", 1)] == lines[("a", "d", "e", 1, "f")] == 6
    assert lines[("a", "s")] == 8
    assert ("fake",) not in lines and ("a", "g") not in lines  # inside a string
    assert lines[("w", 0)] == 12 and lines[("w", 0, "sub", "k")] == 15
    assert lines[("w", 1, "id")] == 17
    assert lines[("w", 1, "items", 0, "n")] == 19
    assert lines[("w", 1, "items", 1, "n")] == 21


def test_key_lines_of_json():
    text = '{\n  "a": [\n    1,\n    {"b": "x\\"y"}\n  ],\n  "c": {"d": null}\n}'
    lines = key_lines(text, is_json=True)
    assert lines[("a",)] == 2 and lines[("a", 1, "b")] == 4 and lines[("c", "d")] == 6


def test_format_key_path():
    assert format_key_path(("waive", 0, "pth")) == "waive[0].pth"
    assert format_key_path(("severity", "deid.*")) == 'severity."deid.*"'
    assert format_key_path(("a", "b\nc")) == 'a."b\\nc"'


# --------------------------------------------------------------------------- properties


def toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, except that DEL must be escaped)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_key(key: str) -> str:
    return (
        key
        if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
        else (toml_string(key))
    )


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def dump_toml(data: dict[str, Any]) -> str:
    """A tiny TOML writer (tables become headers, the rest inline)."""
    out = [f"{toml_key(k)} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            out.append(f"[{toml_key(key)}]")
            out += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(out) + "\n"


SCALARS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(["error", "info", "deid.*", "*", "[", "structure.stray_file", "1.2.3"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def leaf_paths(data: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of ``data`` (tables, lists and their leaves)."""
    paths = [here] if here else []
    if isinstance(data, dict):
        for k, v in data.items():
            paths += leaf_paths(v, (*here, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            paths += leaf_paths(v, (*here, i))
    return paths


def substituted(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``data`` with the value at ``path`` replaced (or a key added)."""
    if not path:
        return value
    copy = dict(data) if isinstance(data, dict) else list(data)
    head = path[0]
    copy[head] = substituted(data[head], path[1:], value) if len(path) > 1 else value
    return copy


def mutate(data: dict[str, Any], draw: st.DrawFn) -> dict[str, Any]:
    """Replace one value of a valid settings file by a random one, or add a random key."""
    paths = leaf_paths(data)
    path = draw(st.sampled_from(paths))
    if draw(st.booleans()):
        return substituted(data, path, draw(VALUES))
    parent = path[:-1] if not isinstance(_get(data, path), dict) else path
    key = draw(st.text(min_size=1, max_size=6))
    target = _get(data, parent)
    if not isinstance(target, dict):
        return substituted(data, path, draw(VALUES))
    return substituted(data, (*parent, key), draw(VALUES))


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


VALID_CONFIG = {
    "severity": {"structure.class_dir.alias": "info", "deid.*": "warning"},
    "waive": [
        {"id": "structure.stray_file", "path": "*/.DS_Store", "reason": "macOS"},
        {"id": "labels.*", "case": "P001", "reason": "known"},
    ],
}
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY_SETTINGS
@given(data=st.data(), as_json=st.booleans())
def test_random_config_values_give_a_config_or_a_located_config_error(tmp_path, data, as_json):
    mutated = mutate(VALID_CONFIG, data.draw)
    text = json.dumps(mutated, indent=2) if as_json else dump_toml(mutated)
    cfg = write(tmp_path, "random.json" if as_json else "random.toml", text)
    try:
        config = load_config(cfg, REGISTRY)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message
        assert message.startswith((f"{cfg}:", f"cannot read config {cfg}"))
    else:
        assert isinstance(config, Config)


def release_data() -> dict[str, Any]:
    with RELEASE_TOML.open("rb") as fh:
        return tomllib.load(fh)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_random_profile_values_give_a_profile_or_a_profile_error(tmp_path, data):
    mutated = mutate(release_data(), data.draw)
    prof = write(tmp_path, "random.toml", dump_toml(mutated))
    try:
        load_profile(str(prof))
    except ProfileError as exc:
        assert "\n" not in str(exc)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_random_policy_values_give_a_policy_or_a_profile_error(tmp_path, data):
    with POLICY_TOML.open("rb") as fh:
        mutated = mutate(tomllib.load(fh), data.draw)
    pol = write(tmp_path, "random.toml", dump_toml(mutated))
    try:
        load_policy(str(pol))
    except ProfileError as exc:
        assert "\n" not in str(exc)


KEYS = st.text(min_size=1, max_size=6)
TABLE = st.dictionaries(
    KEYS, st.one_of(SCALARS, st.lists(st.integers(), min_size=1, max_size=3)), max_size=4
)


@settings(max_examples=80, deadline=None)
@given(doc=st.dictionaries(KEYS, TABLE, min_size=1, max_size=4))
def test_locator_finds_every_key_and_element_line(doc):
    """Write tables with one key or array element a line; the locator finds each line."""
    lines: list[str] = []
    expected: dict[tuple[Any, ...], int] = {}
    for table, items in doc.items():
        lines.append(f"[{toml_key(table)}]  # a comment with = and [brackets]")
        expected[(table,)] = len(lines)
        for key, value in items.items():
            if isinstance(value, list):
                lines.append(f"{toml_key(key)} = [")
                expected[(table, key)] = len(lines)
                for i, v in enumerate(value):
                    lines.append(f"  {toml_value(v)},")
                    expected[(table, key, i)] = len(lines)
                lines.append("]")
            else:
                lines.append(f"{toml_key(key)} = {toml_value(value)}")
                expected[(table, key)] = len(lines)
    text = "\n".join(lines) + "\n"
    assert tomllib.loads(text).keys() == doc.keys()
    found = key_lines(text)
    assert {p: found.get(p) for p in expected} == expected
