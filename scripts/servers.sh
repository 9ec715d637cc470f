#!/usr/bin/env bash
# Start/stop the real servers imagelake's integration tests talk to:
#   S3:  Garage (single node, loopback, LMDB metadata, one default bucket)
#   SQS: moto_server (in-memory; state is lost when it is stopped)
#   SQL: PostgreSQL (a throwaway cluster in RUN_DIR/pg on loopback, trust auth,
#        superuser role and database "imagelake")
#
# Usage:
#   servers.sh start [RUN_DIR]   start all three, wait until they answer API calls,
#                                write RUN_DIR/env.sh, print RUN_DIR on stdout.
#                                RUN_DIR defaults to $IMAGELAKE_RUN_DIR, else a
#                                fresh mktemp -d. With IMAGELAKE_ONLY_POSTGRES=1
#                                only PostgreSQL (no Garage or venv needed).
#   servers.sh stop RUN_DIR      stop them all and delete RUN_DIR.
#   servers.sh status RUN_DIR    print whether each server process is up.
#   For outage tests (same ports, Garage and PostgreSQL keep their data):
#   servers.sh stop-s3|start-s3|restart-s3   RUN_DIR
#   servers.sh stop-sqs|start-sqs|restart-sqs RUN_DIR
#   servers.sh stop-pg|start-pg|restart-pg   RUN_DIR
#   servers.sh pause-s3|resume-s3|pause-sqs|resume-sqs RUN_DIR
#       pause = SIGSTOP: the port still accepts TCP connections but nothing
#       answers (a hang / timeout), unlike stop (connection refused).
#
# Typical use from the test entry point:
#   run_dir=$(scripts/servers.sh start)
#   trap 'scripts/servers.sh stop "$run_dir"' EXIT
#   source "$run_dir/env.sh"   # IMAGELAKE_TEST_S3_*, _SQS_*, _DATABASE_URL, ...
#
# All logging goes to stderr; server logs are RUN_DIR/garage.log, sqs.log and
# postgres.log.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SERVERS_SH=$IMAGELAKE_SCRIPTS_DIR/servers.sh
STARTUP_TIMEOUT=${IMAGELAKE_SERVER_TIMEOUT:-30}
BUCKET=${IMAGELAKE_TEST_BUCKET_NAME:-imagelake-test}
S3_REGION=garage
SQS_REGION=us-east-1
# The cluster's superuser role and the database made at start; tests create
# databases of their own next to it (CREATE DATABASE, hence the superuser).
PG_ROLE=imagelake
PG_DATABASE=imagelake
# Marker proving a directory is ours before "stop" rm -rf's it.
STATE_FILE_NAME=imagelake-servers.state

