"""Checkout-level conftest: makes ``pytest --dataset-root=PATH`` work without installing.

When the package is installed, the same plugin is already loaded through its ``pytest11``
entry point (registered under this same module name, so it is never registered twice).
"""

pytest_plugins = ["ctmd_validate.pytest_plugin"]
