"""Which store a call means: the one place that decides.

A command or a library call names a store as a remote's name (``[remotes.NAME]``
in datactl.toml), a URL (``s3://``, ``gs://``, ``file://``) or a path, or
leaves it out. Left out, it means, in this order:

* for reading a version (``Dataset.get``, ``datactl://``): ``DATACTL_REMOTE``,
  then the workspace's default remote (``origin``, or its only remote), then
  the workspace's own store;
* for a command that works on "a store" (``datasets``, ``gc``, ``fsck``,
  ``squash``, ``dataset delete``): the workspace's own store;
* for a transfer (``push``, ``fetch``, ``pull``, a merge from a remote): the
  workspace's default remote, then ``DATACTL_REMOTE``.

Outside a workspace, a datactl.toml in the current folder still supplies
``[remotes.NAME]`` (a CI job). Local caches of remote indexes live in the
workspace's ``.datactl/remotes`` or, outside one, in the user cache
(``DATACTL_CACHE_DIR``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from datactl.core.errors import NotAWorkspace, UsageError
from datactl.core.settings import CONFIG_FILE, edit_settings, read_settings
from datactl.format.layout import WorkspaceLayout, check_name
from datactl.store.backend import check_store_url

if TYPE_CHECKING:
    import tomlkit

REMOTE_ENV = "DATACTL_REMOTE"
CACHE_ENV = "DATACTL_CACHE_DIR"
# Settings a remote may carry besides its URL (no secrets: credentials come from the SDK chains).
REMOTE_OPTIONS = ("endpoint_url", "region", "profile", "project")


@dataclass(frozen=True)
class RemoteSpec:
    """Where a store is: its remote name (None when given as a URL or path), URL and backend options."""

    name: str | None
    url: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.url

    def with_options(self, options: dict[str, Any] | None) -> "RemoteSpec":
        """This spec with ``options`` added (those set to None are ignored)."""
        extra = {k: v for k, v in (options or {}).items() if v is not None}
        return RemoteSpec(self.name, self.url, {**self.options, **extra}) if extra else self


def normalize_url(url: str) -> str:
    """A URL as it is, a path made absolute."""
    if "://" in url:
        return url
    return os.path.abspath(os.path.expanduser(url))


def looks_like_location(text: str) -> bool:
    """Whether ``text`` is a URL or a path rather than a remote's name."""
    return "://" in text or os.sep in text or text.startswith(".") or text.startswith("~")


# -- workspaces and their settings ---------------------------------------------------------------


def find_workspace_root(start: str | None = None) -> str:
    """The workspace root at or above ``start`` (default: the current folder)."""
    first = os.path.abspath(start or os.getcwd())
    current = first
    while True:
        if WorkspaceLayout(current).exists():
            return current
        parent = os.path.dirname(current)
        if parent == current:
            raise NotAWorkspace(f"not a datactl workspace: {first} (or any parent)", "run `datactl init` to create one here")
        current = parent


def workspace_root(start: str | None = None) -> str | None:
    try:
        return find_workspace_root(start)
    except NotAWorkspace:
        return None


def settings_root(start: str | None = None) -> str | None:
    """Where datactl.toml is: the workspace root, or the given or current folder if it holds one."""
    root = workspace_root(start)
    if root is not None:
        return root
    here = os.path.abspath(start or os.getcwd())
    return here if os.path.exists(os.path.join(here, CONFIG_FILE)) else None


def list_remotes(root: str) -> dict[str, RemoteSpec]:
    remotes = read_settings(root).get("remotes", {})
    if not isinstance(remotes, dict):
        raise UsageError(f"{CONFIG_FILE}: [remotes] must be a table of [remotes.NAME] tables")
    out = {}
    for name, table in remotes.items():
        if not isinstance(table, dict) or not isinstance(table.get("url"), str):
            raise UsageError(f'{CONFIG_FILE}: [remotes.{name}] needs url = "..."')
        out[name] = RemoteSpec(name, table["url"], {k: table[k] for k in REMOTE_OPTIONS if k in table})
    return out


def add_remote(root: str, name: str, url: str, options: dict[str, Any] | None = None) -> RemoteSpec:
    check_name(name, "remote name")
    if name in list_remotes(root):
        raise UsageError(f"remote {name} already exists", "remove it first with `datactl remote remove`")
    spec = RemoteSpec(name, check_store_url(normalize_url(url))).with_options(options)
    import tomlkit  # only an edit of datactl.toml needs it (reading is tomllib's)

    def change(doc: tomlkit.TOMLDocument) -> None:
        if "remotes" not in doc:
            doc["remotes"] = tomlkit.table(is_super_table=True)
        table = tomlkit.table()
        table["url"] = spec.url
        for k, v in spec.options.items():
            table[k] = v
        doc["remotes"][name] = table  # type: ignore[index]

    edit_settings(root, change)
    return spec


