#!/usr/bin/env python3
"""The fleet's monthly AWS cost from the cost bench's measured request counts.

Usage: scripts/cost.py [target/cost-bench.json [fallback.json]] [--markdown]
(a case missing from the first JSON, e.g. an interrupted run, is taken from the second)

Reads the JSON that scripts/bench-cost writes (AWS requests per operation for each case,
counted through an SDK interceptor against the AWS emulator) and turns the per-sync, per-file,
per-tick and per-sweep counts into a monthly bill for the fleet below, line item by line item.
Every input is a constant here, stated in docs/cost.md; python3 standard library only.
"""

import json
import math
import sys

# --- The fleet and its workload -------------------------------------------------------------
CLIENTS = 1_000
CONNECTIONS_PER_CLIENT = 5
FILES_PER_CONNECTION = 100_000
SYNC_EVERY_MIN = 15
# One grant (one secret) per connection: the worst case (connections on one account share one).
GRANTS_PER_CLIENT = 5
CHANGED_PER_DAY = 0.01  # share of a connection's files added or modified per day
# Changed files' sizes: most are below one multipart part (8 MiB: one PutObject), some larger.
SMALL_SHARE, SMALL_MIB = 0.90, 2.0
LARGE_SHARE, LARGE_MIB = 0.10, 22.0
PART_MIB = 8  # S3 part size for files up to 80 GiB (docs/architecture.md §8)
DAYS_PER_MONTH = 730 / 24  # AWS bills 730 hours a month
SCHEDULER_TICKS_PER_HOUR = 12  # rate(5 minutes), template.yaml
SWEEPS_PER_HOUR = 1  # rate(1 hour)
CONSOLE_REQUESTS_PER_CLIENT_DAY = 100  # admin API calls (the console), generous

# --- Lambda (template.yaml: arm64; worker 1,024 MB, SQS batch 3; scheduler and API 256 MB) ---
WORKER_GB, SCHEDULER_GB, API_GB = 1.0, 0.25, 0.25
BATCH = 3
# A sync step's duration: its AWS requests at ~10 ms each (measured counts), one provider change
# listing at ~300 ms, and per changed file ~300 ms to first byte plus the bytes at 25 MiB/s,
# with 4 transfers at once effectively (8 configured). Messages of one batch run at once but are
# billed here one after another (an upper bound).
AWS_REQUEST_S = 0.010
PROVIDER_LIST_S = 0.300
FILE_LATENCY_S = 0.300
DOWNLOAD_MIB_S = 25.0
TRANSFERS_AT_ONCE = 4
SCHEDULER_TICK_S = 2.0
API_REQUEST_S = 0.100

# --- Logs and traces -------------------------------------------------------------------------
LOG_BYTES_PER_INVOCATION = 1_200  # START/END/REPORT lines + the EMF metrics line
LOG_BYTES_PER_SYNC = 800  # the step's INFO lines (JSON)
LOG_BYTES_PER_FILE = 0  # files are not logged one by one at INFO
XRAY_RESERVOIR_PER_S = 1  # default sampling: the first request each second ...
XRAY_RATE = 0.05  # ... and 5% of the rest

# --- On-demand list prices, us-east-1, as listed in mid-2025 (PRICE_DATE; not fetched: no --------
# --- internet where this was written). Free tiers are ignored. ------------------------------------
PRICE_DATE = "2025-06-01"
PRICES = {
    # DynamoDB on-demand since 2024-11-01 (it was $1.25 / $0.25 before).
    "ddb_wru": 0.625 / 1e6,
    "ddb_rru": 0.125 / 1e6,
    "ddb_storage_gb": 0.25,
    "ddb_pitr_gb": 0.20,
    "lambda_gb_s_arm": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "sqs_request": 0.40 / 1e6,
    "s3_put": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
    "secret_month": 0.40,
    "secret_call": 0.05 / 10_000,
    "eventbridge_custom_event": 1.00 / 1e6,
    "logs_ingest_gb": 0.50,
    "logs_store_gb": 0.03,
    "xray_trace": 5.00 / 1e6,
    "apigw_http_request": 1.00 / 1e6,
}
OLD_DDB = {"ddb_wru": 1.25 / 1e6, "ddb_rru": 0.25 / 1e6}

KIB = 1024


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class Case:
    """One case's counts: requests per `Service.Operation`."""

    def __init__(self, raw):
        self.raw = raw
        self.ops = raw["ops"]
        self.facts = raw["facts"]

    def req(self, op):
        return self.ops.get(op, {}).get("requests", 0)

    def service(self, svc):
        return sum(v["requests"] for k, v in self.ops.items() if k.split(".")[0] == svc)

    def total(self):
        return sum(v["requests"] for v in self.ops.values())


