#!/usr/bin/env bash
# Install what the tests against SFTP servers nobody here wrote need (tests/test_independent_sftp.py,
# benchmarks/bench_short_reads.py): Debian's OpenSSH server (sshd with internal-sftp, run per connection in
# inetd mode behind a socket on port 0) and its client tools (ssh-keygen, sftp). asyncssh, the other server,
# comes from PyPI with the test extra. Idempotent; needs root when the packages are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/debian.sh
mapfile -t missing < <(missing_packages openssh-server openssh-client)
if ((${#missing[@]})); then
    need_root install-sftp-servers "${missing[*]}"
    apt-get update -qq
    # policy-rc.d: install the package without starting the system's sshd (the tests start their own)
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi
echo "install-sftp-servers: $(/usr/sbin/sshd -V 2>&1 | head -1 || echo 'sshd missing')"
