#!/usr/bin/env bash
# A test deployment of imagelake as separate processes on the servers of
# scripts/servers.sh (Garage, the SQS server, PostgreSQL): two `imagelake ingest`
# behind HAProxy (health checks on /readyz), two `processor`, one `reporting` and two
# `lifecycle`, each with its own config file, data_dir and log under DIR.
#
# Usage:
#   deploy.sh start DIR [SERVERS_RUN_DIR]   start everything, wait until every process
#                    and the load balancer are ready, write DIR/deploy.env, print the
#                    load balancer's URL on stdout. The servers come from the
#                    environment (IMAGELAKE_TEST_*, as exported by servers.sh's env.sh),
#                    else from SERVERS_RUN_DIR/env.sh.
#   deploy.sh single DIR [SERVERS_RUN_DIR]   the same backends and configuration with one
#                    `imagelake serve` (every service in one process, no load balancer):
#                    the single-process layout, for comparisons (scripts/bench-load.sh).
#   deploy.sh stop DIR                 stop every process (SIGTERM, then SIGKILL after
#                    the grace period) and HAProxy; DIR is kept (logs).
#   deploy.sh start-one DIR NAME       (re)start one process (ingest-1, processor-2, ...)
#                    on its config, and wait until its /readyz answers 200.
#   deploy.sh stop-one DIR NAME [SIG]  send SIG (default TERM) and wait for the exit.
#   deploy.sh status DIR               print each process, its pid and whether it is up.
#
# Knobs (start): IMAGELAKE_BIN (default $CARGO_TARGET_DIR/release/imagelake),
#   DEPLOY_LIFECYCLE_SCHEDULE (one cron for every lifecycle job, e.g. "* * * * * *"),
#   DEPLOY_LEASE_TTL (default 5m), DEPLOY_GRACE (shutdown_grace, default 30s),
#   DEPLOY_DELAY (shutdown_delay, default 3s),
#   DEPLOY_VISIBILITY (queue visibility_timeout, default 60s).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MULTI=(ingest-1 ingest-2 processor-1 processor-2 reporting lifecycle-1 lifecycle-2)

