#!/usr/bin/env python3
"""The Google Drive sandbox's fidelity, checked against Google's own Drive v3 discovery document
and driven by Google's Python client (PyPI `google-api-python-client`, unmodified).

Usage: google_drive_check.py --sandbox http://127.0.0.1:PORT [--client-id ID]
(`scripts/check-sandbox-fidelity` starts a sandbox and runs this; see there.)

Where the contract comes from: the client package ships the discovery documents it can build
services from offline; this check loads `discovery_cache/documents/drive.v3.json` next to the
installed `googleapiclient` (nothing is fetched from the internet) and builds the `drive` service
from it with `googleapiclient.discovery.build_from_document(doc, http=...)`.

How the client is aimed at the sandbox: the service keeps the document's real base URL
(`https://www.googleapis.com/drive/v3/`), and the only HTTP object it is given is `SandboxHttp`,
an `httplib2.Http` (no proxies) wrapped in google-auth's `AuthorizedHttp` with a bearer
`Credentials` (so the Authorization header is added by Google's own auth library). `SandboxHttp`
rewrites `https://www.googleapis.com/...` to the sandbox's `{base}/google_drive/www/...` and
refuses every other host, so nothing leaves 127.0.0.1.

Strict schemas: the client does not check responses against the document at all (it returns
whatever JSON arrives), so `SandboxHttp` validates every JSON body it receives. It finds the
discovery method from the HTTP method and path (`files/{fileId}` → `drive.files.get`), then:
- a 2xx JSON answer is checked against `schemas[method.response.$ref]`, recursively: unknown
  properties fail; `type: string, format: int64` must be a JSON string of digits (Drive sends
  `size` and `version` as strings); `date-time` must parse as RFC 3339; booleans, integers,
  arrays, `additionalProperties` maps and nested `$ref`s are checked; a `kind` must equal the
  schema's fixed value. When the request carried `fields`, the answer must also stay inside that
  partial-response mask (the connector relies on `fields`: see shared/providers/src/google_drive/);
- a 4xx/5xx answer must be Google's two-level error body `{"error": {"code", "message",
  "errors": [{"domain", "reason", "message", ...}], "status"?}}` with `code` equal to the status;
- media (`alt=media`, `files.export`) answers are not JSON and are checked by their cases.
The case `strict_validation_rejects_deviations` proves on doctored copies of real responses that
the validator rejects each kind of deviation, so the check cannot pass vacuously.

Each case prints `PASS name` or `FAIL name: why`; the last line is `N passed, N failed`, and the
exit status is non-zero when any case failed. Tokens are never printed: every line is redacted
against the tokens minted here, and the last case checks that none of the sandbox's canaries
(every secret it issued or saw) was printed.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections import Counter
from datetime import datetime

import google_auth_httplib2
import googleapiclient
import httplib2
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseDownload

from harness import Check, CheckFailed, Control, arguments, expect, expect_eq

FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
EXPORT_LIMIT = 10 * 1024 * 1024
UNICODE_NAME = "Café ünïcode — naïve ☃.txt"
# The `fields` selectors the connector sends (shared/providers/src/google_drive/{wire,listing}.rs).
FILE_FIELDS = (
    "id,name,mimeType,size,md5Checksum,sha256Checksum,modifiedTime,parents,trashed,"
    "driveId,version,headRevisionId,shortcutDetails,capabilities/canDownload,exportLinks,resourceKey"
)
LIST_FIELDS = f"nextPageToken,incompleteSearch,files({FILE_FIELDS})"
CHANGES_FIELDS = f"nextPageToken,newStartPageToken,changes(changeType,removed,fileId,time,driveId,file({FILE_FIELDS}))"
PICKER_FIELDS = "nextPageToken,files(id,name,parents,driveId)"
DRIVES_FIELDS = "nextPageToken,drives(id,name)"


class SchemaError(Exception):
    """A sandbox response that Google's discovery document does not allow."""


class OffSandboxRequest(Exception):
    """The client tried to reach a host that is not the emulated Drive API host."""


def discovery_document() -> tuple[dict, str]:
    """Drive v3's discovery document as shipped inside the installed client package."""
    path = os.path.join(
        os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents", "drive.v3.json"
    )
    with open(path, encoding="utf-8") as f:
        return json.load(f), path


# ---------------------------------------------------------------------------------------------
# `fields` masks (Google's partial-response syntax: `a,b/c,d(e,f(g))`, `*`)


def parse_fields(text: str) -> dict:
    """A mask as a tree: name -> sub-mask ({} = the whole value; {"*": {}} = everything)."""
    pos = 0

    def parse_list(depth: int) -> dict:
        nonlocal pos
        mask: dict = {}
        while True:
            start = pos
            while pos < len(text) and text[pos] not in ",()":
                pos += 1
            path = text[start:pos].strip()
            if not path:
                raise ValueError(f"empty field name at {start} in {text!r}")
            node = mask
            parts = path.split("/")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            leaf = node.setdefault(parts[-1], {})
            if pos < len(text) and text[pos] == "(":
                pos += 1
                leaf.update(parse_list(depth + 1))
                if pos >= len(text) or text[pos] != ")":
                    raise ValueError(f"unclosed '(' in {text!r}")
                pos += 1
            if pos >= len(text):
                if depth:
                    raise ValueError(f"unclosed '(' in {text!r}")
                return mask
            if text[pos] == ")":
                if not depth:
                    raise ValueError(f"unbalanced ')' in {text!r}")
                return mask
            pos += 1  # ','

    return parse_list(0)


