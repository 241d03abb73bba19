#!/usr/bin/env python3
"""The SharePoint (Microsoft Graph) sandbox's fidelity, checked against Microsoft's own Graph v1.0
types (npm `@microsoft/microsoft-graph-types`, compiled by `tsc`; see graph_types.py).

Usage: graph_check.py --sandbox http://127.0.0.1:PORT [--client-id ID] [-v]
       graph_check.py --self-test [--keep DIR]
(`scripts/check-sandbox-fidelity` runs `npm ci` in graph/, the self-test, then this against a
sandbox it starts; see there.) `GRAPH_FIDELITY_KEEP=DIR` (live run) or `--keep DIR` (self-test)
keeps the generated responses.ts for a look at what tsc saw. The token endpoint case needs a
client secret it knows: `EXTCONN_SANDBOX_CLIENT_SECRET` (the secret of --client-id), else it
registers its own client with the control op `OPS["register_client"]`.

What it does against a running sandbox (its control API: shared/sandbox/src/sharepoint/control/http.rs): creates an account
through the control API, mints tokens, builds a site with a document library, folders and files
(a .docx among them), then drives Graph's own URLs over plain urllib (no redirects followed, no
proxies, nothing off 127.0.0.1): `/me`, `/me/drive`, `/sites?search=`, `/sites/{id}`,
`/sites/{id}/drives`, `/drives/{id}`, `/drives/{id}/root`, children paged by a small `$top`
through `@odata.nextLink`, `/items/{id}`, delta from scratch through its nextLinks to the
deltaLink, changes (a modify, an add, a rename, a delete) then delta again, `token=latest`, the
410 with `Location` after the control's expire_delta_tokens, the 501 of a non-root delta,
`/content` → 302 → a download URL that serves the bytes without Authorization and honours
`Range`, Graph's error bodies, and the identity platform's token endpoint (answer shape; every
refresh returns a new refresh_token; the old one still works).

Every JSON body of a driveItem, drive, site, user, collection page or delta page is captured and,
in the last case, compiled in one tsc run as an object literal annotated with its Graph type
(excess-property and type checks; each failure names the response), together with canaries that
tsc must reject; the members the contract requires (which the types leave optional and nullable)
are checked on the same bodies.

The control operations and bodies this check assumes are in `OPS` below, in one place.

Each case prints `PASS name` or `FAIL name: why`; the last line is `N passed, N failed`, and the
exit status is non-zero when any case failed. Tokens are never printed: every line is redacted
against the tokens minted here, and the last case checks that none of the sandbox's canaries
(every secret it issued or saw) was printed.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import re
import secrets as pysecrets
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections import Counter
from dataclasses import dataclass

from graph_types import (
    CANARIES,
    TypeCheck,
    graph_error_problems,
    quickxorhash,
    required_members,
    token_answer_problems,
    token_error_problems,
    tool_versions,
)
from harness import Check, CheckFailed, Control, arguments, expect, expect_eq

# ---------------------------------------------------------------------------------------------
# The control API as this check assumes it: `POST {base}/_control/sharepoint/<op>` with a JSON
# body, answering JSON (the scaffolding the Dropbox and Google Drive controls share). Op names
# are those of shared/sandbox/src/sharepoint/control/http.rs; a renamed op is changed here only.
OPS = {
    # GET `urls` → {"login": "{base}/sharepoint/login", "graph": "{base}/sharepoint/graph",
    # "download"?: "{base}/sharepoint/download", "tenant_id"?: GUID} (`login_base`, `graph_base`,
    # `download_base` are accepted too; missing ones default to the sandbox's paths).
    "urls": "urls",
    # {display_name, email} → {"account_id", "root_id"}: the user and their OneDrive for Business
    # drive; root_id = that drive's root item.
    "create_account": "accounts",
    # {display_name} → {"id", "name", "web_url"}
    "add_site": "add_site",
    # {site_id, name} → {"drive_id", "root_id"}
    "add_library": "add_library",
    # {account_id, parent, name} → node {"id", ...}
    "add_folder": "add_folder",
    # {account_id, parent, name, content, mime_type?} → node; content {"text"|"base64"|"generated"}
    "add_file": "add_file",
    # {account_id, id, content} → node
    "modify_file": "modify_file",
    # {account_id, id, parent?, name?} → node
    "move_entry": "move_entry",
    # {account_id, id} → {}
    "delete": "delete",
    # {account_id, client_id} → {"access_token", "refresh_token"}
    "mint_tokens": "mint_tokens",
    # {} → {}: every delta token issued so far answers 410
    "expire_delta_tokens": "expire_delta_tokens",
    # {size} → {}: page size of children and delta pages
    "set_page_size": "set_page_size",
    # {enabled} → {}: delta feeds repeat items, an earlier state first
    "set_duplicate_items": "set_duplicate_items",
    # {endpoint, fault, times} → {}; endpoint an `Endpoint` variant name ("Item", "Children", ...)
    "inject": "inject",
    "clear_faults": "clear_faults",
    # {client_id, client_secret, redirect_uris} → {}. The token endpoint
    # needs a client secret the check knows; `extconn-local serve` registers its client with a
    # random one. Used only when EXTCONN_SANDBOX_CLIENT_SECRET is not set (then the check uses
    # --client-id with that secret instead).
    "register_client": "register_client",
    # ["..."] (used by harness.py, name fixed there)
    "canaries": "canaries",
}
DEFAULT_PAGE_SIZE = 200  # the contract's default for children and delta pages
TENANT = "organizations"
SCOPE = "offline_access User.Read Files.Read.All Sites.Read.All"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "graph", "fixtures", "examples.json")


def tiny_docx(text: str) -> bytes:
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


def shown(url: str) -> str:
    """A URL fit to print: no query (a download URL's query is a credential)."""
    u = urllib.parse.urlsplit(url)
    origin = f"{u.scheme}://{u.netloc}" if u.scheme or u.netloc else ""
    return f"{origin}{u.path}" + ("?…" if u.query else "")


@dataclass
class Resp:
    status: int
    headers: dict  # lower-cased names
    body: bytes

    def json(self, where: str):
        ctype = self.headers.get("content-type", "")
        expect(ctype.startswith("application/json"), f"{where}: Content-Type {ctype!r}, want application/json")
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise CheckFailed(f"{where}: body is not JSON: {e}") from None


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Fidelity(Check):
    def __init__(self, sandbox: str, client_id: str) -> None:
        super().__init__()
        self.sandbox = sandbox.rstrip("/")
        self.origin = urllib.parse.urlsplit(self.sandbox)
        self.ctl = Control(sandbox, "sharepoint")
        self.client_id = client_id
        self.http = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())
        self.types = TypeCheck()
        self.shape_problems: list[str] = []
        self.n = 0
        self.ids: dict[str, str] = {}
        self.data: dict[str, bytes] = {}
        self.token = ""
        self.login = self.graph = self.download = self.tenant_id = ""
        self.account_id = self.my_root = self.my_drive = ""
        self.site: dict = {}
        self.lib = self.lib_root = ""
        self.delta_link = ""

    # -- plumbing ----------------------------------------------------------------------------

    def request(self, method: str, url: str, headers: dict | None = None, data: bytes | None = None) -> Resp:
        u = urllib.parse.urlsplit(url)
        expect((u.scheme, u.hostname, u.port) == (self.origin.scheme, self.origin.hostname, self.origin.port),
               f"refused to request {shown(url)}: not on the sandbox's origin {self.sandbox}")
        req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
        try:
            with self.http.open(req, timeout=120) as r:
                return Resp(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as e:
            return Resp(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.graph}/v1.0{path}"

    def get(self, path: str, token: str | None = None, headers: dict | None = None) -> Resp:
        h = dict(headers or {})
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        return self.request("GET", self.url(path), h)

    def capture(self, kind: str, label: str, body) -> None:
        self.n += 1
        label = f"#{self.n} {kind} {label}"
        self.types.add(label, kind, body)
        business = True  # every drive here is business or documentLibrary
        self.shape_problems += [f"{label}: {p}" for p in required_members(kind, body, business)]

    def get_json(self, path: str, kind: str, label: str | None = None, token: str | None = None):
        r = self.get(path, token)
        where = label or shown(self.url(path))
        expect_eq(r.status, 200, f"GET {where}: status ({r.body[:200]!r})")
        body = r.json(f"GET {where}")
        self.capture(kind, where, body)
        return body

    def expect_error(self, r: Resp, status: int, code: str, where: str) -> dict:
        expect(r.status == status, f"{where}: status {r.status}, want {status} ({r.body[:200]!r})")
        body = r.json(where)
        problems = graph_error_problems(body)
        expect(not problems, f"{where}: error body: {problems}")
        expect_eq(body["error"]["code"], code, f"{where}: error.code")
        return body

    def expect_link(self, link, where: str) -> None:
        expect(isinstance(link, str), f"{where}: link is not a string")
        u = urllib.parse.urlsplit(link)
        g = urllib.parse.urlsplit(self.graph)
        expect(u.scheme in ("http", "https") and u.netloc, f"{where}: {shown(link)} is not absolute")
        expect((u.scheme, u.netloc) == (g.scheme, g.netloc) and u.path.startswith(g.path + "/v1.0/"),
               f"{where}: {shown(link)} is not under the sandbox's Graph base {self.graph}/v1.0/")

    def walk_delta(self, url: str, label: str) -> tuple[list, int, str]:
        """Pages from `url` through nextLinks to the deltaLink: (items, pages, deltaLink)."""
        items, pages = [], 0
        while True:
            expect(pages < 200, f"{label}: no deltaLink after 200 pages")
            body = self.get_json(url, "DeltaPage", f"{label} page {pages + 1}")
            pages += 1
            links = [k for k in ("@odata.nextLink", "@odata.deltaLink") if k in body]
            expect_eq(len(links), 1, f"{label} page {pages}: how many of nextLink/deltaLink ({links})")
            self.expect_link(body[links[0]], f"{label} page {pages} {links[0]}")
            items += body["value"]
            if links[0] == "@odata.deltaLink":
                return items, pages, body["@odata.deltaLink"]
            url = body["@odata.nextLink"]

    def op(self, which: str, /, **body):
        return self.ctl(OPS[which], **body)

    def mint(self, client_id: str) -> tuple[str, str]:
        t = self.op("mint_tokens", account_id=self.account_id, client_id=client_id)
        self.secrets += [t["access_token"], t["refresh_token"]]
        return t["access_token"], t["refresh_token"]

    def add(self, label: str, op: str, parent: str, name: str, **body) -> str:
        node = self.op(op, account_id=self.account_id, parent=parent, name=name, **body)
        self.ids[label] = node["id"]
        return node["id"]

    def add_bytes(self, label: str, parent: str, name: str, data: bytes, mime: str | None = None) -> str:
        extra = {"mime_type": mime} if mime else {}
        self.data[label] = data
        return self.add(label, "add_file", parent, name, content={"base64": base64.b64encode(data).decode()}, **extra)

    def setup(self) -> None:
        urls = self.ctl.urls()
        self.login = (urls.get("login") or urls.get("login_base") or f"{self.sandbox}/sharepoint/login").rstrip("/")
        self.graph = (urls.get("graph") or urls.get("graph_base") or f"{self.sandbox}/sharepoint/graph").rstrip("/")
        self.download = (urls.get("download") or urls.get("download_base")
                         or f"{self.sandbox}/sharepoint/download").rstrip("/")
        self.tenant_id = urls.get("tenant_id") or ""
        acct = self.op("create_account", display_name="Graph Fidelity", email="graph-fidelity@example.com")
        self.account_id, self.my_root = acct["account_id"], acct["root_id"]
        self.token, _ = self.mint(self.client_id)
        mine = self.add("mine", "add_folder", self.my_root, "Mine")
        self.add_bytes("mine_file", mine, "notes.txt", b"in my OneDrive\n", "text/plain")
        self.site = self.op("add_site", display_name="Fidelity Team")
        lib = self.op("add_library", site_id=self.site["id"], name="Fidelity Library")
        self.lib, self.lib_root = lib["drive_id"], lib["root_id"]
        top = self.add("top", "add_folder", self.lib_root, "Reports")
        sub = self.add("sub", "add_folder", top, "Sub")
        self.add_bytes("a", top, "a.txt", b"alpha\n", "text/plain")
        self.add_bytes("b", top, "b.txt", b"bravo bravo\n", "text/plain")
        self.add_bytes("bin", top, "bytes.bin", bytes(range(256)) * 40, "application/octet-stream")
        self.add_bytes("docx", top, "Plan.docx", tiny_docx("Fidelity plan"), DOCX)
        self.add_bytes("unicode", top, "Café ünïcode ☃.txt", "non-ASCII ✓\n".encode(), "text/plain")
        self.add_bytes("deep", sub, "deep.txt", b"deep\n", "text/plain")
        self.add_bytes("gone", sub, "gone.txt", b"to be deleted\n", "text/plain")

    # -- cases -------------------------------------------------------------------------------

    def me(self) -> None:
        u = self.get_json("/me", "User")
        expect(GUID.match(str(u.get("id"))), f"/me id {u.get('id')!r} is not a GUID")
        expect_eq(u.get("displayName"), "Graph Fidelity", "/me displayName")
        expect("graph-fidelity@example.com" in (u.get("mail"), u.get("userPrincipalName")),
               f"/me mail / userPrincipalName: {u.get('mail')!r} / {u.get('userPrincipalName')!r}")
        r = self.get("/me", token="")
        self.expect_error(r, 401, "InvalidAuthenticationToken", "/me without a token")

    def me_drive(self) -> None:
        d = self.get_json("/me/drive", "Drive")
        expect_eq(d.get("driveType"), "business", "/me/drive driveType")
        expect(str(d.get("id")).startswith("b!"), f"/me/drive id {d.get('id')!r} does not start with b!")
        self.my_drive = d["id"]
        root = self.get_json(f"/drives/{self.my_drive}/root", "DriveItem")
        expect_eq(root.get("id"), self.my_root, "the OneDrive's root item id vs the control's root_id")
        expect_eq(root.get("root"), {}, "root facet of the OneDrive's root")
        page = self.get_json("/me/drive/root/children", "DriveItemPage")
        got = {i.get("id"): i for i in page["value"]}
        expect(self.ids["mine"] in got, f"/me/drive/root/children lacks the folder Mine: {sorted(got)}")
        expect_eq(got[self.ids["mine"]].get("parentReference", {}).get("driveType"), "business",
                  "parentReference.driveType in the OneDrive")

    def sites_search(self) -> None:
        page = self.get_json("/sites?search=Fidelity", "SitePage")
        ids = [s.get("id") for s in page["value"]]
        expect(self.site["id"] in ids, f"/sites?search=Fidelity: {ids}")
        page = self.get_json("/sites?search=" + urllib.parse.quote("no such site zq"), "SitePage")
        expect_eq(page["value"], [], "/sites?search= with no match")

    def site_get(self) -> None:
        sid = self.site["id"]
        s = self.get_json(f"/sites/{urllib.parse.quote(sid, safe=',')}", "Site")
        expect_eq(s.get("id"), sid, "site id")
        expect_eq(s.get("displayName"), "Fidelity Team", "site displayName")
        parts = sid.split(",")
        expect(len(parts) == 3 and parts[0].endswith(".sharepoint.com") and all(GUID.match(p) for p in parts[1:]),
               f"site id {sid!r} is not host,guid,guid")
        expect_eq(s.get("webUrl"), self.site.get("web_url", s.get("webUrl")), "site webUrl vs the control's")
        r = self.get("/sites/contoso.sharepoint.com,00000000-0000-0000-0000-000000000000,"
                     "00000000-0000-0000-0000-000000000000")
        self.expect_error(r, 404, "itemNotFound", "an unknown site")

    def site_drives(self) -> None:
        page = self.get_json(f"/sites/{urllib.parse.quote(self.site['id'], safe=',')}/drives", "DrivePage")
        by_name = {d.get("name"): d for d in page["value"]}
        expect({"Documents", "Fidelity Library"} <= set(by_name), f"the site's libraries: {sorted(by_name)}")
        expect_eq(by_name["Fidelity Library"].get("id"), self.lib, "library drive id vs the control's")
        for d in page["value"]:
            expect_eq(d.get("driveType"), "documentLibrary", f"driveType of {d.get('name')!r}")

    def drive_and_root(self) -> None:
        d = self.get_json(f"/drives/{self.lib}", "Drive")
        expect_eq((d.get("id"), d.get("name"), d.get("driveType")), (self.lib, "Fidelity Library", "documentLibrary"),
                  "the library drive")
        root = self.get_json(f"/drives/{self.lib}/root", "DriveItem")
        expect_eq(root.get("id"), self.lib_root, "library root id vs the control's")
        expect_eq(root.get("root"), {}, "root facet")
        expect("folder" in root, "the root has no folder facet")
        page = self.get_json(f"/drives/{self.lib}/root/children", "DriveItemPage")
        expect_eq([i.get("id") for i in page["value"]], [self.ids["top"]], "the library root's children")
        r = self.get("/drives/b!no-such-drive-zq")
        self.expect_error(r, 404, "itemNotFound", "an unknown drive")

    def children_paged(self) -> None:
        top = self.ids["top"]
        url = f"/drives/{self.lib}/items/{top}/children?$top=2"
        items, pages = [], 0
        while url:
            expect(pages < 50, "children: nextLink never went away")
            body = self.get_json(url, "DriveItemPage", f"children of Reports $top=2 page {pages + 1}")
            pages += 1
            expect("@odata.deltaLink" not in body, "a children page has a deltaLink")
            expect(len(body["value"]) <= 2, f"$top=2 page {pages} has {len(body['value'])} items")
            items += body["value"]
            url = body.get("@odata.nextLink")
            if url:
                self.expect_link(url, f"children page {pages} nextLink")
        want = {self.ids[k] for k in ("sub", "a", "b", "bin", "docx", "unicode")}
        got = [i.get("id") for i in items]
        expect_eq(len(got), len(set(got)), "children across pages: duplicates")
        expect_eq(set(got), want, "children of Reports")
        expect(pages >= 3, f"$top=2 over 6 children gave {pages} page(s)")
        label = {v: k for k, v in self.ids.items()}
        for i in items:
            name = i.get("name")
            pr = i.get("parentReference", {})
            expect_eq((pr.get("driveId"), pr.get("id"), pr.get("driveType")), (self.lib, top, "documentLibrary"),
                      f"parentReference of {name!r}")
            expect_eq(pr.get("path"), f"/drives/{self.lib}/root:/Reports", f"parentReference.path of {name!r}")
            k = label[i["id"]]
            if k in self.data:
                expect_eq(i.get("size"), len(self.data[k]), f"size of {name!r}")
                expect_eq(i["file"]["hashes"].get("quickXorHash"), quickxorhash(self.data[k]),
                          f"quickXorHash of {name!r}")
        sub = next(i for i in items if i["id"] == self.ids["sub"])
        expect_eq(sub.get("folder", {}).get("childCount"), 2, "childCount of Sub")

    def item_get(self) -> None:
        it = self.get_json(f"/drives/{self.lib}/items/{self.ids['docx']}", "DriveItem")
        expect_eq((it.get("name"), it.get("file", {}).get("mimeType"), it.get("size")),
                  ("Plan.docx", DOCX, len(self.data["docx"])), "the .docx item (name, mimeType, size)")
        it = self.get_json(f"/drives/{self.lib}/items/{self.ids['unicode']}", "DriveItem")
        expect_eq(it.get("name"), "Café ünïcode ☃.txt", "a non-ASCII name")
        it = self.get_json(f"/drives/{self.lib}/items/{self.ids['sub']}", "DriveItem")
        expect_eq(it.get("parentReference", {}).get("path"), f"/drives/{self.lib}/root:/Reports", "Sub's parent path")
        r = self.get(f"/drives/{self.lib}/items/01NOSUCHITEMZQ")
        self.expect_error(r, 404, "itemNotFound", "an unknown item")
        page = self.get_json(f"/drives/{self.lib}/items/{self.ids['sub']}/children", "DriveItemPage")
        expect_eq({i.get("id") for i in page["value"]}, {self.ids["deep"], self.ids["gone"]}, "children of Sub")

    def delta_from_scratch(self) -> None:
        self.op("set_page_size", size=3)
        try:
            items, pages, link = self.walk_delta(f"{self.url(f'/drives/{self.lib}/root/delta')}", "delta from scratch")
        finally:
            self.op("set_page_size", size=DEFAULT_PAGE_SIZE)
        ids = {i.get("id") for i in items}
        lib_items = {self.ids[k] for k in ("top", "sub", "a", "b", "bin", "docx", "unicode", "deep", "gone")}
        expect(lib_items <= ids, f"delta from scratch lacks {sorted(lib_items - ids)}")
        expect(self.ids["mine"] not in ids, "the library's delta has an item of the user's OneDrive")
        expect(pages >= 3, f"page size 3 over ≥ 9 items gave {pages} page(s)")
        for i in items:
            expect("path" not in i.get("parentReference", {}), f"parentReference.path in delta ({i.get('name')!r})")
        self.delta_link = link

    def delta_after_changes(self) -> None:
        expect(bool(self.delta_link), "no deltaLink from delta_from_scratch")
        self.op("modify_file", account_id=self.account_id, id=self.ids["a"],
                content={"text": "alpha, second version\n"})
        self.data["a"] = b"alpha, second version\n"
        self.add_bytes("new", self.ids["sub"], "new.txt", b"new after the token\n", "text/plain")
        self.op("move_entry", account_id=self.account_id, id=self.ids["sub"], name="Sub renamed")
        self.op("delete", account_id=self.account_id, id=self.ids["gone"])
        items, _, link = self.walk_delta(self.delta_link, "delta after changes")
        by_id = {}
        for i in items:
            by_id[i.get("id")] = i  # the last occurrence wins
        for k in ("a", "new", "sub", "gone"):
            expect(self.ids[k] in by_id, f"delta after changes lacks {k}")
        expect(self.ids["deep"] not in by_id, "a renamed folder's untouched child is in the delta")
        expect(self.ids["b"] not in by_id, "an untouched file is in the delta")
        gone = by_id[self.ids["gone"]]
        expect_eq(gone.get("deleted", {}).get("state"), "deleted", "deleted.state")
        for k in ("name", "cTag", "size"):
            expect(k not in gone, f"a deleted item on a business drive carries {k!r}")
        expect_eq(gone.get("parentReference", {}).get("driveId"), self.lib, "deleted item's parentReference.driveId")
        a = by_id[self.ids["a"]]
        expect_eq((a.get("size"), a.get("file", {}).get("hashes", {}).get("quickXorHash")),
                  (len(self.data["a"]), quickxorhash(self.data["a"])), "modified file (size, quickXorHash)")
        expect_eq(by_id[self.ids["sub"]].get("name"), "Sub renamed", "renamed folder's name")
        expect_eq(by_id[self.ids["new"]].get("parentReference", {}).get("id"), self.ids["sub"], "new file's parent")
        expect(link != self.delta_link, "the deltaLink did not change after changes")
        items, _, again = self.walk_delta(link, "delta with nothing new")
        expect_eq(items, [], "delta with nothing new")
        self.delta_link = again
        # An item read after its content changed has a new cTag and eTag.
        it = self.get_json(f"/drives/{self.lib}/items/{self.ids['a']}", "DriveItem")
        expect_eq(it.get("size"), len(self.data["a"]), "size of the modified file")

    def delta_duplicates(self) -> None:
        self.op("set_duplicate_items", enabled=True)
        try:
            self.op("modify_file", account_id=self.account_id, id=self.ids["b"], content={"text": "bravo, edited\n"})
            self.data["b"] = b"bravo, edited\n"
            items, _, link = self.walk_delta(self.delta_link, "delta with duplicated items")
        finally:
            self.op("set_duplicate_items", enabled=False)
        seen = [i for i in items if i.get("id") == self.ids["b"]]
        expect(len(seen) >= 2, f"set_duplicate_items: the edited file appears {len(seen)} time(s)")
        expect_eq(seen[-1].get("size"), len(self.data["b"]), "the last occurrence carries the latest size")
        self.delta_link = link

    def delta_token_latest(self) -> None:
        body = self.get_json(f"/drives/{self.lib}/root/delta?token=latest", "DeltaPage", "delta token=latest")
        expect_eq(body["value"], [], "token=latest value")
        expect("@odata.deltaLink" in body and "@odata.nextLink" not in body, f"token=latest links: {sorted(body)}")
        self.expect_link(body["@odata.deltaLink"], "token=latest deltaLink")
        self.add_bytes("late", self.ids["top"], "late.txt", b"after token=latest\n", "text/plain")
        items, _, link = self.walk_delta(body["@odata.deltaLink"], "delta from token=latest")
        ids = {i.get("id") for i in items}
        expect(self.ids["late"] in ids, "the file added after token=latest is not in its delta")
        expect(self.ids["bin"] not in ids, "an untouched file is in the delta from token=latest")
        self.delta_link = link

    def delta_410_after_expiry(self) -> None:
        self.op("expire_delta_tokens")
        r = self.get(self.delta_link)
        self.expect_error(r, 410, "resyncChangesApplyDifferences", "a stale deltaLink")
        loc = r.headers.get("location")
        expect(bool(loc), "the 410 has no Location")
        self.expect_link(loc, "the 410's Location")
        items, _, link = self.walk_delta(loc, "re-enumeration from the 410's Location")
        ids = {i.get("id") for i in items}
        want = {self.ids[k] for k in ("top", "sub", "a", "b", "bin", "docx", "unicode", "deep", "new", "late")}
        expect(want <= ids, f"the re-enumeration lacks {sorted(want - ids)}")
        items, _, _ = self.walk_delta(link, "delta after the re-enumeration")
        expect_eq(items, [], "delta right after the re-enumeration")

    def delta_non_root_501(self) -> None:
        r = self.get(f"/drives/{self.lib}/items/{self.ids['top']}/delta")
        body = self.expect_error(r, 501, "notSupported", "delta on a library folder")
        expect_eq(body["error"]["message"], "view.delta can only be called on the root.", "the 501's message")
        expect(bool(self.my_drive), "no OneDrive id (me_drive failed)")
        r = self.get(f"/drives/{self.my_drive}/items/{self.ids['mine']}/delta")
        self.expect_error(r, 501, "notSupported", "delta on a OneDrive for Business folder")

    def content_redirect_range(self) -> None:
        for k in ("bin", "docx", "unicode"):
            data = self.data[k]
            r = self.get(f"/drives/{self.lib}/items/{self.ids[k]}/content")
            expect_eq(r.status, 302, f"/content of {k}: status")
            loc = r.headers.get("location", "")
            u = urllib.parse.urlsplit(loc)
            expect(u.scheme in ("http", "https") and bool(u.netloc),
                   f"/content of {k}: Location {shown(loc)} is not absolute")
            expect(loc.startswith(self.download + "/"),
                   f"/content of {k}: Location {shown(loc)} is not under the download base {self.download}")
            if u.query:
                self.secrets.append(u.query)
            got = self.request("GET", loc)  # no Authorization
            expect_eq(got.status, 200, f"download of {k} without Authorization: status")
            expect_eq(got.body, data, f"download of {k}: bytes")
            expect_eq(quickxorhash(got.body), quickxorhash(data), f"download of {k}: quickXorHash")
            if len(data) > 20:
                part = self.request("GET", loc, {"Range": "bytes=5-14"})
                expect_eq(part.status, 206, f"ranged download of {k}: status")
                expect_eq(part.headers.get("content-range"), f"bytes 5-14/{len(data)}",
                          f"ranged download of {k}: Content-Range")
                expect_eq(part.body, data[5:15], f"ranged download of {k}: bytes")
                tail = self.request("GET", loc, {"Range": f"bytes={len(data) - 7}-"})
                expect_eq((tail.status, tail.body), (206, data[-7:]), f"open-ended range of {k}")
        r = self.get(f"/drives/{self.lib}/items/{self.ids['bin']}/content", token="")
        self.expect_error(r, 401, "InvalidAuthenticationToken", "/content without a token")

    def errors_are_graphs(self) -> None:
        r = self.get("/me", token="sandbox-fidelity-not-a-token")
        self.expect_error(r, 401, "InvalidAuthenticationToken", "a bogus token")
        self.op("inject", endpoint="Item", fault={"rate_limit": {"retry_after_secs": 2}}, times=1)
        r = self.get(f"/drives/{self.lib}/items/{self.ids['a']}")
        if r.status != 429:
            self.op("clear_faults")
        self.expect_error(r, 429, "activityLimitReached", "an injected 429")
        expect_eq(r.headers.get("retry-after"), "2", "Retry-After of the 429")
        self.op("inject", endpoint="Children", fault={"server_error": 503}, times=1)
        r = self.get(f"/drives/{self.lib}/items/{self.ids['top']}/children")
        if r.status != 503:
            self.op("clear_faults")
        self.expect_error(r, 503, "serviceNotAvailable", "an injected 503")
        expect(re.fullmatch(r"\d+", r.headers.get("retry-after", "")) is not None,
               f"Retry-After of the 503: {r.headers.get('retry-after')!r}")
        # And the fault is gone once used.
        self.get_json(f"/drives/{self.lib}/items/{self.ids['top']}/children", "DriveItemPage")

    def token_endpoint(self) -> None:
        secret = os.environ.get("EXTCONN_SANDBOX_CLIENT_SECRET", "")
        client_id = self.client_id
        if not secret:
            client_id, secret = "graph-fidelity", "graph-fidelity-secret-" + pysecrets.token_hex(12)
            try:
                self.op("register_client", client_id=client_id, client_secret=secret,
                        redirect_uris=["http://127.0.0.1/graph-fidelity/callback"])
            except CheckFailed as e:
                raise CheckFailed(
                    "the token endpoint needs a client secret this check knows: set "
                    "EXTCONN_SANDBOX_CLIENT_SECRET (the secret of --client-id) or give the control an op "
                    f"{OPS['register_client']!r} {{client_id, client_secret, redirect_uris}} ({e})"
                ) from None
        self.secrets.append(secret)
        _, rt0 = self.mint(client_id)

        def token(tenant: str, **form) -> Resp:
            data = urllib.parse.urlencode(form).encode()
            return self.request("POST", f"{self.login}/{tenant}/oauth2/v2.0/token",
                                {"Content-Type": "application/x-www-form-urlencoded"}, data)

        def refresh(rt: str, tenant: str = TENANT, what: str = "refresh") -> dict:
            r = token(tenant, grant_type="refresh_token", refresh_token=rt, client_id=client_id,
                      client_secret=secret, scope=SCOPE)
            expect_eq(r.status, 200, f"{what}: status")
            body = r.json(what)
            for k in ("access_token", "refresh_token", "id_token"):
                if isinstance(body.get(k), str):
                    self.secrets.append(body[k])
            problems = token_answer_problems(body)
            expect(not problems, f"{what}: token answer: {problems}")
            return body

        t1 = refresh(rt0, what="first refresh")
        expect(t1["refresh_token"] != rt0, "a refresh did not return a new refresh_token")
        expect_eq((t1["expires_in"], t1["ext_expires_in"]), (3599, 3599), "expires_in, ext_expires_in")
        self.get_json("/me", "User", "/me with a refreshed access token", token=t1["access_token"])
        t2 = refresh(t1["refresh_token"], tenant="common", what="second refresh (tenant common)")
        expect(t2["refresh_token"] not in (rt0, t1["refresh_token"]), "the second refresh reused a refresh_token")
        t3 = refresh(rt0, what="refresh with the first, already used, refresh_token")
        expect(t3["refresh_token"] not in (rt0, t1["refresh_token"], t2["refresh_token"]), "a reused refresh_token")
        if self.tenant_id:
            refresh(t3["refresh_token"], tenant=self.tenant_id, what="refresh with the tenant id as {tenant}")
        r = token(TENANT, grant_type="refresh_token", refresh_token="0.not-a-refresh-token", client_id=client_id,
                  client_secret=secret, scope=SCOPE)
        expect_eq(r.status, 400, "an unknown refresh_token: status")
        problems = token_error_problems(r.json("invalid_grant"), "invalid_grant")
        expect(not problems, f"invalid_grant body: {problems}")
        r = token(TENANT, grant_type="refresh_token", refresh_token=t3["refresh_token"], client_id=client_id,
                  client_secret=secret + "-wrong", scope=SCOPE)
        expect_eq(r.status, 401, "a wrong client_secret: status")
        problems = token_error_problems(r.json("invalid_client"), "invalid_client")
        expect(not problems, f"invalid_client body: {problems}")

    def every_body_matches_graph_types(self) -> None:
        expect(self.types.entries, "no Graph body was captured")
        problems, canaries = self.types.run(os.environ.get("GRAPH_FIDELITY_KEEP") or None)
        self.say(f"  tsc: {len(self.types.entries)} responses, {len(canaries)} of {len(CANARIES)} canaries rejected")
        problems += self.shape_problems
        if problems:
            for p in problems[:20]:
                self.say(f"  {p}")
            raise CheckFailed(f"{len(problems)} problem(s) (listed above; the first: {problems[0][:200]})")

    CASES = [
        "me",
        "me_drive",
        "sites_search",
        "site_get",
        "site_drives",
        "drive_and_root",
        "children_paged",
        "item_get",
        "delta_from_scratch",
        "delta_after_changes",
        "delta_duplicates",
        "delta_token_latest",
        "delta_410_after_expiry",
        "delta_non_root_501",
        "content_redirect_range",
        "errors_are_graphs",
        "token_endpoint",
        "every_body_matches_graph_types",
    ]

    def tally(self) -> tuple[str, str, Counter]:
        return ("Graph bodies type-checked against @microsoft/microsoft-graph-types",
                "type check: no Graph body was captured", self.types.counted)

    def preamble(self) -> None:
        self.say(f"Graph types: {tool_versions()}")


# ---------------------------------------------------------------------------------------------
# --self-test: the type check itself, on example bodies kept in the repository, no sandbox.

def self_test(keep: str | None) -> int:
    with open(FIXTURES, encoding="utf-8") as f:
        fx = json.load(f)
    passed = failed = 0

    def report(name: str, problems: list[str]) -> None:
        nonlocal passed, failed
        if problems:
            failed += 1
            print(f"FAIL {name}: " + "; ".join(problems[:10]))
        else:
            passed += 1
            print(f"PASS {name}")

    print(f"Graph types self-test ({tool_versions()}), fixtures {os.path.relpath(FIXTURES)}")
    tc = TypeCheck()
    for e in fx["typed"]:
        tc.add(e["label"], e["kind"], e["body"])
    # Doctored copies: each must fail, named by its label.
    children = next(e["body"] for e in fx["typed"] if e["kind"] == "DriveItemPage")
    delta = next(e["body"] for e in fx["typed"] if e["kind"] == "DeltaPage")
    doctored = {
        "doctored: a size sent as a string": ("DriveItemPage", children, lambda o: o["value"][0].update(size="48213")),
        "doctored: a misspelled member": ("DeltaPage", delta, lambda o: o["value"][1].update(lastModifiedDatetime="x")),
        "doctored: an unknown hash member": (
            "DriveItemPage", children, lambda o: o["value"][0]["file"]["hashes"].update(quickXor="x")),
    }
    for label, (kind, base, edit) in doctored.items():
        body = copy.deepcopy(base)
        edit(body)
        tc.add(label, kind, body)
    problems, canaries = tc.run(keep)
    for line in canaries:
        print(f"  {line}")
    report("canaries_rejected_by_tsc", [p for p in problems if p.startswith("canary:")])
    for label in doctored:
        hit = [p for p in problems if p.startswith(label + ":")]
        report(f"tsc_rejects {label}", [] if hit else [f"{label} was accepted"])
        if hit:
            print(f"  {hit[0][:220]}")
    report("fixtures_pass_tsc", [p for p in problems if not p.startswith(("canary:", "doctored:"))])

    complete = [e for e in fx["typed"] if e.get("complete")]
    report("complete_fixtures_have_required_members",
           [f"{e['label']}: {p}" for e in complete for p in required_members(e["kind"], e["body"])])
    item = next(e["body"] for e in complete if e["kind"] == "DriveItem")
    cdelta = next(e["body"] for e in complete if e["kind"] == "DeltaPage")
    bad = {
        "a null size": ("DriveItem", lambda o: o.update(size=None), item),
        "no id": ("DriveItem", lambda o: o.pop("id"), item),
        "a deleted item with a name": ("DeltaPage", lambda o: o["value"][1].update(name="gone.txt"), cdelta),
        "both nextLink and deltaLink": ("DeltaPage", lambda o: o.update({"@odata.deltaLink": "x"}), cdelta),
        "parentReference.path in delta": (
            "DeltaPage", lambda o: o["value"][0]["parentReference"].update(path="/drives/b!xyz/root:"), cdelta),
    }
    missed = []
    for what, (kind, edit, base) in bad.items():
        body = copy.deepcopy(base)
        edit(body)
        if not required_members(kind, body):
            missed.append(f"{what} was accepted")
    report("required_members_reject_deviations", missed)

    shapes = graph_error_problems(fx["graph_error"]["body"]) + token_answer_problems(fx["token_answer"]["body"], True) \
        + token_error_problems(fx["token_error"]["body"], "invalid_grant")
    report("reference_error_and_token_shapes_pass", shapes)
    missed = []
    if not graph_error_problems({"error": {"code": "itemNotFound", "message": "x"}}):
        missed.append("an error without innerError was accepted")
    if not token_answer_problems(dict(fx["token_answer"]["body"], expires_in="3599")):
        missed.append("expires_in as a string was accepted")
    if not token_error_problems(dict(fx["token_error"]["body"], error_codes=["700082"]), "invalid_grant"):
        missed.append("error_codes of strings was accepted")
    report("shape_checks_reject_deviations", missed)

    vectors = {b"": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", b"\x4a": "SgAAAAAAAAAAAAAAAQAAAAAAAAA=",
               b"hello world": "aCgDG9jwBhDc4Q1yawMZAAAAAAA=",
               base64.b64decode("QuzaF0+5ooig6OLEWeibZUENl8EaiXAQvK9UjBEauMeuFFDCtNcGs25BDtJGGbX90gH4VZvCCDNCq4s="):
               "rggokuJq1OGNOfB6aDp2g4rdPgw="}
    report("quickxorhash_test_vectors",
           [f"{k[:12]!r}: {quickxorhash(k)} != {v}" for k, v in vectors.items() if quickxorhash(k) != v])
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main() -> int:
    if "--self-test" in sys.argv[1:]:
        keep = None
        if "--keep" in sys.argv:
            keep = sys.argv[sys.argv.index("--keep") + 1]
        return self_test(keep)
    args = arguments(__doc__.split("\n")[0])
    if args is None:
        return 2
    sandbox = args.sandbox.replace("://localhost", "://127.0.0.1")
    print("SharePoint (Microsoft Graph) sandbox fidelity: Graph v1.0 over plain HTTP, every body "
          "type-checked with tsc against Microsoft's Graph types")
    return Fidelity(sandbox, args.client_id).run(args.verbose)


if __name__ == "__main__":
    sys.exit(main())
