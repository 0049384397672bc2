"""Versions come back bit for bit: bytes, modes, links, names, after any mix of changes."""

from __future__ import annotations

import os
import random
from pathlib import Path

from conftest import Cli, age_files, snapshot, write
from datactl.workspace.workspace import Workspace


def make_v1(root: Path) -> None:
    rng = random.Random(1)
    write(root / "big.bin", rng.randbytes(3 * 1024 * 1024 + 17))
    write(root / "text" / "notes.txt", "hello\n" * 1000)
    write(root / "text" / "to_delete.txt", "bye\n")
    write(root / "text" / "to_rename.csv", "a,b\n" + "1,2\n" * 5000)
    write(root / "empty.dat", b"")
    write(root / "run.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    write(root / "données" / "日本語 ファイル.txt", "unicode name\n")
    write(root / "deep" / "a" / "b" / "c" / "leaf.bin", rng.randbytes(1000))
    os.symlink("text/notes.txt", root / "link_to_notes")


def make_v2(root: Path) -> None:
    rng = random.Random(2)
    data = bytearray((root / "big.bin").read_bytes())
    data[1_500_000:1_500_000] = b"INSERTED" * 10  # an insert in the middle
    data[100:4196] = rng.randbytes(4096)  # an overwrite
    write(root / "big.bin", bytes(data))
    (root / "text" / "to_delete.txt").unlink()
    os.rename(root / "text" / "to_rename.csv", root / "renamed.csv")
    write(root / "new" / "file.bin", rng.randbytes(70_000))
    write(root / "empty2.dat", b"")
    os.chmod(root / "run.sh", 0o700)
    os.unlink(root / "link_to_notes")
    os.symlink("renamed.csv", root / "link_to_notes")
    write(root / "deep" / "a" / "b" / "c" / "leaf.bin", b"changed leaf")


def test_checkout_restores_every_version_exactly(cli: Cli, ws_dir: Path) -> None:
    make_v1(ws_dir)
    cli("init", "--name", "demo")
    cli("add", ".")
    cli("commit", "-m", "v1", "--tag", "v1")
    v1 = snapshot(ws_dir)

    make_v2(ws_dir)
    cli("add", ".")
    cli("commit", "-m", "v2", "--tag", "v2")
    v2 = snapshot(ws_dir)
    assert v1 != v2

    r = cli("checkout", "v1")
    assert snapshot(ws_dir) == v1
    assert "written" in r.out
    assert not (ws_dir / "new").exists(), "folders emptied by checkout are removed"

    cli("checkout", "v2")
    assert snapshot(ws_dir) == v2
    cli("checkout", "HEAD~1")
    assert snapshot(ws_dir) == v1
    assert cli("status").out.count("nothing to commit") == 1
    cli("verify", "--deep")


def test_diff_reports_renames_and_bytes(cli: Cli, ws_dir: Path) -> None:
    make_v1(ws_dir)
    cli("init", "--name", "demo")
    cli("add", ".")
    cli("commit", "-m", "v1", "--tag", "v1")
    make_v2(ws_dir)

    import json

    workspace_diff = json.loads(cli("diff", "--json").out)
    cli("add", ".")
    cli("commit", "-m", "v2")
    d = json.loads(cli("diff", "v1", "HEAD", "--json").out)
    assert d == workspace_diff, "diff against the workspace equals diff against the committed version"
    by_path = {c["path"]: c for c in d["changes"]}
    assert by_path["renamed.csv"]["status"] == "renamed"
    assert by_path["renamed.csv"]["old_path"] == "text/to_rename.csv"
    assert by_path["text/to_delete.txt"]["status"] == "removed"
    assert by_path["new/file.bin"] == {**by_path["new/file.bin"], "status": "added", "new_size": 70_000}
    assert by_path["big.bin"]["status"] == "modified"
    assert by_path["run.sh"]["status"] == "modified"  # mode change
    assert d["summary"]["renamed"] == 1

    r = cli("diff", "v1", "HEAD", "--exit-code", ok=False)
    assert r.code == 1
    assert cli("diff", "HEAD", "HEAD", "--exit-code").code == 0


def test_status_with_clean_stat_cache_reads_no_file_bytes(cli: Cli, ws_dir: Path) -> None:
    for i in range(50):
        write(ws_dir / f"f{i:02d}.bin", random.Random(i).randbytes(200_000))
    age_files(ws_dir)
    cli("init")
    cli("add", ".")
    cli("commit", "-m", "v1")

    def rchar() -> int:
        with open("/proc/self/io") as f:
            return int(next(line for line in f if line.startswith("rchar:")).split()[1])

    before = rchar()
    assert "nothing to commit" in cli("status").out
    cli("add", ".")
    read = rchar() - before
    assert read < 2_000_000, f"status + re-add of 10 MB of unchanged files read {read} bytes"


def test_racily_clean_file_is_rehashed(ws_dir: Path) -> None:
    # A file written just before it is hashed may change again within the same
    # mtime tick; its stat must not be trusted.
    ws = Workspace.init(str(ws_dir))
    f = ws_dir / "hot.txt"
    write(f, b"AAAA")
    ws.add([str(f)])
    row = ws.stage.get("hot.txt")
    assert row is not None and row.stat is not None and not row.stat.trusted
    st = os.stat(f)
    write(f, b"BBBB")  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    assert [c.path for c in ws.status().unstaged] == ["hot.txt"]
    ws.close()


def test_identical_files_and_copies_cost_nothing(cli: Cli, ws_dir: Path) -> None:
    payload = random.Random(5).randbytes(300_000)
    for i in range(200):
        write(ws_dir / "same" / f"{i}.bin", payload)
    cli("init")
    cli("add", ".")
    cli("commit", "-m", "v1")
    ws = Workspace.open(str(ws_dir))
    stored = ws.repo.index.stored_bytes()[1]
    ws.close()
    assert stored < 320_000, "200 identical files are stored once"

    os.rename(ws_dir / "same" / "0.bin", ws_dir / "moved.bin")
    write(ws_dir / "copy.bin", payload)
    cli("add", ".")
    cli("commit", "-m", "v2")
    ws = Workspace.open(str(ws_dir))
    grown = ws.repo.index.stored_bytes()[1] - stored
    ws.close()
    assert grown < 5_000, f"a rename and a copy added {grown} bytes (only small trees expected)"


def test_ignore_rules_apply_only_to_untracked_files(cli: Cli, ws_dir: Path) -> None:
    write(ws_dir / "keep.log", "tracked on purpose\n")
    write(ws_dir / "data.csv", "a\n")
    write(ws_dir / ".datactlignore", "*.log\n")
    cli("init")
    assert cli("add", "keep.log", ok=False).code == 2  # ignored: needs --force
    cli("add", "--force", "keep.log")
    cli("add", ".")
    cli("commit", "-m", "v1")
    write(ws_dir / "other.log", "not tracked\n")
    st = cli("status", "--json").out
    assert '"clean": true' in st and "other.log" not in st and "keep.log" not in st
    write(ws_dir / "keep.log", "changed\n")
    assert "keep.log" in cli("status").out
    cli("add", ".")
    cli("commit", "-m", "v2")
    names = cli("ls", "--json").out
    assert "keep.log" in names and "other.log" not in names


def test_commit_on_an_older_version_is_refused_unless_asked_for(cli: Cli, ws_dir: Path) -> None:
    write(ws_dir / "a.txt", "a\n")
    cli("init", "--name", "demo")
    cli("add", ".")
    cli("commit", "-m", "v1", "--tag", "v1")
    write(ws_dir / "b.txt", "b\n")
    cli("add", ".")
    v2 = cli("commit", "-m", "v2").out.split()[1].rstrip("]")
    cli("checkout", "v1")
    assert "older version" in cli("status").out
    write(ws_dir / "c.txt", "c\n")
    cli("add", "c.txt")
    r = cli("commit", "-m", "v3 on v1", ok=False)
    assert r.code == 1 and "older version" in r.err and "--from-old" in r.err
    assert cli("log", "demo", "-n", "1", "--json", ok=True).out.count(v2) >= 1, "the latest version did not move"
    assert "c.txt" in cli("status").out, "the staged change is kept"

    cli("checkout", "--force", "demo")  # back to the latest, discarding the staged change
    assert (ws_dir / "b.txt").read_text() == "b\n"
    write(ws_dir / "c.txt", "c\n")
    cli("add", "c.txt")
    cli("commit", "-m", "v3")
    assert [line.split()[-1] for line in cli("ls").out.splitlines()] == ["a.txt", "b.txt", "c.txt"]

    cli("checkout", "v1")
    write(ws_dir / "d.txt", "d\n")
    cli("add", "d.txt")
    cli("commit", "-m", "back to v1 plus d", "--from-old")
    files = cli("ls").out
    assert "d.txt" in files and "b.txt" not in files
    assert "older version" not in cli("status").out
