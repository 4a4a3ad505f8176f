"""``python -m ctmd_validate``: the same as the ``ctmd-validate`` command."""

from __future__ import annotations

from .cli import run

if __name__ == "__main__":
    run()
