# Shared by the bench scripts that drive `stockade serve` with wrk; source it after
# `cd`-ing to the repository root:  source benches/lib.sh

# Installs wrk from Debian if it is missing.
need_wrk() {
    if ! command -v wrk >/dev/null; then
        printf '== %s\n' "installing wrk (Debian package)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    fi
}

# need_bin BIN: builds the release binary when BIN is not there yet.
need_bin() {
    if [[ ! -x $1 ]]; then
        printf '== %s\n' "building the release binary" >&2
        cargo build --release -p stockade-cli
    fi
}

# listening_address OUT ERR: the host:port `stockade serve` printed to OUT once it
# listens, waiting up to 10 s. Otherwise prints ERR and fails:
#   addr=$(listening_address "$work/out" "$work/err") || exit 1
listening_address() {
    local out=$1 err=$2 addr
    for _ in $(seq 100); do
        addr=$(grep -o 'listening on http://[0-9.:]*' "$out" | head -1 | sed 's|listening on http://||') || true
        if [[ -n $addr ]]; then
            echo "$addr"
            return 0
        fi
        sleep 0.1
    done
    cat "$err" >&2
    echo "the server did not start" >&2
    return 1
}