def outside_mask(value, mask: dict, where: str) -> list[str]:
    """Members of `value` that the mask did not ask for."""
    if not mask or "*" in mask:
        return []
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in outside_mask(v, mask, f"{where}[{i}]")]
    if not isinstance(value, dict):
        return []
    out = []
    for k, v in value.items():
        if k not in mask:
            out.append(f"{where}.{k}")
        else:
            out += outside_mask(v, mask[k], f"{where}.{k}")
    return out


# ---------------------------------------------------------------------------------------------
# Strict validation of every JSON response against the discovery document

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
INT64 = re.compile(r"^-?\d+$")
ERROR_INNER = {"domain", "reason", "message", "locationType", "location", "extendedHelp", "sendReport"}


class Validator:
    def __init__(self, doc: dict) -> None:
        self.schemas = doc["schemas"]
        self.methods = []  # (http method, regex over the path below servicePath, method id, desc)
        self.service_path = "/" + doc["servicePath"]

        def walk(resources: dict) -> None:
            for res in resources.values():
                for desc in res.get("methods", {}).values():
                    parts = re.split(r"\{\+?\w+\}", desc["path"])  # `files/{fileId}/export`
                    pattern = "[^/]+".join(re.escape(p) for p in parts)
                    self.methods.append((desc["httpMethod"], re.compile(f"^{pattern}$"), desc["id"], desc))
                walk(res.get("resources", {}))

        walk(doc["resources"])
        self.checked: Counter[str] = Counter()
        self.seen: dict[str, list] = {}  # response schema (or `error <status>`) -> bodies validated

    def method_of(self, http_method: str, path: str):
        if not path.startswith(self.service_path):
            raise SchemaError(f"{path}: not under the document's servicePath {self.service_path}")
        rel = path[len(self.service_path) :]
        for verb, rx, mid, desc in self.methods:
            if verb == http_method and rx.match(rel):
                return mid, desc
        raise SchemaError(f"{http_method} {path}: no method of the discovery document has this path")

    def value(self, schema: dict, v, where: str) -> None:
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref not in self.schemas:
                raise SchemaError(f"{where}: the document has no schema {ref}")
            schema = self.schemas[ref]
        t = schema.get("type")
        if t == "object":
            if not isinstance(v, dict):
                raise SchemaError(f"{where}: {type(v).__name__} where the schema has an object")
            props = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            for k, item in v.items():
                if k in props:
                    self.value(props[k], item, f"{where}.{k}")
                    if k == "kind" and "default" in props[k] and item != props[k]["default"]:
                        raise SchemaError(f"{where}.kind: {item!r}, the schema fixes {props[k]['default']!r}")
                elif extra is not None:
                    self.value(extra, item, f"{where}[{k!r}]")
                else:
                    raise SchemaError(f"{where}: unknown property {k!r}")
        elif t == "array":
            if not isinstance(v, list):
                raise SchemaError(f"{where}: {type(v).__name__} where the schema has an array")
            for i, item in enumerate(v):
                self.value(schema.get("items", {}), item, f"{where}[{i}]")
        elif t == "string":
            if not isinstance(v, str):
                raise SchemaError(f"{where}: {type(v).__name__} {v!r} where the schema has a string")
            fmt = schema.get("format")
            if fmt in ("int64", "uint64") and not INT64.match(v):
                raise SchemaError(f"{where}: {v!r} is not an {fmt} string")
            if fmt == "date-time":
                if not RFC3339.match(v):
                    raise SchemaError(f"{where}: {v!r} is not RFC 3339")
                try:
                    datetime.fromisoformat(v.replace("Z", "+00:00"))
                except ValueError as e:
                    raise SchemaError(f"{where}: {v!r} is not a valid date-time: {e}") from None
            if "enum" in schema and v not in schema["enum"]:
                raise SchemaError(f"{where}: {v!r} is not one of {schema['enum']}")
        elif t == "integer":
            if not isinstance(v, int) or isinstance(v, bool):
                raise SchemaError(f"{where}: {type(v).__name__} {v!r} where the schema has an integer")
        elif t == "number":
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise SchemaError(f"{where}: {type(v).__name__} where the schema has a number")
        elif t == "boolean":
            if not isinstance(v, bool):
                raise SchemaError(f"{where}: {type(v).__name__} {v!r} where the schema has a boolean")
        elif t == "any":
            pass
        else:
            raise SchemaError(f"{where}: the document's schema has no type ({schema})")

    def resource(self, ref: str, obj, where: str) -> None:
        self.value({"$ref": ref}, obj, where)

    @staticmethod
    def error_body(status: int, obj, where: str) -> None:
        if not isinstance(obj, dict) or set(obj) != {"error"}:
            raise SchemaError(f"{where}: error body is not {{'error': {{...}}}}: {str(obj)[:200]}")
        err = obj["error"]
        if not isinstance(err, dict):
            raise SchemaError(f"{where}: 'error' is not an object")
        extra = set(err) - {"code", "message", "errors", "status", "details"}
        if extra:
            raise SchemaError(f"{where}: unknown members of 'error': {sorted(extra)}")
        if err.get("code") != status or isinstance(err.get("code"), bool):
            raise SchemaError(f"{where}: error.code {err.get('code')!r} is not the HTTP status {status}")
        if not isinstance(err.get("message"), str) or not err["message"]:
            raise SchemaError(f"{where}: error.message missing or not a string")
        if "status" in err and not (isinstance(err["status"], str) and err["status"].isupper()):
            raise SchemaError(f"{where}: error.status {err['status']!r} is not a canonical status name")
        errors = err.get("errors")
        if not isinstance(errors, list) or not errors:
            raise SchemaError(f"{where}: error.errors missing or empty")
        for i, e in enumerate(errors):
            if not isinstance(e, dict):
                raise SchemaError(f"{where}: error.errors[{i}] is not an object")
            for k in ("domain", "reason", "message"):
                if not isinstance(e.get(k), str) or not e[k]:
                    raise SchemaError(f"{where}: error.errors[{i}].{k} missing or not a string")
            unknown = set(e) - ERROR_INNER
            if unknown:
                raise SchemaError(f"{where}: unknown members of error.errors[{i}]: {sorted(unknown)}")
            for k in set(e) & ERROR_INNER - {"domain", "reason", "message"}:
                if not isinstance(e[k], str):
                    raise SchemaError(f"{where}: error.errors[{i}].{k} is not a string")

    def check(self, method: str, url: urllib.parse.SplitResult, resp, content: bytes) -> None:
        mid, desc = self.method_of(method, url.path)
        params = urllib.parse.parse_qs(url.query)
        status = resp.status
        where = f"{mid} → {status}"
        ctype = resp.get("content-type", "")
        if status >= 400:
            if not ctype.startswith("application/json"):
                raise SchemaError(f"{where}: error Content-Type {ctype!r}, Google sends application/json")
            try:
                obj = json.loads(content)
            except ValueError as e:
                raise SchemaError(f"{where}: error body is not JSON: {e}") from None
            self.error_body(status, obj, where)
            self.checked[f"{mid} (error)"] += 1
            self.seen.setdefault(f"error {status}", []).append(obj)
            return
        if params.get("alt") == ["media"] or "response" not in desc:
            return  # bytes (a download or an export): checked by the cases
        if status != 200:
            raise SchemaError(f"{where}: a JSON method answered {status}")
        if not ctype.startswith("application/json"):
            raise SchemaError(f"{where}: Content-Type {ctype!r}, Google sends application/json")
        try:
            obj = json.loads(content)
        except ValueError as e:
            raise SchemaError(f"{where}: body is not JSON: {e}") from None
        self.resource(desc["response"]["$ref"], obj, where)
        if "fields" in params:
            try:
                mask = parse_fields(params["fields"][-1])
            except ValueError as e:
                raise SchemaError(f"{where}: the check's own fields mask is invalid: {e}") from None
            extra = outside_mask(obj, mask, desc["response"]["$ref"])
            if extra:
                raise SchemaError(f"{where}: fields={params['fields'][-1]!r} not honoured, extra: {extra[:6]}")
        self.checked[mid] += 1
        self.seen.setdefault(desc["response"]["$ref"], []).append(obj)


