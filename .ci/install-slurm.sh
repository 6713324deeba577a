#!/usr/bin/env bash
# Install what the SLURM cluster test needs (tests/cluster/): a single-node SLURM from Debian's packages
# (slurmctld, slurmd, the client commands, munge) and Snakemake's SLURM executor plugin into the venv.
#
#   .ci/install-slurm.sh [VENV]        # VENV defaults to $VENV, then .venv (relative to the repository)
#
# Idempotent: packages already present are not fetched again, pip skips what is installed. Works as root on
# a fresh Debian 12 without systemd: Debian's postinst scripts try to start the daemons through
# invoke-rc.d, which a policy-rc.d that answers 101 turns into a no-op; the test starts its own private
# daemons (tests/cluster/slurm.py) and stops them by PID. Nothing here starts a daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-${VENV:-.venv}}"
PYTHON="${PYTHON:-python3}"
started=$(date +%s)

source .ci/debian.sh
mapfile -t missing < <(missing_packages slurmctld slurmd slurm-client munge)
if ((${#missing[@]})); then
    need_root install-slurm "${missing[*]}"
    # Keep package scripts from starting daemons (no systemd here; the test runs its own).
    created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    trap '[[ $created_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d' EXIT
    log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "install-slurm: apt-get failed" >&2
        exit 1
    fi
    rm -f "$log"
fi

# The venv with the project and its `slurm` extra (snakemake-executor-plugin-slurm). `make test` builds the
# same venv; creating it here first is harmless (its stamp file depends on pyproject.toml only).
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
log=$(mktemp)
if ! "$VENV/bin/pip" install --quiet --disable-pip-version-check -e '.[test,slurm]' >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-slurm: pip install failed" >&2
    exit 1
fi
rm -f "$log"

echo "install-slurm: $(slurmctld -V), munge $(dpkg-query -W -f='${Version}' munge)," \
    "$("$VENV/bin/pip" show snakemake-executor-plugin-slurm 2>/dev/null | awk '/^Version/{print "slurm plugin " $2}')" \
    "in $(($(date +%s) - started)) s"