def dynamo_units(case, record_bytes):
    """(write units, read units) of one run of a case, by DynamoDB's on-demand rules.

    A write costs its record's size in KiB (rounded up), twice in a transaction; the size is the
    largest record the bench measured (connection, run or item), an upper bound for each. A file
    item's Put also writes its two projected indexes (children, path). A strongly consistent
    GetItem of a record under 4 KiB is 1 read unit; a Query page costs its bytes / 4 KiB (the
    response's JSON, larger than the items: an upper bound).
    """
    kib = max(1, math.ceil(max(record_bytes.values()) / KIB))
    item_kib = max(1, math.ceil(record_bytes["item"] / KIB))
    w = 0.0
    for op in ("PutItem", "UpdateItem", "DeleteItem"):
        w += case.req(f"DynamoDB.{op}") * kib
    w += case.ops.get("DynamoDB.TransactWriteItems", {}).get("tx_items", 0) * 2 * kib
    files = case.facts.get("imported", case.facts.get("files", 0)) if case.raw["name"] in (
        "import_new_files",
        "initial_import",
    ) else 0
    w += files * 2 * item_kib
    r = case.req("DynamoDB.GetItem") * 1.0
    q = case.ops.get("DynamoDB.Query", {})
    r += max(q.get("requests", 0), math.ceil(q.get("response_bytes", 0) / (4 * KIB)))
    return w, r


