#!/usr/bin/env bash
# Install what the browser tests (tests/test_report_pages.py) and tools/screenshots.py need: Debian's Chromium
# and a font (playwright, the test extra, drives it; no browser build is downloaded: the machine has no such
# network access); and tmux, for the test that reads a run's terminal (tests/test_terminal.py).
# Idempotent; needs root when the packages are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/debian.sh
mapfile -t missing < <(missing_packages chromium fonts-dejavu-core tmux)
if ((${#missing[@]})); then
    need_root install-browser "${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install-browser: $(chromium --version 2>/dev/null || echo 'chromium missing')"
