"""Trust (issue 9): where the report goes, and how names and values are shown.

Each test reproduces one reviewed bug: a ``--report`` link, pipe or stream replaced by a
rename (or written with mode 0600, or inside the labels folder); two names displayed alike
(a crash) and control characters reaching a terminal; a lone surrogate in a JSON config; a
closed stdout; an empty root read as the current folder; an identifying value kept in a
file "extension"; contractions read as quoted values; identifying case folders in pytest
item names.
"""


# ruff: noqa: E402

from __future__ import annotations

pytest_plugins = ["pytester"]

import dataclasses
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import ctmd_validate.checks  # noqa: F401  (registers every check id)
from conftest import LABEL_FILES, run_cli, snapshot
from ctmd_validate import cli, validate
from ctmd_validate.paths import Confined, contains, display, printable, sanitize_message
from ctmd_validate.report import Report, validate_report, write_atomic

EXIT_OK, EXIT_FINDINGS, EXIT_CANNOT_RUN = 0, 1, 2
PYTEST_USAGE = 4
TIMEOUT = 300
PLUGIN = ("-p", "ctmd_validate.pytest_plugin")


def check_argv(root: Path, *extra: object) -> list[str]:
    """``python -m ctmd_validate check ROOT --profile subset --jobs 1 --quiet …``."""
    args = ["check", str(root), "--profile", "subset", "--jobs", "1", "--quiet"]
    return [sys.executable, "-m", "ctmd_validate", *args, *map(str, extra)]


