#!/usr/bin/env python3
"""Self-check that the test servers are real and faithful enough for imagelake.

Usage (with the venv's python, after `source RUN_DIR/env.sh`):
    "$IMAGELAKE_PYTHON" scripts/check-servers.py [s3|sqs|pg]...
    # default: every server env.sh describes (only pg with IMAGELAKE_ONLY_POSTGRES=1,
    # which any python3 can check: boto3 is only imported for s3/sqs)

Exercises, with boto3, the S3 and SQS behaviour imagelake relies on:
  S3 (Garage): put, get, ranged get, list (prefix + pagination), 2-part
    multipart upload, delete_objects.
  SQS (moto): redrive policy to a DLQ (maxReceiveCount 2), long-poll receive,
    ApproximateReceiveCount incrementing after the visibility timeout expires,
    move to the DLQ once the count exceeds 2, change_message_visibility, delete.
and, with psql (Debian's postgresql-client), PostgreSQL through
IMAGELAKE_TEST_DATABASE_URL:
  PostgreSQL: TCP login as a superuser, UTF8, max_connections 300, fsync on,
    CREATE DATABASE per test and a connection to it, a unique violation
    (SQLSTATE 23505), 150 concurrent connections, DROP DATABASE WITH (FORCE).
and prints per-call round-trip timings. Exits non-zero on the first failure.
"""

import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

ENV = os.environ
RUN_ID = uuid.uuid4().hex[:8]  # isolates repeated runs against the same servers
# Which env.sh variable tells that a server is there (default: check those).
SERVICE_VARS = {
    "s3": "IMAGELAKE_TEST_S3_ENDPOINT",
    "sqs": "IMAGELAKE_TEST_SQS_ENDPOINT",
    "pg": "IMAGELAKE_TEST_DATABASE_URL",
}


def boto3_config(**kw):
    from botocore.config import Config

    return Config(**kw)


def s3_client():
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=ENV["IMAGELAKE_TEST_S3_ENDPOINT"],
        region_name=ENV["IMAGELAKE_TEST_S3_REGION"],
        aws_access_key_id=ENV["IMAGELAKE_TEST_S3_ACCESS_KEY"],
        aws_secret_access_key=ENV["IMAGELAKE_TEST_S3_SECRET_KEY"],
        config=boto3_config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def sqs_client():
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=ENV["IMAGELAKE_TEST_SQS_ENDPOINT"],
        region_name=ENV["IMAGELAKE_TEST_SQS_REGION"],
        aws_access_key_id=ENV.get("IMAGELAKE_TEST_SQS_ACCESS_KEY", "test"),
        aws_secret_access_key=ENV.get("IMAGELAKE_TEST_SQS_SECRET_KEY", "test"),
        config=boto3_config(retries={"max_attempts": 1}),
    )


class Checker:
    def __init__(self):
        self.passed = 0

    def check(self, name, cond, detail=""):
        if not cond:
            print(f"FAIL {name} {detail}".rstrip(), flush=True)
            sys.exit(1)
        self.passed += 1
        print(f"ok   {name} {detail}".rstrip(), flush=True)


def timed(fn, *a, **kw):
    t = time.perf_counter()
    r = fn(*a, **kw)
    return r, time.perf_counter() - t


