"""Every command that touches a store, against an S3 store that cannot be used.

Four broken situations, each against every command and the Python API:

* ``unreachable``: the endpoint is a closed port on 127.0.0.1;
* ``no-credentials``: the moto server is fine, but boto3 finds no credentials
  at all (no AWS_* variables, empty config and credentials files, IMDS off);
* ``wrong-key``: moto accepts any key unless told otherwise; ``POST
  /moto-api/reset-auth`` with the body ``0`` sets INITIAL_NO_AUTH_ACTION_COUNT
  to 0 (every later request is authenticated against moto's IAM, which knows no
  key), and the key given is refused with 403 InvalidAccessKeyId. The setting
  is global to the server (here: to this process), so it is on only while the
  command runs;
* ``missing-bucket``: the store's bucket does not exist.

What every command must do (docs/cli.md, datactl/cli/errors.py): exit 3,
print one ``error:`` line naming the store and the cause and one ``hint:``
line, and no traceback; leave the workspace, its store and its databases as
they were (and the remote store, where there is one). Lineage with its
default remote implied warns and answers from the workspace's store
(docs/lineage.md). The Python API raises the StorageError subclass of the
situation with the SDK's error as ``__cause__``. ``COMMANDS`` and
``API_CALLS`` list what runs; the ``healthy`` tests run the same table
against a working copy of the store, to show that each command line is valid
and really uses the store.

The unreachable cases wait for RetryingBackend's backoff (6 tries, about
0.8 s in all); no setting shortens it, so they are left to take that long.

The workspace is built once per module (a dataset with two versions pushed
to a healthy bucket, cloned, plus one local version not pushed yet) and
copied for each test.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conftest import Cli, snapshot, write
from datactl.core.errors import DatactlError, StorageError, StoreAccessDenied, StoreNotFound, StoreUnreachable
from datactl.remote.locate import add_remote, remove_remote
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace
from servers import free_port, new_s3_bucket

DATASET = "ds"
PREFIX = "store"
RULES = """
[[validate.rules]]
name = "has files"
type = "count"
min = 1
"""

# -- the commands -------------------------------------------------------------------------------

# Outcomes a command may have against a broken store.
UNREADABLE = "unreadable"  # exit 3, error + hint lines (docs/cli.md: a store could not be read or written)
FALLBACK = "fallback"  # lineage in a workspace, its default remote implied: a warning, the local answer, exit 0 (docs/lineage.md)


@dataclass(frozen=True)
class Command:
    """One command line. ``where``: "ws" runs in the workspace (the broken store is its remote ``origin``),
    "outside" runs in an empty folder and names the store by URL. Placeholders: {url} {endpoint} {rules} {dest}."""

    argv: tuple[str, ...]
    where: str = "ws"
    outcome: str = UNREADABLE
    env: tuple[tuple[str, str], ...] = ()  # for commands without --endpoint-url: boto3 reads AWS_ENDPOINT_URL


COMMANDS: dict[str, Command] = {
    # moving versions
    "push": Command(("push",)),
    "push --tags": Command(("push", "--tags")),
    "fetch": Command(("fetch",)),
    "pull": Command(("pull",)),
    "clone": Command(("clone", "{url}", DATASET, "{dest}", "--endpoint-url", "{endpoint}"), where="outside"),
    "clone NAME@VERSION": Command(("clone", "{url}", f"{DATASET}@v1", "{dest}", "--endpoint-url", "{endpoint}"), where="outside"),
    "checkout (data to download)": Command(("checkout", "v1")),
    "merge": Command(("merge",)),
    "merge REMOTE": Command(("merge", "origin")),
    # listing
    "datasets REMOTE": Command(("datasets", "origin")),
    "models REMOTE": Command(("models", "origin")),
    "datasets URL": Command(("datasets", "{url}"), where="outside", env=(("AWS_ENDPOINT_URL", "{endpoint}"),)),
    "models URL": Command(("models", "{url}", "--endpoint-url", "{endpoint}"), where="outside"),
    # lineage
    "lineage --remote": Command(("lineage", DATASET, "--remote", "origin")),
    "lineage --remote URL": Command(("lineage", f"{DATASET}@v1", "--down", "--remote", "{url}", "--endpoint-url", "{endpoint}"), where="outside"),
    "lineage (default remote)": Command(("lineage",), outcome=FALLBACK),
    # CI checks
    "verify --remote": Command(("verify", "--remote", "origin")),
    "verify --remote --deep": Command(("verify", "--remote", "origin", "--deep")),
    "verify --remote URL": Command(("verify", DATASET, "--remote", "{url}", "--endpoint-url", "{endpoint}"), where="outside"),
    "validate --remote": Command(("validate", "--remote", "origin", "--rules", "{rules}")),
    "validate --remote URL": Command(("validate", DATASET, "--remote", "{url}", "--endpoint-url", "{endpoint}", "--rules", "{rules}"), where="outside"),
    "diff --remote": Command(("diff", "v1", DATASET, "--remote", "origin")),
    "diff --remote URL": Command(("diff", f"{DATASET}@v1", DATASET, "--remote", "{url}"), where="outside", env=(("AWS_ENDPOINT_URL", "{endpoint}"),)),
    # store upkeep
    "gc STORE": Command(("gc", "origin")),
    "gc URL": Command(("gc", "{url}", "--endpoint-url", "{endpoint}"), where="outside"),
    "fsck STORE": Command(("fsck", "origin")),
    "fsck URL": Command(("fsck", "{url}", "--endpoint-url", "{endpoint}"), where="outside"),
    "squash NAME STORE": Command(("squash", DATASET, "origin", "--from", f"{DATASET}~1", "--to", DATASET, "--delete-tags")),
    "squash NAME URL": Command(("squash", DATASET, "{url}", "--endpoint-url", "{endpoint}", "--from", f"{DATASET}~1", "--to", DATASET, "--delete-tags"), where="outside"),
    "dataset delete NAME STORE": Command(("dataset", "delete", DATASET, "origin")),
    "dataset delete NAME URL": Command(("dataset", "delete", DATASET, "{url}", "--endpoint-url", "{endpoint}"), where="outside"),
    "tag --delete --remote": Command(("tag", "--delete", "v1", "--remote", "origin")),
}


# -- the Python API -------------------------------------------------------------------------------


def _get(ctx: "Ctx") -> Any:
    from datactl import Dataset

    return Dataset.get(DATASET, remote="origin", cache_dir=str(ctx.cache))


def _get_version(ctx: "Ctx") -> Any:
    from datactl import Dataset

    return Dataset.get(DATASET, version="v1", remote="origin", cache_dir=str(ctx.cache))


def _create_push(ctx: "Ctx") -> Any:
    from datactl import Dataset

    draft = Dataset.create(DATASET, remote="origin", cache_dir=str(ctx.cache))
    draft.add_files(str(ctx.files))
    draft.commit("from the API")
    return draft.push()


def _create_from_parent_push(ctx: "Ctx") -> Any:
    from datactl import Dataset

    draft = Dataset.create(DATASET, parents=[DATASET], remote="origin", cache_dir=str(ctx.cache))
    draft.add_files(str(ctx.files))
    draft.commit("from the API, on the latest version")
    return draft.push()


def _log_model(ctx: "Ctx") -> Any:
    from datactl import log_model

    return log_model(str(ctx.files / "weights.bin"), "model", remote="origin", message="trained")


API_CALLS: dict[str, Callable[["Ctx"], Any]] = {
    "Dataset.get": _get,
    "Dataset.get(version)": _get_version,
    "Dataset.create().push": _create_push,
    "Dataset.create(parents).push": _create_from_parent_push,
    "log_model": _log_model,
}


# -- the broken situations -------------------------------------------------------------------------


@dataclass
class Situation:
    """Where ``origin`` points, what the environment looks like while a command runs, and what it must say."""

    name: str
    url: str
    endpoint: str
    bucket: str
    error: type[StorageError] | None  # None: the healthy control
    cause: str  # a regex the error line must match
    env: dict[str, str | None] = field(default_factory=dict)  # None: unset
    enforce_auth: bool = False

    @property
    def options(self) -> dict[str, str]:
        return {"endpoint_url": self.endpoint}

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """The broken environment, for as long as a command runs (then everything is as before)."""
        with pytest.MonkeyPatch.context() as mp:
            for name, value in self.env.items():
                if value is None:
                    mp.delenv(name, raising=False)
                else:
                    mp.setenv(name, value)
            if not self.enforce_auth:
                yield
                return
            previous = _moto_auth(self.endpoint, "0")
            try:
                yield
            finally:
                _moto_auth(self.endpoint, previous)


SITUATIONS = ("unreachable", "no-credentials", "wrong-key", "missing-bucket")


def _moto_auth(endpoint: str, count: str) -> str:
    """Set moto's INITIAL_NO_AUTH_ACTION_COUNT over HTTP (0: authenticate every request); return the previous value."""
    import json

    # The body is read as raw data: a form content type (urllib's default) would leave it empty.
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=count.encode(), method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]


