#!/usr/bin/env python3
"""Small files tried as a new user would (scripts/bench, its own section).

Starts the release `extconn-local serve` binary (defaults: its own transfer concurrency, its own
data folder), puts a folder of FILES files of 20 KiB into the sandbox's Dropbox, queues a delay
of LATENCY_MS on each of their downloads (the sandbox's `{"latency_ms":N}` fault, one per
download), then does what the console does, through the admin API: authorize Dropbox (the
sandbox approves at once), pick the folder in the folder picker, create the connection (Auto
sync off) and wait for its initial import. Prints files/s from the connection's creation until
the API shows the import succeeded (polled every 20 ms), the run's own start-to-finish time,
and checks that every file was imported once, with the source's bytes on disk.

Only the standard library; figures are printed, never asserted. Exit code 1 on a broken result
(the import did not succeed, a file missing or different, a download count other than FILES).

Usage: bench-serve.py [BIN]   (default target/release/extconn-local)
EXTCONN_BENCH_SERVE_FILES (default 300), EXTCONN_BENCH_SERVE_LATENCY_MS (default 50).
"""

import datetime
import hashlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

FILES = int(os.environ.get("EXTCONN_BENCH_SERVE_FILES", "300"))
LATENCY_MS = int(os.environ.get("EXTCONN_BENCH_SERVE_LATENCY_MS", "50"))
SIZE = 20 * 1024
FOLDER = "/Bench small files"
ACCEPTANCE = 120.0  # files/s, issue 13
TIMEOUT_S = 300


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def call(method, url, body=None, token=None, headers=None):
    """(status, headers, parsed JSON body or raw bytes)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        resp = OPENER.open(req, timeout=60)
    except urllib.error.HTTPError as e:
        resp = e
    raw = resp.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return resp.status, resp.headers, parsed


def expect(what, status, want, body):
    if status != want:
        raise RuntimeError(f"{what}: HTTP {status} (expected {want}): {body!r}"[:2000])
    return body


class Serve:
    """The `serve` child: its stdout read line by line on a thread."""

    def __init__(self, binary, data_dir):
        self.proc = subprocess.Popen(
            [binary, "serve", "--port", "0", "--data-dir", data_dir],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = queue.Queue()
        self.output = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def value_after(self, label, timeout=60):
        """The first word after `label` on the first line that has it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"serve printed no {label!r} within {timeout} s") from None
            if line is None:
                raise RuntimeError(f"serve exited before printing {label!r}")
            if label in line:
                return line.split(label, 1)[1].split()[0]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def timestamp(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")) if s else None


def run(binary, data_dir):
    serve = Serve(binary, data_dir)
    try:
        api = serve.value_after("API ")
        sandbox = serve.value_after("Sandbox ")
        admin = serve.value_after("Ana, admin of acme:")

        def control(op, body):
            status, _, answer = call("POST", f"{sandbox}/_control/dropbox/{op}", body)
            return expect(f"control {op}", status, 200, answer)

        # A fresh sandbox account that signs in at the consent page and approves at once (the
        # click on "Allow"), holding the folder.
        account = control("accounts", {"display_name": "Bench User", "email": "bench@example.com"})["account_id"]
        control("login_account", {"account_id": account})
        control("auto_approve", {"enabled": True})
        control("seed_tree", {"account_id": account, "root": FOLDER, "files": FILES,
                               "files_per_folder": FILES, "size_each": SIZE})
        sources = control("list_files", {"account_id": account, "under": FOLDER})
        if len(sources) != FILES:
            raise RuntimeError(f"the sandbox holds {len(sources)} files under {FOLDER}, not {FILES}")
        expected = {f["id"]: control("sha256", {"account_id": account, "id": f["id"]})["sha256"] for f in sources}
        control("reset_counters", {})
        control("inject", {"endpoint": "Download", "fault": {"latency_ms": LATENCY_MS}, "times": FILES})

        # The console's steps: authorize, consent (redirect back), the callback with the
        # browser's cookie, the picker.
        status, headers, answer = call("POST", f"{api}/connections/authorize", {"provider": "dropbox"}, admin)
        expect("authorize", status, 200, answer)
        cookie = headers["Set-Cookie"].split(";", 1)[0]
        status, headers, answer = call("GET", answer["authorization_url"])
        expect("consent", status, 302, answer)
        status, headers, answer = call("GET", headers["Location"], headers={"Cookie": cookie})
        expect("callback", status, 303, answer)
        grant = headers["Location"].split("grant_id=", 1)[1].split("&")[0]
        status, _, folders = call("GET", f"{api}/grants/{grant}/folders", token=admin)
        expect("folders", status, 200, folders)
        picked = next((f for f in folders["items"] if f.get("path") == FOLDER or f.get("name") == FOLDER[1:]), None)
        if picked is None:
            raise RuntimeError(f"the folder picker does not offer {FOLDER}: {folders}")
        body = {"grant_id": grant, "folder_id": picked["id"], "auto_sync": False}
        if picked.get("drive_id"):
            body["drive_id"] = picked["drive_id"]

        started = time.monotonic()
        status, _, created = call("POST", f"{api}/connections", body, admin)
        expect("create the connection", status, 201, created)
        conn, run_id = created["id"], created["current_run_id"]
        while True:
            status, _, details = call("GET", f"{api}/connections/{conn}", token=admin)
            expect("connection details", status, 200, details)
            the_run = next((r for r in details.get("recent_runs") or [] if r["id"] == run_id), None)
            state = the_run["status"] if the_run else "queued"
            if state not in ("queued", "running"):
                break
            if time.monotonic() - started > TIMEOUT_S:
                raise RuntimeError(f"the import did not finish in {TIMEOUT_S} s: {details}")
            time.sleep(0.02)
        seconds = time.monotonic() - started
        if state != "succeeded":
            raise RuntimeError(f"the initial import ended {state}: {details}")

        # Every file imported once, its object the source's bytes.
        items, cursor = [], None
        while True:
            path = f"{api}/connections/{conn}/items?limit=200" + (f"&page={urllib.parse.quote(cursor)}" if cursor else "")
            status, _, page = call("GET", path, token=admin)
            expect("items", status, 200, page)
            items += [i for i in page["items"] if not i.get("is_folder")]
            cursor = page.get("next_page")
            if not cursor:
                break
        stored = {}
        for i in items:
            if i.get("state") == "imported" and i.get("asset_key"):
                with open(os.path.join(data_dir, "objects", i["asset_key"]), "rb") as f:
                    stored[i["id"]] = hashlib.sha256(f.read()).hexdigest()
        downloads = control("calls", {"endpoint": "Download"})["count"]
        verified = stored == expected and downloads == FILES
        run_secs = None
        if the_run.get("started_at") and the_run.get("finished_at"):
            run_secs = (timestamp(the_run["finished_at"]) - timestamp(the_run["started_at"])).total_seconds()
        return seconds, run_secs, the_run.get("counters", {}), downloads, len(stored), verified
    except Exception:
        sys.stderr.write("".join(serve.output[-40:]))
        raise
    finally:
        serve.stop()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/extconn-local"
    with tempfile.TemporaryDirectory(prefix="extconn-bench-serve-") as data_dir:
        try:
            seconds, run_secs, counters, downloads, stored, verified = run(binary, data_dir)
        except RuntimeError as e:
            print(f"Small files as a new user would: FAILED: {e}")
            return 1
    rate = FILES / seconds
    print(f"Small files as a new user would: `extconn-local serve` (release, defaults), a folder of {FILES}"
          f" files of {SIZE // 1024} KiB, {LATENCY_MS} ms latency on each sandbox download, through the admin API")
    print(f"{'seconds':>8} {'files/s':>8} {'run s':>7} {'imported':>9} {'downloads':>10}  verified")
    print(f"{seconds:>8.2f} {rate:>8.1f} {run_secs if run_secs is not None else float('nan'):>7.2f}"
          f" {counters.get('imported', '?'):>9} {downloads:>10}  {'yes' if verified else 'NO'}")
    print(f"(from POST /v1/connections until GET /v1/connections/{{id}} shows the import succeeded;"
          f" run s: the run's started_at → finished_at; acceptance ≥ {ACCEPTANCE:.0f} files/s)")
    return 0 if verified else 1


if __name__ == "__main__":
    sys.exit(main())
