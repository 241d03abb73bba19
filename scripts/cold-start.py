#!/usr/bin/env python3
"""Cold start of the four Lambda binaries (scripts/bench, section 3).

Each run spawns one binary against a fresh local mock of the Lambda Runtime API and measures
from the spawn until the function posts its response to a first no-op event. Prints the median
and the maximum of the runs per function, and the binaries' sizes (the measured host binaries,
and the arm64 bootstraps in target/lambda/ when scripts/build-lambdas has built them).
Figures are printed, never asserted. A broken result (an error posted to the runtime API, a
process that exits or hangs before responding, a response other than the expected one) is
printed with the function's logs, and the exit code is 1.

Run under scripts/with-aws-emulator with its venv's python (boto3): the scheduler's no-op tick
queries DynamoDB, so its table is created in the emulator first and its figure includes one
query to the local emulator. The other three make no AWS call: no provider is configured and
the HTTP functions get no page-token secret, so their start-up reads no secret (in a
deployment each provider's client secret and the page-token secret is one Secrets Manager
round trip more at start-up: network time, which this leaves out).

Usage: cold-start.py [BIN_DIR]   (default target/release)
EXTCONN_COLD_START_RUNS: runs per function (default 10).
"""

import http.server
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TABLE = "extconn-cold-start"
REQUEST_ID = "cold-start-1"
TIMEOUT_S = 30  # a run that has not responded by then is broken (a cold start is milliseconds)
API = "/2018-06-01/runtime"


def http_get(path):
    """An API Gateway HTTP API (payload v2) GET without authorizer claims."""
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"host": "api.test"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.test", "domainPrefix": "api",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9",
                     "userAgent": "cold-start"},
            "requestId": "req-1", "routeKey": "$default", "stage": "$default",
            "time": "30/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }


def functions(queue_url):
    """(binary, env as in template.yaml, no-op event, check of the response)."""
    base = {"TABLE_NAME": TABLE, "QUEUE_URL": queue_url}
    http_env = {**base, "SECRET_PREFIX": "extconn/cold-start/", "CLAIM_CLIENT_ID": "custom:client"}
    http_ok = lambda r: r.get("statusCode") == 200  # noqa: E731
    scheduled = {
        "version": "0", "id": "cold-start", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-30T00:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/tick"], "detail": {},
    }
    worker_env = {**base, "SECRET_PREFIX": "extconn/cold-start/", "BUCKET_NAME": "extconn-cold-start",
                  "EVENT_BUS_NAME": "extconn-cold-start"}
    return [
        ("connections-api", http_env, http_get("/console/config.json"), http_ok),
        ("oauth-callback", http_env, http_get("/v1/openapi.json"), http_ok),
        ("sync-scheduler", base, scheduled, lambda r: r.get("enqueued") == 0),
        ("sync-worker", worker_env, {"Records": []}, lambda r: r.get("batchItemFailures") == []),
    ]


