#!/usr/bin/env python3
"""The Dropbox sandbox's fidelity, checked with Dropbox's official Python SDK (PyPI `dropbox`).

Usage: dropbox_sdk_check.py --sandbox http://127.0.0.1:PORT [--client-id ID]
(`scripts/check-sandbox-fidelity` starts a sandbox and runs this; see there.)

How the SDK is aimed at the sandbox: the SDK builds real URLs (`https://api.dropboxapi.com/2/...`,
`https://content.dropboxapi.com/2/...`, `https://notify.dropboxapi.com/2/...`, from
`dropbox.session`) and sends them through the `requests.Session` it is given (`Dropbox(session=)`,
a documented parameter). That session's only transport is `SandboxTransport`, a `requests`
transport adapter mounted for every scheme: it rewrites each Dropbox host to the sandbox's prefix
(`{base}/dropbox/api`, `/dropbox/content`, `/dropbox/notify`) and refuses anything else, so
nothing leaves 127.0.0.1 and the SDK itself runs unmodified.

Strict types: the SDK decodes responses with `strict=False` (`Dropbox.request` in
`dropbox/dropbox_client.py`): unknown struct fields are dropped and unknown union tags become the
catch-all `other`, so a sandbox that invents fields or tags would pass unnoticed. The transport
therefore decodes every typed response a second time, exactly as the SDK's route table describes
it (`dropbox.<namespace>.ROUTES[route]`: result type for a 200 — from the body, or the
`Dropbox-API-Result` header for download-style routes —, error type for a 409, `AuthError` for a
401, `RateLimitError` for a 429) with stone's `json_compat_obj_decode(..., strict=True)`: a field
of the wrong type, a missing required field, an unknown field or an unknown union tag fails the
call (and so the check) with the route and the offending field. The error envelope
(`error_summary` + `error`, `Content-Type: application/json`), the download's
`Content-Type: application/octet-stream` and the `X-Dropbox-Request-Id` header that the SDK reports
as `request_id` (case `request_ids`) are checked too. The case
`strict_decoding_rejects_deviations` proves on doctored copies of real responses that this
decoding does reject each kind of deviation (and that the SDK's default would not).

Each case prints `PASS name` or `FAIL name: why`; the last line is `N passed, N failed`, and the
exit status is non-zero when any case failed. Tokens are never printed: every line is redacted
against the tokens minted here, and the last case checks that none of the sandbox's canaries
(every secret it issued or saw) was printed.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter

import dropbox
import requests
from dropbox import files, session, stone_serializers, stone_validators, users
from dropbox.auth import AuthError_validator, RateLimitError_validator
from dropbox.common import UserRootInfo
from dropbox.content_hash import DropboxContentHasher
from dropbox.exceptions import ApiError, AuthError, InternalServerError, RateLimitError

from harness import Check, CheckFailed, Control, arguments, expect, expect_eq

BLOCK = 4 * 1024 * 1024
ROOT = "/SDK Fidelity"
UNICODE_NAME = "Café ünïcode — naïve ☃.txt"


class StrictDecodeError(Exception):
    """A sandbox response that the SDK's types, decoded strictly, reject."""


class OffSandboxRequest(Exception):
    """The SDK tried to reach a host that is not an emulated Dropbox host."""


def dropbox_content_hash(data: bytes) -> str:
    """Dropbox's content_hash: SHA-256 of the concatenated SHA-256 digests of 4 MiB blocks."""
    overall = hashlib.sha256()
    for i in range(0, len(data), BLOCK):
        overall.update(hashlib.sha256(data[i : i + BLOCK]).digest())
    return overall.hexdigest()


# ---------------------------------------------------------------------------------------------
# Strict decoding of every typed response