def check_s3(c: Checker):
    s3 = s3_client()
    bucket = ENV["IMAGELAKE_TEST_S3_BUCKET"]
    prefix = f"check/{RUN_ID}/"

    body = bytes(range(256)) * 40  # 10 KiB, every byte value
    s3.put_object(Bucket=bucket, Key=prefix + "a.bin", Body=body)
    got = s3.get_object(Bucket=bucket, Key=prefix + "a.bin")
    c.check("s3 put/get round-trips bytes", got["Body"].read() == body)
    c.check("s3 ContentLength", got["ContentLength"] == len(body))
    etag = got["ETag"]

    r = s3.get_object(Bucket=bucket, Key=prefix + "a.bin", Range="bytes=100-355")
    c.check(
        "s3 ranged get",
        r["Body"].read() == body[100:356] and r["ContentRange"] == f"bytes 100-355/{len(body)}",
        r["ContentRange"],
    )
    r = s3.get_object(Bucket=bucket, Key=prefix + "a.bin", Range="bytes=-16")
    c.check("s3 suffix range", r["Body"].read() == body[-16:])

    # Conditional get: imagelake uses ETags for cache/consistency checks.
    try:
        s3.get_object(Bucket=bucket, Key=prefix + "a.bin", IfNoneMatch=etag)
        c.check("s3 If-None-Match -> 304", False)
    except s3.exceptions.ClientError as e:
        code = e.response["ResponseMetadata"]["HTTPStatusCode"]
        c.check("s3 If-None-Match -> 304", code == 304, str(code))

    try:
        s3.get_object(Bucket=bucket, Key=prefix + "missing")
        c.check("s3 missing key -> NoSuchKey", False)
    except s3.exceptions.NoSuchKey:
        c.check("s3 missing key -> NoSuchKey", True)

    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"{prefix}list/{i:02d}", Body=b"x")
    keys, token = [], None
    pages = 0
    while True:
        kw = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "list/", MaxKeys=2, **kw)
        pages += 1
        keys += [o["Key"] for o in r.get("Contents", [])]
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
    c.check(
        "s3 list_objects_v2 prefix + pagination",
        keys == [f"{prefix}list/{i:02d}" for i in range(5)] and pages == 3,
        f"{len(keys)} keys in {pages} pages",
    )
    r = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
    c.check(
        "s3 list with delimiter",
        [p["Prefix"] for p in r.get("CommonPrefixes", [])] == [prefix + "list/"]
        and [o["Key"] for o in r.get("Contents", [])] == [prefix + "a.bin"],
    )

    # Multipart: every part but the last must be >= 5 MiB, as on AWS.
    part1 = os.urandom(5 * 1024 * 1024)
    part2 = os.urandom(1234)
    key = prefix + "multi.bin"
    mpu = s3.create_multipart_upload(Bucket=bucket, Key=key)
    uid = mpu["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1, Body=part1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=2, Body=part2)["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)["Parts"]
    c.check("s3 list_parts", [p["PartNumber"] for p in parts] == [1, 2])
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    got = s3.get_object(Bucket=bucket, Key=key)
    data = got["Body"].read()
    c.check(
        "s3 multipart upload (2 parts)",
        data == part1 + part2 and got["ETag"].strip('"').endswith("-2"),
        f"{len(data)} bytes, ETag {got['ETag']}",
    )
    r = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={len(part1) - 2}-{len(part1) + 1}")
    c.check("s3 ranged get across part boundary", r["Body"].read() == part1[-2:] + part2[:2])

    # An aborted upload must leave nothing behind.
    uid2 = s3.create_multipart_upload(Bucket=bucket, Key=prefix + "aborted")["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key=prefix + "aborted", UploadId=uid2)
    r = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    c.check("s3 abort_multipart_upload", not r.get("Uploads"))

    all_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    r = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in all_keys], "Quiet": False}
    )
    left = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0)
    c.check(
        "s3 delete_objects",
        len(r.get("Deleted", [])) == len(all_keys) and not r.get("Errors") and left == 0,
        f"{len(all_keys)} deleted",
    )

    # Round-trip timing of small requests.
    small = b"y" * 1024
    puts = [timed(s3.put_object, Bucket=bucket, Key=f"{prefix}t/{i}", Body=small)[1] for i in range(20)]
    gets = [
        timed(lambda k: s3.get_object(Bucket=bucket, Key=k)["Body"].read(), f"{prefix}t/{i}")[1]
        for i in range(20)
    ]
    lists = [timed(s3.list_objects_v2, Bucket=bucket, Prefix=prefix)[1] for _ in range(10)]
    _, big_put = timed(s3.put_object, Bucket=bucket, Key=prefix + "big", Body=part1)
    s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": f"{prefix}t/{i}"} for i in range(20)] + [{"Key": prefix + "big"}]},
    )
    return {
        "s3 put 1KiB": puts,
        "s3 get 1KiB": gets,
        "s3 list": lists,
        "s3 put 5MiB": [big_put],
    }


