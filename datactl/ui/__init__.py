"""The web UI (``datactl ui``) and HTML reports (``datactl report``): a read-only view of a store in a browser.

It needs the ``ui`` extra (Starlette, uvicorn, Jinja2); ``require`` says so in
one line when they are missing. Pages call the same library functions as the
command line (``datactl.ui.session``).
"""

from __future__ import annotations

import importlib.util

from datactl.core.errors import DatactlError

UI_PACKAGES = ("starlette", "uvicorn", "jinja2")
REPORT_PACKAGES = ("jinja2",)


def require(what: str, packages: tuple[str, ...] = UI_PACKAGES) -> None:
    """Raise a one-line error naming the pip command when ``packages`` are not installed."""
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        raise DatactlError(f"{what} needs {', '.join(missing)}, not installed: pip install 'datactl[ui]'", "the ui extra holds the web UI's libraries")
