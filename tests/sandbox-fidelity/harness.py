"""What the sandbox fidelity checks share: expectations, the sandbox's HTTP control API, the
run loop (cases in order, `PASS`/`FAIL` lines, a tally of the responses checked against the
provider's own types, and the canary leak check) and the command line.

Each check (`dropbox_sdk_check.py`, `google_drive_check.py`) subclasses `Check`: it names its
`CASES`, fills `secrets` with every token it mints (redacted from every printed line), and
says how many responses it checked (`tally`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter


class CheckFailed(Exception):
    """A case's expectation did not hold."""


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


def expect_eq(got, want, what: str) -> None:
    if got != want:
        raise CheckFailed(f"{what}: got {got!r}, want {want!r}")


class Control:
    """The sandbox's control API for one service (`POST {base}/_control/<service>/<op>`), over
    plain urllib: independent of the client under test and its transport."""

    def __init__(self, base: str, service: str) -> None:
        self.base = base.rstrip("/") + "/_control/" + service
        self.http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxies

    def urls(self) -> dict:
        with self.http.open(self.base + "/urls", timeout=30) as r:
            return json.load(r)

    def __call__(self, op: str, **body):
        req = urllib.request.Request(
            f"{self.base}/{op}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with self.http.open(req, timeout=120) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")[:300]
            raise CheckFailed(f"control op {op} failed: {e.code} {detail}") from None


class Check:
    """The run loop. Subclasses set `ctl` (a `Control`) and `CASES`, and implement `setup` and
    `tally`."""

    CASES: list[str] = []
    ctl: Control

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.printed: list[str] = []

    def setup(self) -> None:
        raise NotImplementedError

    def tally(self) -> tuple[str, str, Counter]:
        """(what was checked, what failing means, responses checked by name)."""
        raise NotImplementedError

    def preamble(self) -> None:
        """Lines printed before anything runs."""

    def say(self, text: str, err: bool = False) -> None:
        """Prints a line with every token minted here redacted, and keeps it for the leak check."""
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "<redacted>")
        self.printed.append(text)
        print(text, file=sys.stderr if err else sys.stdout, flush=True)

    def run(self, verbose: bool) -> int:
        self.printed = []
        self.preamble()
        passed = failed = 0
        try:
            self.setup()
        except Exception as e:  # noqa: BLE001 - report any setup failure
            self.say(f"FAIL setup: {type(e).__name__}: {e}")
            if verbose:
                self.say(traceback.format_exc(), err=True)
            self.say("0 passed, 1 failed")
            return 1
        for name in self.CASES:
            started = time.monotonic()
            try:
                getattr(self, name)()
            except Exception as e:  # noqa: BLE001 - every failure is reported, then the next case runs
                failed += 1
                why = e if isinstance(e, CheckFailed) else f"{type(e).__name__}: {e}"
                self.say(f"FAIL {name}: {why}")
                if verbose and not isinstance(e, CheckFailed):
                    self.say(traceback.format_exc(), err=True)
            else:
                passed += 1
                self.say(f"PASS {name} ({time.monotonic() - started:.1f} s)")
        what, failing, counted = self.tally()
        total = sum(counted.values())
        self.say(f"{what}: {total} ({', '.join(sorted(counted))})")
        if total == 0:
            self.say(f"FAIL {failing}")
            failed += 1
        # The sandbox's canaries (every token, code and client secret it issued or saw) must not
        # appear in anything printed above.
        canaries = [c for c in self.ctl("canaries") if len(c) >= 8]
        leaked = sum(1 for c in canaries if any(c in line for line in self.printed))
        if leaked or not canaries:
            self.say(f"FAIL no_secrets_printed: {leaked} of {len(canaries)} canaries printed")
            failed += 1
        else:
            passed += 1
            self.say(f"PASS no_secrets_printed ({len(canaries)} canaries)")
        self.say(f"{passed} passed, {failed} failed")
        return 1 if failed else 0


def arguments(description: str) -> argparse.Namespace | None:
    """The command line; `None` (after saying why) when the sandbox is not on loopback."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--sandbox", required=True, help="the sandbox's base URL, http://127.0.0.1:PORT")
    ap.add_argument("--client-id", default="extconn-local", help="OAuth client id to mint tokens for")
    ap.add_argument("-v", "--verbose", action="store_true", help="tracebacks for unexpected exceptions")
    args = ap.parse_args()
    host = urllib.parse.urlsplit(args.sandbox).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"refusing a sandbox that is not on loopback: {host}", file=sys.stderr)
        return None
    return args