class SandboxHttp(httplib2.Http):
    """httplib2 that sends the client's real Drive URLs to the sandbox, validating answers."""

    API_HOST = "www.googleapis.com"

    def __init__(self, api_base: str, validator: Validator) -> None:
        super().__init__(proxy_info=None, timeout=120)
        base = urllib.parse.urlsplit(api_base)
        if base.scheme != "http" or base.hostname != "127.0.0.1":
            raise OffSandboxRequest(f"refused: the sandbox's API base {api_base!r} is not on 127.0.0.1")
        self.api_base = api_base.rstrip("/")
        self.validator = validator
        self.requests: Counter[str] = Counter()
        self.media: list[tuple[str | None, int, str | None, int]] = []  # Range, status, Content-Range, bytes
        self.media_types: list[str | None] = []  # Content-Type of each alt=media answer

    def request(self, uri, method="GET", body=None, headers=None, redirections=0, connection_type=None):
        url = urllib.parse.urlsplit(uri)
        if url.scheme != "https" or url.netloc != self.API_HOST:
            raise OffSandboxRequest(f"refused: {url.scheme}://{url.netloc} is not the emulated Drive host")
        target = self.api_base + url.path + (f"?{url.query}" if url.query else "")
        self.requests[method] += 1
        resp, content = super().request(target, method=method, body=body, headers=headers, redirections=0)
        self.validator.check(method, url, resp, content)
        if "alt=media" in url.query.split("&"):
            self.media.append(((headers or {}).get("range"), resp.status, resp.get("content-range"), len(content)))
            self.media_types.append(resp.get("content-type"))
        return resp, content