usage() {
    sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# role NAME: the subcommand of a process name (ingest-1 -> ingest).
role() { echo "${1%-[0-9]*}"; }

# pid_of DIR NAME: the process's pid if it is alive, else empty.
pid_of() {
    local f=$1/$2/pid pid
    [[ -f $f ]] || return 0
    pid=$(<"$f")
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
        echo "$pid"
    fi
}

# wait_ready URL TIMEOUT: until GET URL/readyz answers 200.
wait_ready() {
    local url=$1 deadline=$((SECONDS + $2))
    until curl -fsS -o /dev/null --max-time 3 "$url/readyz" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# servers_env [RUN_DIR]: make sure the IMAGELAKE_TEST_* variables are set.
servers_env() {
    if [[ -z ${IMAGELAKE_TEST_S3_ENDPOINT:-} ]]; then
        [[ -n ${1:-} && -f $1/env.sh ]] || die "no servers: source servers.sh's env.sh, or pass its RUN_DIR"
        # shellcheck disable=SC1091
        source "$1/env.sh"
    fi
    local v
    for v in IMAGELAKE_TEST_S3_ENDPOINT IMAGELAKE_TEST_SQS_ENDPOINT IMAGELAKE_TEST_DATABASE_URL; do
        [[ -n ${!v:-} ]] || die "$v is not set (servers.sh start, without IMAGELAKE_ONLY_POSTGRES)"
    done
}

# make_queues NAME: creates NAME and NAME-dlq on the SQS server, prints both URLs.
make_queues() {
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "$IMAGELAKE_PYTHON" - "$1" <<'PY'
import os, sys, boto3
sqs = boto3.client("sqs", endpoint_url=os.environ["IMAGELAKE_TEST_SQS_ENDPOINT"],
                   region_name=os.environ["IMAGELAKE_TEST_SQS_REGION"])
print(sqs.create_queue(QueueName=sys.argv[1])["QueueUrl"])
print(sqs.create_queue(QueueName=sys.argv[1] + "-dlq")["QueueUrl"])
PY
}

# make_database NAME: creates a database next to the servers' one, prints its URL.
make_database() {
    "$IMAGELAKE_TEST_PG_BINDIR/psql" -q -v ON_ERROR_STOP=1 "$IMAGELAKE_TEST_DATABASE_URL" \
        -c "CREATE DATABASE $1" >/dev/null
    echo "${IMAGELAKE_TEST_DATABASE_URL%/*}/$1"
}

# key_entry KEY CUSTOMER ROLE: a [[keys]] table.
key_entry() {
    printf '[[keys]]\nsha256 = "%s"\ncustomer = "%s"\nrole = "%s"\n' \
        "$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)" "$2" "$3"
}

# write_config DIR NAME PORT: DIR/NAME/config.toml, from DIR/common.toml.
write_config() {
    local dir=$1 name=$2 port=$3
    mkdir -p "$dir/$name/data"
    {
        echo "# imagelake $(role "$name") ($name), written by scripts/deploy.sh"
        printf 'listen = "127.0.0.1:%s"\n' "$port"
        printf 'data_dir = "%s"\n' "$dir/$name/data"
        cat "$dir/common.toml"
    } >"$dir/$name/config.toml"
}

# write_common DIR: the sections every process shares (backends, keys, lifecycle).
# shellcheck disable=SC2153 # the IMAGELAKE_TEST_* variables come from servers.sh's env.sh
write_common() {
    local dir=$1 id queues db
    id=deploy$(random_hex 6)
    mapfile -t queues < <(make_queues "$id-jobs")
    db=$(make_database "$id")
    UPLOADER_KEY=ilk_$(random_hex 16) ADMIN_KEY=ilk_$(random_hex 16) ANALYST_KEY=ilk_$(random_hex 16)
    DATABASE_URL=$db S3_PREFIX=$id QUEUE_URL=${queues[0]}
    local schedule=${DEPLOY_LIFECYCLE_SCHEDULE:-}
    {
        printf 'shutdown_grace = "%s"\n' "${DEPLOY_GRACE:-30s}"
        # Out of HAProxy's rotation (checks every 1 s, down after 2) before the listener closes.
        printf 'shutdown_delay = "%s"\n\n' "${DEPLOY_DELAY:-3s}"
        cat <<TOML
# The tests' and the benchmark's one uploader key stands for many users.
[http]
rate_limit = 0

[ingest]
max_uploads_per_key = 1024

[storage]
backend = "s3"
bucket = "$IMAGELAKE_TEST_S3_BUCKET"
endpoint = "$IMAGELAKE_TEST_S3_ENDPOINT"
region = "$IMAGELAKE_TEST_S3_REGION"
prefix = "$id"
force_path_style = true

[queue]
backend = "sqs"
queue_url = "${queues[0]}"
dead_letter_url = "${queues[1]}"
endpoint = "$IMAGELAKE_TEST_SQS_ENDPOINT"
region = "$IMAGELAKE_TEST_SQS_REGION"
visibility_timeout = "${DEPLOY_VISIBILITY:-60s}"
wait = "5s"

[database]
url = "$db"
max_connections = 16

[webhooks]
secret = "$(random_hex 32)"

[lifecycle]
lease_ttl = "${DEPLOY_LEASE_TTL:-5m}"
TOML
        if [[ -n $schedule ]]; then
            local job
            for job in expire usage compact abort_multipart reconcile; do
                printf '%s = "%s"\n' "$job" "$schedule"
            done
        fi
        echo
        key_entry "$UPLOADER_KEY" deploy uploader
        key_entry "$ANALYST_KEY" deploy analyst
        echo "all_customers = true"
        key_entry "$ADMIN_KEY" ops admin
    } >"$dir/common.toml"
}

# write_haproxy DIR LB_PORT REPORTING_PORT INGEST_PORT...: DIR/haproxy.cfg.
write_haproxy() {
    local dir=$1 lb=$2 reporting=$3 i=0 port
    shift 3
    {
        cat <<CFG
# HAProxy for the test deployment, written by scripts/deploy.sh (see docs/deploy.md).
global
    maxconn 4096
    stats socket $dir/haproxy.sock mode 600 level admin
    log stderr format short local0 notice

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 10s
    timeout check 3s
    # A connection refused or reset by an ingest that is stopping is retried on the
    # other one. Uploads carry an Idempotency-Key, so a retried request that did reach
    # a server cannot make a second image.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend api
    bind 127.0.0.1:$lb
    acl statistics path_beg /v1/stats/ /dashboard/
    acl statistics path /dashboard
    use_backend reporting if statistics
    default_backend ingest

backend ingest
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 1s fall 2 rise 2
CFG
        for port in "$@"; do
            i=$((i + 1))
            printf '    server ingest-%d 127.0.0.1:%s check\n' "$i" "$port"
        done
        cat <<CFG

backend reporting
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 1s fall 2 rise 2
    server reporting 127.0.0.1:$reporting check
CFG
    } >"$dir/haproxy.cfg"
}

# start_one DIR NAME: starts the process on DIR/NAME/config.toml, waits for /readyz.
start_one() {
    local dir=$1 name=$2 bin port
    [[ -f $dir/$name/config.toml ]] || die "no process $name in $dir"
    [[ -z $(pid_of "$dir" "$name") ]] || die "$name is already running"
    bin=$(<"$dir/bin")
    port=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$dir/$name/config.toml")
    # The S3 credentials come from the environment (the AWS SDK's default chain).
    AWS_ACCESS_KEY_ID=$IMAGELAKE_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$IMAGELAKE_TEST_S3_SECRET_KEY \
        IMAGELAKE_LOG=${IMAGELAKE_LOG:-info,aws=warn} \
        "$bin" "$(role "$name")" --config "$dir/$name/config.toml" \
        </dev/null >>"$dir/$name/imagelake.log" 2>&1 &
    echo $! >"$dir/$name/pid"
    if ! wait_ready "http://127.0.0.1:$port" 60; then
        tail -n 20 "$dir/$name/imagelake.log" >&2
        die "$name did not become ready (log: $dir/$name/imagelake.log)"
    fi
}

# stop_one DIR NAME [SIGNAL]: signals the process and waits until it is gone.
stop_one() {
    local dir=$1 name=$2 sig=${3:-TERM} pid deadline
    pid=$(pid_of "$dir" "$name")
    [[ -n $pid ]] || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 60))
    while [[ -n $(pid_of "$dir" "$name") ]]; do
        if ((SECONDS >= deadline)); then
            warn "$name did not stop within 60 s of SIG$sig; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.1
    done
}