def receive(sqs, url, wait=0, vis=None):
    kw = {"VisibilityTimeout": vis} if vis is not None else {}
    r = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=1,
        WaitTimeSeconds=wait,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
        **kw,
    )
    return r.get("Messages", [])


def check_sqs(c: Checker):
    sqs = sqs_client()
    dlq_url = sqs.create_queue(QueueName=f"check-{RUN_ID}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    url = sqs.create_queue(
        QueueName=f"check-{RUN_ID}",
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"2"}}',
        },
    )["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    c.check("sqs create queue with RedrivePolicy", "RedrivePolicy" in attrs, attrs.get("RedrivePolicy", ""))
    c.check(
        "sqs queue url points at the test endpoint",
        url.startswith(ENV["IMAGELAKE_TEST_SQS_ENDPOINT"]),
        url,
    )

    # Long poll on an empty queue must actually wait (not return at once).
    t = time.perf_counter()
    msgs = receive(sqs, url, wait=1)
    waited = time.perf_counter() - t
    c.check("sqs long poll on empty queue waits", not msgs and waited >= 0.9, f"{waited:.2f}s")

    # Long poll must return early when a message arrives mid-wait (this also
    # proves the server handles concurrent requests).
    threading.Timer(0.5, lambda: sqs_client().send_message(QueueUrl=url, MessageBody="early")).start()
    t = time.perf_counter()
    msgs = receive(sqs, url, wait=5)
    waited = time.perf_counter() - t
    c.check(
        "sqs long poll returns when a message arrives",
        len(msgs) == 1 and msgs[0]["Body"] == "early" and waited < 4,
        f"{waited:.2f}s",
    )
    sqs.delete_message(QueueUrl=url, ReceiptHandle=msgs[0]["ReceiptHandle"])

    sqs.send_message(QueueUrl=url, MessageBody="poison", MessageAttributes={
        "kind": {"DataType": "String", "StringValue": "test"}})
    m1 = receive(sqs, url, wait=2)
    c.check(
        "sqs receive #1 (ApproximateReceiveCount=1)",
        len(m1) == 1 and m1[0]["Attributes"]["ApproximateReceiveCount"] == "1",
    )
    c.check("sqs invisible while in flight", receive(sqs, url) == [])
    time.sleep(1.2)  # VisibilityTimeout=1 expires
    m2 = receive(sqs, url, wait=2)
    c.check(
        "sqs receive #2 after visibility timeout (count=2)",
        len(m2) == 1
        and m2[0]["MessageId"] == m1[0]["MessageId"]
        and m2[0]["Attributes"]["ApproximateReceiveCount"] == "2"
        and m2[0]["ReceiptHandle"] != m1[0]["ReceiptHandle"],
    )
    time.sleep(1.2)
    t = time.perf_counter()
    m3 = receive(sqs, url, wait=1)
    c.check(
        "sqs 3rd receive exceeds maxReceiveCount -> not delivered from source",
        m3 == [],
        f"got {len(m3)} message(s) in {time.perf_counter() - t:.2f}s",
    )
    d = receive(sqs, dlq_url, wait=2)
    c.check(
        "sqs message moved to DLQ",
        len(d) == 1 and d[0]["MessageId"] == m1[0]["MessageId"] and d[0]["Body"] == "poison",
        f"DLQ receive count {d[0]['Attributes']['ApproximateReceiveCount'] if d else '-'}",
    )
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=d[0]["ReceiptHandle"])

    # change_message_visibility: extend, then release early with 0.
    sqs.send_message(QueueUrl=url, MessageBody="cmv")
    m = receive(sqs, url, wait=2)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m[0]["ReceiptHandle"], VisibilityTimeout=5)
    time.sleep(1.3)
    c.check("sqs change_message_visibility extends", receive(sqs, url) == [])
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m[0]["ReceiptHandle"], VisibilityTimeout=0)
    m = receive(sqs, url, wait=1, vis=30)
    c.check(
        "sqs change_message_visibility 0 releases",
        len(m) == 1 and m[0]["Attributes"]["ApproximateReceiveCount"] == "2",
    )
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m[0]["ReceiptHandle"])
    a = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    c.check(
        "sqs delete_message",
        a["ApproximateNumberOfMessages"] == "0" and a["ApproximateNumberOfMessagesNotVisible"] == "0",
        str(a),
    )

    # Batch ops are what a pipeline uses at volume.
    r = sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"b{i}"} for i in range(10)]
    )
    c.check("sqs send_message_batch", len(r.get("Successful", [])) == 10)
    got = []
    for _ in range(5):
        got += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
        if len(got) >= 10:
            break
    r = sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
    )
    c.check("sqs receive 10 + delete_message_batch", len(got) == 10 and len(r.get("Successful", [])) == 10)

    sends = [timed(sqs.send_message, QueueUrl=url, MessageBody="t")[1] for _ in range(20)]
    recvs = []
    for _ in range(20):
        (msgs, dt) = timed(receive, sqs, url)
        recvs.append(dt)
        if msgs:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=msgs[0]["ReceiptHandle"])
    sqs.delete_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=dlq_url)
    return {"sqs send": sends, "sqs receive": recvs}


