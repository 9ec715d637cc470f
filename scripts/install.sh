#!/usr/bin/env bash
# Install the real servers and tools imagelake's integration tests run against:
#   (a) Garage (S3-compatible object store), built from crates.io with cargo;
#   (b) a Python venv with moto[server] (SQS-compatible server), boto3 and the
#       independent Parquet readers (duckdb, pyarrow, polars) and schemathesis;
#   (c) headless Chromium and its WebDriver (Debian packages) for the dashboard's
#       browser test;
#   (d) PostgreSQL (Debian's postgresql package: server binaries and psql); servers.sh
#       runs a throwaway cluster of its own from them;
#   (e) HAProxy (Debian's package), the load balancer of scripts/deploy.sh's test
#       deployment; it runs as the current user from a config file, never as a service;
#   (f) tus-js-client, the tus project's JavaScript client, for tests/tus_clients.rs:
#       `npm ci` of tests/peers/tus-js/package-lock.json into $IMAGELAKE_CACHE/tus-js
#       (Node.js and npm from Debian's packages when the machine has none).
#
# Idempotent and cached under $IMAGELAKE_CACHE: each step is skipped in well
# under a second when already done, so the test entry point can call this
# unconditionally. A cold run builds Garage (~15-25 min on 2 cores).
#
# Env knobs:
#   IMAGELAKE_CACHE        cache root (default ~/.cache/imagelake)
#   IMAGELAKE_SKIP_GARAGE  =1 to skip the Garage step
#   IMAGELAKE_SKIP_VENV    =1 to skip the venv step
#   IMAGELAKE_SKIP_CHROMIUM =1 to skip the chromium step
#   IMAGELAKE_SKIP_POSTGRES =1 to skip the postgresql step
#   IMAGELAKE_SKIP_HAPROXY =1 to skip the haproxy step
#   IMAGELAKE_SKIP_TUS_JS  =1 to skip the tus-js-client step
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GARAGE_VERSION=2.5.0
REQUIREMENTS=$IMAGELAKE_SCRIPTS_DIR/requirements-test.txt
TUS_JS_SRC=$IMAGELAKE_SCRIPTS_DIR/../tests/peers/tus-js
LOG_DIR=$IMAGELAKE_CACHE/logs
mkdir -p "$IMAGELAKE_CACHE/tools" "$LOG_DIR"

# True when the cached binary exists and reports the pinned version
# ("garage cargo:2.5.0 [features: ...]" for a crates.io build).
garage_ok() {
    [[ -x $IMAGELAKE_GARAGE_BIN ]] &&
        "$IMAGELAKE_GARAGE_BIN" --version 2>/dev/null | grep -qE "(cargo:|v)${GARAGE_VERSION//./\\.}( |\$)"
}

install_garage() {
    local t0
    t0=$(now)
    if garage_ok; then
        log "garage $GARAGE_VERSION already installed ($IMAGELAKE_GARAGE_BIN) [$(elapsed "$t0")]"
        return
    fi

    # Two concurrent builds of the same crate would fight over the same target
    # dir and root (and double the 2-core build time): if one is already
    # running (e.g. started by another session/script), wait for it instead.
    if pgrep -f "cargo install garage" >/dev/null; then
        log "a 'cargo install garage' is already running; waiting for it (log: $LOG_DIR/garage-build.log)"
        while pgrep -f "cargo install garage" >/dev/null; do
            sleep 5
        done
        if garage_ok; then
            log "garage $GARAGE_VERSION installed by the other build [$(elapsed "$t0")]"
            return
        fi
        warn "the other garage build finished without a usable binary; building now"
    fi

    log "building garage $GARAGE_VERSION with cargo (takes ~15-25 min cold; log: $LOG_DIR/garage-build.log)"
    # Own CARGO_TARGET_DIR: never touch (or lock) the project's target dir.
    # No default features: skip sqlite/k8s/consul/telemetry we do not need;
    # bundled-libs avoids needing system libs; lmdb is the db engine we use.
    if ! CARGO_TARGET_DIR=$IMAGELAKE_CACHE/garage-target \
        cargo install garage --version "$GARAGE_VERSION" --locked \
        --no-default-features --features bundled-libs,lmdb \
        --root "$IMAGELAKE_CACHE/tools" >"$LOG_DIR/garage-build.log" 2>&1; then
        tail -n 40 "$LOG_DIR/garage-build.log" >&2
        die "cargo install garage failed (full log: $LOG_DIR/garage-build.log)"
    fi
    garage_ok || die "garage built but '$IMAGELAKE_GARAGE_BIN --version' does not report $GARAGE_VERSION"
    log "garage $GARAGE_VERSION installed [$(elapsed "$t0")]"
}

