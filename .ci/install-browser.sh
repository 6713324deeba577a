#!/usr/bin/env bash
# Install what the browser tests (tests/test_report_pages.py) and tools/screenshots.py need: Debian's Chromium
# and a font. playwright (the test extra) drives it; no browser build is downloaded (the machine has no such
# network access). Idempotent; needs root when the packages are missing.
set -euo pipefail
packages=(chromium fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-browser: need root to install ${missing[*]} (or install them yourself)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install-browser: $(chromium --version 2>/dev/null || echo 'chromium missing')"