PSQL = os.path.join(ENV.get("IMAGELAKE_TEST_PG_BINDIR", ""), "psql")
if not os.access(PSQL, os.X_OK):
    PSQL = shutil.which("psql") or "psql"


def psql_cmd(url, sql):
    # -X: no ~/.psqlrc; unaligned tuples only; stop (exit 3) on the first error;
    # VERBOSITY verbose puts the SQLSTATE in the error text.
    return [PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose",
            "-d", url, "-c", sql]


def psql(url, sql):
    """Rows of SQL's result as a list of "|"-joined lines; raises on any error."""
    r = subprocess.run(psql_cmd(url, sql), capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed ({r.returncode}) on {sql!r}: {r.stderr.strip()}")
    return r.stdout.splitlines()


def with_database(url, name):
    """URL with its database (the path) replaced by NAME."""
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path="/" + name))


def check_pg(c: Checker):
    url = ENV["IMAGELAKE_TEST_DATABASE_URL"]
    u = urllib.parse.urlsplit(url)
    (row,) = psql(
        url,
        "SELECT current_user, current_database(), inet_server_addr(), inet_server_port(),"
        " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
    )
    c.check(
        "pg TCP login as a superuser",
        row == f"{u.username}|{u.path[1:]}|127.0.0.1|{u.port}|t",
        f"{url} -> {row}",
    )
    settings = dict(
        line.split("|", 1)
        for line in psql(
            url,
            "SELECT name, setting FROM pg_settings WHERE name IN"
            " ('server_encoding', 'max_connections', 'fsync', 'listen_addresses', 'server_version')",
        )
    )
    c.check(
        "pg settings (UTF8, max_connections 300, fsync on, loopback only)",
        settings.get("server_encoding") == "UTF8"
        and settings.get("max_connections") == "300"
        and settings.get("fsync") == "on"
        and settings.get("listen_addresses") == "127.0.0.1",
        f"PostgreSQL {settings.get('server_version')}",
    )

    # What every test does: a fresh database of its own, through the same URL.
    db = f"check_{RUN_ID}"
    _, create_t = timed(psql, url, f"CREATE DATABASE {db}")
    db_url = with_database(url, db)
    rows = psql(
        db_url,
        "CREATE TABLE t (id bigint PRIMARY KEY, name text NOT NULL, at timestamptz, doc jsonb);"
        "INSERT INTO t VALUES (1, 'café ✓ 画像', '2024-02-29 12:34:56.789+00', '{\"k\": [1, 2]}');"
        "SELECT id, name, at AT TIME ZONE 'UTC', doc->'k'->>1, current_database() FROM t",
    )
    c.check(
        "pg CREATE DATABASE + connect to it + UTF-8 row round-trip",
        rows == [f"1|café ✓ 画像|2024-02-29 12:34:56.789|2|{db}"],
        f"{create_t * 1000:.0f} ms to create (psql included)",
    )
    try:
        psql(db_url, "INSERT INTO t (id, name) VALUES (1, 'again')")
        c.check("pg unique violation -> SQLSTATE 23505", False)
    except RuntimeError as e:
        c.check("pg unique violation -> SQLSTATE 23505", "23505" in str(e))

    # Many test servers with a pool each: more connections than the default 100.
    n = 150
    procs = [
        subprocess.Popen(psql_cmd(db_url, "SELECT pg_sleep(3)"), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    peak, deadline = 0, time.monotonic() + 20
    while time.monotonic() < deadline and peak < n:
        (count,) = psql(url, f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'")
        peak = max(peak, int(count))
        time.sleep(0.2)
    errors = [p.communicate()[1].strip() for p in procs if p.wait() != 0]
    c.check(
        f"pg {n} concurrent connections",
        peak >= n and not errors,
        f"peak {peak}" + (f", {len(errors)} failed: {errors[0]}" if errors else ""),
    )

    # A test's connection pool may still be open when its database is dropped.
    holder = subprocess.Popen(psql_cmd(db_url, "SELECT pg_sleep(30)"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    _, drop_t = timed(psql, url, f"DROP DATABASE {db} WITH (FORCE)")
    holder.wait(timeout=10)
    left = psql(url, f"SELECT 1 FROM pg_database WHERE datname = '{db}'")
    c.check("pg DROP DATABASE WITH (FORCE) with a client connected", left == [],
            f"{drop_t * 1000:.0f} ms")

    # Round trips, each including a psql process and a TCP login (as a pool would not).
    selects = [timed(psql, url, "SELECT 1")[1] for _ in range(10)]
    creates, drops = [], []
    for i in range(5):
        creates.append(timed(psql, url, f"CREATE DATABASE {db}_{i}")[1])
        drops.append(timed(psql, url, f"DROP DATABASE {db}_{i}")[1])
    return {
        "pg psql select 1": selects,
        "pg create db": creates,
        "pg drop db": drops,
    }


def main():
    only = sys.argv[1:] or [s for s, var in SERVICE_VARS.items() if var in ENV]
    if not only:
        raise SystemExit("no test servers in the environment: source RUN_DIR/env.sh first")
    unknown = set(only) - set(SERVICE_VARS)
    if unknown:
        raise SystemExit(f"unknown service(s) {sorted(unknown)} (expected s3, sqs or pg)")
    c = Checker()
    timings, took = {}, {}
    for name, fn in (("s3", check_s3), ("sqs", check_sqs), ("pg", check_pg)):
        if name in only:
            t = time.perf_counter()
            timings.update(fn(c))
            took[name] = f"{name} {time.perf_counter() - t:.1f}s"
    print("\nround-trip timings (ms): median / max over n calls")
    for name, xs in timings.items():
        print(f"  {name:14s} {statistics.median(xs) * 1000:7.1f} / {max(xs) * 1000:7.1f}  (n={len(xs)})")
    print(f"\ncheck-servers: all {c.passed} checks ok ({', '.join(took.values())})")


if __name__ == "__main__":
    main()