install_venv() {
    local t0 want stamp
    t0=$(now)
    want=$(sha256_of "$REQUIREMENTS")
    # The stamp records which requirements the venv was last built from, so
    # pip (slow even when nothing changes) runs only when the file changed.
    stamp=$IMAGELAKE_VENV/.requirements.sha256
    if [[ -x $IMAGELAKE_PYTHON && -f $stamp && $(<"$stamp") == "$want" ]]; then
        log "python venv up to date ($IMAGELAKE_VENV) [$(elapsed "$t0")]"
        return
    fi

    # A venv whose interpreter is gone (python upgraded/removed) is useless.
    if [[ -d $IMAGELAKE_VENV ]] && ! "$IMAGELAKE_PYTHON" -c 'pass' 2>/dev/null; then
        warn "venv at $IMAGELAKE_VENV is broken; recreating it"
        rm -rf "$IMAGELAKE_VENV"
    fi
    if [[ ! -d $IMAGELAKE_VENV ]]; then
        log "creating python venv at $IMAGELAKE_VENV"
        python3 -m venv "$IMAGELAKE_VENV"
    fi

    log "installing python test requirements (log: $LOG_DIR/venv-install.log)"
    rm -f "$stamp" # a failed pip run must not leave a stale "up to date" stamp
    if ! "$IMAGELAKE_PYTHON" -m pip install --disable-pip-version-check --no-input \
        -r "$REQUIREMENTS" >"$LOG_DIR/venv-install.log" 2>&1; then
        tail -n 40 "$LOG_DIR/venv-install.log" >&2
        die "pip install failed (full log: $LOG_DIR/venv-install.log)"
    fi
    # Fail here rather than in the middle of a test run if something is missing.
    "$IMAGELAKE_PYTHON" -c 'import boto3, duckdb, pyarrow, polars, moto.server, schemathesis, tusclient' ||
        die "venv installed but an import failed"
    [[ -x $IMAGELAKE_VENV/bin/moto_server ]] || die "moto_server missing from the venv"
    printf '%s\n' "$want" >"$stamp"
    log "python venv ready [$(elapsed "$t0")]"
}

# apt_install LOG_NAME PACKAGE...: apt-get install (with sudo unless root), logging to
# $LOG_DIR/LOG_NAME-install.log; apt-get update only when the install fails on a stale
# list. Returns non-zero (after showing the log's tail) when it still fails.
apt_install() {
    local log_file=$LOG_DIR/$1-install.log
    shift
    local apt=(apt-get install -y --no-install-recommends "$@")
    [[ $(id -u) == 0 ]] || apt=(sudo "${apt[@]}")
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >"$log_file" 2>&1; then
        local update=(apt-get update)
        [[ $(id -u) == 0 ]] || update=(sudo "${update[@]}")
        if ! { "${update[@]}" >>"$log_file" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>"$log_file" 2>&1; }; then
            tail -n 20 "$log_file" >&2
            return 1
        fi
    fi
}

# Debian packages: Chromium and chromedriver (no browser download of its own: Selenium
# is handed both paths), and nasm, which the JPEG decoder's build (mozjpeg-sys) uses for
# its SIMD code when present at build time (without it the build falls back to plain C).
install_chromium() {
    local t0
    t0=$(now)
    if command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v nasm >/dev/null; then
        log "chromium and nasm already installed [$(elapsed "$t0")]"
        return
    fi
    log "installing chromium and chromium-driver (log: $LOG_DIR/chromium-install.log)"
    apt_install chromium chromium chromium-driver nasm ||
        die "installing chromium failed (full log: $LOG_DIR/chromium-install.log)"
    log "chromium installed [$(elapsed "$t0")]"
}