@pytest.fixture
def no_scan(monkeypatch) -> None:
    """Any scan fails the test: refusals must come before the work."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("scanned before checking the arguments")

    monkeypatch.setattr("ctmd_validate.engine.scan", refuse)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _split_labels(tree: Path, labels: Path) -> Path:
    labels.mkdir()
    for name in LABEL_FILES:
        (tree / name).rename(labels / name)
    return labels


# --------------------------------------------------------------------------- --report target


def test_report_through_a_link_replaces_the_file_it_names(clean_tiny, tmp_path, capsys) -> None:
    real = tmp_path / "reports" / "latest.json"
    real.parent.mkdir()
    real.write_text("previous report\n")
    link = tmp_path / "report.json"
    link.symlink_to(real)
    rc, out, err = run_cli(capsys, "check", clean_tiny, "--profile", "subset", "--report", link)
    assert (rc, err) == (EXIT_OK, "")
    assert link.is_symlink() and os.readlink(link) == str(real)  # the link is kept
    validate_report(json.loads(real.read_text(encoding="utf-8")))
    assert f"report: {link}" in out
    assert sorted(p.name for p in real.parent.iterdir()) == ["latest.json"]  # no temp left


def test_report_link_into_the_dataset_is_refused(clean_tiny, tmp_path, capsys, no_scan) -> None:
    link = tmp_path / "report.json"
    link.symlink_to(clean_tiny / "report.json")  # dangling: it would create a file there
    before = snapshot(clean_tiny)
    rc, _, err = run_cli(capsys, "check", clean_tiny, "--profile", "subset", "--report", link)
    assert rc == EXIT_CANNOT_RUN and "inside the dataset" in err
    assert snapshot(clean_tiny) == before and link.is_symlink()


def test_report_inside_the_labels_folder_is_refused(make_tree, tmp_path, capsys, no_scan) -> None:
    tree = make_tree()
    labels = _split_labels(tree, tmp_path / "labels")
    link = tmp_path / "r.json"
    link.symlink_to(labels / "r.json")
    before = snapshot(labels)
    for target in (labels / "report.json", link):
        rc, _, err = run_cli(
            capsys, "check", tree, "--profile", "subset", "--labels", labels, "--report", target
        )
        assert rc == EXIT_CANNOT_RUN and "inside the labels folder" in err, err
    assert snapshot(labels) == before


def test_plugin_refuses_a_report_inside_the_labels_folder(pytester, make_tree, tmp_path) -> None:
    tree = make_tree()
    labels = _split_labels(tree, tmp_path / "labels")
    result = pytester.runpytest_subprocess(
        *PLUGIN,
        f"--dataset-root={tree}",
        "--ctmd-profile=subset",
        f"--ctmd-labels={labels}",
        f"--ctmd-report={labels / 'report.json'}",
    )
    assert result.ret == PYTEST_USAGE
    result.stderr.fnmatch_lines(["*inside the labels folder*"])
    assert not (labels / "report.json").exists()


def test_report_to_a_fifo_is_written_in_place(make_tree, tmp_path) -> None:
    root = make_tree(["truncated-file"])
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdout.write(open(sys.argv[1]).read())", fifo],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        run = subprocess.run(
            check_argv(root, "--report", fifo), capture_output=True, text=True, timeout=TIMEOUT
        )
        received, _ = reader.communicate(timeout=30)
    finally:
        reader.kill()
        reader.wait()
    assert run.returncode == EXIT_FINDINGS and run.stderr == "", run.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a pipe, not a file renamed over it
    validate_report(json.loads(received))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.fifo", "tree-0"]


@pytest.mark.parametrize("name", ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"])
def test_report_to_own_stdout_comes_before_the_summary(make_tree, tmp_path, name) -> None:
    """``--report /dev/stdout > out.txt``: the report, then the summary; nothing clobbered."""
    if not os.path.exists(name):
        pytest.skip(f"no {name} here")
    root = make_tree(["truncated-file"])
    out = tmp_path / "out.txt"
    with out.open("w", encoding="utf-8") as fh:
        run = subprocess.run(
            check_argv(root, "--report", name),
            stdout=fh,
            stderr=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT,
        )
    assert (run.returncode, run.stderr) == (EXIT_FINDINGS, "")
    text = out.read_text(encoding="utf-8")
    data, end = json.JSONDecoder().raw_decode(text)
    validate_report(data)
    summary = text[end:]
    assert "INVALID" in summary and summary.rstrip().endswith(f"report: {name}")


def test_report_to_a_read_only_descriptor_is_refused(clean_tiny, tmp_path) -> None:
    source = tmp_path / "input.txt"
    source.write_text("")
    with source.open("rb") as stdin:  # open for reading only (DEVNULL is read-write)
        run = subprocess.run(
            check_argv(clean_tiny, "--report", "/dev/stdin"),
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    assert run.returncode == EXIT_CANNOT_RUN and "reading only" in run.stderr
    assert "Traceback" not in run.stderr


def test_new_report_file_gets_the_umask_mode(clean_tiny_report: Report, tmp_path) -> None:
    target = tmp_path / "report.json"
    with umask(0o027):
        clean_tiny_report.write(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # not mkstemp's 0600
    with umask(0o022):
        write_atomic(tmp_path / "other.json", "{}\n")
    assert stat.S_IMODE((tmp_path / "other.json").stat().st_mode) == 0o644


def test_replaced_report_file_keeps_its_mode(clean_tiny_report: Report, tmp_path) -> None:
    target = tmp_path / "report.json"
    target.write_text("previous\n")
    target.chmod(0o664)
    with umask(0o077):
        clean_tiny_report.write(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o664
    validate_report(json.loads(target.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- names shown


def test_display_is_injective_and_never_shows_a_control_character() -> None:
    names = [
        os.fsdecode(b"\xff"),  # an undecodable byte
        "\\xff",  # the same four characters, typed
        "\\\\xff",
        "\x1b",
        "\\x1b",
        os.fsdecode(b"\xc2\x85"),  # U+0085 (C1 NEL), valid UTF-8
        os.fsdecode(b"\x85"),  # the lone byte 0x85
        "\\u0085",
        "\x7f",
        "\ud800",  # a surrogate that is no smuggled byte
        "\\ud800",
        "plain",
        "é",
    ]
    shown = [display(n) for n in names]
    assert len(set(shown)) == len(names), shown
    for text in shown:
        assert text.encode("utf-8")  # printable: no lone surrogates
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text), text
    assert display(os.fsdecode(b"caf\xe9")) == "caf\\xe9"  # undecodable bytes as before
    assert display("plain") == "plain" and display("é") == "é"


def test_printable_escapes_any_surrogate_and_control() -> None:
    assert printable("\ud800") == "\\ud800"  # crashed: surrogateescape knows only DC80-DCFF
    assert printable(os.fsdecode(b"\xff")) == "\\xff"
    assert printable("a\x1b[31mb\x9bc\x7f") == "a\\x1b[31mb\\u009bc\\x7f"
    assert printable("two\nlines\tand a tab, a \\ kept") == "two\nlines\tand a tab, a \\ kept"


def _stray(root: Path, *names: bytes) -> Path:
    case = next(p for p in sorted((root / "COVID-19 subjects").iterdir()) if p.is_dir())
    for name in names:
        with open(os.fsencode(case) + b"/" + name, "wb") as fh:
            fh.write(b"stray\n")
    return case


def test_escaped_and_literal_names_stay_two_files(make_tree, tmp_path, capsys) -> None:
    """A name with byte 0xff and one spelled backslash-x-f-f: two strays, no crash."""
    root = make_tree()
    _stray(root, b"\xff.txt", b"\\xff.txt")
    report = validate(root, "subset", jobs=1)
    strays = sorted(
        f.path for f in report.active if f.check_id == "structure.stray_file" and f.path
    )
    assert [p.rsplit("/", 1)[1] for p in strays] == ["\\\\xff.txt", "\\xff.txt"]
    out = tmp_path / "r.json"
    rc, stdout, err = run_cli(capsys, "check", root, "--profile", "subset", "--report", out)
    assert (rc, err) == (EXIT_OK, "")
    validate_report(json.loads(out.read_text(encoding="utf-8")))
    assert "\\\\xff.txt" in stdout


def _strings(data: object) -> Iterator[str]:
    """Every string of a JSON document, keys included, as the reader gets it."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)


