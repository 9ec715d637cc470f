# shellcheck shell=bash
# Shared helpers for imagelake's test scripts. Source it; do not execute it.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It only defines variables and functions, so sourcing it is side-effect free
# (apart from honouring/creating IMAGELAKE_CACHE lazily in the callers).

# Everything expensive (the Garage binary, its build dir, the Python venv) lives
# outside the work tree so fresh clones (CI) reuse it and the repo stays clean.
IMAGELAKE_CACHE=${IMAGELAKE_CACHE:-$HOME/.cache/imagelake}
export IMAGELAKE_CACHE

# Directory holding these scripts, so callers can find siblings regardless of cwd.
IMAGELAKE_SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export IMAGELAKE_SCRIPTS_DIR

IMAGELAKE_GARAGE_BIN=${IMAGELAKE_GARAGE_BIN:-$IMAGELAKE_CACHE/tools/bin/garage}
IMAGELAKE_VENV=${IMAGELAKE_VENV:-$IMAGELAKE_CACHE/venv}
IMAGELAKE_PYTHON=$IMAGELAKE_VENV/bin/python
export IMAGELAKE_GARAGE_BIN IMAGELAKE_VENV IMAGELAKE_PYTHON
# tus-js-client's node_modules (scripts/install.sh, from tests/peers/tus-js/package-lock.json).
IMAGELAKE_TUS_JS=${IMAGELAKE_TUS_JS:-$IMAGELAKE_CACHE/tus-js}
export IMAGELAKE_TUS_JS

# pg_bindir: print the bin directory of the newest PostgreSQL server installed the
# Debian way (/usr/lib/postgresql/VERSION/bin, from the postgresql package; the
# pg_wrapper scripts in /usr/bin lack initdb/pg_ctl), or $IMAGELAKE_PG_BINDIR when
# set (any other install: `pg_config --bindir`). Fails when there is none.
pg_bindir() {
    if [[ -n ${IMAGELAKE_PG_BINDIR:-} ]]; then
        [[ -x $IMAGELAKE_PG_BINDIR/initdb ]] && echo "$IMAGELAKE_PG_BINDIR"
        return
    fi
    local d v best='' best_v=0
    for d in /usr/lib/postgresql/*/bin; do
        v=${d#/usr/lib/postgresql/}
        v=${v%%[!0-9]*} # major version: "15", or "9" for 9.6
        if [[ -n $v && -x $d/initdb && -x $d/pg_ctl ]] && ((10#$v > best_v)); then
            best=$d best_v=$((10#$v))
        fi
    done
    [[ -n $best ]] && echo "$best"
}

# Logging goes to stderr so functions that print a value on stdout
# (free_port, ...) can be used in $(...) and still log.
log() { printf '[imagelake %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[imagelake %s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf '[imagelake %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
    exit 1
}

# Microseconds since the epoch, for timings. EPOCHREALTIME (bash >= 5) needs
# no subprocess; strip every non-digit (the decimal mark is locale-dependent).
now() { echo "${EPOCHREALTIME//[!0-9]/}"; }
# elapsed START -> "12.3s"
elapsed() {
    local d=$(($(now) - $1))
    printf '%d.%ds\n' $((d / 1000000)) $((d / 100000 % 10))
}

# free_port [N]: print N (default 1) distinct TCP ports on 127.0.0.1 that the
# kernel says are free right now, one per line. Binding port 0 lets the kernel
# pick, which avoids collisions with other test runs far better than guessing;
# holding all N sockets open until the end makes them distinct. There is a
# small race until the servers bind them, which is acceptable for tests.
free_port() {
    python3 - "${1:-1}" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))
PY
}

# wait_for_port HOST PORT TIMEOUT_SECONDS: return 0 once something accepts TCP
# connections on HOST:PORT, 1 on timeout. Uses bash's /dev/tcp so it needs no
# extra tools (nc is not guaranteed to be installed).
wait_for_port() {
    local host=$1 port=$2 timeout=${3:-30}
    local deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# random_hex NBYTES: print 2*NBYTES lowercase hex chars (keys, rpc secret).
# od instead of python: python3 may be a slow pyenv shim (~0.2 s a call).
random_hex() { od -An -vtx1 -N"$1" /dev/urandom | tr -d ' \n'; echo; }

# sha256_of FILE: print only the hex digest.
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# apt_ensure PACKAGE...: install the Debian packages that are missing (dpkg -s), with
# sudo unless root; apt-get update only when the install fails on a stale index. Quiet
# and instant when everything is there.
apt_ensure() {
    local missing=() p
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    local apt=(apt-get install -y -qq --no-install-recommends "${missing[@]}") update=(apt-get update -qq)
    if [[ $(id -u) != 0 ]]; then apt=(sudo "${apt[@]}") update=(sudo "${update[@]}"); fi
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" >/dev/null 2>&1 ||
        { "${update[@]}" >/dev/null && DEBIAN_FRONTEND=noninteractive "${apt[@]}" >/dev/null; } ||
        die "could not install ${missing[*]}"
}
