#!/usr/bin/env bash
# Install the tools the benchmarks compare datactl with, then print their versions.
#
#   borg, restic  from Debian (apt-get install borgbackup restic)
#   git, GNU time from Debian (git is DVC's other half and bench_history's reference;
#                 /usr/bin/time is not used by the scripts but handy for spot checks)
#   dvc           from PyPI, "dvc[s3]" (bench_remote.py pushes to S3)
#
# Idempotent: a tool already on PATH is left as it is. DVC goes into its own virtual
# environment (default /opt/datactl-bench-peers/dvc, or $BENCH_PEERS_DIR/dvc) with a link
# in /usr/local/bin: "dvc[s3]" pins botocore through aiobotocore, and installing it next
# to datactl would move the boto3/botocore/moto versions the test suite runs with.
# Set DVC_SYSTEM_PIP=1 to `pip install "dvc[s3]"` into the current Python instead.
#
#   bash benchmarks/setup_peers.sh
set -euo pipefail

PEERS_DIR="${BENCH_PEERS_DIR:-/opt/datactl-bench-peers}"
BIN_DIR="${BENCH_BIN_DIR:-/usr/local/bin}"
PYTHON="${PYTHON:-python3}"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_missing=()
command -v borg >/dev/null 2>&1 || apt_missing+=(borgbackup)
command -v restic >/dev/null 2>&1 || apt_missing+=(restic)
command -v git >/dev/null 2>&1 || apt_missing+=(git)
[ -x /usr/bin/time ] || apt_missing+=(time)
if [ ${#apt_missing[@]} -gt 0 ]; then
    echo "installing from Debian: ${apt_missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

if ! command -v dvc >/dev/null 2>&1; then
    if [ "${DVC_SYSTEM_PIP:-0}" = 1 ]; then
        echo "installing dvc[s3] from PyPI into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
        "$PYTHON" -m pip install -q "dvc[s3]"
    else
        echo "installing dvc[s3] from PyPI into $PEERS_DIR/dvc (linked as $BIN_DIR/dvc)"
        as_root mkdir -p "$PEERS_DIR"
        [ -x "$PEERS_DIR/dvc/bin/python" ] || as_root "$PYTHON" -m venv "$PEERS_DIR/dvc"
        as_root "$PEERS_DIR/dvc/bin/python" -m pip install -q --disable-pip-version-check "dvc[s3]"
        as_root ln -sf "$PEERS_DIR/dvc/bin/dvc" "$BIN_DIR/dvc"
    fi
fi

echo "peer versions:"
echo "  $(borg --version)"
echo "  $(restic version | sed 's/ compiled.*//')"
echo "  dvc $(DVC_NO_ANALYTICS=1 dvc --version)"
echo "  $(git --version)"