def test_control_characters_never_reach_the_console_or_report(make_tree, tmp_path) -> None:
    root = make_tree()
    _stray(root, b"esc\x1b[31mRED.txt", "csi\u009b31m.txt".encode(), b"del\x7fcr\r.txt")
    out = tmp_path / "r.json"
    run = subprocess.run(check_argv(root, "--report", out), capture_output=True, timeout=TIMEOUT)
    assert run.returncode == EXIT_OK and run.stderr == b"", run.stderr
    text = out.read_text(encoding="utf-8")
    validate_report(json.loads(text))
    for blob in (run.stdout.decode("utf-8"), "\n".join(_strings(json.loads(text)))):
        for raw in ("\x1b", "\u009b", "\x7f", "\r"):
            assert raw not in blob, (raw, blob[-2000:])
        for shown in ("esc\\x1b[31mRED.txt", "csi\\u009b31m.txt", "del\\x7fcr\\x0d.txt"):
            assert shown in blob


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"severity": {"\\ud800": "info"}}', 'c.json:1: severity."\\ud800": the key holds'),
        (
            '{"waive": [\n  {"id": "structure.stray_file", "reason": "x\\udc80"}\n]}',
            "c.json:2: waive[0].reason: holds a lone surrogate",
        ),
    ],
)
def test_lone_surrogate_in_a_json_config_is_refused(clean_tiny, tmp_path, capsys, text, where):
    config = tmp_path / "c.json"
    config.write_text(text, encoding="utf-8")
    rc, out, err = run_cli(capsys, "check", clean_tiny, "--profile", "subset", "--config", config)
    assert rc == EXIT_CANNOT_RUN and out == ""
    assert where in err and "internal error" not in err, err


# --------------------------------------------------------------------------- closed stdout