# Debian's postgresql package (the newest supported major, e.g. postgresql-15 on
# bookworm, with postgresql-client for psql). servers.sh initdb's its own cluster in
# the run dir from /usr/lib/postgresql/*/bin; the package's default cluster is never
# used.
install_postgres() {
    local t0 bindir
    t0=$(now)
    if bindir=$(pg_bindir); then
        log "postgresql already installed ($bindir) [$(elapsed "$t0")]"
        return
    fi
    log "installing postgresql (log: $LOG_DIR/postgres-install.log)"
    apt_install postgres postgresql ||
        die "installing postgresql failed (full log: $LOG_DIR/postgres-install.log)"
    bindir=$(pg_bindir) || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb"
    # Where nothing blocks service starts (no policy-rc.d, unlike most containers) the
    # package has just created and started its default cluster on port 5432. Nothing
    # uses it: stop it rather than leave it holding memory (systemd starts it again at
    # boot; that is the machine's business).
    local ver=${bindir#/usr/lib/postgresql/} sudo=()
    ver=${ver%/bin}
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    if "${sudo[@]}" pg_ctlcluster "$ver" main status >/dev/null 2>&1; then
        if "${sudo[@]}" pg_ctlcluster "$ver" main stop >>"$LOG_DIR/postgres-install.log" 2>&1; then
            log "stopped the package's default cluster $ver/main (unused)"
        else
            warn "could not stop the package's default cluster $ver/main (unused; harmless)"
        fi
    fi
    log "postgresql installed ($bindir) [$(elapsed "$t0")]"
}

# Debian's haproxy package. deploy.sh starts its own HAProxy from a config file in the
# deployment's directory; the package's service is not used (stopped if it started).
install_haproxy() {
    local t0
    t0=$(now)
    if command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]]; then
        log "haproxy already installed [$(elapsed "$t0")]"
        return
    fi
    log "installing haproxy (log: $LOG_DIR/haproxy-install.log)"
    apt_install haproxy haproxy ||
        die "installing haproxy failed (full log: $LOG_DIR/haproxy-install.log)"
    local sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    # Where nothing blocks service starts the package starts its own service on port 80
    # with /etc/haproxy/haproxy.cfg; nothing uses it.
    if command -v systemctl >/dev/null && systemctl is-active --quiet haproxy 2>/dev/null; then
        "${sudo[@]}" systemctl stop haproxy >>"$LOG_DIR/haproxy-install.log" 2>&1 ||
            warn "could not stop the package's haproxy service (unused; harmless)"
    fi
    log "haproxy installed [$(elapsed "$t0")]"
}

# tus-js-client for the real-client tests: `npm ci` of the pinned package-lock.json into
# $IMAGELAKE_TUS_JS (node_modules there; the tests put it on NODE_PATH). The stamp records
# the lock file it was installed from, so npm runs only when the lock file changed.
install_tus_js() {
    local t0 want stamp
    t0=$(now)
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        log "installing nodejs and npm (log: $LOG_DIR/nodejs-install.log)"
        apt_install nodejs nodejs npm ||
            die "installing nodejs and npm failed (full log: $LOG_DIR/nodejs-install.log)"
    fi
    want=$(sha256_of "$TUS_JS_SRC/package-lock.json")
    stamp=$IMAGELAKE_TUS_JS/.package-lock.sha256
    if [[ -d $IMAGELAKE_TUS_JS/node_modules/tus-js-client && -f $stamp && $(<"$stamp") == "$want" ]]; then
        log "tus-js-client up to date ($IMAGELAKE_TUS_JS) [$(elapsed "$t0")]"
        return
    fi
    log "installing tus-js-client with npm ci (log: $LOG_DIR/tus-js-install.log)"
    mkdir -p "$IMAGELAKE_TUS_JS"
    rm -f "$stamp"
    cp "$TUS_JS_SRC/package.json" "$TUS_JS_SRC/package-lock.json" "$IMAGELAKE_TUS_JS/"
    if ! (cd "$IMAGELAKE_TUS_JS" && npm ci --no-audit --no-fund --ignore-scripts) >"$LOG_DIR/tus-js-install.log" 2>&1; then
        tail -n 40 "$LOG_DIR/tus-js-install.log" >&2
        die "npm ci of tus-js-client failed (full log: $LOG_DIR/tus-js-install.log)"
    fi
    NODE_PATH=$IMAGELAKE_TUS_JS/node_modules node -e 'require("tus-js-client")' ||
        die "tus-js-client installed but node cannot load it"
    printf '%s\n' "$want" >"$stamp"
    log "tus-js-client ready ($(node --version)) [$(elapsed "$t0")]"
}

main() {
    local t0
    t0=$(now)
    # The venv first: it is quick and independent, and servers.sh needs both.
    [[ ${IMAGELAKE_SKIP_VENV:-0} == 1 ]] || install_venv
    [[ ${IMAGELAKE_SKIP_CHROMIUM:-0} == 1 ]] || install_chromium
    [[ ${IMAGELAKE_SKIP_POSTGRES:-0} == 1 ]] || install_postgres
    [[ ${IMAGELAKE_SKIP_HAPROXY:-0} == 1 ]] || install_haproxy
    [[ ${IMAGELAKE_SKIP_TUS_JS:-0} == 1 ]] || install_tus_js
    [[ ${IMAGELAKE_SKIP_GARAGE:-0} == 1 ]] || install_garage
    log "install.sh done [$(elapsed "$t0")]"
}

main "$@"