def _no_credentials_env(tmp: Path) -> dict[str, str | None]:
    empty_config, empty_credentials = tmp / "aws-config", tmp / "aws-credentials"
    empty_config.write_text("")
    empty_credentials.write_text("")
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AWS_") and k not in ("AWS_DEFAULT_REGION", "AWS_REGION")}
    env.update(
        {
            "AWS_CONFIG_FILE": str(empty_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty_credentials),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return env


def make_situation(name: str, healthy: "Healthy", tmp: Path) -> Situation:
    if name == "unreachable":
        closed = free_port()  # bound, then closed: nothing listens there
        return Situation(name, healthy.url, f"http://127.0.0.1:{closed}", healthy.bucket, StoreUnreachable, r"reach|connect|unreachable")
    if name == "no-credentials":
        return Situation(
            name, healthy.url, healthy.endpoint, healthy.bucket, StoreAccessDenied, r"credentials", env=_no_credentials_env(tmp)
        )
    if name == "wrong-key":
        return Situation(
            name, healthy.url, healthy.endpoint, healthy.bucket, StoreAccessDenied,
            r"access denied|InvalidAccessKeyId|SignatureDoesNotMatch|refused",
            env={"AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG0", "AWS_SECRET_ACCESS_KEY": "not-the-secret", "AWS_PROFILE": None},
            enforce_auth=True,
        )
    if name == "missing-bucket":
        missing = f"datactl-missing-{uuid.uuid4().hex[:12]}"
        return Situation(name, f"s3://{missing}/{PREFIX}", healthy.endpoint, missing, StoreNotFound, r"does not exist|NoSuchBucket|no such bucket")
    if name == "healthy":
        bucket = healthy.copy_bucket()
        return Situation(name, f"s3://{bucket}/{PREFIX}", healthy.endpoint, bucket, None, "")
    raise ValueError(name)


# -- the workspace, built once ----------------------------------------------------------------------


@dataclass
class Healthy:
    endpoint: str
    bucket: str
    template: Path  # a clone of the dataset with one more local version; origin points at the healthy store

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{PREFIX}"

    def s3(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def copy_bucket(self) -> str:
        """A new bucket holding the same store (for commands that change it)."""
        bucket = new_s3_bucket(self.endpoint)
        s3 = self.s3()
        for item in s3.list_objects_v2(Bucket=self.bucket).get("Contents", ()):
            s3.copy_object(Bucket=bucket, Key=item["Key"], CopySource={"Bucket": self.bucket, "Key": item["Key"]})
        return bucket


def bucket_state(healthy: Healthy, bucket: str) -> dict[str, str] | None:
    """key -> ETag of every object in ``bucket``, or None when there is no such bucket."""
    import botocore.exceptions

    s3 = healthy.s3()
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", ())}
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return None
        raise


@pytest.fixture(scope="module")
def healthy(s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> Healthy:
    """A dataset with two versions (tag v1) pushed to a healthy bucket, and a clone of it one local version ahead."""
    root = tmp_path_factory.mktemp("storage-failures")
    bucket = new_s3_bucket(s3_server)
    url = f"s3://{bucket}/{PREFIX}"
    options = {"endpoint_url": s3_server}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATACTL_AUTHOR", "Test <test@example.com>")
        mp.setenv("DATACTL_CACHE_DIR", str(root / "cache"))
        src = root / "src"
        write(src / "data" / "a.txt", "alpha\n" * 100)
        write(src / "data" / "b.bin", bytes(range(256)) * 64)
        write(src / "old_only.bin", os.urandom(20_000))
        ws = Workspace.init(str(src), name=DATASET)
        add_remote(ws.root, "origin", url, options)
        ws.add([str(src)])
        ws.commit("v1", tags=["v1"])
        (src / "old_only.bin").unlink()
        write(src / "data" / "a.txt", "alpha, second version\n" * 100)
        write(src / "new.bin", os.urandom(10_000))
        ws.add([str(src)])
        ws.commit("v2")
        sync.push(ws, tags=True)
        ws.close()

        template = root / "template"
        clone = sync.clone(url, DATASET, str(template), options=options)  # v2's files only: v1's old_only.bin is not local
        write(template / "local.txt", "a version not pushed yet\n")
        clone.add([str(template)])
        clone.commit("v3, local")
        clone.close()
    return Healthy(s3_server, bucket, template)


# -- what a test compares ----------------------------------------------------------------------------


def _db_dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def workspace_state(root: Path) -> dict[str, Any]:
    """The files, the settings, every byte of the local store and the content of the workspace's databases.

    ``.datactl/remotes`` (a cache of remote indexes) and the lock file are left out.
    """
    dot = root / ".datactl"
    store = {str(p.relative_to(dot)): p.read_bytes() for p in sorted((dot / "store").rglob("*")) if p.is_file()}
    dbs = {name: _db_dump(dot / name) for name in ("index.db", "stage.db") if (dot / name).exists()}
    extra = sorted(p.name for p in dot.iterdir() if p.name not in ("store", "remotes", "lock", "index.db", "stage.db") and not p.name.endswith(("-wal", "-shm")))
    return {"files": snapshot(root), "settings": (root / "datactl.toml").read_bytes(), "store": store, "dbs": dbs, "other": extra}


def folder_state(root: Path) -> dict[str, Any]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


@dataclass
class Ctx:
    """One test's copy of the workspace, its folders and the situation it runs in."""

    ws: Path
    outside: Path
    cache: Path
    files: Path
    rules: Path
    dest: Path
    situation: Situation

    def values(self) -> dict[str, str]:
        return {"url": self.situation.url, "endpoint": self.situation.endpoint, "rules": str(self.rules), "dest": str(self.dest)}

    def argv(self, command: Command) -> list[str]:
        return [a.format(**self.values()) for a in command.argv]

    def run(self, cli: Cli, command: Command) -> Any:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in command.env:
                mp.setenv(name, value.format(**self.values()))
            return cli(*self.argv(command), ok=False, cwd=self.cwd(command))

    def cwd(self, command: Command) -> Path:
        return self.ws if command.where == "ws" else self.outside


def prepare(healthy: Healthy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, situation: Situation) -> Ctx:
    """Copy the workspace, point its ``origin`` at the situation's store, and settle it (its stat cache)."""
    ws = tmp_path / "workspace"  # tmp_path / "ws" is the cli fixture's
    shutil.copytree(healthy.template, ws, symlinks=True)
    remove_remote(str(ws), "origin")
    add_remote(str(ws), "origin", situation.url, situation.options)
    with Workspace(str(ws)) as w:
        assert w.status().clean  # also refreshes the stat cache the copy made stale
    outside = tmp_path / "outside"
    outside.mkdir()
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    files = tmp_path / "files"
    write(files / "weights.bin", os.urandom(5_000))
    write(files / "notes.txt", "api\n")
    cache = tmp_path / "cache"
    monkeypatch.setenv("DATACTL_CACHE_DIR", str(cache))
    monkeypatch.delenv("DATACTL_REMOTE", raising=False)
    monkeypatch.delenv("DATACTL_DEBUG", raising=False)
    return Ctx(ws, outside, cache, files, rules, tmp_path / "clone-dest", situation)


# -- the checks ------------------------------------------------------------------------------------


def what_was_said(situation: Situation, code: int, out: str, err: str, outcome: str) -> list[str]:
    """What is wrong with a command's exit code and output (empty: nothing): see the module doc."""
    problems: list[str] = []
    if "Traceback" in out + err:
        problems.append("a traceback was printed")
    lines = [line for line in err.splitlines() if line.strip()]
    store = rf"s3://{re.escape(situation.bucket)}\b|\borigin\b"
    if outcome == FALLBACK:
        if code != 0:
            problems.append(f"exit {code}, wanted 0 (the workspace's own store answers)")
        warnings = [line for line in lines if line.startswith("warning: ")]
        if not any(re.search(store, w) and re.search(situation.cause, w, re.I) for w in warnings):
            problems.append("no warning line naming the store and the cause")
        if DATASET not in out:
            problems.append("no answer from the workspace's own store on stdout")
    else:
        if code != 3:
            problems.append(f"exit {code}, wanted 3")
        errors = [line for line in lines if line.startswith("error: ")]
        if len(errors) != 1:
            problems.append(f"{len(errors)} error lines, wanted 1")
        for line in errors[:1]:
            if not re.search(store, line):
                problems.append(f"the error line does not name the store ({situation.url})")
            if not re.search(situation.cause, line, re.I):
                problems.append(f"the error line does not say why (/{situation.cause}/)")
            if "internal error" in line:
                problems.append("reported as an internal error (a bug)")
        hints = [line for line in lines if line.startswith("hint: ") and line[len("hint: "):].strip()]
        if len(hints) != 1:
            problems.append(f"{len(hints)} hint lines, wanted 1")
    stray = [line for line in lines if not line.startswith(("error: ", "hint: ", "warning: ", "note: "))]
    if stray:
        problems.append(f"{len(stray)} stderr line(s) without an error:/hint:/warning: prefix (a message or hint spilling onto its own line)")
    return problems


def report(problems: list[str], out: str = "", err: str = "") -> None:
    assert not problems, "\n".join(["", *(f"- {p}" for p in problems), "stdout:", out, "stderr:", err])


@pytest.fixture(params=SITUATIONS)
def situation_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("command_id", list(COMMANDS))
def test_command_against_a_broken_store(
    command_id: str, situation_name: str, healthy: Healthy, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = COMMANDS[command_id]
    situation = make_situation(situation_name, healthy, tmp_path)
    ctx = prepare(healthy, tmp_path, monkeypatch, situation)
    before_ws, before_outside = workspace_state(ctx.ws), folder_state(ctx.outside)
    before_bucket = bucket_state(healthy, situation.bucket)

    with situation.active():
        r = ctx.run(cli, command)

    problems = what_was_said(situation, r.code, r.out, r.err, command.outcome)
    if workspace_state(ctx.ws) != before_ws:
        problems.append("the workspace, its store or its databases changed")
    if folder_state(ctx.outside) != before_outside:
        problems.append("the folder the command ran in changed")
    if ctx.dest.exists() and any(ctx.dest.iterdir()):
        problems.append("a failed clone left a folder behind")
    if bucket_state(healthy, situation.bucket) != before_bucket:
        problems.append("the remote store changed")
    report(problems, r.out, r.err)


@pytest.mark.parametrize("call_id", list(API_CALLS))
def test_python_api_against_a_broken_store(
    call_id: str, situation_name: str, healthy: Healthy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    situation = make_situation(situation_name, healthy, tmp_path)
    ctx = prepare(healthy, tmp_path, monkeypatch, situation)
    monkeypatch.setenv("DATACTL_AUTHOR", "Test <test@example.com>")
    monkeypatch.chdir(ctx.ws)
    before_ws = workspace_state(ctx.ws)
    before_bucket = bucket_state(healthy, situation.bucket)

    with situation.active():
        try:
            result = API_CALLS[call_id](ctx)
        except DatactlError as exc:
            raised: BaseException | None = exc
        else:
            raised = None
            with contextlib.suppress(Exception):
                result.close()

    problems: list[str] = []
    assert situation.error is not None
    if raised is None:
        problems.append(f"{call_id} returned normally against the {situation.name} store")
    else:
        said = f"{type(raised).__name__}: {raised}".replace("\n", " / ")
        if not isinstance(raised, situation.error):
            problems.append(f"raised {said}; wanted {situation.error.__name__}")
        if raised.__cause__ is None:
            problems.append(f"the SDK's error is not chained as __cause__ ({said})")
        if not re.search(situation.cause, str(raised), re.I):
            problems.append(f"the message does not say why (/{situation.cause}/): {said}")
    if workspace_state(ctx.ws) != before_ws:
        problems.append("the workspace, its store or its databases changed")
    if bucket_state(healthy, situation.bucket) != before_bucket:
        problems.append("the remote store changed")
    report(problems)


# -- the control: the same command lines work against a healthy copy of the store -----------------------


@pytest.mark.parametrize("command_id", list(COMMANDS))
def test_command_works_against_a_healthy_store(
    command_id: str, healthy: Healthy, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = COMMANDS[command_id]
    ctx = prepare(healthy, tmp_path, monkeypatch, make_situation("healthy", healthy, tmp_path))
    r = ctx.run(cli, command)
    assert r.code == 0, f"exit {r.code}\nstdout: {r.out}\nstderr: {r.err}"
    assert "Traceback" not in r.out + r.err
    assert not [line for line in r.err.splitlines() if line.startswith("warning: ")], r.err


@pytest.mark.parametrize("call_id", list(API_CALLS))
def test_python_api_works_against_a_healthy_store(call_id: str, healthy: Healthy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = prepare(healthy, tmp_path, monkeypatch, make_situation("healthy", healthy, tmp_path))
    monkeypatch.setenv("DATACTL_AUTHOR", "Test <test@example.com>")
    monkeypatch.chdir(ctx.ws)
    result = API_CALLS[call_id](ctx)
    with contextlib.suppress(Exception):
        result.close()