def model(bench, fallback=None):
    cases = {c["name"]: Case(c) for c in bench["cases"]}
    # Cases the main run did not finish, from another run (per-unit counts: the fallback's n).
    for c in (fallback or {}).get("cases", []):
        if c["name"] not in cases:
            cases[c["name"]] = Case(c)
            print(f"note: {c['name']} from the run at n = {fallback['n']:,} (not in the n = {bench['n']:,} run)")
    rb = bench["record_bytes"]
    a, b, tick, runs, sweep = (
        cases["no_change_sync"],
        cases["import_new_files"],
        cases["scheduler_tick"],
        cases["list_runs"],
        cases["grant_sweep"],
    )
    connections = CLIENTS * CONNECTIONS_PER_CLIENT
    syncs = connections * (24 * 60 / SYNC_EVERY_MIN) * DAYS_PER_MONTH
    files = connections * FILES_PER_CONNECTION * CHANGED_PER_DAY * DAYS_PER_MONTH
    files_per_sync = files / syncs
    ticks = SCHEDULER_TICKS_PER_HOUR * 730
    due_per_tick = syncs / ticks
    sweeps = SWEEPS_PER_HOUR * 730
    api_requests = CLIENTS * CONSOLE_REQUESTS_PER_CLIENT_DAY * DAYS_PER_MONTH
    grants = CLIENTS * GRANTS_PER_CLIENT

    # Per-unit counts from the bench: a no-change sync; a changed file = (b) less (a), per file;
    # a tick's per-due-connection requests; a sweep as measured (10 due).
    nb = b.facts["files"]

    def per_file(op):
        return (b.req(op) - a.req(op)) / nb

    def per_due(op):
        return tick.req(op) / tick.facts["due"]

    aw, ar = dynamo_units(a, rb)
    bw, br = dynamo_units(b, rb)
    tw, tr = dynamo_units(tick, rb)
    lw, lr = dynamo_units(runs, rb)
    sw, sr = dynamo_units(sweep, rb)
    file_w, file_r = (bw - aw) / nb, (br - ar) / nb
    tick_w, tick_r = tw / tick.facts["due"], tr / tick.facts["due"]
    # Index maintenance of a claim: the Due entry moves (a delete and a put, 1 unit each).
    tick_w += 2

    lines = []

    def line(service, item, qty, unit, price, note=""):
        lines.append(
            {"service": service, "item": item, "qty": qty, "unit": unit, "usd": qty * price, "note": note}
        )

    # DynamoDB
    wru = syncs * aw + files * file_w + syncs * tick_w + sweeps * sw
    rru = syncs * ar + files * file_r + syncs * tick_r + sweeps * sr + api_requests * lr
    line("DynamoDB", "write request units", wru, "WRU", PRICES["ddb_wru"],
         f"{aw:.0f}/sync, {file_w:.1f}/changed file, {tick_w:.0f}/claim")
    line("DynamoDB", "read request units", rru, "RRU", PRICES["ddb_rru"],
         f"{ar:.1f}/sync, {file_r:.1f}/changed file")
    runs_kept = connections * (24 * 60 / SYNC_EVERY_MIN) * 90
    items = connections * FILES_PER_CONNECTION
    table_gb = (items * rb["item"] + runs_kept * rb["run"] + connections * rb["connection"]) / 1e9
    index_gb = items * rb["item"] * 2 / 1e9  # the children and path indexes project ALL
    line("DynamoDB", "storage (table + the 2 ALL indexes; 90 days of runs)", table_gb + index_gb, "GB-month",
         PRICES["ddb_storage_gb"])
    line("DynamoDB", "point-in-time recovery (table size)", table_gb, "GB-month", PRICES["ddb_pitr_gb"])

    # Lambda
    worker_invocations = syncs / BATCH + sweeps
    sync_s = a.total() * AWS_REQUEST_S + PROVIDER_LIST_S
    mean_mib = SMALL_SHARE * SMALL_MIB + LARGE_SHARE * LARGE_MIB
    file_s = (per_file_total(a, b) * AWS_REQUEST_S + FILE_LATENCY_S + mean_mib / DOWNLOAD_MIB_S) / TRANSFERS_AT_ONCE
    worker_gb_s = (syncs * sync_s + files * file_s) * WORKER_GB
    sched_gb_s = ticks * SCHEDULER_TICK_S * SCHEDULER_GB
    api_gb_s = api_requests * API_REQUEST_S * API_GB
    line("Lambda", "requests (worker, scheduler, API)", worker_invocations + ticks + api_requests, "requests",
         PRICES["lambda_request"])
    line("Lambda", "sync-worker duration (1,024 MB arm64)", worker_gb_s, "GB-s", PRICES["lambda_gb_s_arm"],
         f"{sync_s:.2f} s/sync + {file_s:.2f} s/changed file")
    line("Lambda", "scheduler + API duration (256 MB)", sched_gb_s + api_gb_s, "GB-s", PRICES["lambda_gb_s_arm"])

    # SQS: the scheduler's batches, Lambda's receives (a batch of 3) and batch deletes, and
    # continuations the worker queued; plus the event source's idle long polls (5 pollers, 20 s).
    sends = syncs * per_due("SQS.SendMessageBatch") + syncs * (a.service("SQS") + per_file_sqs(a, b) * files_per_sync)
    receives = syncs / BATCH * 2
    idle = 5 * 3 * 60 * 730
    line("SQS", "requests", sends + receives + idle, "requests", PRICES["sqs_request"],
         "scheduler batches, receive + delete per batch of 3, idle polls")

    # S3: every request of an upload is a PUT-class request.
    small_puts = per_file("S3.PutObject")
    large_puts = 2 + math.ceil(LARGE_MIB / PART_MIB)
    puts = files * (SMALL_SHARE * small_puts + LARGE_SHARE * large_puts)
    line("S3", "PUT requests (PutObject, multipart)", puts, "requests", PRICES["s3_put"],
         f"{small_puts:.2f}/small file, {large_puts}/large file")
    gets = syncs * (a.req("S3.GetObject") + a.req("S3.HeadObject")) + files * (
        per_file("S3.GetObject") + per_file("S3.HeadObject"))
    line("S3", "GET/HEAD requests", gets, "requests", PRICES["s3_get"])

    # Secrets Manager
    line("Secrets Manager", "secrets (one per grant, + 4 app secrets)", grants + 4, "secret-months",
         PRICES["secret_month"])
    sm_calls = syncs * a.service("SecretsManager") + files * max(0.0, per_file_svc(a, b, "SecretsManager")) \
        + sweeps * sweep.service("SecretsManager") + grants * 6 * DAYS_PER_MONTH  # a refresh write per grant every 4 h
    line("Secrets Manager", "API calls", sm_calls, "calls", PRICES["secret_call"],
         f"{a.service('SecretsManager')}/sync, token refresh every 4 h")

    # EventBridge: custom events on the assets bus; the two schedules are rules (free).
    events = files * max(0.0, per_file_entries(a, b))
    line("EventBridge", "asset events (PutEvents entries)", events, "events", PRICES["eventbridge_custom_event"])
    line("EventBridge", "schedules (rate 5 min, rate 1 h: scheduled rules)", ticks + sweeps, "invocations", 0.0,
         "no charge for scheduled rules")

    # API Gateway (the console) — the runs list is one Query page (case d).
    line("API Gateway", "HTTP API requests", api_requests, "requests", PRICES["apigw_http_request"])

    # CloudWatch Logs
    invocations = worker_invocations + ticks + api_requests
    log_gb = (invocations * LOG_BYTES_PER_INVOCATION + syncs * LOG_BYTES_PER_SYNC + files * LOG_BYTES_PER_FILE) / 1e9
    line("CloudWatch Logs", "ingestion", log_gb, "GB", PRICES["logs_ingest_gb"])
    line("CloudWatch Logs", "storage (30 days kept)", log_gb, "GB-month", PRICES["logs_store_gb"])

    # X-Ray (Tracing: Active): per function, the first request each second and 5% of the rest.
    seconds = 730 * 3600
    traces = 0.0
    for n in (worker_invocations, ticks, api_requests):
        reservoir = min(n, seconds * XRAY_RESERVOIR_PER_S)
        traces += reservoir + XRAY_RATE * (n - reservoir)
    line("X-Ray", "traces recorded", traces, "traces", PRICES["xray_trace"])

    facts = {
        "connections": connections,
        "syncs": syncs,
        "changed_files": files,
        "files_per_sync": files_per_sync,
        "due_per_tick": due_per_tick,
        "grants": grants,
    }
    return lines, facts


