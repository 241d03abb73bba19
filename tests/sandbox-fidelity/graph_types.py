"""Microsoft Graph v1.0 JSON checked against Microsoft's own TypeScript types
(npm `@microsoft/microsoft-graph-types`, pinned with `typescript` in graph/package.json).

How: every captured JSON body is written into one generated .ts file as an object literal
annotated with its Graph type (`export const r0007: Collection<Item> = {...};`), and
`tsc --noEmit --strict` compiles it. TypeScript checks *fresh* object literals for excess
properties, nested ones included, so a member the Graph type does not declare fails
("Object literal may only specify known properties"), and so does a value of the wrong type
(`"size": "12"` against `size?: NullableOption<number>`). Each tsc error is mapped back, by
line, to the response it is in, so a failure names the response.

What the types do not check, and where that is checked instead:
- Every member of the Graph types is optional and `NullableOption<T>` (`T | null`): tsc
  accepts a driveItem without `id` or with `"size": null`. `required_members` checks the
  members the contract requires, with their JSON types, per kind.
- The OData annotations Graph puts on the wire are not in the entity types. Exactly these are
  declared (nothing else is added or stripped): `@odata.context` on every top-level body,
  `@microsoft.graph.downloadUrl` on a driveItem, `@odata.nextLink` on a collection page, and
  `@odata.nextLink` / `@odata.deltaLink` on a delta page.

The canaries (`CANARIES`) are deliberately wrong literals compiled in the same run; each must
draw at least one tsc error, else the run proves nothing and fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter

GRAPH_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "graph")
TYPES_DTS = os.path.join(GRAPH_DIR, "node_modules", "@microsoft", "microsoft-graph-types", "microsoft-graph.d.ts")
TSC = os.path.join(GRAPH_DIR, "node_modules", "typescript", "bin", "tsc")

PRELUDE = """\
import type * as MicrosoftGraph from "@microsoft/microsoft-graph-types";

