"""Pages as HTML: one Jinja2 environment (every value escaped), and the files the pages load.

A served page links its style and scripts from ``/static``; a report
(``inline``) carries them inside itself, so it opens with no server and no
network.
"""

from __future__ import annotations

import base64
from importlib import resources
from typing import Any

import jinja2

from datactl.core.units import human_bytes


def static_bytes(name: str) -> bytes:
    """A file shipped in ``datactl/ui/static`` (mermaid is vendored there, built, with its licence)."""
    return resources.files("datactl.ui").joinpath("static", name).read_bytes()


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("datactl.ui", "templates"),
        autoescape=True,  # every name, path, metadata value and cell is text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["bytes"] = lambda n: "" if n is None else human_bytes(n)
    env.filters["day"] = lambda t: (t or "")[:19].replace("T", " ")
    return env


def render(env: jinja2.Environment, template: str, data: dict[str, Any], *, inline: bool = False) -> str:
    """``template`` filled with ``data``; ``inline`` puts the style and scripts in the page itself."""
    assets: dict[str, str] = {}
    if inline:
        assets = {
            "css": static_bytes("ui.css").decode("utf-8"),
            # As data: URLs, so no byte of a script can end the <script> element it is in.
            "ui_js": "data:text/javascript;base64," + base64.b64encode(static_bytes("ui.js")).decode("ascii"),
            "mermaid_js": "data:text/javascript;base64," + base64.b64encode(static_bytes("mermaid.min.js")).decode("ascii"),
        }
    return env.get_template(template).render(data=data, inline=inline, assets=assets)