# load_env DIR: the variables deploy.env recorded (servers, keys) for the *-one commands.
load_env() {
    [[ -f $1/deploy.env ]] || die "$1 is not a deployment (no deploy.env)"
    # shellcheck disable=SC1091
    source "$1/deploy.env"
}

# cmd_start LAYOUT DIR [SERVERS_RUN_DIR]: LAYOUT is multi (the processes of MULTI behind
# HAProxy) or single (one `serve`).
cmd_start() {
    local layout=$1 dir=$2 bin ports url name i=0 processes
    servers_env "${3:-}"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [[ ! -f $dir/deploy.env ]] || die "$dir already holds a deployment (deploy.sh stop it, then remove it)"
    [[ $layout == single ]] || command -v haproxy >/dev/null || die "haproxy is not installed (scripts/install.sh)"
    bin=${IMAGELAKE_BIN:-${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}/release/imagelake}
    [[ -x $bin ]] || die "no imagelake binary at $bin (cargo build --release, or set IMAGELAKE_BIN)"
    echo "$bin" >"$dir/bin"
    if [[ $layout == single ]]; then processes=(serve); else processes=("${MULTI[@]}"); fi
    echo "${processes[*]}" >"$dir/processes"
    write_common "$dir"
    mapfile -t ports < <(free_port $((${#processes[@]} + 1)))
    for name in "${processes[@]}"; do
        write_config "$dir" "$name" "${ports[$i]}"
        i=$((i + 1))
    done
    if [[ $layout == single ]]; then url=http://127.0.0.1:${ports[0]}; else url=http://127.0.0.1:${ports[-1]}; fi
    {
        echo "# Written by scripts/deploy.sh; source it."
        printf 'export %s=%q\n' \
            IMAGELAKE_DEPLOY_DIR "$dir" \
            IMAGELAKE_DEPLOY_URL "$url" \
            IMAGELAKE_DEPLOY_KEY "$UPLOADER_KEY" \
            IMAGELAKE_DEPLOY_ADMIN_KEY "$ADMIN_KEY" \
            IMAGELAKE_DEPLOY_ANALYST_KEY "$ANALYST_KEY" \
            IMAGELAKE_DEPLOY_CUSTOMER deploy \
            IMAGELAKE_DEPLOY_DATABASE_URL "$DATABASE_URL" \
            IMAGELAKE_DEPLOY_S3_PREFIX "$S3_PREFIX" \
            IMAGELAKE_DEPLOY_QUEUE_URL "$QUEUE_URL" \
            IMAGELAKE_DEPLOY_HAPROXY_SOCKET "$dir/haproxy.sock" \
            IMAGELAKE_DEPLOY_PROCESSES "${processes[*]}"
        i=0
        for name in "${processes[@]}"; do
            printf 'export IMAGELAKE_DEPLOY_URL_%s=%q\n' "${name//-/_}" "http://127.0.0.1:${ports[$i]}"
            i=$((i + 1))
        done
        # The servers, so that the *-one commands work from a fresh shell.
        local v
        for v in "${!IMAGELAKE_TEST_@}"; do
            printf 'export %s=%q\n' "$v" "${!v}"
        done
    } >"$dir/deploy.env"
    # One at a time: the first runs the migrations (they are locked anyway).
    for name in "${processes[@]}"; do
        start_one "$dir" "$name"
    done
    if [[ $layout == multi ]]; then
        write_haproxy "$dir" "${ports[-1]}" "${ports[4]}" "${ports[0]}" "${ports[1]}"
        haproxy -f "$dir/haproxy.cfg" -db </dev/null >>"$dir/haproxy.log" 2>&1 &
        echo $! >"$dir/haproxy.pid"
        wait_ready "$url" 30 || die "HAProxy does not answer /readyz (log: $dir/haproxy.log)"
    fi
    log "deployment ready in $dir: ${processes[*]}"
    echo "$url"
}

# processes DIR: the deployment's process names.
processes() {
    [[ -f $1/processes ]] && cat "$1/processes"
}

cmd_stop() {
    local dir=$1 name pid names
    read -r -a names < <(processes "$dir") || true
    [[ -d $dir ]] || return 0
    # The load balancer first: no new requests reach a stopping ingest.
    if [[ -f $dir/haproxy.pid ]]; then
        pid=$(<"$dir/haproxy.pid")
        kill -TERM "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        rm -f "$dir/haproxy.pid"
    fi
    for name in "${names[@]}"; do
        pid=$(pid_of "$dir" "$name")
        [[ -z $pid ]] || kill -TERM "$pid" 2>/dev/null || true
    done
    for name in "${names[@]}"; do
        stop_one "$dir" "$name" TERM
    done
}

cmd_status() {
    local dir=$1 name pid names
    read -r -a names < <(processes "$dir") || true
    for name in "${names[@]}"; do
        pid=$(pid_of "$dir" "$name")
        printf '%-12s %-8s %s\n' "$name" "${pid:--}" "$([[ -n $pid ]] && echo up || echo down)"
    done
}

main() {
    (($# >= 2)) || usage
    local cmd=$1 dir=$2
    case $cmd in
        start) cmd_start multi "$dir" "${3:-}" ;;
        single) cmd_start single "$dir" "${3:-}" ;;
        stop) cmd_stop "$dir" ;;
        start-one)
            (($# == 3)) || usage
            load_env "$dir"
            start_one "$dir" "$3"
            ;;
        stop-one)
            (($# >= 3)) || usage
            stop_one "$dir" "$3" "${4:-TERM}"
            ;;
        status) cmd_status "$dir" ;;
        *) usage ;;
    esac
}

main "$@"
