#!/usr/bin/env python3
"""Wait until imagelake's test servers answer real API calls.

Usage (run with the venv's python, from scripts/servers.sh):
    wait-ready.py TIMEOUT_SECONDS SERVICE [SERVICE]   # SERVICE: s3 | sqs

Reads the endpoints/credentials from the IMAGELAKE_TEST_* environment variables
(servers.sh sources the run dir's env file first) and the server PIDs from
$IMAGELAKE_TEST_RUN_DIR/{garage,sqs}.pid.

An open TCP port is not enough: Garage accepts connections before its layout,
key and default bucket exist. So "ready" means an S3 ListObjectsV2 on the test
bucket, and an SQS ListQueues, succeeded. All services are polled in one
process so boto3 is imported once (it costs ~0.3 s).

Exits 0 when all are ready; 1 (naming the failed ones on stderr) when a server
process died or the timeout expired.
"""

import os
import sys
import time

import boto3
from botocore.config import Config

# Short timeouts and no retries: the loop below is the retry policy.
CLIENT_CONFIG = Config(
    connect_timeout=1, read_timeout=3, retries={"max_attempts": 1, "mode": "standard"}
)


def pid_alive(pid_file):
    """False when the server process is gone (or a zombie): no point waiting."""
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/stat") as f:
            # state is the field after the ")" that closes the command name
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, ValueError, IndexError):
        return False


def make_probe(service):
    env = os.environ
    run_dir = env["IMAGELAKE_TEST_RUN_DIR"]
    if service == "s3":
        client = boto3.client(
            "s3",
            endpoint_url=env["IMAGELAKE_TEST_S3_ENDPOINT"],
            region_name=env["IMAGELAKE_TEST_S3_REGION"],
            aws_access_key_id=env["IMAGELAKE_TEST_S3_ACCESS_KEY"],
            aws_secret_access_key=env["IMAGELAKE_TEST_S3_SECRET_KEY"],
            config=CLIENT_CONFIG.merge(Config(s3={"addressing_style": "path"})),
        )
        bucket = env["IMAGELAKE_TEST_S3_BUCKET"]
        return os.path.join(run_dir, "garage.pid"), lambda: client.list_objects_v2(
            Bucket=bucket, MaxKeys=1
        )
    if service == "sqs":
        client = boto3.client(
            "sqs",
            endpoint_url=env["IMAGELAKE_TEST_SQS_ENDPOINT"],
            region_name=env["IMAGELAKE_TEST_SQS_REGION"],
            aws_access_key_id=env["IMAGELAKE_TEST_SQS_ACCESS_KEY"],
            aws_secret_access_key=env["IMAGELAKE_TEST_SQS_SECRET_KEY"],
            config=CLIENT_CONFIG,
        )
        return os.path.join(run_dir, "sqs.pid"), client.list_queues
    raise SystemExit(f"unknown service {service!r} (expected s3 or sqs)")


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    timeout = float(sys.argv[1])
    pending = {s: make_probe(s) for s in sys.argv[2:]}
    last_error = {s: "not tried" for s in pending}
    start = time.monotonic()
    deadline = start + timeout
    while pending and time.monotonic() < deadline:
        for service, (pid_file, probe) in list(pending.items()):
            if not pid_alive(pid_file):
                print(f"{service}: server process exited during startup", file=sys.stderr)
                return 1
            try:
                probe()
            except Exception as e:  # any failure just means "not ready yet"
                last_error[service] = f"{type(e).__name__}: {e}"
            else:
                print(
                    f"{service}: ready after {time.monotonic() - start:.2f}s", file=sys.stderr
                )
                del pending[service]
        if pending:
            time.sleep(0.1)
    for service in pending:
        print(
            f"{service}: not ready after {timeout:.0f}s; last error: {last_error[service]}",
            file=sys.stderr,
        )
    return 1 if pending else 0


if __name__ == "__main__":
    sys.exit(main())