class StrictValidator:
    def __init__(self) -> None:
        self.decoded: Counter[str] = Counter()
        self.last_json: dict[str, object] = {}
        self.without_request_id: Counter[str] = Counter()

    @staticmethod
    def route_of(path: str):
        """`/2/files/list_folder/continue` -> (name, stone Route), or None for untyped routes."""
        if not path.startswith("/2/"):
            return None  # /oauth2/token: OAuth JSON, not a stone route
        namespace, _, name = path[len("/2/") :].partition("/")
        module = getattr(dropbox, namespace, None)
        routes = getattr(module, "ROUTES", None)
        if routes is None or name not in routes:
            raise StrictDecodeError(f"the SDK has no route {path!r}")
        return f"{namespace}/{name}", routes[name]

    @staticmethod
    def decode(data_type, obj, where: str):
        try:
            return stone_serializers.json_compat_obj_decode(data_type, obj, strict=True)
        except stone_validators.ValidationError as e:
            raise StrictDecodeError(f"{where}: strict SDK decoding failed: {e}") from None

    @staticmethod
    def json_body(resp: requests.Response, where: str):
        ctype = resp.headers.get("content-type")
        if ctype != "application/json":
            raise StrictDecodeError(f"{where}: Content-Type {ctype!r}, Dropbox sends 'application/json'")
        try:
            return json.loads(resp.content)
        except ValueError as e:
            raise StrictDecodeError(f"{where}: body is not JSON: {e}") from None

    def error_body(self, resp: requests.Response, where: str):
        body = self.json_body(resp, where)
        if not isinstance(body, dict) or "error" not in body:
            raise StrictDecodeError(f"{where}: error body without an 'error' member")
        extra = set(body) - {"error", "error_summary", "user_message"}
        if extra:
            raise StrictDecodeError(f"{where}: unknown members in the error body: {sorted(extra)}")
        summary = body.get("error_summary")
        if not isinstance(summary, str) or not summary:
            raise StrictDecodeError(f"{where}: error_summary missing or not a string")
        err = body["error"]
        if isinstance(err, dict) and isinstance(err.get(".tag"), str):
            if not summary.startswith(err[".tag"] + "/"):
                raise StrictDecodeError(f"{where}: error_summary {summary!r} does not start with the tag")
        return body

    def check(self, path: str, resp: requests.Response) -> None:
        found = self.route_of(path)
        if found is None:
            return
        name, route = found
        status = resp.status_code
        where = f"{name} → {status}"
        style = route.attrs.get("style") or "rpc"
        if status == 200:
            if style in ("download", "upload"):
                raw = resp.headers.get("Dropbox-API-Result")
                if raw is None:
                    raise StrictDecodeError(f"{where}: no Dropbox-API-Result header")
                if not raw.isascii():
                    raise StrictDecodeError(f"{where}: Dropbox-API-Result is not header-safe (non-ASCII)")
                ctype = resp.headers.get("content-type")
                if style == "download" and ctype != "application/octet-stream":
                    raise StrictDecodeError(f"{where}: Content-Type {ctype!r}, Dropbox sends 'application/octet-stream'")
                obj = json.loads(raw)
            else:
                obj = self.json_body(resp, where)
            self.decode(route.result_type, obj, where)
        elif status == 409:
            obj = self.error_body(resp, where)["error"]
            self.decode(route.error_type, obj, where)
        elif status == 401:
            obj = self.error_body(resp, where)["error"]
            self.decode(AuthError_validator, obj, where)
        elif status == 429:
            obj = self.error_body(resp, where)["error"]
            err = self.decode(RateLimitError_validator, obj, where)
            header = resp.headers.get("Retry-After")
            if header is not None and header != str(err.retry_after):
                raise StrictDecodeError(f"{where}: Retry-After {header!r} but error.retry_after {err.retry_after}")
        else:
            return  # 400 plain text, 5xx: untyped
        # Dropbox stamps every API response; the SDK puts it in its exceptions (`request_id`).
        if not resp.headers.get("X-Dropbox-Request-Id"):
            self.without_request_id[where] += 1
        self.decoded[name] += 1
        self.last_json[f"{name} {status}"] = obj


class SandboxTransport(requests.adapters.HTTPAdapter):
    """Sends the SDK's real Dropbox URLs to the sandbox's prefixes, strictly decoding replies."""

    def __init__(self, hosts: dict[str, str], validator: StrictValidator) -> None:
        super().__init__(max_retries=0)
        self.hosts = hosts
        self.validator = validator

    def send(self, request, **kwargs):
        url = urllib.parse.urlsplit(request.url)
        base = self.hosts.get(url.netloc) if url.scheme == "https" else None
        if base is None:
            raise OffSandboxRequest(f"refused: {url.scheme}://{url.netloc} is not an emulated Dropbox host")
        request.url = base + url.path + (f"?{url.query}" if url.query else "")
        kwargs["proxies"] = {}  # straight to 127.0.0.1
        resp = super().send(request, **kwargs)
        self.validator.check(url.path, resp)
        return resp