def tiny_docx(text: str) -> bytes:
    """A minimal .docx (a zip), the export body of the native doc."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
            'package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        body = f"<w:document><w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>"
        z.writestr("word/document.xml", body)
    return buf.getvalue()


def http_reason(e: HttpError) -> str:
    details = e.error_details if isinstance(e.error_details, list) else []
    return details[0].get("reason", "") if details and isinstance(details[0], dict) else ""


# ---------------------------------------------------------------------------------------------
# The cases


class Fidelity(Check):
    def __init__(self, sandbox: str, client_id: str) -> None:
        super().__init__()
        self.ctl = Control(sandbox, "google_drive")
        self.client_id = client_id
        self.doc, self.doc_path = discovery_document()
        self.validator = Validator(self.doc)
        self.api_base = self.ctl.urls()["api_base"]
        self.transport = SandboxHttp(self.api_base, self.validator)
        self.account_id = ""
        self.root_id = ""
        self.ids: dict[str, str] = {}  # label -> file id
        self.nodes: dict[str, dict] = {}  # label -> control node
        self.bytes: dict[str, bytes] = {}  # label -> content (for blobs seeded with bytes)
        self.drive_id = ""
        self.drive = None

    def client(self, token: str):
        creds = Credentials(token=token)
        # No refresh on a 401 (the token is all it has): the 401 reaches the case as HttpError.
        http = google_auth_httplib2.AuthorizedHttp(creds, http=self.transport, refresh_status_codes=())
        return build_from_document(self.doc, http=http)

    def mint(self) -> str:
        t = self.ctl("mint_tokens", account_id=self.account_id, client_id=self.client_id)
        self.secrets += [t["access_token"], t["refresh_token"]]
        return t["access_token"]

    def add(self, label: str, op: str, **body) -> dict:
        node = self.ctl(op, account_id=self.account_id, **body)
        self.ids[label] = node["id"]
        self.nodes[label] = node
        return node

    def add_bytes(self, label: str, parent: str, name: str, data: bytes, mime: str | None = None) -> dict:
        extra = {"mime_type": mime} if mime else {}
        node = self.add(
            label, "add_file", parent=parent, name=name, content={"base64": base64.b64encode(data).decode()}, **extra
        )
        self.bytes[label] = data
        return node

    def setup(self) -> None:
        acct = self.ctl("accounts", display_name="Drive Fidelity", email="drive-fidelity@example.com")
        self.account_id, self.root_id = acct["account_id"], acct["root_id"]
        top = self.add("top", "add_folder", parent=self.root_id, name="Drive Fidelity")["id"]
        sub = self.add("sub", "add_folder", parent=top, name="Sub")["id"]
        deeper = self.add("deeper", "add_folder", parent=sub, name="Deeper")["id"]
        self.add_bytes("readme", top, "Readme.txt", b"Hello from the Drive fidelity check.\n", "text/plain")
        self.add_bytes("unicode", top, UNICODE_NAME, "non-ASCII name ✓\n".encode(), "text/plain")
        self.add_bytes("twin1", top, "twin.txt", b"first twin\n", "text/plain")
        self.add_bytes("twin2", top, "twin.txt", b"second twin\n", "text/plain")
        self.add_bytes("bytes", sub, "bytes.bin", bytes(range(256)) * 40)
        self.add("big", "add_file", parent=sub, name="big.bin", content={"generated": {"size": 300_001, "seed": 5}})
        self.add_bytes("deep", deeper, "deep.txt", b"deep\n", "text/plain")
        self.add_bytes("empty", deeper, "empty.bin", b"")
        self.docx = tiny_docx("Fidelity document")
        self.add(
            "doc", "add_native", parent=top, name="Plan", mime_type=DOC,
            export={"base64": base64.b64encode(self.docx).decode()},
        )
        self.add(
            "hugedoc", "add_native", parent=sub, name="Huge plan", mime_type=DOC,
            export={"generated": {"size": EXPORT_LIMIT + 1, "seed": 9}},
        )
        self.add("shortcut", "add_shortcut", parent=top, name="Readme shortcut", target_id=self.ids["readme"])
        self.drive_id = self.ctl("add_shared_drive", account_id=self.account_id, name="Team Fidelity")["drive_id"]
        self.add_bytes("teamfile", self.drive_id, "team.txt", b"in the shared drive\n", "text/plain")
        self.add("teamfolder", "add_folder", parent=self.drive_id, name="Team folder")
        self.drive = self.client(self.mint())

    # -- helpers -----------------------------------------------------------------------------

    def list_children(self, folder: str, page_size: int, **kw) -> tuple[list, int]:
        files, pages, token = [], 0, None
        while True:
            expect(pages < 100, "files.list: nextPageToken never went away")
            res = self.drive.files().list(
                q=f"'{folder}' in parents and trashed = false", pageSize=page_size, pageToken=token,
                fields=LIST_FIELDS, **kw,
            ).execute()
            files += res.get("files", [])
            pages += 1
            token = res.get("nextPageToken")
            if not token:
                return files, pages

    def expect_control(self, label: str, f: dict, what: str) -> None:
        """A File as the control API's own files.get JSON has it (same id, name, size, md5, ...)."""
        want = self.ctl("file", account_id=self.account_id, id=self.ids[label])
        for k in ("id", "name", "mimeType", "size", "md5Checksum", "sha256Checksum", "parents", "version", "trashed"):
            if k in want or k in f:
                expect_eq(f.get(k), want.get(k), f"{what}: {k} of {label}")

    # -- cases -------------------------------------------------------------------------------

    def about_get(self) -> None:
        a = self.drive.about().get(fields="user").execute()
        expect_eq(sorted(a), ["user"], "about(fields=user) members")
        u = a["user"]
        expect_eq(u.get("displayName"), "Drive Fidelity", "user.displayName")
        expect_eq(u.get("emailAddress"), "drive-fidelity@example.com", "user.emailAddress")
        expect_eq(u.get("permissionId"), self.account_id, "user.permissionId (the sandbox's account id)")
        expect_eq(u.get("me"), True, "user.me")

    def files_list_paged(self) -> None:
        top = self.ids["top"]
        files, pages = self.list_children(top, 2)
        want = {self.ids[k] for k in ("sub", "readme", "unicode", "twin1", "twin2", "doc", "shortcut")}
        got = [f["id"] for f in files]
        expect(len(got) == len(set(got)), f"duplicate files across pages: {got}")
        expect_eq(set(got), want, "children of the top folder (ids)")
        expect(pages >= 4, f"pageSize=2 over {len(want)} children gave {pages} page(s)")
        twins = [f for f in files if f["name"] == "twin.txt"]
        expect_eq(len(twins), 2, "two files named twin.txt in one folder")
        expect(twins[0]["id"] != twins[1]["id"], "the twins share an id")
        for f in files:
            expect_eq(f.get("parents"), [top], f"parents of {f['name']!r}")
            expect_eq(f.get("trashed"), False, f"trashed of {f['name']!r}")
            expect("capabilities" in f and set(f["capabilities"]) == {"canDownload"},
                   f"capabilities of {f['name']!r} with capabilities/canDownload: {f.get('capabilities')}")
        label = {v: k for k, v in self.ids.items()}
        for f in files:
            self.expect_control(label[f["id"]], f, "files.list")
        folder = next(f for f in files if f["id"] == self.ids["sub"])
        for k in ("size", "md5Checksum", "sha256Checksum", "headRevisionId"):
            expect(k not in folder, f"a folder has {k}")
        doc = next(f for f in files if f["id"] == self.ids["doc"])
        expect("md5Checksum" not in doc and "headRevisionId" not in doc, f"a native doc has blob fields: {sorted(doc)}")
        expect(DOCX in doc.get("exportLinks", {}), f"exportLinks of the doc lacks docx: {doc.get('exportLinks')}")
        sc = next(f for f in files if f["id"] == self.ids["shortcut"])
        expect_eq(sc.get("mimeType"), "application/vnd.google-apps.shortcut", "shortcut mimeType")
        expect_eq(sc.get("shortcutDetails", {}).get("targetId"), self.ids["readme"], "shortcutDetails.targetId")
        expect("size" not in sc, "a shortcut has a size")
        # The folder picker's query: folders only, fewer fields.
        res = self.drive.files().list(
            q=f"'{top}' in parents and mimeType = '{FOLDER}' and trashed = false",
            fields=PICKER_FIELDS, supportsAllDrives=True, includeItemsFromAllDrives=True,
        ).execute()
        expect_eq([f["id"] for f in res.get("files", [])], [self.ids["sub"]], "picker listing of the top folder")
        expect_eq(sorted(res["files"][0]), ["id", "name", "parents"], "picker fields of a My Drive folder")
        # My Drive's `root` alias in a query.
        res = self.drive.files().list(
            q=f"'root' in parents and mimeType = '{FOLDER}' and trashed = false",
            fields=PICKER_FIELDS, supportsAllDrives=True, includeItemsFromAllDrives=True,
        ).execute()
        expect_eq(res.get("files"), [{"id": top, "name": "Drive Fidelity", "parents": [self.root_id]}],
                  "picker listing of 'root'")

    def files_get_fields(self) -> None:
        for label in ("readme", "unicode", "bytes", "doc", "shortcut", "sub", "empty"):
            f = self.drive.files().get(fileId=self.ids[label], fields=FILE_FIELDS, supportsAllDrives=True).execute()
            self.expect_control(label, f, "files.get")
        f = self.drive.files().get(fileId=self.ids["unicode"], fields="id,name").execute()
        expect_eq(f, {"id": self.ids["unicode"], "name": UNICODE_NAME}, "files.get(fields=id,name)")
        root = self.drive.files().get(fileId="root", fields=FILE_FIELDS, supportsAllDrives=True).execute()
        expect_eq(root.get("id"), self.root_id, "files.get('root') id")
        expect_eq(root.get("mimeType"), FOLDER, "My Drive root mimeType")
        try:
            self.drive.files().get(fileId="no-such-file-id", fields="id").execute()
        except HttpError as e:
            expect_eq(e.status_code, 404, "missing file: status")
            expect_eq(http_reason(e), "notFound", "missing file: reason")
        else:
            raise CheckFailed("files.get of a missing id succeeded")

    def files_export_docx(self) -> None:
        data = self.drive.files().export(fileId=self.ids["doc"], mimeType=DOCX).execute()
        expect(isinstance(data, bytes) and data[:2] == b"PK", f"export is not a zip: {data[:8]!r}")
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            expect("word/document.xml" in z.namelist(), f"docx members: {z.namelist()}")
        expect_eq(data, self.docx, "export bytes")
        try:
            self.drive.files().export(fileId=self.ids["readme"], mimeType=DOCX).execute()
        except HttpError as e:
            expect_eq((e.status_code, http_reason(e)), (403, "fileNotExportable"), "export of a blob")
        else:
            raise CheckFailed("export of a binary file succeeded")

    def files_get_media_ranged(self) -> None:
        for label, chunk in (("bytes", 4096), ("big", 64 * 1024), ("readme", 1024), ("unicode", 7)):
            meta = self.drive.files().get(fileId=self.ids[label], fields="id,size,md5Checksum,mimeType").execute()
            self.transport.media.clear()
            self.transport.media_types.clear()
            buf = io.BytesIO()
            dl = MediaIoBaseDownload(buf, self.drive.files().get_media(fileId=self.ids[label]), chunksize=chunk)
            done, rounds = False, 0
            while not done:
                _, done = dl.next_chunk(num_retries=0)
                rounds += 1
                expect(rounds < 1000, "MediaIoBaseDownload never finished")
            data = buf.getvalue()
            size = int(meta["size"])
            expect_eq(len(data), size, f"{label}: bytes downloaded vs size")
            expect_eq(hashlib.md5(data).hexdigest(), meta["md5Checksum"], f"{label}: md5 of the bytes vs md5Checksum")
            # One Range request per chunk, each answered 206 with its Content-Range.
            want = []
            for start in range(0, size, chunk):
                end = min(start + chunk, size) - 1
                want.append((f"bytes={start}-{start + chunk - 1}", 206, f"bytes {start}-{end}/{size}", end - start + 1))
            expect_eq(self.transport.media, want, f"{label}: ranged requests (Range, status, Content-Range, bytes)")
            # Drive serves the bytes as the file's own type.
            types = {(t or "").split(";")[0].strip() for t in self.transport.media_types}
            expect_eq(types, {meta["mimeType"]}, f"{label}: Content-Type of alt=media vs the file's mimeType")
            if label in self.bytes:
                expect_eq(data, self.bytes[label], f"{label}: bytes")
            sha = self.ctl("sha256", account_id=self.account_id, id=self.ids[label])["sha256"]
            expect_eq(hashlib.sha256(data).hexdigest(), sha, f"{label}: SHA-256 vs the sandbox's content")
        # A 0-byte file: a plain (non-ranged) get_media.
        data = self.drive.files().get_media(fileId=self.ids["empty"]).execute()
        expect_eq(data, b"", "0-byte download")

    def media_of_native_doc(self) -> None:
        try:
            self.drive.files().get_media(fileId=self.ids["doc"]).execute()
        except HttpError as e:
            expect_eq((e.status_code, http_reason(e)), (403, "fileNotDownloadable"), "alt=media of a doc")
            expect("Export" in e.reason, f"message: {e.reason!r}")
        else:
            raise CheckFailed("alt=media of a native doc succeeded")

    def export_size_limit(self) -> None:
        try:
            self.drive.files().export(fileId=self.ids["hugedoc"], mimeType=DOCX).execute()
        except HttpError as e:
            expect_eq((e.status_code, http_reason(e)), (403, "exportSizeLimitExceeded"), "export of a >10 MB doc")
        else:
            raise CheckFailed("export of a >10 MB doc succeeded")

    def changes_to_new_start_page_token(self) -> None:
        old_version = self.ctl("file", account_id=self.account_id, id=self.ids["readme"])["version"]
        start = self.drive.changes().getStartPageToken(supportsAllDrives=True).execute()
        token = start["startPageToken"]
        # Nothing changed yet: one page, no changes, newStartPageToken.
        res = self.drive.changes().list(pageToken=token, fields=CHANGES_FIELDS, supportsAllDrives=True,
                                        includeItemsFromAllDrives=True).execute()
        expect_eq(res.get("changes"), [], "changes with nothing changed")
        expect("newStartPageToken" in res and "nextPageToken" not in res, f"an idle page: {sorted(res)}")
        modified = self.ctl("modify_file", account_id=self.account_id, id=self.ids["readme"],
                            content={"text": "v2 of the readme\n"})
        self.ctl("trash", account_id=self.account_id, id=self.ids["twin1"])
        self.ctl("delete", account_id=self.account_id, id=self.ids["deep"])
        self.add_bytes("late", self.ids["sub"], "late.txt", b"added after the token\n", "text/plain")
        changes, pages, new_token = [], 0, None
        page = token
        while page:
            expect(pages < 100, "changes.list never gave newStartPageToken")
            res = self.drive.changes().list(pageToken=page, pageSize=1, fields=CHANGES_FIELDS,
                                            supportsAllDrives=True, includeItemsFromAllDrives=True).execute()
            changes += res.get("changes", [])
            pages += 1
            page = res.get("nextPageToken")
            expect(not (page and "newStartPageToken" in res), "a page with both nextPageToken and newStartPageToken")
            new_token = res.get("newStartPageToken")
        expect(new_token is not None, "the last page has no newStartPageToken")
        expect(pages >= 4, f"pageSize=1 over 4 changes gave {pages} page(s)")
        by_id = {c["fileId"]: c for c in changes}
        expect_eq(set(by_id), {self.ids[k] for k in ("readme", "twin1", "deep", "late")}, "changed file ids")
        gone = by_id[self.ids["deep"]]
        expect_eq(gone.get("removed"), True, "permanent delete: removed")
        expect("file" not in gone, "a removed change carries a file")
        trashed = by_id[self.ids["twin1"]]
        expect_eq(
            (trashed.get("removed"), trashed["file"].get("trashed")), (False, True), "trash: removed, file.trashed"
        )
        mod = by_id[self.ids["readme"]]["file"]
        expect_eq(mod.get("md5Checksum"), hashlib.md5(b"v2 of the readme\n").hexdigest(), "modified file md5")
        expect_eq(mod.get("size"), str(modified["size"]), "modified file size")
        expect(int(mod["version"]) > int(old_version), f"version {mod['version']} did not grow from {old_version}")
        for c in changes:
            expect_eq(c.get("changeType"), "file", "changeType")
        # The token it gave is current: nothing new from it.
        res = self.drive.changes().list(pageToken=new_token, fields=CHANGES_FIELDS, supportsAllDrives=True,
                                        includeItemsFromAllDrives=True).execute()
        expect_eq(res.get("changes"), [], "changes from newStartPageToken")
        # Trashed files are gone from a `trashed = false` listing and back without it.
        listed, _ = self.list_children(self.ids["top"], 100)
        expect(self.ids["twin1"] not in {f["id"] for f in listed}, "a trashed file listed with trashed = false")
        res = self.drive.files().list(q=f"'{self.ids['top']}' in parents", fields="files(id,trashed)").execute()
        t = [f for f in res["files"] if f["id"] == self.ids["twin1"]]
        expect(t and t[0]["trashed"] is True, f"without trashed = false the trashed file is listed: {t}")

    def drives_list(self) -> None:
        res = self.drive.drives().list(pageSize=10, fields=DRIVES_FIELDS).execute()
        expect_eq(res.get("drives"), [{"id": self.drive_id, "name": "Team Fidelity"}], "drives.list")
        res = self.drive.drives().list().execute()
        expect_eq([d.get("kind") for d in res["drives"]], ["drive#drive"], "drives.list without fields: kind")
        # drives.get names a shared drive connected at its root.
        res = self.drive.drives().get(driveId=self.drive_id, fields="id,name").execute()
        expect_eq(res, {"id": self.drive_id, "name": "Team Fidelity"}, "drives.get")

    def revisions_list(self) -> None:
        # Edits make revisions, a rename does not: how the connector tells them apart.
        fields = "nextPageToken,revisions(id,modifiedTime)"
        before = self.drive.revisions().list(fileId=self.ids["doc"], fields=fields).execute()
        revs = before.get("revisions", [])
        expect(len(revs) >= 1 and all("id" in r and "modifiedTime" in r for r in revs), f"revisions: {before}")
        self.ctl("move_entry", account_id=self.account_id, id=self.ids["doc"], name="Plan (renamed)")
        after = self.drive.revisions().list(fileId=self.ids["doc"], fields=fields).execute()
        expect_eq(after.get("revisions"), revs, "revisions after a rename")

    def shared_drive_listing(self) -> None:
        res = self.drive.files().list(
            q=f"'{self.drive_id}' in parents and trashed = false", corpora="drive", driveId=self.drive_id,
            supportsAllDrives=True, includeItemsFromAllDrives=True, fields=LIST_FIELDS,
        ).execute()
        files = {f["id"]: f for f in res.get("files", [])}
        expect_eq(set(files), {self.ids["teamfile"], self.ids["teamfolder"]}, "shared drive children")
        for f in files.values():
            expect_eq(f.get("driveId"), self.drive_id, f"driveId of {f['name']!r}")
            expect_eq(f.get("parents"), [self.drive_id], f"parents of {f['name']!r}")
        self.expect_control("teamfile", files[self.ids["teamfile"]], "shared drive listing")
        # The picker's query inside a shared drive.
        res = self.drive.files().list(
            q=f"'{self.drive_id}' in parents and mimeType = '{FOLDER}' and trashed = false", corpora="drive",
            driveId=self.drive_id, supportsAllDrives=True, includeItemsFromAllDrives=True, fields=PICKER_FIELDS,
        ).execute()
        folder = self.ids["teamfolder"]
        want = [{"id": folder, "name": "Team folder", "parents": [self.drive_id], "driveId": self.drive_id}]
        expect_eq(res.get("files"), want, "picker in a shared drive")
        # Shared-drive items stay out of a My Drive listing and need supportsAllDrives.
        try:
            self.drive.files().get(fileId=self.ids["teamfile"], fields="id").execute()
        except HttpError as e:
            expect_eq(e.status_code, 404, "files.get of a shared-drive file without supportsAllDrives")
        else:
            raise CheckFailed("files.get of a shared-drive file without supportsAllDrives succeeded")
        buf = io.BytesIO()
        dl = MediaIoBaseDownload(buf, self.drive.files().get_media(fileId=self.ids["teamfile"], supportsAllDrives=True),
                                 chunksize=8)
        done = False
        while not done:
            _, done = dl.next_chunk(num_retries=0)
        expect_eq(buf.getvalue(), self.bytes["teamfile"], "shared-drive download")
        # The shared drive's own change feed (`driveId`), as the connector reads it.
        scope = dict(driveId=self.drive_id, supportsAllDrives=True)
        token = self.drive.changes().getStartPageToken(**scope).execute()["startPageToken"]
        self.add_bytes("teamlate", self.ids["teamfolder"], "late.txt", b"late in the team drive\n", "text/plain")
        self.add_bytes("mylate", self.ids["top"], "my-late.txt", b"late in My Drive\n", "text/plain")
        res = self.drive.changes().list(pageToken=token, includeItemsFromAllDrives=True, fields=CHANGES_FIELDS,
                                        **scope).execute()
        expect("newStartPageToken" in res, f"shared drive changes page: {sorted(res)}")
        got = [(c["fileId"], c.get("driveId"), c.get("file", {}).get("driveId")) for c in res.get("changes", [])]
        want = (self.ids["teamlate"], self.drive_id, self.drive_id)
        expect_eq(got, [want], "shared drive changes (fileId, driveId, file.driveId)")
        try:
            self.drive.files().list(corpora="drive", supportsAllDrives=True, includeItemsFromAllDrives=True).execute()
        except HttpError as e:
            expect_eq(e.status_code, 400, "corpora=drive without driveId")
        else:
            raise CheckFailed("corpora=drive without driveId succeeded")

    def errors_are_two_level(self) -> None:
        bogus = self.client("sandbox-fidelity-not-a-token")
        try:
            bogus.about().get(fields="user").execute()
        except HttpError as e:
            expect_eq((e.status_code, http_reason(e)), (401, "authError"), "invalid token")
        else:
            raise CheckFailed("an invalid token was accepted")
        self.ctl("inject", endpoint="FilesList", fault={"rate_limit": {"retry_after_secs": 3}}, times=1)
        try:
            self.drive.files().list(q=f"'{self.ids['top']}' in parents", fields="files(id)").execute()
        except HttpError as e:
            expect_eq((e.status_code, http_reason(e)), (429, "rateLimitExceeded"), "injected 429")
        else:
            self.ctl("clear_faults")
            raise CheckFailed("no 429")
        for status, reason in ((403, "userRateLimitExceeded"), (503, "backendError")):
            self.ctl("inject", endpoint="FilesGet", fault={"server_error": status}, times=1)
            try:
                self.drive.files().get(fileId=self.ids["readme"], fields="id").execute()
            except HttpError as e:
                expect_eq((e.status_code, http_reason(e)), (status, reason), f"injected {status}")
            else:
                self.ctl("clear_faults")
                raise CheckFailed(f"no {status}")
        # A selector naming a member File does not have: Drive's 400 "Invalid field selection".
        try:
            self.drive.files().get(fileId=self.ids["readme"], fields="id,md5checksum").execute()
        except HttpError as e:
            expect_eq((e.status_code, http_reason(e)), (400, "invalidParameter"), "fields with an unknown member")
        else:
            raise CheckFailed("fields=id,md5checksum (a typo) succeeded")
        try:
            self.drive.files().list(q="fullText contains 'x'", fields="files(id)").execute()
        except HttpError as e:
            expect_eq(e.status_code, 400, "an unsupported q")
        else:
            raise CheckFailed("an unsupported q succeeded")

    def strict_validation_rejects_deviations(self) -> None:
        def sample(key: str, pred):
            found = [o for o in self.validator.seen.get(key, []) if pred(o)]
            expect(bool(found), f"no captured {key} to doctor")
            return found[0]

        listing = sample("FileList", lambda o: any("size" in f and "md5Checksum" in f for f in o.get("files", [])))
        change_list = sample("ChangeList", lambda o: any("file" in c for c in o.get("changes", [])))
        about = sample("About", lambda o: "user" in o)
        error = sample("error 404", lambda o: True)
        v = self.validator
        v.resource("FileList", listing, "captured listing")  # the real ones pass
        v.resource("ChangeList", change_list, "captured changes")
        v.resource("About", about, "captured about")
        v.error_body(404, error, "captured error")
        blob = next(i for i, f in enumerate(listing["files"]) if "size" in f and "md5Checksum" in f)
        change = next(i for i, c in enumerate(change_list["changes"]) if "file" in c)

        def doctored(base, edit):
            obj = copy.deepcopy(base)
            edit(obj)
            return obj

        def number_size(o):
            o["files"][blob]["size"] = int(o["files"][blob]["size"])

        deviations = {
            "an unknown field in a File": (
                "FileList", doctored(listing, lambda o: o["files"][blob].update(colour="blue"))),
            "an unknown top-level field": ("FileList", doctored(listing, lambda o: o.update(total=3))),
            "a size sent as a JSON number": ("FileList", doctored(listing, number_size)),
            "a version that is not digits": (
                "FileList", doctored(listing, lambda o: o["files"][blob].update(version="v1"))),
            "a boolean sent as a string": (
                "FileList", doctored(listing, lambda o: o["files"][blob].update(trashed="false"))),
            "a nested object that is not an object": (
                "FileList", doctored(listing, lambda o: o["files"][blob].update(capabilities=True))),
            "an unknown field inside a nested $ref": (
                "About", doctored(about, lambda o: o["user"].update(locale="en"))),
            "a nested $ref missing its object": ("About", doctored(about, lambda o: o.update(user="me"))),
            "a date-time that is not RFC 3339": (
                "ChangeList", doctored(change_list, lambda o: o["changes"][change].update(time="2026-05-03 08:00"))),
            "a parents that is not an array": (
                "ChangeList", doctored(change_list, lambda o: o["changes"][change]["file"].update(parents="x"))),
            "a wrong kind": ("FileList", doctored(listing, lambda o: o.update(kind="drive#files"))),
        }
        for what, (ref, obj) in deviations.items():
            try:
                v.resource(ref, obj, what)
            except SchemaError:
                continue
            raise CheckFailed(f"the validator accepted {what}")
        bad_errors = {
            "a flat error body": {"error": "notFound", "error_description": "x"},
            "an error without errors[]": {"error": {"code": 404, "message": "x"}},
            "an error code that is not the status": doctored(error, lambda o: o["error"].update(code=400)),
            "an inner error without reason": doctored(error, lambda o: o["error"]["errors"][0].pop("reason")),
        }
        for what, obj in bad_errors.items():
            try:
                v.error_body(404, obj, what)
            except SchemaError:
                continue
            raise CheckFailed(f"the validator accepted {what}")
        extra = outside_mask({"id": "1", "name": "n", "size": "3"}, parse_fields("id,name"), "File")
        expect_eq(extra, ["File.size"], "a response outside its fields mask")
        nested = parse_fields("nextPageToken,files(id,capabilities/canDownload)")
        extra = outside_mask({"files": [{"id": "1", "capabilities": {"canDownload": True, "canEdit": False}}]},
                             nested, "FileList")
        expect_eq(extra, ["FileList.files[0].capabilities.canEdit"], "a nested member outside the mask")

    CASES = [
        "about_get",
        "files_list_paged",
        "files_get_fields",
        "files_export_docx",
        "files_get_media_ranged",
        "media_of_native_doc",
        "export_size_limit",
        "changes_to_new_start_page_token",
        "drives_list",
        "revisions_list",
        "shared_drive_listing",
        "errors_are_two_level",
        "strict_validation_rejects_deviations",
    ]

    def tally(self) -> tuple[str, str, Counter]:
        return "JSON responses validated", "schema validation: no response was validated", self.validator.checked

    def preamble(self) -> None:
        self.say(f"discovery document: {self.doc_path} (revision {self.doc.get('revision')})")


def main() -> int:
    args = arguments(__doc__.split("\n")[0])
    if args is None:
        return 2
    sandbox = args.sandbox.replace("://localhost", "://127.0.0.1")
    from googleapiclient import version

    print(f"Google Drive sandbox fidelity with Google's Python client "
          f"(google-api-python-client {version.__version__}), strict discovery schemas")
    return Fidelity(sandbox, args.client_id).run(args.verbose)

if __name__ == "__main__":
    sys.exit(main())
