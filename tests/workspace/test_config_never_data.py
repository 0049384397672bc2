"""A workspace's own configuration is never data (issue 12 item 2).

A version holding ``datactl.toml`` or ``.datactlignore`` at its root is refused
before anything is written, and plugin code named in settings runs only when the
user says to trust it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conftest import Cli, snapshot, write
from hostile import plant_version

EVIL_TOML = b'[dataset]\nname = "ds"\nkind = "dataset"\n[validate]\non_commit = true\nplugins = ["evilplug:Evil"]\n'


def _workspace(cli: Cli, ws_dir: Path) -> None:
    write(ws_dir / "a.txt", "alpha\n")
    cli("init", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "v1", "--tag", "v1")


@pytest.mark.parametrize("name", ["datactl.toml", ".datactlignore"])
def test_checkout_of_a_version_holding_workspace_config_is_refused(cli: Cli, ws_dir: Path, tmp_path: Path, name: str) -> None:
    _workspace(cli, ws_dir)
    plant_version(ws_dir, {"a.txt": b"changed\n", name: EVIL_TOML, "z.txt": b"z\n"}, "evil")
    config_before = (ws_dir / "datactl.toml").read_bytes()
    before = snapshot(tmp_path)
    r = cli("checkout", "evil", "--force", ok=False)
    assert r.code == 1
    assert f"holds {name} at its root" in r.err and "never carries a workspace's own configuration" in r.err
    assert "hint:" in r.err and "Traceback" not in r.err
    assert (ws_dir / "datactl.toml").read_bytes() == config_before
    assert not (ws_dir / ".datactlignore").exists()
    assert snapshot(tmp_path) == before, "nothing was written"
    assert "HEAD" in cli("status").out and "nothing to commit" in cli("status").out


def test_clone_of_a_version_holding_an_ignore_file_is_refused_and_leaves_nothing(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    _workspace(cli, ws_dir)
    plant_version(ws_dir, {"a.txt": b"alpha\n", ".datactlignore": b"*\n"}, "evil", latest=True)
    cli("push", str(tmp_path / "store"))
    r = cli("clone", str(tmp_path / "store"), "ds", str(tmp_path / "copy"), ok=False, cwd=tmp_path)
    assert r.code == 1 and "holds .datactlignore at its root" in r.err
    assert not (tmp_path / "copy").exists()


def test_plugin_code_named_in_settings_runs_only_when_trusted(cli: Cli, ws_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _workspace(cli, ws_dir)
    marker = ws_dir.parent / "plugin-ran"
    write(ws_dir / "evilplug.py", textwrap.dedent(f'''
        from pathlib import Path
        from datactl.validation import Rule

        Path({str(marker)!r}).write_text("imported")

        class Evil(Rule):
            type = "evil"

            def visit(self, entry):
                return []
    '''))
    write(ws_dir / "datactl.toml", EVIL_TOML.decode() + '[[validate.rules]]\ntype = "evil"\n')
    write(ws_dir / "b.txt", "beta\n")
    cli("add", "b.txt")
    monkeypatch.delenv("DATACTL_TRUST_PLUGINS", raising=False)
    r = cli("commit", "-m", "v2", ok=False)
    assert r.code == 2 and "evilplug:Evil" in r.err and "--trust-plugins" in r.err
    assert not marker.exists(), "no plugin code was imported"
    r = cli("validate", ok=False)
    assert r.code == 2 and not marker.exists()
    cli("commit", "-m", "v2", "--trust-plugins")
    assert marker.read_text() == "imported"