# ---------------------------------------------------------------------------------------------
# The cases


class Fidelity(Check):
    def __init__(self, sandbox: str, client_id: str) -> None:
        super().__init__()
        self.ctl = Control(sandbox, "dropbox")
        self.client_id = client_id
        self.validator = StrictValidator()
        urls = self.ctl.urls()
        hosts = {
            session.API_HOST: urls["api_base"],
            session.API_CONTENT_HOST: urls["content_base"],
            session.API_NOTIFICATION_HOST: urls["notify_base"],
            session.WEB_HOST: urls["www_base"],
        }
        self.http = requests.Session()
        self.http.trust_env = False
        transport = SandboxTransport(hosts, self.validator)
        self.http.mount("https://", transport)
        self.http.mount("http://", transport)
        self.account_id = ""
        self.entries: dict[str, dict] = {}  # path_lower -> control EntryInfo
        self.dbx: dropbox.Dropbox | None = None

    def client(self, token: str) -> dropbox.Dropbox:
        # No hidden retries: a 429 or 5xx must reach the case as the SDK's exception.
        return dropbox.Dropbox(
            oauth2_access_token=token,
            session=self.http,
            max_retries_on_error=0,
            max_retries_on_rate_limit=0,
            timeout=60,
            user_agent="extconn-sandbox-fidelity/1",
        )

    def mint(self) -> str:
        t = self.ctl("mint_tokens", account_id=self.account_id, client_id=self.client_id)
        self.secrets += [t["access_token"], t["refresh_token"]]
        return t["access_token"]

    def add(self, path: str, content: dict) -> dict:
        e = self.ctl("add_file", account_id=self.account_id, path=path, content=content)
        self.entries[e["path_lower"]] = e
        return e

    def setup(self) -> None:
        acct = self.ctl("accounts", display_name="Sandbox Fidelity", email="fidelity@example.com")
        self.account_id = acct["account_id"]
        for folder in (ROOT, f"{ROOT}/Empty Folder"):
            e = self.ctl("add_folder", account_id=self.account_id, path=folder)
            self.entries[e["path_lower"]] = e
        self.add(f"{ROOT}/Readme.TXT", {"text": "Hello from the fidelity check.\n"})
        self.add(f"{ROOT}/{UNICODE_NAME}", {"text": "non-ASCII name\n"})
        self.add(f"{ROOT}/empty.bin", {"base64": ""})
        self.add(f"{ROOT}/one-block.bin", {"generated": {"size": BLOCK, "seed": 7}})
        self.add(f"{ROOT}/three-blocks.bin", {"generated": {"size": 2 * BLOCK + 12345, "seed": 8}})
        self.add(f"{ROOT}/Sub/b.txt", {"base64": base64.b64encode(bytes(range(256))).decode()})
        self.add(f"{ROOT}/Sub/Deeper/c.txt", {"text": "deep\n"})
        for folder in (f"{ROOT}/Sub", f"{ROOT}/Sub/Deeper"):
            e = self.ctl("entry", account_id=self.account_id, path=folder)
            self.entries[e["path_lower"]] = e
        self.dbx = self.client(self.mint())

    def list_all(self, path: str, **kw) -> tuple[list, int, str]:
        """list_folder + continue until has_more is false: (entries, pages, cursor)."""
        res = self.dbx.files_list_folder(path, **kw)
        entries, pages = list(res.entries), 1
        while res.has_more:
            expect(pages < 100, "list_folder: has_more never became false")
            res = self.dbx.files_list_folder_continue(res.cursor)
            entries += res.entries
            pages += 1
        return entries, pages, res.cursor

    def drain(self, cursor: str) -> tuple[list, str]:
        entries, res = [], self.dbx.files_list_folder_continue(cursor)
        entries += res.entries
        for _ in range(100):
            if not res.has_more:
                return entries, res.cursor
            res = self.dbx.files_list_folder_continue(res.cursor)
            entries += res.entries
        raise CheckFailed("list_folder/continue: has_more never became false")

    def expect_matches_control(self, md, what: str) -> None:
        want = self.entries.get(md.path_lower)
        expect(want is not None, f"{what}: unexpected entry {md.path_display!r}")
        expect_eq(md.id, want["id"], f"{what}: id of {md.path_display!r}")
        expect_eq(md.name, want["name"], f"{what}: name of {want['path_display']!r}")
        expect_eq(md.path_display, want["path_display"], f"{what}: path_display")
        if want["is_folder"]:
            expect(isinstance(md, files.FolderMetadata), f"{what}: {md.path_display!r} is not FolderMetadata")
        else:
            expect(isinstance(md, files.FileMetadata), f"{what}: {md.path_display!r} is not FileMetadata")
            expect_eq(md.size, want["size"], f"{what}: size of {md.path_display!r}")
            expect_eq(md.rev, want["rev"], f"{what}: rev of {md.path_display!r}")
            expect_eq(md.content_hash, want["content_hash"], f"{what}: content_hash of {md.path_display!r}")

    # -- cases -----------------------------------------------------------------------------

    def users_get_current_account(self) -> None:
        a = self.dbx.users_get_current_account()
        expect(isinstance(a, users.FullAccount), f"result is {type(a).__name__}, not FullAccount")
        expect_eq(a.account_id, self.account_id, "account_id")
        expect_eq(a.email, "fidelity@example.com", "email")
        expect_eq(a.name.display_name, "Sandbox Fidelity", "name.display_name")
        expect(isinstance(a.root_info, UserRootInfo), f"root_info is {type(a.root_info).__name__}")
        expect_eq(a.root_info.root_namespace_id, a.root_info.home_namespace_id, "root vs home namespace")

    def strict_decoding_rejects_deviations(self) -> None:
        account = self.validator.last_json.get("users/get_current_account 200")
        listing = self.validator.last_json.get("files/list_folder 200")
        expect(account is not None and listing is not None, "no captured response to doctor")
        account_t = users.get_current_account.result_type
        listing_t = files.list_folder.result_type
        self.validator.decode(account_t, account, "captured account")  # the real one passes

        def doctored(base, edit):
            obj = copy.deepcopy(base)
            edit(obj)
            return obj

        file_entry = next(i for i, e in enumerate(listing["entries"]) if e[".tag"] == "file")
        deviations = {
            "an unknown field": (account_t, doctored(account, lambda o: o.update(surprise=1))),
            "a field of the wrong type": (account_t, doctored(account, lambda o: o.update(email_verified="yes"))),
            "a missing required field": (account_t, doctored(account, lambda o: o.pop("account_id"))),
            "an unknown union tag": (
                account_t,
                doctored(account, lambda o: o.update(account_type={".tag": "platinum"})),
            ),
            "an unknown metadata subtype": (
                listing_t,
                doctored(listing, lambda o: o["entries"][file_entry].update({".tag": "symlink"})),
            ),
            "an unknown field in a list entry": (
                listing_t,
                doctored(listing, lambda o: o["entries"][file_entry].update(color="blue")),
            ),
        }
        for what, (dt, obj) in deviations.items():
            try:
                self.validator.decode(dt, obj, what)
            except StrictDecodeError:
                continue
            raise CheckFailed(f"strict decoding accepted {what}")
        # And the SDK's own (non-strict) decoding would have let an unknown field through:
        loose = stone_serializers.json_compat_obj_decode(
            account_t, deviations["an unknown field"][1], strict=False
        )
        expect_eq(loose.account_id, self.account_id, "non-strict decode of the doctored account")

    def files_list_folder_paged(self) -> None:
        entries, pages, cursor = self.list_all(ROOT, recursive=True, limit=3)
        want = sorted(p for p in self.entries if p == ROOT.lower() or p.startswith(ROOT.lower() + "/"))
        got = [e.path_lower for e in entries]
        expect(len(got) == len(set(got)), f"duplicate entries across pages: {got}")
        expect_eq(sorted(got), want, "recursive listing (path_lower)")
        expect(pages >= 3, f"limit=3 over {len(want)} entries gave {pages} page(s)")
        expect_eq(got[0], ROOT.lower(), "first entry of a recursive listing of a folder")
        parents_first = all(
            got.index(p.rsplit("/", 1)[0]) < got.index(p) for p in got if p.rsplit("/", 1)[0] in got
        )
        expect(parents_first, f"a child is listed before its folder: {got}")
        for md in entries:
            self.expect_matches_control(md, "list_folder")
        # Nothing changed since: continue returns no entries and has_more=false.
        res = self.dbx.files_list_folder_continue(cursor)
        expect_eq((len(res.entries), res.has_more), (0, False), "continue with no changes (entries, has_more)")
        # Non-recursive: the direct children only, without the folder itself.
        flat, _, _ = self.list_all(ROOT)
        want_flat = sorted(p for p in want if p.count("/") == ROOT.count("/") + 1)
        expect_eq(sorted(e.path_lower for e in flat), want_flat, "non-recursive listing")

    def files_get_metadata(self) -> None:
        path = f"{ROOT}/Readme.TXT"
        want = self.entries[path.lower()]
        md = self.dbx.files_get_metadata(path.upper())  # paths are case-insensitive
        self.expect_matches_control(md, "get_metadata(file, other case)")
        md = self.dbx.files_get_metadata(f"{ROOT}/Sub")
        self.expect_matches_control(md, "get_metadata(folder)")
        md = self.dbx.files_get_metadata(want["id"])
        self.expect_matches_control(md, "get_metadata(id:)")
        expect_eq(md.path_lower, path.lower(), "get_metadata(id:) path_lower")
        md = self.dbx.files_get_metadata(f"{ROOT}/{UNICODE_NAME}")
        self.expect_matches_control(md, "get_metadata(non-ASCII name)")

    def files_download_content_hash(self) -> None:
        for e in self.entries.values():
            if e["is_folder"] or not e["path_lower"].startswith(ROOT.lower() + "/"):
                continue
            md, resp = self.dbx.files_download(e["path_display"])
            with resp:
                data = resp.content
            what = f"download {e['path_display']!r}"
            self.expect_matches_control(md, what)
            expect_eq(len(data), md.size, f"{what}: bytes received vs metadata size")
            ours = dropbox_content_hash(data)
            sdk = DropboxContentHasher()
            sdk.update(data)
            expect_eq(ours, sdk.hexdigest(), f"{what}: our content_hash vs the SDK's hasher")
            expect_eq(ours, md.content_hash, f"{what}: content_hash of the bytes vs FileMetadata.content_hash")
            sha = self.ctl("sha256", account_id=self.account_id, id=e["id"])["sha256"]
            expect_eq(hashlib.sha256(data).hexdigest(), sha, f"{what}: SHA-256 vs the sandbox's content")
        md, resp = self.dbx.files_download(self.entries[f"{ROOT}/sub/b.txt".lower()]["id"])
        with resp:
            expect_eq(resp.content, bytes(range(256)), "download by id: bytes")
        expect_eq(md.path_lower, f"{ROOT}/sub/b.txt".lower(), "download by id: path_lower")
        e = self.entries[f"{ROOT}/{UNICODE_NAME}".lower()]
        md, resp = self.dbx.files_download(f"rev:{e['rev']}")
        with resp:
            expect_eq(resp.content, b"non-ASCII name\n", "download by rev: bytes")
        expect_eq(md.name, UNICODE_NAME, "download by rev: name")

    def files_list_folder_get_latest_cursor(self) -> None:
        cursor = self.dbx.files_list_folder_get_latest_cursor(ROOT, recursive=True).cursor
        self.add(f"{ROOT}/Sub/after-cursor.txt", {"text": "new\n"})
        entries, _ = self.drain(cursor)
        got = [(type(e).__name__, e.path_lower) for e in entries]
        expect_eq(got, [("FileMetadata", f"{ROOT}/sub/after-cursor.txt".lower())], "changes after the latest cursor")
        self.expect_matches_control(entries[0], "continue")

    def files_list_folder_longpoll(self) -> None:
        cursor = self.dbx.files_list_folder_get_latest_cursor(ROOT, recursive=True).cursor
        res = self.dbx.files_list_folder_longpoll(cursor, timeout=30)
        expect(isinstance(res, files.ListFolderLongpollResult), "longpoll result type")
        expect_eq(res.changes, False, "longpoll without a change: changes")
        self.add(f"{ROOT}/longpoll.txt", {"text": "poke\n"})
        res = self.dbx.files_list_folder_longpoll(cursor, timeout=30)
        expect_eq(res.changes, True, "longpoll after a change: changes")

    def deleted_entries_in_continue(self) -> None:
        cursor = self.dbx.files_list_folder_get_latest_cursor(ROOT, recursive=True).cursor
        readme = f"{ROOT}/Readme.TXT"
        self.ctl("delete", account_id=self.account_id, path=readme)
        self.ctl("delete", account_id=self.account_id, path=f"{ROOT}/Sub/Deeper")
        for gone in (readme, f"{ROOT}/Sub/Deeper", f"{ROOT}/Sub/Deeper/c.txt"):
            self.entries.pop(gone.lower())
        b = self.ctl("modify_file", account_id=self.account_id, path=f"{ROOT}/Sub/b.txt", content={"text": "v2\n"})
        old_b = self.entries[b["path_lower"]]
        self.entries[b["path_lower"]] = b
        entries, _ = self.drain(cursor)
        by_path = {e.path_lower: e for e in entries}
        for gone in (readme.lower(), f"{ROOT}/sub/deeper".lower()):
            md = by_path.get(gone)
            expect(md is not None, f"no entry for deleted {gone!r} in continue: {sorted(by_path)}")
            expect(isinstance(md, files.DeletedMetadata), f"{gone!r} came as {type(md).__name__}")
        expect_eq(by_path[readme.lower()].name, "Readme.TXT", "DeletedMetadata.name")
        expect_eq(by_path[readme.lower()].path_display, readme, "DeletedMetadata.path_display")
        for p, md in by_path.items():
            if p.startswith(f"{ROOT}/sub/deeper/".lower()):
                expect(isinstance(md, files.DeletedMetadata), f"live entry under a deleted folder: {p!r}")
        md = by_path.get(b["path_lower"])
        expect(isinstance(md, files.FileMetadata), f"modified file came as {type(md).__name__}")
        self.expect_matches_control(md, "continue after modify")
        expect(md.rev != old_b["rev"], "a modified file kept its rev")
        listed, _, _ = self.list_all(ROOT, recursive=True, include_deleted=True)
        tombs = {e.path_lower for e in listed if isinstance(e, files.DeletedMetadata)}
        expect(readme.lower() in tombs, f"list_folder(include_deleted) has no DeletedMetadata for {readme!r}")
        live, _, _ = self.list_all(ROOT, recursive=True)
        expect(
            not any(isinstance(e, files.DeletedMetadata) for e in live),
            "list_folder without include_deleted lists deleted entries",
        )
        md = self.dbx.files_get_metadata(readme, include_deleted=True)
        expect(isinstance(md, files.DeletedMetadata), f"get_metadata(include_deleted) gave {type(md).__name__}")
        try:
            self.dbx.files_get_metadata(readme)
        except ApiError as e:
            expect(e.error.is_path() and e.error.get_path().is_not_found(), f"deleted file: {e.error}")
        else:
            raise CheckFailed("get_metadata of a deleted file succeeded")

    def cursor_reset(self) -> None:
        cursor = self.dbx.files_list_folder_get_latest_cursor(ROOT, recursive=True).cursor
        self.ctl("reset_cursors")
        try:
            self.dbx.files_list_folder_continue(cursor)
        except ApiError as e:
            expect(isinstance(e.error, files.ListFolderContinueError), f"error type {type(e.error).__name__}")
            expect(e.error.is_reset(), f"continue after reset_cursors: {e.error}, want reset")
        else:
            raise CheckFailed("continue with a reset cursor succeeded")
        try:
            self.dbx.files_list_folder_longpoll(cursor, timeout=30)
        except ApiError as e:
            expect(isinstance(e.error, files.ListFolderLongpollError), f"error type {type(e.error).__name__}")
            expect(e.error.is_reset(), f"longpoll after reset_cursors: {e.error}, want reset")
        else:
            raise CheckFailed("longpoll with a reset cursor succeeded")
        entries, _, _ = self.list_all(ROOT, recursive=True)  # a fresh listing works
        expect(len(entries) > 0, "listing after a reset is empty")

    def error_path_not_found(self) -> None:
        missing = f"{ROOT}/no such file.txt"
        cases = [
            ("get_metadata", lambda: self.dbx.files_get_metadata(missing), files.GetMetadataError, "not_found"),
            ("download", lambda: self.dbx.files_download(missing), files.DownloadError, "not_found"),
            ("list_folder", lambda: self.dbx.files_list_folder(missing), files.ListFolderError, "not_found"),
            ("download of a folder", lambda: self.dbx.files_download(f"{ROOT}/Sub"), files.DownloadError, "not_file"),
            (
                "list_folder of a file",
                lambda: self.dbx.files_list_folder(f"{ROOT}/Sub/b.txt"),
                files.ListFolderError,
                "not_folder",
            ),
            (
                "get_latest_cursor",
                lambda: self.dbx.files_list_folder_get_latest_cursor(missing),
                files.ListFolderError,
                "not_found",
            ),
        ]
        for what, call, err_type, tag in cases:
            try:
                call()
            except ApiError as e:
                expect(isinstance(e.error, err_type), f"{what}: error is {type(e.error).__name__}")
                expect(e.error.is_path(), f"{what}: error {e.error} is not path/…")
                expect(getattr(e.error.get_path(), f"is_{tag}")(), f"{what}: {e.error.get_path()}, want path/{tag}")
            else:
                raise CheckFailed(f"{what}: no ApiError")

    def error_invalid_token(self) -> None:
        bogus = self.client("sandbox-fidelity-not-a-token")
        try:
            bogus.users_get_current_account()
        except AuthError as e:
            expect(e.error is not None and e.error.is_invalid_access_token(), f"AuthError {e.error}")
        else:
            raise CheckFailed("an invalid token was accepted")

    def error_rate_limit(self) -> None:
        for endpoint, call in (
            ("ListFolder", lambda: self.dbx.files_list_folder(ROOT)),
            ("Download", lambda: self.dbx.files_download(f"{ROOT}/Sub/b.txt")),
        ):
            fault = {"rate_limit": {"retry_after_secs": 7}}
            self.ctl("inject", endpoint=endpoint, fault=fault, times=1)
            try:
                call()
            except RateLimitError as e:
                expect_eq(e.backoff, 7, f"{endpoint}: RateLimitError.backoff")
                expect(e.error is not None, f"{endpoint}: RateLimitError without its error body")
                expect_eq(e.error.retry_after, 7, f"{endpoint}: error.retry_after")
                expect(e.error.reason.is_too_many_requests(), f"{endpoint}: reason {e.error.reason}")
            else:
                self.ctl("clear_faults")
                raise CheckFailed(f"{endpoint}: no RateLimitError")
            call()  # the fault was used up: the next call succeeds

    def error_server_error(self) -> None:
        self.ctl("inject", endpoint="GetMetadata", fault={"server_error": 503}, times=1)
        try:
            self.dbx.files_get_metadata(f"{ROOT}/Sub")
        except InternalServerError as e:
            expect_eq(e.status_code, 503, "InternalServerError.status_code")
        else:
            self.ctl("clear_faults")
            raise CheckFailed("no InternalServerError")

    def request_ids(self) -> None:
        missing = dict(self.validator.without_request_id)
        expect(not missing, f"responses without X-Dropbox-Request-Id: {missing}")
        try:
            self.dbx.files_get_metadata(f"{ROOT}/no such file.txt")
        except ApiError as e:
            expect(bool(e.request_id), "ApiError.request_id is empty")
        else:
            raise CheckFailed("get_metadata of a missing file succeeded")

    def error_expired_token(self) -> None:
        # Last: expires every token issued so far (new ones are fine).
        self.ctl("expire_access_tokens")
        try:
            self.dbx.files_list_folder(ROOT)
        except AuthError as e:
            expect(e.error is not None and e.error.is_expired_access_token(), f"AuthError {e.error}")
        else:
            raise CheckFailed("an expired token was accepted")
        self.dbx = self.client(self.mint())
        self.dbx.files_list_folder(ROOT)

    CASES = [
        "users_get_current_account",
        "files_list_folder_paged",
        "strict_decoding_rejects_deviations",
        "files_get_metadata",
        "files_download_content_hash",
        "files_list_folder_get_latest_cursor",
        "files_list_folder_longpoll",
        "deleted_entries_in_continue",
        "cursor_reset",
        "error_path_not_found",
        "error_invalid_token",
        "error_rate_limit",
        "error_server_error",
        "error_expired_token",
        "request_ids",
    ]

    def tally(self) -> tuple[str, str, Counter]:
        return "responses decoded strictly", "strict decoding: no response was decoded", self.validator.decoded


def main() -> int:
    args = arguments(__doc__.split("\n")[0])
    if args is None:
        return 2
    # The SDK logs a warning when it cannot refresh an expired token (none to refresh here).
    logging.getLogger("dropbox").setLevel(logging.ERROR)
    print(f"Dropbox sandbox fidelity with the official SDK (dropbox {dropbox.__version__}), strict types")
    return Fidelity(args.sandbox, args.client_id).run(args.verbose)

if __name__ == "__main__":
    sys.exit(main())