// The OData annotations Graph sends that the entity types do not declare; only these.
type Ctx = { "@odata.context"?: string };
type Item = MicrosoftGraph.DriveItem & { "@microsoft.graph.downloadUrl"?: string };
type Collection<T> = { value: T[]; "@odata.context"?: string; "@odata.nextLink"?: string };
type DeltaPage<T> = Collection<T> & { "@odata.deltaLink"?: string };
"""

# kind -> the TypeScript type a body of that kind is annotated with.
TYPES = {
    "DriveItem": "Item & Ctx",
    "Drive": "MicrosoftGraph.Drive & Ctx",
    "Site": "MicrosoftGraph.Site & Ctx",
    "User": "MicrosoftGraph.User & Ctx",
    "DriveItemPage": "Collection<Item>",
    "DrivePage": "Collection<MicrosoftGraph.Drive>",
    "SitePage": "Collection<MicrosoftGraph.Site>",
    "DeltaPage": "DeltaPage<Item>",
}

# Each must be rejected by tsc: (label, kind, body).
CANARIES = [
    ("canary: a misspelled member (nmae)", "DriveItem", {"id": "01CANARY", "nmae": "a.txt", "size": 1}),
    ("canary: size as a string", "DriveItem", {"id": "01CANARY", "name": "a.txt", "size": "12"}),
    ("canary: an unknown member in a nested facet", "DriveItem",
     {"id": "01CANARY", "name": "a.txt", "parentReference": {"driveId": "b!x", "id": "01P", "driveid": "b!x"}}),
    ("canary: a folder childCount as a string", "DriveItem",
     {"id": "01CANARY", "name": "A", "folder": {"childCount": "4"}}),
    ("canary: an unknown member in a page's item", "DeltaPage",
     {"value": [{"id": "01CANARY", "deleted": {"state": "deleted"}, "isDeleted": True}],
      "@odata.deltaLink": "https://graph.microsoft.com/v1.0/drives/b!x/root/delta?token=x"}),
    ("canary: an undeclared OData annotation", "DriveItemPage", {"value": [], "@odata.deltaLink": "x"}),
    ("canary: a page without value", "DrivePage", {"@odata.nextLink": "https://graph.microsoft.com/v1.0/x"}),
    ("canary: a user's mail as a number", "User", {"id": "u", "mail": 5}),
    ("canary: a site with an unknown member", "Site", {"id": "h,1,2", "displayName": "S", "title": "S"}),
    ("canary: a drive's driveType as an object", "Drive", {"id": "b!x", "driveType": {"name": "business"}}),
]

ERROR_LINE = re.compile(r"^(?P<file>.*?)\((?P<line>\d+),(?P<col>\d+)\): error (?P<code>TS\d+): (?P<msg>.*)$")


def tool_versions() -> str:
    def version(pkg: str) -> str:
        try:
            with open(os.path.join(GRAPH_DIR, "node_modules", *pkg.split("/"), "package.json"), encoding="utf-8") as f:
                return json.load(f)["version"]
        except (OSError, ValueError, KeyError):
            return "missing"

    return f"@microsoft/microsoft-graph-types {version('@microsoft/microsoft-graph-types')}, " \
           f"typescript {version('typescript')}"


class TypeCheck:
    """Collects (label, kind, body); `run` compiles them all, with the canaries, in one tsc run."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, object]] = []
        self.counted: Counter[str] = Counter()

    def add(self, label: str, kind: str, body) -> None:
        if kind not in TYPES:
            raise ValueError(f"no Graph type for kind {kind!r}")
        self.entries.append((label, kind, body))
        self.counted[kind] += 1

    def source(self, with_canaries: bool = True) -> tuple[str, list[tuple[int, int, str]]]:
        """The .ts text and, per entry, (first line, last line, label)."""
        lines = PRELUDE.splitlines()
        spans = []
        entries = ([(label, kind, body) for label, kind, body in CANARIES] if with_canaries else []) + self.entries
        for n, (label, kind, body) in enumerate(entries):
            lines.append("")
            lines.append("// " + label.replace("\n", " "))
            start = len(lines) + 1
            text = json.dumps(body, indent=2, ensure_ascii=False)
            lines.extend(f"export const r{n:04d}: {TYPES[kind]} = {text};".splitlines())
            spans.append((start, len(lines), label))
        return "\n".join(lines) + "\n", spans

    def run(self, keep_dir: str | None = None) -> tuple[list[str], list[str]]:
        """Compiles everything. Returns (problems, canary_report): `problems` is empty when every
        response type-checks and every canary was rejected; it names each failing response."""
        if not (os.path.exists(TSC) and os.path.exists(TYPES_DTS)):
            return [f"tsc or the Graph types are not installed: run `npm ci` in {GRAPH_DIR}"], []
        node = shutil.which("node")
        if not node:
            return ["node is not on PATH"], []
        text, spans = self.source()
        work = tempfile.mkdtemp(prefix="graph-types-")
        try:
            ts = os.path.join(work, "responses.ts")
            with open(ts, "w", encoding="utf-8") as f:
                f.write(text)
            config = {
                "compilerOptions": {
                    "strict": True,
                    "noEmit": True,
                    "target": "es2020",
                    "module": "commonjs",
                    "moduleResolution": "node",
                    "skipLibCheck": True,
                    "types": [],
                    "paths": {"@microsoft/microsoft-graph-types": [TYPES_DTS]},
                },
                "files": ["responses.ts"],
            }
            with open(os.path.join(work, "tsconfig.json"), "w", encoding="utf-8") as f:
                json.dump(config, f, indent=2)
            proc = subprocess.run(
                [node, TSC, "-p", work, "--pretty", "false"],
                capture_output=True, text=True, timeout=600, cwd=work,
            )
            if keep_dir:
                os.makedirs(keep_dir, exist_ok=True)
                shutil.copy(ts, os.path.join(keep_dir, "responses.ts"))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return self.judge(proc.returncode, proc.stdout + proc.stderr, spans)

    @staticmethod
    def judge(rc: int, output: str, spans: list[tuple[int, int, str]]) -> tuple[list[str], list[str]]:
        errors: list[tuple[int, str]] = []  # (line, message)
        stray: list[str] = []
        for raw in output.splitlines():
            m = ERROR_LINE.match(raw)
            if m:
                errors.append((int(m["line"]), f"{m['code']}: {m['msg']}"))
            elif raw.startswith((" ", "\t")) and errors:
                line, msg = errors[-1]
                errors[-1] = (line, msg + " " + raw.strip())
            elif raw.strip():
                stray.append(raw.strip())
        by_label: dict[str, list[str]] = {}
        outside: list[str] = []
        for line, msg in errors:
            label = next((lbl for a, b, lbl in spans if a <= line <= b), None)
            if label is None:
                outside.append(f"line {line}: {msg}")
            else:
                by_label.setdefault(label, []).append(f"line {line}: {msg}")
        problems: list[str] = []
        if outside or stray:
            problems.append(f"tsc failed outside the responses (exit {rc}): {(outside + stray)[:5]}")
        canary_report = []
        for label, _kind, _body in CANARIES:
            got = by_label.pop(label, [])
            if not got:
                problems.append(f"{label}: accepted by tsc, so the check cannot fail")
            else:
                canary_report.append(f"{label}: rejected ({got[0][:160]})")
        for label, msgs in by_label.items():
            problems.append(f"{label}: " + " | ".join(m[:300] for m in msgs[:4]))
        if rc != 0 and not errors:
            problems.append(f"tsc exited {rc} without errors: {output[:300]}")
        if rc == 0:
            problems.append("tsc exited 0 although the canaries are wrong")
        return problems, canary_report


