# Sourced by the .ci/install-*.sh scripts: which Debian packages are missing, and the refusal without root.
#   missing_packages NAME... ; prints the names of those not installed, one per line
#   need_root WHO PACKAGES  ; exits 1 with a message unless root
missing_packages() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

need_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "$1: need root to install $2 (or install them yourself)" >&2
        exit 1
    fi
}