def per_file_total(a, b):
    return (b.total() - a.total()) / b.facts["files"]


def per_file_svc(a, b, svc):
    return (b.service(svc) - a.service(svc)) / b.facts["files"]


def per_file_sqs(a, b):
    return per_file_svc(a, b, "SQS")


def per_file_entries(a, b):
    """Asset events per changed file: one event per imported file (PutEvents carries 10)."""
    # PutEvents requests of (b) beyond (a), each up to 10 entries, are one entry per file.
    return 1.0 if per_file_svc(a, b, "EventBridge") > 0 else 0.0


def fmt_qty(q):
    if q >= 1e9:
        return f"{q / 1e9:.2f} B"
    if q >= 1e6:
        return f"{q / 1e6:.2f} M"
    if q >= 1e3:
        return f"{q / 1e3:.1f} k"
    return f"{q:.1f}"


def main(argv):
    paths = [a for a in argv if not a.startswith("--")]
    bench = load(paths[0] if paths else "target/cost-bench.json")
    fallback = load(paths[1]) if len(paths) > 1 else None
    lines, facts = model(bench, fallback)
    total = sum(l["usd"] for l in lines)
    md = "--markdown" in argv
    print(f"Fleet: {CLIENTS} clients x {CONNECTIONS_PER_CLIENT} connections x {FILES_PER_CONNECTION:,} files, "
          f"a sync every {SYNC_EVERY_MIN} min; {CHANGED_PER_DAY:.0%} of files changed a day; "
          f"counts from the bench at n = {bench['n']:,}; us-east-1 on-demand prices of {PRICE_DATE}")
    print(f"  {facts['syncs'] / 1e6:.2f} M syncs, {facts['changed_files'] / 1e6:.1f} M changed files, "
          f"{facts['due_per_tick']:.0f} due connections per tick, {facts['grants']:,} grants, a month")
    print()
    if md:
        print("| service | line item | quantity / month | unit | USD / month | basis |")
        print("|---|---|---:|---|---:|---|")
        for l in lines:
            print(f"| {l['service']} | {l['item']} | {fmt_qty(l['qty'])} | {l['unit']} | {l['usd']:,.2f} | {l['note']} |")
        print(f"| **total** | excluding the assets' S3 storage | | | **{total:,.2f}** | |")
    else:
        for l in lines:
            print(f"{l['service']:<16} {l['item']:<52} {fmt_qty(l['qty']):>10} {l['unit']:<13} ${l['usd']:>10,.2f}")
        print(f"{'total':<16} {'(excluding the assets S3 storage)':<52} {'':>10} {'':<13} ${total:>10,.2f}")
    print()
    print("largest line items:")
    for l in sorted(lines, key=lambda l: -l["usd"])[:5]:
        print(f"  {l['service']} {l['item']}: ${l['usd']:,.0f} ({l['usd'] / total:.0%})")
    old = dict(PRICES, **OLD_DDB)
    ddb = sum(l["usd"] for l in lines if l["service"] == "DynamoDB" and "request units" in l["item"])
    print(f"at DynamoDB's pre-2024-11-01 on-demand prices ($1.25 / $0.25 per million) the request units "
          f"cost ${ddb * old['ddb_wru'] / PRICES['ddb_wru']:,.0f}, the total ${total + ddb:,.0f}")
    return 0 if total < 8_000 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