# ---------------------------------------------------------------------------------------------
# What the types leave optional or nullable: the members the contract requires, by kind.

def _is(v, t) -> bool:
    if t is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, t)


def required_members(kind: str, body, business: bool = True) -> list[str]:
    """Problems with the members the contract (the Graph wire shapes the connector reads) requires."""
    out: list[str] = []

    def need(obj, key: str, t, where: str) -> None:
        if not isinstance(obj, dict) or key not in obj:
            out.append(f"{where}: no {key!r}")
        elif not _is(obj[key], t):
            out.append(f"{where}.{key}: {type(obj[key]).__name__} {str(obj[key])[:40]!r}, want {t.__name__}")

    def item(obj, where: str, in_delta: bool) -> None:
        if not isinstance(obj, dict):
            out.append(f"{where}: not an object")
            return
        need(obj, "id", str, where)
        if "root" not in obj:
            need(obj, "parentReference", dict, where)
        pr = obj.get("parentReference")
        if isinstance(pr, dict):
            need(pr, "driveId", str, where + ".parentReference")
            if "root" not in obj:
                need(pr, "id", str, where + ".parentReference")
            if in_delta and "path" in pr:
                out.append(f"{where}.parentReference.path: present in a delta page (Graph never sends it there)")
        if "deleted" in obj:
            need(obj, "deleted", dict, where)
            if business:
                for k in ("name", "cTag", "size"):
                    if k in obj:
                        out.append(f"{where}: a deleted item on a business drive carries {k!r}")
            return
        need(obj, "name", str, where)
        need(obj, "size", int, where)
        need(obj, "eTag", str, where)
        for k in ("createdDateTime", "lastModifiedDateTime", "webUrl"):
            need(obj, k, str, where)
        if ("file" in obj) == ("folder" in obj):
            facets = sorted(k for k in ("file", "folder") if k in obj)
            out.append(f"{where}: want exactly one of file/folder, got {facets}")
        if "file" in obj:
            if not in_delta:  # ODB omits cTag in delta
                need(obj, "cTag", str, where)
            f = obj["file"]
            need(f, "mimeType", str, where + ".file")
            if isinstance(f, dict):
                need(f, "hashes", dict, where + ".file")
                if isinstance(f.get("hashes"), dict):
                    need(f["hashes"], "quickXorHash", str, where + ".file.hashes")
        if "folder" in obj:
            need(obj["folder"], "childCount", int, where + ".folder")
        fsi = obj.get("fileSystemInfo")
        if fsi is not None:
            need(fsi, "createdDateTime", str, where + ".fileSystemInfo")
            need(fsi, "lastModifiedDateTime", str, where + ".fileSystemInfo")

    def page(obj, where: str) -> list:
        if not isinstance(obj, dict) or not isinstance(obj.get("value"), list):
            out.append(f"{where}: no 'value' array")
            return []
        return obj["value"]

    if kind == "DriveItem":
        item(body, "driveItem", False)
    elif kind == "DriveItemPage":
        for i, v in enumerate(page(body, "page")):
            item(v, f"value[{i}]", False)
    elif kind == "DeltaPage":
        for i, v in enumerate(page(body, "delta page")):
            item(v, f"value[{i}]", True)
        links = [k for k in ("@odata.nextLink", "@odata.deltaLink") if k in (body if isinstance(body, dict) else {})]
        if len(links) != 1:
            out.append(f"delta page: want exactly one of @odata.nextLink/@odata.deltaLink, got {links}")
    elif kind in ("Drive", "DrivePage"):
        drives = page(body, "page") if kind == "DrivePage" else [body]
        for i, d in enumerate(drives):
            w = f"drive[{i}]"
            for k in ("id", "name", "driveType", "webUrl", "createdDateTime"):
                need(d, k, str, w)
            need(d, "owner", dict, w)
            if isinstance(d, dict) and d.get("driveType") not in ("business", "documentLibrary", "personal"):
                out.append(f"{w}.driveType: {d.get('driveType')!r}")
    elif kind in ("Site", "SitePage"):
        sites = page(body, "page") if kind == "SitePage" else [body]
        for i, s in enumerate(sites):
            w = f"site[{i}]"
            for k in ("id", "name", "displayName", "webUrl"):
                need(s, k, str, w)
            if isinstance(s, dict) and isinstance(s.get("id"), str) and len(s["id"].split(",")) != 3:
                out.append(f"{w}.id: {s['id']!r} is not host,siteCollectionGuid,webGuid")
    elif kind == "User":
        for k in ("id", "displayName", "userPrincipalName"):
            need(body, k, str, "user")
        if isinstance(body, dict) and not isinstance(body.get("mail"), (str, type(None))):
            out.append("user.mail: not a string or null")
    return out


