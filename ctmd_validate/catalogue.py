"""The check catalogue, generated from the registry (ids, severities, docstrings) and the
synthetic defects that target each check."""

from __future__ import annotations

from .checks import REGISTRY

__all__ = ["END", "START", "catalogue_markdown", "update_block"]

START, END = "<!-- catalogue:start -->", "<!-- catalogue:end -->"


def catalogue_markdown() -> str:
    """A Markdown table of every check: id, default severity, scope, meaning and fix, and the
    synthetic defects built to demonstrate it (``Defect.targets``)."""
    from .synth import DEFECTS

    lines = [
        "| id | severity | scope | what it means and what to do | defect that triggers it |",
        "|---|---|---|---|---|",
    ]
    for check_id in sorted(REGISTRY):
        spec = REGISTRY[check_id]
        text = " ".join(spec.doc.split())
        defects = ", ".join(
            f"`{d.name}`"
            for d in sorted(DEFECTS.values(), key=lambda d: d.name)
            if check_id in d.targets
        )
        lines.append(
            f"| `{check_id}` | {spec.severity.value} | {spec.scope} | {text} | {defects} |"
        )
    return "\n".join(lines) + "\n"


def update_block(text: str) -> str:
    """Replace the catalogue between the START and END markers of a Markdown text."""
    if START not in text or END not in text:
        raise ValueError(f"no {START} … {END} block to update")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{catalogue_markdown()}{END}{tail}"