class Mock(http.server.ThreadingHTTPServer):
    """The Runtime API for one run: `next` hands out the one event, then blocks (as Lambda does
    between invocations) until the run ends; every post lands in `posted` as (kind, time, body)."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the killed process's connections break mid-request: that is the end of a run

    def __init__(self, event):
        super().__init__(("127.0.0.1", 0), Handler)
        self.event = json.dumps(event).encode()
        self.served = False
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.posted = queue.Queue()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the runtime client keeps its connection alive

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        m = self.server
        if self.path != f"{API}/invocation/next":
            return self.reply(404)
        with m.lock:
            first, m.served = not m.served, True
        if not first:
            m.done.wait()
            return self.reply(500)
        deadline_ms = int(time.time() * 1000) + 60_000
        self.reply(200, m.event, [
            ("Content-Type", "application/json"),
            ("Lambda-Runtime-Aws-Request-Id", REQUEST_ID),
            ("Lambda-Runtime-Deadline-Ms", str(deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:cold-start"),
            ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0"),
        ])

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size + 2)[:size]
                if size == 0:
                    return out
                out += chunk
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_POST(self):
        body = self.read_body()
        at = time.perf_counter()
        if self.path == f"{API}/invocation/{REQUEST_ID}/response":
            kind = "response"
        elif self.path == f"{API}/invocation/{REQUEST_ID}/error":
            kind = "invocation error"
        elif self.path == f"{API}/init/error":
            kind = "init error"
        else:
            kind = f"unexpected POST {self.path}"
        self.server.posted.put((kind, at, body.decode(errors="replace")))
        self.reply(202)


def run_once(binary, env, event, ok):
    """Milliseconds from spawn to the posted response; raises RuntimeError on a broken run."""
    mock = Mock(event)
    threading.Thread(target=mock.serve_forever, daemon=True).start()
    child_env = {
        **os.environ, **env,
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{mock.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": os.path.basename(binary),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "cold-start",
        "RUST_LOG": "info",
    }
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        child = subprocess.Popen([binary], env=child_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            posted = None
            while posted is None:
                try:
                    posted = mock.posted.get(timeout=0.005)
                except queue.Empty:
                    if child.poll() is not None:
                        try:  # it may have posted just before exiting
                            posted = mock.posted.get(timeout=0.1)
                        except queue.Empty:
                            posted = (f"exit ({child.returncode}) before responding", None, "")
                    elif time.perf_counter() - started > TIMEOUT_S:
                        posted = (f"no response within {TIMEOUT_S} s", None, "")
        finally:
            child.kill()
            child.wait()
            mock.done.set()
            mock.shutdown()
            mock.server_close()
        kind, at, body = posted
        try:
            response = json.loads(body)
        except ValueError:
            response = None
        if kind == "response" and isinstance(response, dict) and ok(response):
            return (at - started) * 1000
        log.seek(0)
        logs = log.read().decode(errors="replace")
        raise RuntimeError(f"{kind}: {body}\n--- its output:\n{logs}")


def size_mb(path):
    return f"{os.path.getsize(path) / 1e6:.1f}" if os.path.exists(path) else "-"


def create_table():
    """The table as extconn_aws::DynamoStore::create_table lays it out (shared/aws/src/dynamo.rs)."""
    import boto3

    keys = ["pk", "sk"] + [f"gsi{i}{k}" for i in range(1, 6) for k in ("pk", "sk")]
    indexes = [("Due", 1), ("ByPath", 2), ("ByParent", 3), ("ByRetry", 4), ("Sweep", 5)]
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{
            "IndexName": name,
            "KeySchema": [{"AttributeName": f"gsi{i}pk", "KeyType": "HASH"},
                          {"AttributeName": f"gsi{i}sk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["due_every"]} if name == "Due"
            else {"ProjectionType": "ALL"},
        } for name, i in indexes],
    )


def main():
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else "target/release"
    runs = max(1, int(os.environ.get("EXTCONN_COLD_START_RUNS", "10")))
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        sys.exit("AWS_ENDPOINT_URL is not set: run under scripts/with-aws-emulator (the scheduler queries DynamoDB)")
    create_table()

    print("cold start: process spawn -> response to a first no-op event posted to a mock Lambda Runtime API")
    print(f"x86_64 MB: {bin_dir}/<function> (measured); arm64 MB: target/lambda/<function>/bootstrap")
    print(f"{'function':<16} {'x86_64 MB':>9} {'arm64 MB':>9} {'median ms':>10} {'max ms':>8}  runs")
    broken = False
    for name, env, event, ok in functions(f"{endpoint}/123456789012/extconn-cold-start"):
        binary = os.path.join(bin_dir, name)
        ms = []
        for _ in range(runs):
            try:
                ms.append(run_once(binary, env, event, ok))
            except (RuntimeError, OSError) as e:
                print(f"{name}: BROKEN: {e}", file=sys.stderr)
                broken = True
                break
        median = f"{statistics.median(ms):.1f}" if ms else "-"
        worst = f"{max(ms):.1f}" if ms else "-"
        arm64 = os.path.join("target/lambda", name, "bootstrap")
        print(f"{name:<16} {size_mb(binary):>9} {size_mb(arm64):>9} {median:>10} {worst:>8}  {len(ms)}")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