# ---------------------------------------------------------------------------------------------
# Shapes outside the entity types: Graph's error body and the identity platform's token answers.

def graph_error_problems(body) -> list[str]:
    """`{"error": {"code", "message", "innerError": {"code"?, "date", "request-id", "client-request-id"}}}`."""
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return [f"not {{'error': {{...}}}}: {str(body)[:200]}"]
    e, out = body["error"], []
    for k in ("code", "message"):
        if not isinstance(e.get(k), str) or not e[k]:
            out.append(f"error.{k} missing or not a string")
    extra = set(e) - {"code", "message", "innerError", "details", "target"}
    if extra:
        out.append(f"unknown members of error: {sorted(extra)}")
    inner = e.get("innerError")
    if not isinstance(inner, dict):
        out.append("error.innerError missing or not an object")
    else:
        for k in ("date", "request-id", "client-request-id"):
            if not isinstance(inner.get(k), str) or not inner[k]:
                out.append(f"error.innerError.{k!r} missing or not a string")
        if "code" in inner and not isinstance(inner["code"], str):
            out.append("error.innerError.code is not a string")
    return out


TOKEN_MEMBERS = {"token_type": str, "scope": str, "expires_in": int, "ext_expires_in": int,
                 "access_token": str, "refresh_token": str}


def token_answer_problems(body, want_id_token: bool = False) -> list[str]:
    if not isinstance(body, dict):
        return ["the token answer is not a JSON object"]
    out = []
    for k, t in TOKEN_MEMBERS.items():
        if not _is(body.get(k), t):
            out.append(f"{k}: {type(body.get(k)).__name__}, want {t.__name__}")
    if body.get("token_type") != "Bearer":
        out.append(f"token_type {body.get('token_type')!r}, want 'Bearer'")
    if want_id_token and not isinstance(body.get("id_token"), str):
        out.append("no id_token")
    extra = set(body) - set(TOKEN_MEMBERS) - {"id_token", "refresh_token_expires_in"}
    if extra:
        out.append(f"unknown members: {sorted(extra)}")
    return out


def token_error_problems(body, error: str) -> list[str]:
    if not isinstance(body, dict):
        return ["the token error is not a JSON object"]
    out = []
    if body.get("error") != error:
        out.append(f"error {body.get('error')!r}, want {error!r}")
    desc = body.get("error_description")
    if not isinstance(desc, str) or not re.match(r"^AADSTS\d+: ", desc):
        out.append(f"error_description does not start with 'AADSTS<n>: ': {str(desc)[:60]!r}")
    codes = body.get("error_codes")
    if not (isinstance(codes, list) and codes and all(_is(c, int) for c in codes)):
        out.append(f"error_codes is not a non-empty list of integers: {codes!r}")
    elif isinstance(desc, str) and not desc.startswith(f"AADSTS{codes[0]}:"):
        out.append(f"error_codes[0] {codes[0]} is not the AADSTS code of the description")
    for k in ("timestamp", "trace_id", "correlation_id"):
        if not isinstance(body.get(k), str) or not body[k]:
            out.append(f"{k} missing or not a string")
    extra = set(body) - {"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id",
                         "error_uri", "suberror", "claims"}
    if extra:
        out.append(f"unknown members: {sorted(extra)}")
    return out


def quickxorhash(data: bytes) -> str:
    """Microsoft's QuickXorHash, base64 (provider-apis.md §4.2)."""
    import base64

    s = bytearray(20)
    for i, b in enumerate(data):
        bit = (i * 11) % 160
        idx, sh = bit // 8, bit % 8
        v = b << sh
        s[idx] ^= v & 0xFF
        s[(idx + 1) % 20] ^= v >> 8
    for k, lb in enumerate(len(data).to_bytes(8, "little")):
        s[12 + k] ^= lb
    return base64.b64encode(bytes(s)).decode()