usage() {
    sed -n '2,28p' "$SERVERS_SH" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# --- process helpers ---------------------------------------------------------

# pid_alive PID: true if the process exists and is not a zombie. kill -0 alone
# would report a not-yet-reaped zombie as alive.
pid_alive() {
    local pid=$1 stat
    [[ -n $pid ]] && stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# read_pid NAME: PID recorded in RUN_DIR/NAME.pid if that process is still
# ours, else empty. Servers are started with RUN_DIR as their working
# directory (the postmaster moves into its data directory, RUN_DIR/pg), so
# checking /proc/PID/cwd guards against signalling an unrelated process that
# reused the PID.
read_pid() {
    local f=$RUN_DIR/$1.pid pid cwd=$RUN_DIR
    [[ $1 != postgres ]] || cwd=$RUN_DIR/pg
    [[ -f $f ]] || return 0
    pid=$(<"$f")
    if pid_alive "$pid" && [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$cwd" ]]; then
        echo "$pid"
    fi
}

# stop_proc NAME [SIGNAL]: SIGNAL (default TERM), wait up to 10 s for a clean
# shutdown (Garage flushes LMDB), then SIGKILL. Also resumes a paused process so
# it can handle the signal.
stop_proc() {
    local name=$1 sig=${2:-TERM} pid i
    pid=$(read_pid "$name")
    rm -f "$RUN_DIR/$name.pid"
    [[ -n $pid ]] || return 0
    kill -CONT "$pid" 2>/dev/null || true
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        pid_alive "$pid" || { log "$name stopped (pid $pid)"; return 0; }
        sleep 0.1
    done
    warn "$name (pid $pid) ignored SIG$sig for 10s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

signal_proc() {
    local name=$1 sig=$2 pid
    pid=$(read_pid "$name")
    [[ -n $pid ]] || die "$name is not running in $RUN_DIR"
    kill "-$sig" "$pid"
    log "sent SIG$sig to $name (pid $pid)"
}

# --- run dir state -----------------------------------------------------------

# load_state RUN_DIR: set RUN_DIR and the ports/keys chosen at start.
load_state() {
    [[ -n ${1:-} ]] || die "missing RUN_DIR argument"
    RUN_DIR=$(cd "$1" 2>/dev/null && pwd -P) || die "run dir $1 does not exist"
    [[ -f $RUN_DIR/$STATE_FILE_NAME ]] || die "$RUN_DIR is not a servers.sh run dir (no $STATE_FILE_NAME)"
    PG_PORT='' ONLY_POSTGRES=0 # what a run dir from before PostgreSQL lacks
    # shellcheck source=/dev/null
    source "$RUN_DIR/$STATE_FILE_NAME"
}

pick_ports() {
    local -a ports
    mapfile -t ports < <(free_port 5)
    ((${#ports[@]} == 5)) || die "could not get 5 free ports"
    S3_PORT=${ports[0]} RPC_PORT=${ports[1]} ADMIN_PORT=${ports[2]} SQS_PORT=${ports[3]}
    PG_PORT=${ports[4]}
}

write_state() {
    # %q-quoted so the file can be sourced back verbatim.
    {
        printf 'S3_PORT=%q\nRPC_PORT=%q\nADMIN_PORT=%q\nSQS_PORT=%q\nPG_PORT=%q\n' \
            "$S3_PORT" "$RPC_PORT" "$ADMIN_PORT" "$SQS_PORT" "$PG_PORT"
        printf 'ACCESS_KEY=%q\nSECRET_KEY=%q\nADMIN_TOKEN=%q\nBUCKET=%q\nONLY_POSTGRES=%q\n' \
            "$ACCESS_KEY" "$SECRET_KEY" "$ADMIN_TOKEN" "$BUCKET" "$ONLY_POSTGRES"
    } >"$RUN_DIR/$STATE_FILE_NAME"
}

write_garage_config() {
    # Single node on loopback. replication_factor=1 is required by
    # --single-node; fsync off because test data is disposable and fsync is the
    # slowest part of a PUT.
    cat >"$RUN_DIR/garage.toml" <<EOF
metadata_dir = "$RUN_DIR/garage/meta"
data_dir = "$RUN_DIR/garage/data"
db_engine = "lmdb"
metadata_fsync = false
data_fsync = false
replication_factor = 1

rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$(random_hex 32)"

[s3_api]
s3_region = "$S3_REGION"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
admin_token = "$ADMIN_TOKEN"
EOF
    chmod 600 "$RUN_DIR/garage.toml" # it holds the rpc secret
}

# write_env FILE: everything a test needs; sourced by the test entry point.
# Without PostgreSQL (IMAGELAKE_ONLY_POSTGRES=1: without S3 and SQS) those
# variables are left out, so a test needing them fails on the missing variable
# rather than on a refused connection.
write_env() {
    local f=$1 q_ctl q_dir
    q_ctl=$(printf '%q' "$SERVERS_SH")
    q_dir=$(printf '%q' "$RUN_DIR")
    {
        echo "# Written by scripts/servers.sh; source it."
        printf 'export %s=%q\n' \
            IMAGELAKE_TEST_RUN_DIR "$RUN_DIR" \
            IMAGELAKE_TEST_SERVERS_CTL "$SERVERS_SH"
        [[ -z $PG_PORT ]] || printf 'export %s=%q\n' \
            IMAGELAKE_TEST_DATABASE_URL "postgres://$PG_ROLE@127.0.0.1:$PG_PORT/$PG_DATABASE" \
            IMAGELAKE_TEST_PG_BINDIR "$(pg_bindir || true)" \
            IMAGELAKE_TEST_PG_PID "$(read_pid postgres)" \
            IMAGELAKE_TEST_PG_PID_FILE "$RUN_DIR/postgres.pid" \
            IMAGELAKE_TEST_PG_STOP_CMD "$q_ctl stop-pg $q_dir" \
            IMAGELAKE_TEST_PG_START_CMD "$q_ctl start-pg $q_dir" \
            IMAGELAKE_TEST_PG_RESTART_CMD "$q_ctl restart-pg $q_dir"
        ((ONLY_POSTGRES)) || printf 'export %s=%q\n' \
            IMAGELAKE_TEST_S3_ENDPOINT "http://127.0.0.1:$S3_PORT" \
            IMAGELAKE_TEST_S3_BUCKET "$BUCKET" \
            IMAGELAKE_TEST_S3_REGION "$S3_REGION" \
            IMAGELAKE_TEST_S3_ACCESS_KEY "$ACCESS_KEY" \
            IMAGELAKE_TEST_S3_SECRET_KEY "$SECRET_KEY" \
            IMAGELAKE_TEST_GARAGE_ADMIN_ENDPOINT "http://127.0.0.1:$ADMIN_PORT" \
            IMAGELAKE_TEST_GARAGE_ADMIN_TOKEN "$ADMIN_TOKEN" \
            IMAGELAKE_TEST_GARAGE_PID "$(read_pid garage)" \
            IMAGELAKE_TEST_GARAGE_PID_FILE "$RUN_DIR/garage.pid" \
            IMAGELAKE_TEST_SQS_ENDPOINT "http://127.0.0.1:$SQS_PORT" \
            IMAGELAKE_TEST_SQS_REGION "$SQS_REGION" \
            IMAGELAKE_TEST_SQS_ACCESS_KEY "test" \
            IMAGELAKE_TEST_SQS_SECRET_KEY "test" \
            IMAGELAKE_TEST_SQS_PID "$(read_pid sqs)" \
            IMAGELAKE_TEST_SQS_PID_FILE "$RUN_DIR/sqs.pid" \
            IMAGELAKE_TEST_S3_STOP_CMD "$q_ctl stop-s3 $q_dir" \
            IMAGELAKE_TEST_S3_START_CMD "$q_ctl start-s3 $q_dir" \
            IMAGELAKE_TEST_S3_RESTART_CMD "$q_ctl restart-s3 $q_dir" \
            IMAGELAKE_TEST_SQS_STOP_CMD "$q_ctl stop-sqs $q_dir" \
            IMAGELAKE_TEST_SQS_START_CMD "$q_ctl start-sqs $q_dir" \
            IMAGELAKE_TEST_SQS_RESTART_CMD "$q_ctl restart-sqs $q_dir"
    } >"$f.tmp"
    mv "$f.tmp" "$f" # atomic: a reader never sees a half-written file
}

# --- servers -----------------------------------------------------------------

# Servers get </dev/null and their own log files so that a caller doing
# run_dir=$(servers.sh start) is not kept waiting on an inherited stdout.
launch_garage() {
    [[ -z $(read_pid garage) ]] || die "garage already running in $RUN_DIR"
    [[ -x $IMAGELAKE_GARAGE_BIN ]] || die "garage not installed at $IMAGELAKE_GARAGE_BIN; run scripts/install.sh"
    mkdir -p "$RUN_DIR/garage/meta" "$RUN_DIR/garage/data"
    # --single-node makes the layout, --default-bucket creates the key and the
    # bucket from the env vars; both are no-ops on a restart over the same data.
    # cwd = RUN_DIR marks the process as ours (see read_pid); exec keeps the
    # PID so the recorded one is garage's own.
    (
        cd "$RUN_DIR"
        GARAGE_DEFAULT_ACCESS_KEY=$ACCESS_KEY \
            GARAGE_DEFAULT_SECRET_KEY=$SECRET_KEY \
            GARAGE_DEFAULT_BUCKET=$BUCKET \
            RUST_LOG=${IMAGELAKE_GARAGE_RUST_LOG:-garage=info} \
            NO_COLOR=1 \
            exec "$IMAGELAKE_GARAGE_BIN" -c "$RUN_DIR/garage.toml" server --single-node --default-bucket \
            </dev/null >>"$RUN_DIR/garage.log" 2>&1
    ) &
    echo $! >"$RUN_DIR/garage.pid"
}

launch_sqs() {
    [[ -z $(read_pid sqs) ]] || die "sqs already running in $RUN_DIR"
    [[ -x $IMAGELAKE_VENV/bin/moto_server ]] || die "moto_server not installed in $IMAGELAKE_VENV; run scripts/install.sh"
    # cwd = RUN_DIR marks the process as ours (see read_pid); exec keeps the
    # PID so the recorded one is moto's own. moto keeps all state in memory.
    (
        cd "$RUN_DIR"
        NO_COLOR=1 exec "$IMAGELAKE_VENV/bin/moto_server" -H 127.0.0.1 -p "$SQS_PORT" \
            </dev/null >>"$RUN_DIR/sqs.log" 2>&1
    ) &
    echo $! >"$RUN_DIR/sqs.pid"
}

# --- postgresql ----------------------------------------------------------------
# Run with pg_ctl rather than launched like the others: pg_ctl -w knows when the
# server accepts connections, and the postmaster writes its own PID file
# (RUN_DIR/pg/postmaster.pid, copied to RUN_DIR/postgres.pid for read_pid).
# The steps return 1 instead of dying so that cmd_start can stop the others.

# as_pg CMD...: run CMD as the user owning the cluster. PostgreSQL refuses to run
# as root, so root runs it as the package's "postgres" system user (init_pg lets
# that user into RUN_DIR), anyone else as themselves. From RUN_DIR: the
# PostgreSQL tools fail when they cannot read their working directory.
as_pg() {
    if ((EUID == 0)); then
        (cd "$RUN_DIR" && exec runuser -u postgres -- "$@")
    else
        (cd "$RUN_DIR" && exec "$@")
    fi
}

# pg_fail MESSAGE: log MESSAGE and the end of postgres.log; returns 1.
pg_fail() {
    printf '[imagelake %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
    if [[ -s $RUN_DIR/postgres.log ]]; then
        printf '\n--- last 30 lines of %s ---\n' "$RUN_DIR/postgres.log" >&2
        tail -n 30 "$RUN_DIR/postgres.log" >&2 || true
    fi
    return 1
}

# pg_sql SQL: run SQL as $PG_ROLE over TCP in the maintenance database "postgres";
# prints the rows unaligned, errors go to postgres.log.
pg_sql() {
    "$(pg_bindir)/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$PG_PORT" -U "$PG_ROLE" -d postgres -c "$1" 2>>"$RUN_DIR/postgres.log"
}

# init_pg BINDIR: a new cluster in RUN_DIR/pg (first start only): superuser
# $PG_ROLE, UTF8, trust auth (loopback only, throwaway data), its unix socket in
# RUN_DIR/pg-socket, max_connections for many test servers with a pool each.
# --no-sync only skips flushing initdb's own files (~2 s); the server runs with
# fsync on, the default.
init_pg() {
    local bin=$1 sock=$RUN_DIR/pg-socket
    # sun_path holds 107 bytes; the socket is $sock/.s.PGSQL.$PG_PORT.
    ((${#sock} <= 90)) || { pg_fail "run dir path too long for a unix socket: $RUN_DIR"; return 1; }
    { mkdir -p "$RUN_DIR/pg" "$sock" && chmod 700 "$RUN_DIR/pg" && touch "$RUN_DIR/postgres.log"; } ||
        { pg_fail "cannot create $RUN_DIR/pg"; return 1; }
    if ((EUID == 0)); then
        getent passwd postgres >/dev/null ||
            { pg_fail "no 'postgres' user to run PostgreSQL as (root cannot); run scripts/install.sh"; return 1; }
        # RUN_DIR (0700 from mktemp) becomes traversable, not listable, by the
        # postgres group only; the server's own files belong to postgres.
        { chgrp postgres "$RUN_DIR" && chmod g+x "$RUN_DIR" &&
            chown postgres: "$RUN_DIR/pg" "$sock" "$RUN_DIR/postgres.log"; } ||
            { pg_fail "cannot hand $RUN_DIR/pg to user postgres"; return 1; }
    fi
    as_pg test -w "$RUN_DIR/pg" 2>/dev/null ||
        { pg_fail "user postgres cannot reach $RUN_DIR/pg (a parent directory is closed to it?)"; return 1; }
    as_pg "$bin/initdb" -D "$RUN_DIR/pg" -U "$PG_ROLE" -E UTF8 --locale=C.UTF-8 \
        --auth=trust --no-sync </dev/null >>"$RUN_DIR/postgres.log" 2>&1 ||
        { pg_fail "initdb failed"; return 1; }
    cat >>"$RUN_DIR/pg/postgresql.conf" <<CONF || { pg_fail "cannot write $RUN_DIR/pg/postgresql.conf"; return 1; }

# --- imagelake test cluster (scripts/servers.sh) ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '${sock//\'/\'\'}'
max_connections = 300
CONF
}

# record_pg_pid: copy the postmaster's PID (first line of postmaster.pid) to
# RUN_DIR/postgres.pid, the file read_pid and the tests read.
record_pg_pid() {
    local pid
    if [[ -f $RUN_DIR/pg/postmaster.pid ]] && read -r pid <"$RUN_DIR/pg/postmaster.pid"; then
        echo "$pid" >"$RUN_DIR/postgres.pid"
    fi
}

# start_pg: initdb on the first start, then start the server (a restart reuses
# the port and the data), wait until it accepts TCP connections and create
# $PG_DATABASE if missing. Server log: RUN_DIR/postgres.log.
start_pg() {
    local bin t0 pid
    t0=$(now)
    bin=$(pg_bindir) ||
        { pg_fail "postgresql not installed (no /usr/lib/postgresql/*/bin/initdb); run scripts/install.sh"; return 1; }
    [[ -z $(read_pid postgres) ]] || { pg_fail "postgres already running in $RUN_DIR"; return 1; }
    if [[ ! -f $RUN_DIR/pg/PG_VERSION ]]; then
        init_pg "$bin" || return 1
    fi
    # -w: return once the server accepts connections (fail after the timeout);
    # -s: print errors only.
    as_pg "$bin/pg_ctl" start -w -s -t "$STARTUP_TIMEOUT" -D "$RUN_DIR/pg" -l "$RUN_DIR/postgres.log" \
        </dev/null >&2 ||
        { pg_fail "postgres did not start (timeout ${STARTUP_TIMEOUT}s)"; return 1; }
    record_pg_pid
    pid=$(read_pid postgres)
    [[ -n $pid ]] || { pg_fail "postgres started but $RUN_DIR/pg/postmaster.pid names no live postmaster"; return 1; }
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_ROLE" -d postgres -t 5 ||
        { pg_fail "postgres does not accept TCP connections on 127.0.0.1:$PG_PORT"; return 1; }
    if [[ -z $(pg_sql "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'") ]]; then
        pg_sql "CREATE DATABASE $PG_DATABASE" || { pg_fail "CREATE DATABASE $PG_DATABASE failed"; return 1; }
    fi
    log "postgres ready on 127.0.0.1:$PG_PORT (pid $pid) [$(elapsed "$t0")]"
}

# stop_pg: fast shutdown (disconnects the clients, checkpoints) with pg_ctl; if
# that fails, SIGINT (the same fast shutdown), then SIGKILL, via stop_proc.
stop_pg() {
    local bin pid i
    [[ -n $(read_pid postgres) ]] || record_pg_pid # e.g. after a half-done start
    pid=$(read_pid postgres)
    if [[ -z $pid ]]; then
        rm -f "$RUN_DIR/postgres.pid"
        return 0
    fi
    if bin=$(pg_bindir) && as_pg "$bin/pg_ctl" stop -w -s -t 10 -m fast -D "$RUN_DIR/pg" </dev/null >&2; then
        # pg_ctl returns when postmaster.pid is gone, just before the process exits.
        for ((i = 0; i < 50; i++)); do
            pid_alive "$pid" || { rm -f "$RUN_DIR/postgres.pid"; log "postgres stopped (pid $pid)"; return 0; }
            sleep 0.1
        done
    fi
    warn "pg_ctl stop failed (log: $RUN_DIR/postgres.log); signalling postgres (pid $pid)"
    stop_proc postgres INT
}

# wait_ready SERVICE...: block until the services answer real API calls.
wait_ready() {
    local t0 rc=0
    t0=$(now)
    write_env "$RUN_DIR/env.sh"
    (
        # shellcheck source=/dev/null
        source "$RUN_DIR/env.sh"
        exec "$IMAGELAKE_PYTHON" "$IMAGELAKE_SCRIPTS_DIR/wait-ready.py" "$STARTUP_TIMEOUT" "$@"
    ) || rc=$?
    if ((rc != 0)); then
        local s log_file
        for s in "$@"; do
            log_file=$RUN_DIR/$([[ $s == s3 ]] && echo garage || echo sqs).log
            printf '\n--- last 30 lines of %s ---\n' "$log_file" >&2
            tail -n 30 "$log_file" >&2 || true
        done
        return 1
    fi
    # Rewrite env.sh: the PIDs are only final once the servers run.
    write_env "$RUN_DIR/env.sh"
    log "ready: $* [$(elapsed "$t0")]"
}

# --- commands ----------------------------------------------------------------

cmd_start() {
    local t0 created=0
    t0=$(now)
    RUN_DIR=${1:-${IMAGELAKE_RUN_DIR:-}}
    if [[ -z $RUN_DIR ]]; then
        RUN_DIR=$(cd "$(mktemp -d "${TMPDIR:-/tmp}/imagelake-servers.XXXXXX")" && pwd -P)
        created=1
    else
        mkdir -p "$RUN_DIR"
        RUN_DIR=$(cd "$RUN_DIR" && pwd -P)
        [[ ! -f $RUN_DIR/$STATE_FILE_NAME ]] || die "$RUN_DIR already holds servers; stop them first"
    fi

    pick_ports
    ACCESS_KEY=GK$(random_hex 12)
    SECRET_KEY=$(random_hex 32)
    ADMIN_TOKEN=$(random_hex 32)
    ONLY_POSTGRES=0
    [[ ${IMAGELAKE_ONLY_POSTGRES:-0} != 1 ]] || ONLY_POSTGRES=1
    write_state

    # Launch Garage and moto, set PostgreSQL up while they boot, then wait on
    # them: the startups overlap.
    if ((!ONLY_POSTGRES)); then
        write_garage_config
        launch_garage
        launch_sqs
    fi
    if ! start_pg || { ((!ONLY_POSTGRES)) && ! wait_ready s3 sqs; }; then
        stop_proc garage
        stop_proc sqs
        stop_pg
        if ((created)); then rm -rf "$RUN_DIR"; fi
        die "test servers did not come up (timeout ${STARTUP_TIMEOUT}s; server logs above)"
    fi
    write_env "$RUN_DIR/env.sh"
    if ((ONLY_POSTGRES)); then
        log "postgres up in $RUN_DIR (pg :$PG_PORT; no s3/sqs: IMAGELAKE_ONLY_POSTGRES=1) [$(elapsed "$t0")]"
    else
        log "servers up in $RUN_DIR (s3 :$S3_PORT, sqs :$SQS_PORT, pg :$PG_PORT) [$(elapsed "$t0")]"
    fi
    echo "$RUN_DIR"
}

cmd_stop() {
    load_state "${1:-}"
    stop_proc garage
    stop_proc sqs
    stop_pg
    rm -rf "$RUN_DIR"
    log "removed $RUN_DIR"
}

cmd_status() {
    load_state "${1:-}"
    local name pid rc=0 names=(garage sqs postgres)
    if ((ONLY_POSTGRES)); then names=(postgres); fi
    if [[ -z $PG_PORT ]]; then names=(garage sqs); fi # a run dir from before PostgreSQL
    for name in "${names[@]}"; do
        pid=$(read_pid "$name")
        if [[ -n $pid ]]; then echo "$name: running (pid $pid)"; else echo "$name: stopped"; rc=1; fi
    done
    return "$rc"
}

main() {
    local cmd=${1:-}
    shift || true
    case $cmd in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    # Separate statements, not && chains: set -e is suspended inside && lists,
    # including in the functions they call.
    stop-s3 | stop-sqs | start-s3 | start-sqs | restart-s3 | restart-sqs)
        local action=${cmd%-*} service=${cmd##*-} proc
        proc=$([[ $service == s3 ]] && echo garage || echo sqs)
        load_state "${1:-}"
        if [[ $action != start ]]; then stop_proc "$proc"; fi
        if [[ $action == stop ]]; then
            write_env "$RUN_DIR/env.sh"
        else
            "launch_$proc"
            wait_ready "$service" || die "$service did not come back (timeout ${STARTUP_TIMEOUT}s; log above)"
        fi
        ;;
    stop-pg | start-pg | restart-pg)
        load_state "${1:-}"
        [[ -n $PG_PORT ]] || die "$RUN_DIR has no PostgreSQL (started by an older servers.sh)"
        if [[ $cmd != start-pg ]]; then stop_pg; fi
        if [[ $cmd != stop-pg ]]; then
            start_pg || die "postgres did not come back (log above)"
        fi
        write_env "$RUN_DIR/env.sh"
        ;;
    pause-s3 | resume-s3 | pause-sqs | resume-sqs)
        local sig service=${cmd##*-}
        sig=$([[ ${cmd%-*} == pause ]] && echo STOP || echo CONT)
        load_state "${1:-}"
        signal_proc "$([[ $service == s3 ]] && echo garage || echo sqs)" "$sig"
        ;;
    *) usage ;;
    esac
}

main "$@"