@pytest.mark.parametrize("redirect", [">&-", "1</dev/null"])
def test_closed_stdout_keeps_the_report_and_the_verdict(make_tree, tmp_path, redirect) -> None:
    """``check … >&-`` (no stdout at all) or a stdout that refuses writes (EBADF)."""
    root = make_tree(["truncated-file"])
    report = tmp_path / "r.json"
    argv = check_argv(root, "--report", report)
    run = subprocess.run(
        ["sh", "-c", f'exec "$@" {redirect}', "sh", *argv],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert (run.returncode, run.stderr) == (EXIT_FINDINGS, "")
    validate_report(json.loads(report.read_text(encoding="utf-8")))
    assert stat.S_IMODE(report.stat().st_mode) & 0o044  # a normal file, not one left at 0600


def test_closed_stdout_in_process(clean_tiny, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(cli, "_stdout", cli._Stdout())
    report = tmp_path / "r.json"
    rc = cli.main(["check", str(clean_tiny), "--profile", "subset", "--report", str(report)])
    assert rc == EXIT_OK
    validate_report(json.loads(report.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- empty paths


@pytest.mark.parametrize(
    ("args", "what"),
    [
        ([""], "the dataset root is empty"),
        (["ROOT", "--labels", ""], "--labels is empty"),
        (["ROOT", "--policy", ""], "--policy is empty"),
        (["ROOT", "--report", ""], "--report is empty"),
    ],
)
def test_empty_paths_are_refused(clean_tiny, capsys, monkeypatch, no_scan, args, what) -> None:
    """``check ""`` validated the current folder; ``--labels ""`` read labels from it."""
    monkeypatch.chdir(clean_tiny)  # a dataset is right here: it must not be picked up
    argv = [str(clean_tiny) if a == "ROOT" else a for a in args]
    rc, out, err = run_cli(capsys, "check", *argv, "--profile", "subset")
    assert (rc, out) == (EXIT_CANNOT_RUN, "")
    assert what in err and "Traceback" not in err


def test_synth_refuses_an_empty_output_folder(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # empty: synth would fill it
    rc, out, err = run_cli(capsys, "synth", "", "--scale", "tiny")
    assert (rc, out) == (EXIT_CANNOT_RUN, "") and "output folder is empty" in err
    assert list(tmp_path.iterdir()) == []


def test_plugin_refuses_empty_paths(pytester, clean_tiny) -> None:
    result = pytester.runpytest_subprocess(
        *PLUGIN, f"--dataset-root={clean_tiny}", "--ctmd-profile=subset", "--ctmd-labels="
    )
    assert result.ret == PYTEST_USAGE
    result.stderr.fnmatch_lines(["*--ctmd-labels is empty*"])


# --------------------------------------------------------------------------- redaction


def _stray_names(report: Report) -> list[str]:
    return sorted(f.path for f in report.active if f.check_id == "structure.stray_file" and f.path)


def test_a_value_in_the_extension_masks_the_extension(make_tree) -> None:
    root = make_tree()
    _stray(root, b"P001.JOHN", b"JOHN_2.txt", b"notes.john7")
    base = validate(root, "subset", jobs=1)
    report = dataclasses.replace(base, redact=frozenset({"JOHN"}))
    shown = report.scrub(_stray_names(report))
    text = report.dumps() + report.summary()
    assert "john" not in text.casefold()
    names = sorted(p.rsplit("/", 1)[1] for p in shown)
    # one numbered token each (stems cut alike everywhere), extension kept only when clean
    assert len(set(names)) == 3 and all(n.startswith("[redacted#") for n in names), names
    assert sum(n.endswith("].txt") for n in names) == 1
    assert not any("." in n.split("]", 1)[1] for n in names if not n.endswith(".txt"))
    assert report.scrub("see P001.JOHN here") == f"see {report._names[2]['P001.JOHN']} here"


def test_a_name_part_with_a_control_character_is_masked_as_shown(make_tree) -> None:
    """An unreadable file whose bytes spell its name: the name is masked, escaped or not."""
    root = make_tree()
    case = _stray(root)
    (case / "QWRT\x1bZYXW.dcm").write_bytes(b"QWRT\x1bZYXW, not a DICOM file\n")
    report = validate(root, "subset", jobs=1)
    text = report.dumps() + report.summary()
    assert "qwrt" not in text.casefold() and "zyxw" not in text.casefold()
    assert "\x1b" not in text


def test_sanitize_message_keeps_contractions_and_strips_values() -> None:
    assert sanitize_message("file doesn't exist: 'SECRET'") == "file doesn't exist: <value>"
    assert sanitize_message("can't parse 'O'BRIEN^JOHN' as PN") == "can't parse <value> as PN"
    assert sanitize_message("'SECRET' isn't valid") == "<value> isn't valid"
    assert sanitize_message("the value's length: b'\\x01SECRET'") == "the value's length: <value>"
    assert sanitize_message("unterminated 'SECRET and more") == "unterminated <value>"


def test_contains_is_one_rule_for_folders() -> None:
    assert contains("/data/ds", "/data/ds") and contains("/data/ds", "/data/ds/a/b")
    assert not contains("/data/ds", "/data/ds2") and not contains("/data/ds", "/data")
    assert contains("/", "/anything")
    confined = Confined("/data/ds")
    assert confined.inside("/data/ds/x") and not confined.inside("/data/dsx")


# --------------------------------------------------------------------------- plugin items


def test_plugin_item_names_scrub_identifying_case_folders(pytester, make_tree) -> None:
    """A case folder named after the patient: no item name, node id or line shows it."""
    root = make_tree(["deid-patient-name"])
    case = next(p for p in sorted((root / "COVID-19 subjects").iterdir()) if p.is_dir())
    case.rename(case.with_name(f"{case.name}_Zyxwvut"))
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        *PLUGIN,
        f"--dataset-root={root}",
        "--ctmd-profile=subset",
        "-v",
        "-rA",
        f"--junitxml={junit}",
    )
    assert result.ret == 1  # the patient name is an error finding
    text = "\n".join(result.outlines + result.errlines) + junit.read_text(encoding="utf-8")
    assert "zyxwvut" not in text.casefold() and "qwerty" not in text.casefold()
    failed = [ln for ln in result.outlines if "deid.attribute.present[[redacted#" in ln]
    assert any("FAILED" in ln for ln in failed), result.outlines[-40:]


def test_plugin_items_stay_distinct_when_cases_scrub_alike(make_tree) -> None:
    from ctmd_validate.pytest_plugin import _item_name

    report = dataclasses.replace(
        validate(make_tree(), "subset", jobs=1), redact=frozenset({"SMITH", "JONES"})
    )
    seen: set[str] = set()
    names = [_item_name(report, "x.y", case, seen) for case in ("SMITH", "JONES", "P001")]
    assert len(set(names)) == 3 and names[2] == "x.y[P001]"
    assert not any("SMITH" in n or "JONES" in n for n in names)


@pytest.fixture(autouse=True)
def _no_report_temporaries(tmp_path: Path) -> Iterator[None]:
    """No test leaves a report's temporary file behind."""
    yield
    assert not list(tmp_path.rglob(".*.tmp"))