def remove_remote(root: str, name: str) -> None:
    if name not in list_remotes(root):
        raise UsageError(f"no remote named {name}", "`datactl remote list` shows the remotes")

    def change(doc: tomlkit.TOMLDocument) -> None:
        del doc["remotes"][name]  # type: ignore[union-attr]

    edit_settings(root, change)


# -- naming a store ------------------------------------------------------------------------------


def default_remote(root: str | None) -> RemoteSpec | None:
    """The remote a transfer uses when none is named: ``origin``, the only remote, or ``DATACTL_REMOTE``."""
    remotes = list_remotes(root) if root else {}
    if "origin" in remotes:
        return remotes["origin"]
    if len(remotes) == 1:
        return next(iter(remotes.values()))
    env = os.environ.get(REMOTE_ENV)
    return resolve_remote(root, env) if env else None


def resolve_remote(root: str | None, text: str | None, options: dict[str, Any] | None = None) -> RemoteSpec:
    """A remote named in ``root``'s datactl.toml, or a URL or path; None means the default remote.

    ``options`` (an endpoint, a region) apply to a store given as a URL or path;
    a named remote keeps the options its settings give.
    """
    if text is None:
        spec = default_remote(root)
        if spec is None:
            raise UsageError(
                "no remote given and no default remote",
                "add one with `datactl remote add origin URL`, or name a remote or URL",
            )
        return spec
    remotes = list_remotes(root) if root else {}
    if text in remotes:
        return remotes[text]
    if looks_like_location(text):
        return RemoteSpec(None, normalize_url(text)).with_options(options)
    raise UsageError(f"no remote named {text}", "`datactl remote list` shows the remotes; a URL or path works too")


def own_store(root: str) -> RemoteSpec:
    """The workspace's own store, as a spec like any other."""
    return RemoteSpec(None, WorkspaceLayout(root).store_dir)


# -- local caches of stores -------------------------------------------------------------------


def default_cache_dir() -> str:
    """The user's shared cache (``DATACTL_CACHE_DIR``, default the platform's user cache folder)."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    import platformdirs  # imported when needed: most commands run in a workspace, with a cache of its own

    return platformdirs.user_cache_dir("datactl")


def index_cache_dir(root: str | None) -> str:
    """Where local caches of remote stores' indexes live: in the workspace, else in the user cache."""
    return WorkspaceLayout(root).remotes_dir if root is not None else os.path.join(default_cache_dir(), "remotes")


@dataclass(frozen=True)
class StoreChoice:
    """The store a call means, the workspace it runs in (if any), and whether it is that workspace's own."""

    spec: RemoteSpec
    root: str | None
    own: bool

    @property
    def cache_dir(self) -> str:
        return index_cache_dir(self.root)


def choose_store(text: str | None, *, start: str | None = None, options: dict[str, Any] | None = None) -> StoreChoice:
    """A store named by ``text`` (a remote, URL or path); when None, the workspace's own, or outside one ``DATACTL_REMOTE``."""
    root = workspace_root(start)
    if text is None and root is None:
        text = os.environ.get(REMOTE_ENV)
        if text is None:
            raise NotAWorkspace("not in a datactl workspace, and no store given", f"name a store: a remote of a workspace, a URL or a path (or set {REMOTE_ENV})")
    if text is None:
        assert root is not None
        return StoreChoice(own_store(root), root, True)
    return StoreChoice(resolve_remote(root or settings_root(start), text, options), root, False)


def choose_read_store(text: str | None, *, start: str | None = None, options: dict[str, Any] | None = None) -> StoreChoice:
    """The store to read versions from: ``text``, else ``DATACTL_REMOTE``, the workspace's default remote, its own store."""
    root = workspace_root(start)
    if text is None:
        text = os.environ.get(REMOTE_ENV)
    if text is None:
        if root is None:
            raise NotAWorkspace("not in a datactl workspace, and no store given", f"pass remote=URL (or --remote URL), or set {REMOTE_ENV}")
        spec = default_remote(root)
        return StoreChoice(spec, root, False) if spec is not None else StoreChoice(own_store(root), root, True)
    return StoreChoice(resolve_remote(root or settings_root(start), text, options), root, False)
