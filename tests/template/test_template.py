#!/usr/bin/env python3
"""Checks on template.yaml that cfn-lint and `sam validate --lint` do not make.

Run with the project venv's python (scripts/lint-template installs cfn-lint and aws-sam-cli):

    .venv/bin/python tests/template/test_template.py              # the checks
    .venv/bin/python tests/template/test_template.py --mutations  # + prove each check can fail

The template is read with cfn-lint's loader (which understands !Ref, !GetAtt, ...) and also
translated with the SAM translator (the same one `sam validate` and CloudFormation use, run
offline), so that checks see what would really be deployed: the generated OpenAPI body with each
route's authorizer, the event source mapping, the effective (Globals-merged) function properties.

`--mutations` breaks the template in memory in one way per case and asserts that the check
meant to catch it fails: every check is shown to be able to fail.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# ----------------------------------------------------------------------------- the contract

FUNCTIONS = {
    # logical id: (binary, timeout s, memory MB)
    "ConnectionsApiFunction": ("connections-api", 29, 256),
    "OAuthCallbackFunction": ("oauth-callback", 29, 256),
    "SyncSchedulerFunction": ("sync-scheduler", 60, 256),
    "SyncWorkerFunction": ("sync-worker", 300, 1024),
}
API, CALLBACK, SCHEDULER, WORKER = FUNCTIONS

ADMIN_ROUTES = {
    ("GET", "/v1/providers"),
    ("POST", "/v1/connections/authorize"),
    ("GET", "/v1/grants/{grant}/folders"),
    ("POST", "/v1/connections"),
    ("GET", "/v1/connections"),
    ("GET", "/v1/connections/{id}"),
    ("PATCH", "/v1/connections/{id}"),
    ("DELETE", "/v1/connections/{id}"),
    ("POST", "/v1/connections/{id}/refresh"),
    ("POST", "/v1/connections/{id}/retry-failed"),
    ("POST", "/v1/connections/{id}/confirm-deletions"),
    ("GET", "/v1/connections/{id}/runs"),
    ("GET", "/v1/connections/{id}/items"),
}
PUBLIC_ROUTES = {("GET", "/v1/oauth/{provider}/callback"), ("GET", "/v1/openapi.json"),
                 ("GET", "/console"), ("GET", "/console/{file}")}
EXPENSIVE_ROUTES = {"POST /v1/connections/authorize", "POST /v1/connections/{id}/refresh"}

_SHARED = {"TABLE_NAME", "RUST_LOG"}
# The provider registry's variables (extconn_providers::registry): EXTCONN_<PROVIDER>_CLIENT_ID and,
# on AWS, EXTCONN_<PROVIDER>_CLIENT_SECRET_ID (the Secrets Manager secret holding the app secret).
# Every provider the template configures: its parameter prefix (<P>ClientId, <P>ClientSecretId),
# its variable prefix and the path segment of its OAuth callback (ProviderKind::as_str).
PROVIDERS = {
    "Dropbox": ("EXTCONN_DROPBOX", "dropbox"),
    "GoogleDrive": ("EXTCONN_GOOGLE_DRIVE", "google_drive"),
    "SharePoint": ("EXTCONN_SHAREPOINT", "sharepoint"),
}
_PROVIDER_VARS = {
    f"{prefix}_{suffix}": f"{param}{suffix.title().replace('_', '')}"
    for param, (prefix, _) in PROVIDERS.items()
    for suffix in ("CLIENT_ID", "CLIENT_SECRET_ID")
}
# Provider settings that are neither the client id nor its secret: variable -> parameter.
_PROVIDER_VARS["EXTCONN_SHAREPOINT_TENANT"] = "SharePointTenant"
_SECRETS = {"SECRET_PREFIX"} | set(_PROVIDER_VARS)
_HTTP = {"PUBLIC_BASE_URL", "CONSOLE_URL", "DAM_ORIGINS", "CLAIM_USER_ID", "CLAIM_CLIENT_ID", "CLAIM_DISPLAY_NAME",
         "CLAIM_ADMIN_FLAG", "CLAIM_ADMIN_LIST", "CLAIM_ADMIN_VALUE"}
ENVIRONMENT = {
    # Only the HTTP functions sign page tokens.
    API: _SHARED | {"QUEUE_URL", "PAGE_TOKEN_SECRET_ID"} | _SECRETS | _HTTP,
    CALLBACK: _SHARED | {"QUEUE_URL", "PAGE_TOKEN_SECRET_ID"} | _SECRETS | _HTTP,
    SCHEDULER: _SHARED | {"QUEUE_URL"},
    WORKER: _SHARED | {"QUEUE_URL"} | _SECRETS | {"BUCKET_NAME", "EVENT_BUS_NAME", "TRANSFER_CONCURRENCY"},
}

XRAY_WRITE = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}

OUTPUTS = {"ApiUrl", "TableName", "BucketName", "QueueUrl", "DeadLetterQueueUrl", "EventBusName"}

# ----------------------------------------------------------------------------- loading


def load_raw(path: Path = TEMPLATE) -> dict:
    from cfnlint.decode import decode

    template, matches = decode(str(path))
    assert not matches and template is not None, f"{path} does not parse: {matches}"
    return json.loads(json.dumps(template))  # plain dicts/lists/str (drops the loader's marks)


def translate(raw: dict) -> dict:
    """The SAM transform, offline (as `sam validate` runs it)."""
    import boto3
    from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    t = copy.deepcopy(raw)
    # The translator needs S3 code locations; sam build/package provide them at deploy time.
    t.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = "s3://bucket/code.zip"
    for res in t.get("Resources", {}).values():
        if res.get("Type") == "AWS::Serverless::Function" and "CodeUri" in res.get("Properties", {}):
            res["Properties"]["CodeUri"] = "s3://bucket/code.zip"
    session = boto3.session.Session(region_name="us-east-1")
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    try:
        return Translator(managed_policy_map={}, sam_parser=Parser(), boto_session=session, metrics=metrics).translate(
            sam_template=t, parameter_values={}
        )
    finally:
        metrics.publish()  # to nowhere; otherwise the translator warns about unpublished metrics


class Template:
    def __init__(self, raw: dict):
        self.raw = raw
        self.out = translate(raw)

    @property
    def res(self) -> dict:
        return self.out["Resources"]

    def raw_fn(self, name: str) -> dict:
        r = self.raw["Resources"].get(name)
        assert r is not None and r.get("Type") == "AWS::Serverless::Function", f"{name}: no such function"
        return r

    def fn(self, name: str) -> dict:
        """The deployed AWS::Lambda::Function's properties (Globals merged by SAM)."""
        r = self.res.get(name)
        assert r is not None and r["Type"] == "AWS::Lambda::Function", f"{name}: not translated to a function"
        return r["Properties"]

    def of_type(self, type_: str) -> dict[str, dict]:
        return {k: v for k, v in self.res.items() if v["Type"] == type_}

    def events(self, fn: str, type_: str) -> dict[str, dict]:
        evs = self.raw_fn(fn)["Properties"].get("Events", {})
        return {k: v.get("Properties", {}) for k, v in evs.items() if v.get("Type") == type_}

    def role_of(self, fn: str) -> str:
        role = self.fn(fn).get("Role")
        assert isinstance(role, dict) and "Fn::GetAtt" in role, f"{fn}: Role is {role!r}, not a role of this template"
        name = role["Fn::GetAtt"][0]
        assert self.res.get(name, {}).get("Type") == "AWS::IAM::Role", f"{fn}: {name} is not an AWS::IAM::Role"
        return name

    def statements(self, role: str) -> list[dict]:
        """Every policy statement that applies to a role (inline, and IAM policies attached to it)."""
        out: list[dict] = []
        props = self.res[role]["Properties"]
        docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
        for r in self.res.values():
            if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
                p = r["Properties"]
                if {"Ref": role} in p.get("Roles", []) or p.get("RoleName") == {"Ref": role}:
                    docs.append(p["PolicyDocument"])
        for d in docs:
            for s in listify(d.get("Statement", [])):
                out.extend(unwrap_if(s))
        return out


def listify(v: Any) -> list:
    return v if isinstance(v, list) else [v]


def unwrap_if(v: Any) -> list:
    """Both branches of a Fn::If (either may be deployed); AWS::NoValue dropped."""
    if isinstance(v, dict) and set(v) == {"Fn::If"}:
        return [x for branch in v["Fn::If"][1:] for x in unwrap_if(branch)]
    if v == {"Ref": "AWS::NoValue"}:
        return []
    return [v]


def getatt(v: Any) -> tuple[str, str] | None:
    if isinstance(v, dict) and "Fn::GetAtt" in v:
        g = v["Fn::GetAtt"]
        return tuple(g) if isinstance(g, list) else tuple(g.split(".", 1))
    return None


def routes(t: Template) -> dict[tuple[str, str], list]:
    """(METHOD, path) -> the security requirement of the deployed route (from the OpenAPI body)."""
    body = t.res["HttpApi"]["Properties"]["Body"]
    out = {}
    for path, methods in body["paths"].items():
        for method, op in methods.items():
            out[(method.upper(), path)] = op.get("security")
    return out


def integration_fn(t: Template, method: str, path: str) -> str:
    op = t.res["HttpApi"]["Properties"]["Body"]["paths"][path][method.lower()]
    uri = op["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
    m = re.search(r"\$\{(\w+)\.Arn\}", uri)
    assert m, f"{method} {path}: integration {uri!r}"
    return m.group(1)


# ----------------------------------------------------------------------------- the checks

CHECKS: list[tuple[str, Callable[[Template], None]]] = []


def check(fn: Callable[[Template], None]) -> Callable[[Template], None]:
    CHECKS.append((fn.__name__, fn))
    return fn


@check
def functions_build(t: Template) -> None:
    """provided.al2023 on arm64, built by cargo-lambda from the workspace root, one binary each."""
    fns = t.of_type("AWS::Lambda::Function")
    assert set(fns) == set(FUNCTIONS), f"functions are {sorted(fns)}, expected {sorted(FUNCTIONS)}"
    gcode = t.raw.get("Globals", {}).get("Function", {}).get("CodeUri")
    for name, (binary, _, _) in FUNCTIONS.items():
        p = t.fn(name)
        assert p.get("Runtime") == "provided.al2023", f"{name}: Runtime {p.get('Runtime')!r}"
        assert p.get("Architectures") == ["arm64"], f"{name}: Architectures {p.get('Architectures')!r}"
        assert p.get("Handler") == "bootstrap", f"{name}: Handler {p.get('Handler')!r}"
        meta = t.raw_fn(name).get("Metadata", {})
        assert meta.get("BuildMethod") == "rust-cargolambda", f"{name}: Metadata.BuildMethod {meta.get('BuildMethod')!r}"
        got = meta.get("BuildProperties", {}).get("Binary")
        assert got == binary, f"{name}: BuildProperties.Binary {got!r}, expected {binary!r}"
        code = t.raw_fn(name)["Properties"].get("CodeUri", gcode)
        assert code in (".", "./"), f"{name}: CodeUri {code!r} is not the workspace root"


@check
def function_sizes(t: Template) -> None:
    """Timeouts and memory of the contract; JSON logs into the function's own log group."""
    for name, (_, timeout, memory) in FUNCTIONS.items():
        p = t.fn(name)
        assert p.get("Timeout") == timeout, f"{name}: Timeout {p.get('Timeout')!r}, expected {timeout}"
        assert p.get("MemorySize") == memory, f"{name}: MemorySize {p.get('MemorySize')!r}, expected {memory}"
        lc = p.get("LoggingConfig", {})
        assert lc.get("LogFormat") == "JSON", f"{name}: LoggingConfig.LogFormat {lc.get('LogFormat')!r}"
        lg = lc.get("LogGroup", {}).get("Ref") if isinstance(lc.get("LogGroup"), dict) else None
        assert lg and t.res.get(lg, {}).get("Type") == "AWS::Logs::LogGroup", f"{name}: LogGroup {lc.get('LogGroup')!r}"


@check
def worker_partial_batch(t: Template) -> None:
    """The worker consumes the sync queue in batches of 3 and reports per-message failures."""
    sqs = t.events(WORKER, "SQS")
    assert len(sqs) == 1, f"{WORKER}: {len(sqs)} SQS events, expected 1"
    (props,) = sqs.values()
    assert getatt(props.get("Queue")) == ("SyncQueue", "Arn"), f"worker queue {props.get('Queue')!r}"
    assert props.get("BatchSize") == 3, f"worker BatchSize {props.get('BatchSize')!r}"
    # The memory budget: a batch's messages run at once, each with up to TransferConcurrency
    # transfers of ~25 MiB (functions/common: MAX_TRANSFER_CONCURRENCY).
    tc = t.raw["Parameters"]["TransferConcurrency"]
    budget = props["BatchSize"] * tc["MaxValue"] * 25
    assert budget + 100 <= t.fn(WORKER)["MemorySize"], (
        f"{props['BatchSize']} messages x {tc['MaxValue']} transfers x 25 MiB = {budget} MiB does not fit")
    assert t.fn(WORKER)["Environment"]["Variables"].get("TRANSFER_CONCURRENCY") == {"Ref": "TransferConcurrency"}
    assert props.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], (
        f"worker FunctionResponseTypes {props.get('FunctionResponseTypes')!r}: without ReportBatchItemFailures "
        "one failed message redelivers the whole batch"
    )
    esms = [r["Properties"] for r in t.of_type("AWS::Lambda::EventSourceMapping").values()]
    assert len(esms) == 1, f"{len(esms)} event source mappings, expected only the worker's"
    esm = esms[0]
    assert esm["FunctionName"] == {"Ref": WORKER}, f"event source mapping targets {esm['FunctionName']!r}"
    assert esm.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], "deployed ESM lacks ReportBatchItemFailures"


@check
def visibility_vs_timeout(t: Template) -> None:
    """Sync queue visibility timeout >= 6 x the worker's timeout (AWS's guidance for Lambda)."""
    vt = t.res["SyncQueue"]["Properties"].get("VisibilityTimeout")
    timeout = t.fn(WORKER).get("Timeout")
    assert isinstance(vt, int) and isinstance(timeout, int), f"VisibilityTimeout {vt!r}, worker Timeout {timeout!r}"
    assert vt >= 6 * timeout, f"VisibilityTimeout {vt} < 6 x worker Timeout {timeout} = {6 * timeout}"


@check
def redrive(t: Template) -> None:
    """Five deliveries, then the dead-letter queue."""
    rp = t.res["SyncQueue"]["Properties"].get("RedrivePolicy", {})
    if isinstance(rp, str):
        rp = json.loads(rp)
    assert rp.get("maxReceiveCount") == 5, f"maxReceiveCount {rp.get('maxReceiveCount')!r}, expected 5"
    assert getatt(rp.get("deadLetterTargetArn")) == ("SyncDeadLetterQueue", "Arn"), (
        f"deadLetterTargetArn {rp.get('deadLetterTargetArn')!r}"
    )


@check
def queue_settings(t: Template) -> None:
    """Explicit message size, retention 4 days / DLQ 14 days, SQS-managed encryption on both."""
    q = t.res["SyncQueue"]["Properties"]
    d = t.res["SyncDeadLetterQueue"]["Properties"]
    for name, p, retention in (("SyncQueue", q, 4 * 86400), ("SyncDeadLetterQueue", d, 14 * 86400)):
        assert isinstance(p.get("MaximumMessageSize"), int), f"{name}: MaximumMessageSize not set explicitly"
        assert p.get("MessageRetentionPeriod") == retention, f"{name}: MessageRetentionPeriod {p.get('MessageRetentionPeriod')!r}"
        assert p.get("SqsManagedSseEnabled") is True, f"{name}: SqsManagedSseEnabled {p.get('SqsManagedSseEnabled')!r}"
    assert "FifoQueue" not in q, "the sync queue is a standard queue"


@check
def admin_routes_jwt(t: Template) -> None:
    """Every admin route exists, goes to connections-api and requires the JWT authorizer."""
    api = t.raw["Resources"]["HttpApi"]["Properties"]
    auth = api.get("Auth", {})
    assert auth.get("DefaultAuthorizer") == "JwtAuthorizer", f"HttpApi DefaultAuthorizer {auth.get('DefaultAuthorizer')!r}"
    jwt = auth.get("Authorizers", {}).get("JwtAuthorizer", {})
    cfg = jwt.get("JwtConfiguration", {})
    assert cfg.get("issuer") == {"Ref": "JwtIssuer"} and cfg.get("audience") == {"Ref": "JwtAudience"}, (
        f"JwtAuthorizer JwtConfiguration {cfg!r}"
    )
    assert jwt.get("IdentitySource") == "$request.header.Authorization", f"IdentitySource {jwt.get('IdentitySource')!r}"
    schemes = t.res["HttpApi"]["Properties"]["Body"]["components"]["securitySchemes"]
    assert schemes["JwtAuthorizer"]["x-amazon-apigateway-authorizer"]["type"] == "jwt", "JwtAuthorizer is not a JWT authorizer"
    deployed = routes(t)
    for method, path in sorted(ADMIN_ROUTES):
        assert (method, path) in deployed, f"admin route {method} {path} is missing"
        sec = deployed[(method, path)]
        assert sec == [{"JwtAuthorizer": []}], f"{method} {path}: security {sec!r}, expected the JWT authorizer"
        assert integration_fn(t, method, path) == API, f"{method} {path} is not served by {API}"
    for ev in t.events(API, "HttpApi").values():
        a = ev.get("Auth", {}).get("Authorizer", "JwtAuthorizer")
        assert a == "JwtAuthorizer", f"{API} {ev.get('Method')} {ev.get('Path')}: Authorizer {a!r}"


@check
def public_routes_none(t: Template) -> None:
    """NONE exactly on the OAuth callback, the OpenAPI document and the console page, served by oauth-callback."""
    deployed = routes(t)
    public = {r for r, sec in deployed.items() if sec != [{"JwtAuthorizer": []}]}
    assert public == PUBLIC_ROUTES, f"routes without the JWT authorizer: {sorted(public)}, expected {sorted(PUBLIC_ROUTES)}"
    for method, path in PUBLIC_ROUTES:
        assert deployed[(method, path)] == [{"NONE": []}], f"{method} {path}: security {deployed[(method, path)]!r}"
        assert integration_fn(t, method, path) == CALLBACK, f"{method} {path} is not served by {CALLBACK}"
    assert set(deployed) == ADMIN_ROUTES | PUBLIC_ROUTES, (
        f"unexpected routes: {sorted(set(deployed) - ADMIN_ROUTES - PUBLIC_ROUTES)}"
    )


@check
def scheduler_no_secrets(t: Template) -> None:
    """The scheduler can touch no secret: no secretsmanager action, SAM secrets template or managed policy."""
    raw = t.raw_fn(SCHEDULER)["Properties"]
    for pol in listify(raw.get("Policies", [])):
        text = json.dumps(pol).lower()
        assert "secret" not in text, f"{SCHEDULER}: SAM Policies entry {pol!r} grants secrets"
    role = t.role_of(SCHEDULER)
    props = t.res[role]["Properties"]
    assert not props.get("ManagedPolicyArns"), f"{role}: managed policies {props.get('ManagedPolicyArns')!r} (unbounded)"
    for s in t.statements(role):
        if s.get("Effect") != "Allow":
            continue
        for a in listify(s.get("Action", [])):
            a_l = str(a).lower()
            assert not (a_l.startswith("secretsmanager:") or a_l in ("*", "*:*")), f"{role} allows {a!r}"
        assert "NotAction" not in s, f"{role}: NotAction allows everything else, secrets included"
    env = set(t.fn(SCHEDULER).get("Environment", {}).get("Variables", {}))
    assert not env & _SECRETS, f"{SCHEDULER} gets secret settings {sorted(env & _SECRETS)}"
    users = [f for f in FUNCTIONS if t.role_of(f) == role]
    assert users == [SCHEDULER], f"the scheduler's role is shared with {users}"


@check
def least_privilege(t: Template) -> None:
    """One role per function; every Allow names actions and resources of this stack, no wildcards."""
    roles = {f: t.role_of(f) for f in FUNCTIONS}
    assert len(set(roles.values())) == len(roles), f"functions share roles: {roles}"
    for fn, role in roles.items():
        p = t.res[role]["Properties"]
        assert not p.get("ManagedPolicyArns"), f"{role}: managed policies {p['ManagedPolicyArns']!r}"
        principals = [s.get("Principal") for s in p["AssumeRolePolicyDocument"]["Statement"]]
        assert principals == [{"Service": "lambda.amazonaws.com"}], f"{role}: assumed by {principals!r}"
        for s in t.statements(role):
            assert "NotAction" not in s and "NotResource" not in s, f"{role}: {s!r}"
            for a in listify(s.get("Action", [])):
                assert "*" not in str(a), f"{role} ({fn}): wildcard action {a!r}"
            for r in listify(s.get("Resource", [])):
                # X-Ray's two write actions take no resource ARN: '*' for exactly them.
                xray_only = set(listify(s.get("Action", []))) <= XRAY_WRITE
                assert r != "*" or xray_only, f"{role} ({fn}): Resource '*' for {s.get('Action')!r}"
                if isinstance(r, str):
                    assert not r.startswith("arn:"), f"{role}: hard-coded ARN {r!r}"


def _actions_on(t: Template, fn: str) -> list[tuple[set[str], list]]:
    return [({a.lower() for a in listify(s["Action"])}, listify(s.get("Resource", [])))
            for s in t.statements(t.role_of(fn)) if s.get("Effect") == "Allow"]


@check
def function_permissions(t: Template) -> None:
    """What each function needs is granted on the right resource (the worker's ESM, S3, bus, secrets)."""

    def granted(fn: str, action: str, resource_has: str) -> bool:
        for acts, res in _actions_on(t, fn):
            if action in acts and any(resource_has in json.dumps(r) for r in res):
                return True
        return False

    for fn in FUNCTIONS:
        assert granted(fn, "sqs:sendmessage", '"SyncQueue"'), f"{fn}: cannot send to the sync queue"
        own_logs = t.fn(fn)["LoggingConfig"]["LogGroup"]["Ref"]
        for a in ("logs:createlogstream", "logs:putlogevents"):
            assert granted(fn, a, f'"{own_logs}"'), f"{fn}: {a} on its log group {own_logs}"
    for a in ("sqs:receivemessage", "sqs:deletemessage", "sqs:getqueueattributes"):
        assert granted(WORKER, a, '"SyncQueue"'), f"{WORKER}: the event source mapping needs {a} on the queue"
    for a in ("s3:putobject", "s3:getobject", "s3:abortmultipartupload", "s3:listmultipartuploadparts"):
        assert granted(WORKER, a, "AssetsBucket.Arn}/*"), f"{WORKER}: {a} on the bucket's objects"
    assert granted(WORKER, "events:putevents", '"AssetEventBus"'), f"{WORKER}: events:PutEvents on the bus"
    # Only the worker deletes in batches (a deleted connection's purge job).
    for fn in FUNCTIONS:
        assert granted(fn, "dynamodb:batchwriteitem", '"Table"') == (fn == WORKER), f"{fn}: dynamodb:BatchWriteItem"

    for fn in (API, CALLBACK, WORKER):
        assert granted(fn, "secretsmanager:getsecretvalue", ":secret:${SecretPrefix}*"), f"{fn}: grant secrets"
        assert granted(fn, "secretsmanager:getsecretvalue", '"PageTokenSecret"') == (fn != WORKER), (
            f"{fn}: the page-token key is for the HTTP functions only")
        for p in PROVIDERS:
            assert granted(fn, "secretsmanager:getsecretvalue", f"${{{p}ClientSecretId}}-??????"), f"{fn}: {p} app secret"
        assert granted(fn, "dynamodb:updateitem", '"Table"'), f"{fn}: table writes"
    for fn in (API, CALLBACK):
        for a in ("createsecret", "tagresource", "putsecretvalue", "deletesecret"):
            assert granted(fn, f"secretsmanager:{a}", ":secret:${SecretPrefix}*"), f"{fn}: secretsmanager:{a} on the prefix"
    for fn in FUNCTIONS:  # no Scan: every periodic path reads an index (the sweep: Sweep)
        assert not any("dynamodb:scan" in acts for acts, _ in _actions_on(t, fn)), f"{fn}: dynamodb:Scan"
    for fn in FUNCTIONS:  # nothing calls DescribeSecret
        assert not any("secretsmanager:describesecret" in acts for acts, _ in _actions_on(t, fn)), f"{fn}: DescribeSecret"
    for fn in FUNCTIONS:  # only the worker touches S3 and the bus
        if fn != WORKER:
            for acts, _ in _actions_on(t, fn):
                assert not any(a.startswith(("s3:", "events:")) for a in acts), f"{fn} has {sorted(acts)}"


@check
def environment(t: Template) -> None:
    """Each function gets exactly the environment variables of the contract."""
    for fn, expected in ENVIRONMENT.items():
        got = set(t.fn(fn).get("Environment", {}).get("Variables", {}))
        assert got == expected, f"{fn}: missing {sorted(expected - got)}, unexpected {sorted(got - expected)}"
    api = t.fn(API)["Environment"]["Variables"]
    assert api["QUEUE_URL"] == {"Ref": "SyncQueue"} and api["TABLE_NAME"] == {"Ref": "Table"}, "QUEUE_URL/TABLE_NAME"
    w = t.fn(WORKER)["Environment"]["Variables"]
    assert w["BUCKET_NAME"] == {"Ref": "AssetsBucket"} and w["EVENT_BUS_NAME"] == {"Ref": "AssetEventBus"}, "worker env"
    # The app secret a function reads is the one its role may read (`${<P>ClientSecretId}-??????`).
    for fn in (API, CALLBACK, WORKER):
        env = t.fn(fn)["Environment"]["Variables"]
        for var, param in _PROVIDER_VARS.items():
            assert env[var] == {"Ref": param}, f"{fn}: {var} is {env[var]!r}, not the {param} parameter"


@check
def schedules(t: Template) -> None:
    """Scheduler every 5 minutes; the worker's hourly grant sweep with its exact input."""
    s = t.events(SCHEDULER, "Schedule")
    assert [p.get("Schedule") for p in s.values()] == ["rate(5 minutes)"], f"scheduler schedules {s!r}"
    assert set(t.raw_fn(SCHEDULER)["Properties"].get("Events", {})) == set(s), "the scheduler has other triggers"
    w = t.events(WORKER, "Schedule")
    assert len(w) == 1, f"worker schedules {w!r}"
    (p,) = w.values()
    assert p.get("Schedule") == "rate(1 hour)", f"sweep schedule {p.get('Schedule')!r}"
    assert json.loads(p.get("Input", "null")) == {"action": "sweep-grants"}, f"sweep input {p.get('Input')!r}"
    assert p.get("Enabled", True) is not False and p.get("State", "ENABLED") == "ENABLED", "sweep disabled"


@check
def table(t: Template) -> None:
    """On demand, pk/sk, TTL on `ttl`, PITR, SSE, the Due (sparse, keys + due_every), ByPath (ALL), ByParent (ALL), ByRetry (sparse, ALL), Sweep (sparse, ALL) and ByState (sparse, ALL) indexes."""
    p = t.res["Table"]["Properties"]
    assert p.get("BillingMode") == "PAY_PER_REQUEST", f"BillingMode {p.get('BillingMode')!r}"
    assert p["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert p.get("TimeToLiveSpecification") == {"AttributeName": "ttl", "Enabled": True}, "TTL on `ttl`"
    assert p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True, "PITR"
    assert p.get("SSESpecification", {}).get("SSEEnabled") is True, "SSE"
    types = {a["AttributeName"]: a["AttributeType"] for a in p["AttributeDefinitions"]}
    gsis = {g["IndexName"]: g for g in p.get("GlobalSecondaryIndexes", [])}
    indexes = {"Due": ("gsi1pk", "gsi1sk"), "ByPath": ("gsi2pk", "gsi2sk"), "ByParent": ("gsi3pk", "gsi3sk"),
               "ByRetry": ("gsi4pk", "gsi4sk"), "Sweep": ("gsi5pk", "gsi5sk"), "ByState": ("gsi6pk", "gsi6sk")}
    for name, (hk, rk) in indexes.items():
        g = gsis.get(name)
        assert g, f"index {name} missing"
        assert g["KeySchema"] == [{"AttributeName": hk, "KeyType": "HASH"}, {"AttributeName": rk, "KeyType": "RANGE"}], name
        assert types.get(hk) == types.get(rk) == "S", f"{name} keys must be strings"
        # The scheduler reads keys and the interval from Due (a connection's counter and lease
        # writes must not be copied into it); the stores read whole records from the others.
        want = ({"ProjectionType": "INCLUDE", "NonKeyAttributes": ["due_every"]} if name == "Due"
                else {"ProjectionType": "ALL"})
        assert g["Projection"] == want, f"{name} projection {g['Projection']!r}, expected {want!r}"
    assert set(gsis) == set(indexes), f"indexes {sorted(gsis)}"
    assert t.raw["Resources"]["Table"].get("DeletionPolicy") == "Retain", "the table must survive a stack delete"


@check
def bucket_lifecycle(t: Template) -> None:
    """Incomplete multipart uploads are aborted after a day."""
    rules = t.res["AssetsBucket"]["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])
    days = [r["AbortIncompleteMultipartUpload"].get("DaysAfterInitiation")
            for r in rules if r.get("Status") == "Enabled" and "AbortIncompleteMultipartUpload" in r
            and not r.get("Prefix") and not r.get("Filter")]
    assert days == [1], f"enabled whole-bucket AbortIncompleteMultipartUpload rules: {days!r}, expected [1]"


@check
def bucket_private(t: Template) -> None:
    """Private, owner-enforced, encrypted, versioned, TLS only; kept on stack delete."""
    p = t.res["AssetsBucket"]["Properties"]
    pab = p.get("PublicAccessBlockConfiguration", {})
    for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        assert pab.get(k) is True, f"PublicAccessBlockConfiguration.{k} {pab.get(k)!r}"
    assert p.get("OwnershipControls", {}).get("Rules") == [{"ObjectOwnership": "BucketOwnerEnforced"}], "BucketOwnerEnforced"
    sse = p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
    assert sse in ("AES256", "aws:kms"), f"SSEAlgorithm {sse!r}"
    assert p.get("VersioningConfiguration", {}).get("Status") == "Enabled", "versioning"
    assert t.raw["Resources"]["AssetsBucket"].get("DeletionPolicy") == "Retain", "assets must survive a stack delete"
    pols = [r["Properties"] for r in t.of_type("AWS::S3::BucketPolicy").values()
            if r["Properties"].get("Bucket") == {"Ref": "AssetsBucket"}]
    assert len(pols) == 1, "no bucket policy on the assets bucket"
    tls = [s for s in pols[0]["PolicyDocument"]["Statement"]
           if s.get("Effect") == "Deny" and s.get("Principal") == "*" and s.get("Action") in ("s3:*", ["s3:*"])
           and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)]
    assert tls, "no Deny of s3:* without aws:SecureTransport"
    res = json.dumps(tls[0].get("Resource"))
    assert "AssetsBucket" in res and "/*" in res, f"TLS-only statement covers {res}"


@check
def dlq_alarm(t: Template) -> None:
    """An alarm fires as soon as the dead-letter queue holds a message."""
    found = []
    for name, r in t.of_type("AWS::CloudWatch::Alarm").items():
        p = r["Properties"]
        dims = {d["Name"]: d["Value"] for d in p.get("Dimensions", [])}
        if p.get("Namespace") == "AWS/SQS" and getatt(dims.get("QueueName")) == ("SyncDeadLetterQueue", "QueueName"):
            found.append((name, p))
    assert len(found) == 1, f"alarms on the DLQ: {[n for n, _ in found]}"
    name, p = found[0]
    assert p.get("MetricName") == "ApproximateNumberOfMessagesVisible", f"{name}: metric {p.get('MetricName')!r}"
    fires_at_one = (p.get("ComparisonOperator") == "GreaterThanThreshold" and p.get("Threshold") == 0) or (
        p.get("ComparisonOperator") == "GreaterThanOrEqualToThreshold" and p.get("Threshold") == 1)
    assert fires_at_one, f"{name}: {p.get('ComparisonOperator')} {p.get('Threshold')} does not fire at one message"
    assert p.get("Statistic") in ("Maximum", "Sum") or p.get("ExtendedStatistic"), f"{name}: Statistic {p.get('Statistic')!r}"
    assert "AlarmTopicArn" in json.dumps(p.get("AlarmActions")), f"{name}: AlarmActions do not use the AlarmTopicArn parameter"


def _alarm_on(t: Template, namespace: str, metric: str, dim: str, target: Any) -> list[tuple[str, dict]]:
    out = []
    for name, r in t.of_type("AWS::CloudWatch::Alarm").items():
        p = r["Properties"]
        dims = {d["Name"]: d["Value"] for d in p.get("Dimensions", [])}
        if p.get("Namespace") == namespace and p.get("MetricName") == metric and dims.get(dim) == target:
            out.append((name, p))
    return out


def _notifies(name: str, p: dict) -> None:
    assert "AlarmTopicArn" in json.dumps(p.get("AlarmActions")), f"{name}: AlarmActions do not use the AlarmTopicArn parameter"
    assert p.get("TreatMissingData") == "notBreaching", f"{name}: TreatMissingData {p.get('TreatMissingData')!r}"


@check
def operations_alarms(t: Template) -> None:
    """Each function's errors and throttles, the sync queue's oldest message, the API's 5xx, and
    failed scheduled invocations (an OnFailure destination with its own alarm) each raise an alarm."""
    for fn in FUNCTIONS:
        for metric in ("Errors", "Throttles"):
            found = _alarm_on(t, "AWS/Lambda", metric, "FunctionName", {"Ref": fn})
            assert len(found) == 1, f"{fn}: {len(found)} alarms on {metric}"
            name, p = found[0]
            assert p.get("Statistic") == "Sum" and p.get("ComparisonOperator") == "GreaterThanThreshold" \
                and p.get("Threshold") == 0, f"{name}: does not fire at the first {metric.lower()[:-1]}"
            _notifies(name, p)
    found = _alarm_on(t, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", {"Fn::GetAtt": ["SyncQueue", "QueueName"]})
    assert len(found) == 1, f"alarms on the sync queue's oldest message: {len(found)}"
    name, p = found[0]
    assert p.get("Statistic") == "Maximum" and 0 < p.get("Threshold", 0) <= 3600, f"{name}: {p.get('Statistic')} {p.get('Threshold')}"
    _notifies(name, p)
    found = _alarm_on(t, "AWS/ApiGateway", "5xx", "ApiId", {"Ref": "HttpApi"})
    assert len(found) == 1, f"alarms on the API's 5xx: {len(found)}"
    _notifies(*found[0])
    for fn in (SCHEDULER, WORKER):  # the tick and the grant sweep are asynchronous invocations
        cfg = t.raw_fn(fn)["Properties"].get("EventInvokeConfig", {})
        dest = cfg.get("DestinationConfig", {}).get("OnFailure", {})
        assert dest.get("Type") == "SQS" and getatt(dest.get("Destination")) == ("ScheduleFailureQueue", "Arn"), (
            f"{fn}: OnFailure {dest!r}")
        granted = any("sqs:sendmessage" in acts and any("ScheduleFailureQueue" in json.dumps(r) for r in res)
                      for acts, res in _actions_on(t, fn))
        assert granted, f"{fn}: its role cannot send to its OnFailure destination"
    found = _alarm_on(t, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName",
                      {"Fn::GetAtt": ["ScheduleFailureQueue", "QueueName"]})
    assert len(found) == 1, f"alarms on the schedule failures: {len(found)}"
    name, p = found[0]
    assert p.get("ComparisonOperator") == "GreaterThanThreshold" and p.get("Threshold") == 0, f"{name}: not at one"
    _notifies(name, p)


@check
def tracing(t: Template) -> None:
    """X-Ray on every function, and each role may write its traces."""
    for fn in FUNCTIONS:
        mode = t.fn(fn).get("TracingConfig", {}).get("Mode")
        assert mode == "Active", f"{fn}: tracing {mode!r}"
        assert any(XRAY_WRITE <= {a for a in listify(s.get("Action", []))} for s in t.statements(t.role_of(fn))), (
            f"{fn}: its role cannot put trace segments")


@check
def tenant_claim(t: Template) -> None:
    """The tenant claim has no default, and a rule refuses the OAuth client's claims (client_id, azp)."""
    p = t.raw["Parameters"]["ClaimClientId"]
    assert "Default" not in p, f"ClaimClientId has a default: {p.get('Default')!r}"
    rules = json.dumps(t.raw.get("Rules", {}))
    for claim in ("client_id", "azp"):
        assert f'"{claim}"' in rules and '"ClaimClientId"' in rules, f"no rule refuses ClaimClientId={claim}"


@check
def bucket_retention(t: Template) -> None:
    """Noncurrent asset versions expire; the assets bucket logs access to a private, retained log bucket."""
    p = t.res["AssetsBucket"]["Properties"]
    days = [r["NoncurrentVersionExpiration"].get("NoncurrentDays") for r in p.get("LifecycleConfiguration", {}).get("Rules", [])
            if r.get("Status") == "Enabled" and "NoncurrentVersionExpiration" in r]
    assert len(days) == 1 and 1 <= days[0] <= 90, f"noncurrent version expiry {days!r}"
    log = p.get("LoggingConfiguration", {})
    assert log.get("DestinationBucketName") == {"Ref": "AccessLogsBucket"}, f"access logging {log!r}"
    lb = t.res["AccessLogsBucket"]["Properties"]
    assert all(lb.get("PublicAccessBlockConfiguration", {}).get(k) is True
               for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")), "log bucket public"
    assert t.raw["Resources"]["AccessLogsBucket"].get("DeletionPolicy") == "Retain", "access logs must survive a stack delete"


@check
def worker_concurrency(t: Template) -> None:
    """The worker's reserved concurrency is the event source's maximum, both WorkerMaxConcurrency."""
    fn = t.raw_fn(WORKER)["Properties"]
    assert fn.get("ReservedConcurrentExecutions") == {"Ref": "WorkerMaxConcurrency"}, (
        f"reserved concurrency {fn.get('ReservedConcurrentExecutions')!r}")
    mc = fn["Events"]["SyncJobs"]["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency")
    assert mc == {"Ref": "WorkerMaxConcurrency"}, f"MaximumConcurrency {mc!r}"


@check
def config_alarm(t: Template) -> None:
    """The `alarm: provider_config` log field of the worker, API and callback feeds one alarm."""
    groups = set()
    for name, r in t.of_type("AWS::Logs::MetricFilter").items():
        p = r["Properties"]
        if "provider_config" not in p.get("FilterPattern", ""):
            continue
        assert '$.fields.alarm = "provider_config"' in p["FilterPattern"], f"{name}: pattern {p['FilterPattern']!r}"
        m = p["MetricTransformations"][0]
        assert (m["MetricNamespace"], m["MetricName"]) == ("ExtConn", "ProviderConfigErrors"), f"{name}: {m}"
        groups.add(json.dumps(p["LogGroupName"]))
    for g in ("SyncWorkerLogs", "ConnectionsApiLogs", "OAuthCallbackLogs"):
        assert any(g in x for x in groups), f"no provider_config metric filter on {g}"
    alarms = [(n, r["Properties"]) for n, r in t.of_type("AWS::CloudWatch::Alarm").items()
              if r["Properties"].get("MetricName") == "ProviderConfigErrors"]
    assert len(alarms) == 1, f"alarms on ProviderConfigErrors: {[n for n, _ in alarms]}"
    name, p = alarms[0]
    assert p.get("Namespace") == "ExtConn", f"{name}: namespace {p.get('Namespace')!r}"
    assert p.get("ComparisonOperator") == "GreaterThanThreshold" and p.get("Threshold") == 0, f"{name}: threshold"
    assert "AlarmTopicArn" in json.dumps(p.get("AlarmActions")), f"{name}: AlarmActions do not use the AlarmTopicArn parameter"


@check
def throttling(t: Template) -> None:
    """Default route throttling, and tighter limits on authorize and refresh."""
    stage = t.res["HttpApiApiGatewayDefaultStage"]["Properties"]
    params = t.raw["Parameters"]

    def value(v: Any) -> Any:
        return params[v["Ref"]].get("Default") if isinstance(v, dict) and "Ref" in v else v

    d = stage.get("DefaultRouteSettings", {})
    db, dr = value(d.get("ThrottlingBurstLimit")), value(d.get("ThrottlingRateLimit"))
    assert isinstance(db, int) and isinstance(dr, (int, float)), f"DefaultRouteSettings {d!r}"
    rs = stage.get("RouteSettings", {})
    assert set(rs) == EXPENSIVE_ROUTES, f"RouteSettings for {sorted(rs)}, expected {sorted(EXPENSIVE_ROUTES)}"
    for key, s in rs.items():
        b, r = value(s.get("ThrottlingBurstLimit")), value(s.get("ThrottlingRateLimit"))
        assert isinstance(b, int) and b < db and isinstance(r, (int, float)) and r < dr, f"{key}: burst {b} rate {r} not tighter"


@check
def outputs(t: Template) -> None:
    """The outputs docs/deploy.md and operators rely on."""
    got = set(t.raw.get("Outputs", {}))
    assert OUTPUTS <= got, f"missing outputs {sorted(OUTPUTS - got)}"


@check
def provider_parameters(t: Template) -> None:
    """Each provider: described <P>ClientId / <P>ClientSecretId parameters (empty default), the rule
    that the secret id is required with the client id, the Has<P>Secret condition that grants the
    secret, and the <P>RedirectUri output ending in its callback path."""
    params, rules, conds, outs = (t.raw.get(k, {}) for k in ("Parameters", "Rules", "Conditions", "Outputs"))
    for p, (_, segment) in PROVIDERS.items():
        cid, sid = f"{p}ClientId", f"{p}ClientSecretId"
        for name in (cid, sid):
            assert name in params, f"no parameter {name}"
            assert params[name].get("Default") == "", f"{name}: default {params[name].get('Default')!r}, not empty"
            assert params[name].get("Description"), f"{name}: no description"
        rule = rules.get(f"{p}NeedsItsSecret", {})
        assert rule.get("RuleCondition") == {"Fn::Not": [{"Fn::Equals": [{"Ref": cid}, ""]}]}, f"{p}: rule condition {rule!r}"
        asserts = [a.get("Assert") for a in rule.get("Assertions", [])]
        assert asserts == [{"Fn::Not": [{"Fn::Equals": [{"Ref": sid}, ""]}]}], f"{p}: rule assertions {asserts!r}"
        assert conds.get(f"Has{p}Secret") == {"Fn::Not": [{"Fn::Equals": [{"Ref": sid}, ""]}]}, f"{p}: condition"
        uri = json.dumps(outs.get(f"{p}RedirectUri", {}).get("Value"))
        assert uri.count(f"/v1/oauth/{segment}/callback") == 2, f"{p}RedirectUri: {uri}"


# ----------------------------------------------------------------------------- mutations


def _fnp(raw: dict, fn: str) -> dict:
    return raw["Resources"][fn]["Properties"]


def _role_statements(raw: dict, role: str) -> list:
    return raw["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def mutate(raw: dict) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for k in parents:
            node = node[int(k)] if isinstance(node, list) else node[k]
        if value is DELETE:
            del node[int(last) if isinstance(node, list) else last]
        else:
            node[int(last) if isinstance(node, list) else last] = value

    return mutate


def _all(*mutations: Callable[[dict], None]) -> Callable[[dict], None]:
    def mutate(raw: dict) -> None:
        for m in mutations:
            m(raw)

    return mutate


DELETE = object()
R = "Resources"
SCHED_STMTS = f"{R}.SyncSchedulerRole.Properties.Policies.0.PolicyDocument.Statement"

MUTATIONS: list[tuple[str, str, Callable[[dict], None]]] = [
    ("worker runtime provided.al2", "functions_build", _set(f"{R}.{WORKER}.Properties.Runtime", "provided.al2")),
    ("x86_64 for all", "functions_build", _set("Globals.Function.Architectures", ["x86_64"])),
    ("no BuildMethod on the api", "functions_build", _set(f"{R}.{API}.Metadata.BuildMethod", DELETE)),
    ("scheduler built from the worker binary", "functions_build",
     _set(f"{R}.{SCHEDULER}.Metadata.BuildProperties.Binary", "sync-worker")),
    ("CodeUri of a member crate", "functions_build", _set("Globals.Function.CodeUri", "functions/connections-api")),
    ("worker memory 512", "function_sizes", _set(f"{R}.{WORKER}.Properties.MemorySize", 512)),
    ("text logs", "function_sizes", _set(f"{R}.{CALLBACK}.Properties.LoggingConfig.LogFormat", "Text")),
    ("no ReportBatchItemFailures", "worker_partial_batch",
     _set(f"{R}.{WORKER}.Properties.Events.SyncJobs.Properties.FunctionResponseTypes", DELETE)),
    ("16 transfers at once allowed", "worker_partial_batch", _set("Parameters.TransferConcurrency.MaxValue", 16)),
    ("batch size 10", "worker_partial_batch", _set(f"{R}.{WORKER}.Properties.Events.SyncJobs.Properties.BatchSize", 10)),
    ("visibility 1799", "visibility_vs_timeout", _set(f"{R}.SyncQueue.Properties.VisibilityTimeout", 1799)),
    ("worker timeout 301", "visibility_vs_timeout", _set(f"{R}.{WORKER}.Properties.Timeout", 301)),
    ("maxReceiveCount 4", "redrive", _set(f"{R}.SyncQueue.Properties.RedrivePolicy.maxReceiveCount", 4)),
    ("no redrive", "redrive", _set(f"{R}.SyncQueue.Properties.RedrivePolicy", DELETE)),
    ("DLQ kept 4 days", "queue_settings", _set(f"{R}.SyncDeadLetterQueue.Properties.MessageRetentionPeriod", 345600)),
    ("queue unencrypted", "queue_settings", _set(f"{R}.SyncQueue.Properties.SqsManagedSseEnabled", False)),
    ("DELETE connection public", "admin_routes_jwt",
     _set(f"{R}.{API}.Properties.Events.DeleteConnection.Properties.Auth", {"Authorizer": "NONE"})),
    ("no default authorizer", "admin_routes_jwt", _all(  # NONE needs a default authorizer: drop both
        _set(f"{R}.HttpApi.Properties.Auth.DefaultAuthorizer", DELETE),
        _set(f"{R}.{CALLBACK}.Properties.Events.Callback.Properties.Auth", DELETE),
        _set(f"{R}.{CALLBACK}.Properties.Events.OpenApi.Properties.Auth", DELETE),
        _set(f"{R}.{CALLBACK}.Properties.Events.Console.Properties.Auth", DELETE),
        _set(f"{R}.{CALLBACK}.Properties.Events.ConsoleFile.Properties.Auth", DELETE))),
    ("runs route missing", "admin_routes_jwt", _set(f"{R}.{API}.Properties.Events.ListRuns", DELETE)),
    ("audience hard-coded", "admin_routes_jwt",
     _set(f"{R}.HttpApi.Properties.Auth.Authorizers.JwtAuthorizer.JwtConfiguration.audience", ["x"])),
    ("callback behind the JWT authorizer", "public_routes_none",
     _set(f"{R}.{CALLBACK}.Properties.Events.Callback.Properties.Auth", DELETE)),
    ("openapi behind the JWT authorizer", "public_routes_none",
     _set(f"{R}.{CALLBACK}.Properties.Events.OpenApi.Properties.Auth", DELETE)),
    ("console behind the JWT authorizer", "public_routes_none",
     _set(f"{R}.{CALLBACK}.Properties.Events.ConsoleFile.Properties.Auth", DELETE)),
    ("providers public", "public_routes_none",
     _set(f"{R}.{API}.Properties.Events.ListProviders.Properties.Auth", {"Authorizer": "NONE"})),
    ("scheduler reads secrets", "scheduler_no_secrets",
     lambda raw: _role_statements(raw, "SyncSchedulerRole").append(
         {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": {"Ref": "PageTokenSecret"}})),
    ("scheduler secretsmanager:* conditionally", "scheduler_no_secrets",
     lambda raw: _role_statements(raw, "SyncSchedulerRole").append(
         {"Fn::If": ["HasDropboxSecret", {"Effect": "Allow", "Action": "secretsmanager:*",
                                          "Resource": {"Ref": "PageTokenSecret"}}, {"Ref": "AWS::NoValue"}]})),
    ("scheduler SAM secrets template", "scheduler_no_secrets",
     _set(f"{R}.{SCHEDULER}.Properties.Policies",
          [{"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "PageTokenSecret"}}}])),
    ("scheduler managed policy", "scheduler_no_secrets",
     _set(f"{R}.SyncSchedulerRole.Properties.ManagedPolicyArns", ["arn:aws:iam::aws:policy/SecretsManagerReadWrite"])),
    ("scheduler separate policy resource", "scheduler_no_secrets",
     lambda raw: raw[R].update({"Extra": {"Type": "AWS::IAM::Policy", "Properties": {
         "PolicyName": "x", "Roles": [{"Ref": "SyncSchedulerRole"}], "PolicyDocument": {
             "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                                                    "Resource": {"Ref": "PageTokenSecret"}}]}}}})),
    ("scheduler uses the api's role", "scheduler_no_secrets",
     _set(f"{R}.{SCHEDULER}.Properties.Role", {"Fn::GetAtt": ["ConnectionsApiRole", "Arn"]})),
    ("Resource * on the api", "least_privilege",
     lambda raw: _role_statements(raw, "ConnectionsApiRole").append(
         {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"})),
    ("dynamodb:* on the worker", "least_privilege",
     lambda raw: _role_statements(raw, "SyncWorkerRole").append(
         {"Effect": "Allow", "Action": "dynamodb:*", "Resource": {"Fn::GetAtt": ["Table", "Arn"]}})),
    ("worker cannot receive", "function_permissions",
     lambda raw: [s["Action"].remove("sqs:ReceiveMessage") for s in _role_statements(raw, "SyncWorkerRole")
                  if isinstance(s, dict) and s.get("Sid") == "QueueConsume"]),
    ("S3 on the bucket, not its objects", "function_permissions",
     lambda raw: [s.update(Resource={"Fn::GetAtt": ["AssetsBucket", "Arn"]}) for s in _role_statements(raw, "SyncWorkerRole")
                  if isinstance(s, dict) and s.get("Sid") == "Assets"]),
    ("worker logs into the api's log group", "function_permissions",
     lambda raw: [s.update(Resource={"Fn::GetAtt": ["ConnectionsApiLogs", "Arn"]})
                  for s in _role_statements(raw, "SyncWorkerRole") if isinstance(s, dict) and s.get("Sid") == "Logs"]),
    ("api writes assets", "function_permissions",
     lambda raw: _role_statements(raw, "ConnectionsApiRole").append(
         {"Effect": "Allow", "Action": "s3:PutObject", "Resource": {"Fn::Sub": "${AssetsBucket.Arn}/*"}})),
    ("api env without CLAIM_CLIENT_ID", "environment",
     _set(f"{R}.{API}.Properties.Environment.Variables.CLAIM_CLIENT_ID", DELETE)),
    ("worker reads another secret as the Dropbox app secret", "environment",
     _set(f"{R}.{WORKER}.Properties.Environment.Variables.EXTCONN_DROPBOX_CLIENT_SECRET_ID", {"Ref": "PageTokenSecret"})),
    ("api with the old variable name", "environment",
     lambda raw: raw[R][API]["Properties"]["Environment"]["Variables"].update(
         DROPBOX_CLIENT_ID=raw[R][API]["Properties"]["Environment"]["Variables"].pop("EXTCONN_DROPBOX_CLIENT_ID"))),
    ("worker without the Google Drive client id", "environment",
     _set(f"{R}.{WORKER}.Properties.Environment.Variables.EXTCONN_GOOGLE_DRIVE_CLIENT_ID", DELETE)),
    ("callback without the Google Drive secret id", "environment",
     _set(f"{R}.{CALLBACK}.Properties.Environment.Variables.EXTCONN_GOOGLE_DRIVE_CLIENT_SECRET_ID", DELETE)),
    ("worker without the SharePoint tenant", "environment",
     _set(f"{R}.{WORKER}.Properties.Environment.Variables.EXTCONN_SHAREPOINT_TENANT", DELETE)),
    ("callback reads the SharePoint tenant from the wrong parameter", "environment",
     _set(f"{R}.{CALLBACK}.Properties.Environment.Variables.EXTCONN_SHAREPOINT_TENANT", {"Ref": "SharePointClientId"})),
    ("no SharePointNeedsItsSecret rule", "provider_parameters", _set("Rules.SharePointNeedsItsSecret", DELETE)),
    ("api cannot read the Google Drive client secret", "function_permissions",
     lambda raw: _role_statements(raw, "ConnectionsApiRole").__setitem__(
         slice(None), [s for s in _role_statements(raw, "ConnectionsApiRole")
                       if "HasGoogleDriveSecret" not in json.dumps(s)])),
    ("worker reads the Dropbox secret as Google Drive's", "function_permissions",
     lambda raw: [s["Fn::If"][1].update(Resource={"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:"
                                                   "${AWS::AccountId}:secret:${DropboxClientSecretId}-??????"})
                  for s in _role_statements(raw, "SyncWorkerRole")
                  if isinstance(s, dict) and s.get("Fn::If", [None])[0] == "HasGoogleDriveSecret"]),
    ("scheduler gets SECRET_PREFIX", "environment",
     _set(f"{R}.{SCHEDULER}.Properties.Environment.Variables.SECRET_PREFIX", {"Ref": "SecretPrefix"})),
    ("sweep every day", "schedules", _set(f"{R}.{WORKER}.Properties.Events.SweepGrants.Properties.Schedule", "rate(1 day)")),
    ("sweep without input", "schedules", _set(f"{R}.{WORKER}.Properties.Events.SweepGrants.Properties.Input", DELETE)),
    ("tick every 10 minutes", "schedules", _set(f"{R}.{SCHEDULER}.Properties.Events.Tick.Properties.Schedule", "rate(10 minutes)")),
    ("Due projects everything", "table", _set(f"{R}.Table.Properties.GlobalSecondaryIndexes.0.Projection",
                                               {"ProjectionType": "ALL"})),
    ("ByPath keys only", "table", _set(f"{R}.Table.Properties.GlobalSecondaryIndexes.1.Projection",
                                       {"ProjectionType": "KEYS_ONLY"})),
    ("no ByRetry index", "table", _set(f"{R}.Table.Properties.GlobalSecondaryIndexes.3", DELETE)),
    ("ByRetry keyed on the path index", "table", _set(f"{R}.Table.Properties.GlobalSecondaryIndexes.3.KeySchema.1.AttributeName",
                                                      "gsi2sk")),
    ("no TTL", "table", _set(f"{R}.Table.Properties.TimeToLiveSpecification", DELETE)),
    ("no PITR", "table", _set(f"{R}.Table.Properties.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled", False)),
    ("no abort rule", "bucket_lifecycle", _set(f"{R}.AssetsBucket.Properties.LifecycleConfiguration", DELETE)),
    ("abort rule disabled", "bucket_lifecycle",
     _set(f"{R}.AssetsBucket.Properties.LifecycleConfiguration.Rules.0.Status", "Disabled")),
    ("abort after 7 days", "bucket_lifecycle",
     _set(f"{R}.AssetsBucket.Properties.LifecycleConfiguration.Rules.0.AbortIncompleteMultipartUpload.DaysAfterInitiation", 7)),
    ("public policies allowed", "bucket_private",
     _set(f"{R}.AssetsBucket.Properties.PublicAccessBlockConfiguration.BlockPublicPolicy", False)),
    ("no TLS-only policy", "bucket_private", _set(f"{R}.AssetsBucketPolicy", DELETE)),
    ("versioning suspended", "bucket_private", _set(f"{R}.AssetsBucket.Properties.VersioningConfiguration.Status", "Suspended")),
    ("no DLQ alarm", "dlq_alarm", _set(f"{R}.DeadLetterAlarm", DELETE)),
    ("alarm on the main queue", "dlq_alarm",
     _set(f"{R}.DeadLetterAlarm.Properties.Dimensions.0.Value", {"Fn::GetAtt": ["SyncQueue", "QueueName"]})),
    ("alarm at 5 messages", "dlq_alarm", _set(f"{R}.DeadLetterAlarm.Properties.Threshold", 5)),
    ("alarm on the wrong metric", "dlq_alarm",
     _set(f"{R}.DeadLetterAlarm.Properties.MetricName", "NumberOfMessagesSent")),
    ("no config alarm", "config_alarm", _set(f"{R}.ProviderConfigAlarm", DELETE)),
    ("config alarm at 10", "config_alarm", _set(f"{R}.ProviderConfigAlarm.Properties.Threshold", 10)),
    ("no worker config filter", "config_alarm", _set(f"{R}.ProviderConfigErrorsWorker", DELETE)),
    ("config filter on the wrong field", "config_alarm",
     _set(f"{R}.ProviderConfigErrorsApi.Properties.FilterPattern", '{ $.level = "provider_config" }')),
    ("refresh not throttled", "throttling",
     _set(f"{R}.HttpApi.Properties.RouteSettings.POST /v1/connections/{{id}}/refresh", DELETE)),
    ("no default throttling", "throttling", _set(f"{R}.HttpApi.Properties.DefaultRouteSettings", DELETE)),
    ("no QueueUrl output", "outputs", _set("Outputs.QueueUrl", DELETE)),
    ("worker without reserved concurrency", "worker_concurrency", _set(f"{R}.{WORKER}.Properties.ReservedConcurrentExecutions", DELETE)),
    ("worker's event source unbounded", "worker_concurrency",
     _set(f"{R}.{WORKER}.Properties.Events.SyncJobs.Properties.ScalingConfig", DELETE)),
    ("no throttles alarm on the worker", "operations_alarms", _set(f"{R}.SyncWorkerThrottlesAlarm", DELETE)),
    ("api errors alarm at 5", "operations_alarms", _set(f"{R}.ConnectionsApiErrorsAlarm.Properties.Threshold", 5)),
    ("no queue age alarm", "operations_alarms", _set(f"{R}.QueueAgeAlarm", DELETE)),
    ("no 5xx alarm", "operations_alarms", _set(f"{R}.ApiServerErrorsAlarm", DELETE)),
    ("scheduler failures vanish", "operations_alarms", _set(f"{R}.{SCHEDULER}.Properties.EventInvokeConfig", DELETE)),
    ("scheduler cannot send its failures", "operations_alarms",
     lambda raw: _role_statements(raw, "SyncSchedulerRole").__setitem__(
         slice(None), [s for s in _role_statements(raw, "SyncSchedulerRole")
                       if not (isinstance(s, dict) and s.get("Sid") == "ScheduleFailures")])),
    ("no tracing on the worker", "tracing", _set(f"{R}.{WORKER}.Properties.Tracing", "PassThrough")),
    ("X-Ray statement missing on the api", "tracing",
     lambda raw: _role_statements(raw, "ConnectionsApiRole").__setitem__(
         slice(None), [s for s in _role_statements(raw, "ConnectionsApiRole")
                       if not (isinstance(s, dict) and s.get("Sid") == "Tracing")])),
    ("X-Ray's '*' used for sqs too", "least_privilege",
     lambda raw: [s["Action"].append("sqs:SendMessage") for s in _role_statements(raw, "SyncWorkerRole")
                  if isinstance(s, dict) and s.get("Sid") == "Tracing"]),
    ("tenant claim defaults to client_id", "tenant_claim", _set("Parameters.ClaimClientId.Default", "client_id")),
    ("no tenant-claim rule", "tenant_claim", _set("Rules.TenantClaimIsNotTheOAuthClient", DELETE)),
    ("noncurrent versions kept forever", "bucket_retention",
     _set(f"{R}.AssetsBucket.Properties.LifecycleConfiguration.Rules.1", DELETE)),
    ("no access logging", "bucket_retention", _set(f"{R}.AssetsBucket.Properties.LoggingConfiguration", DELETE)),
    ("worker may Scan again", "function_permissions",
     lambda raw: [s["Action"].append("dynamodb:Scan") for s in _role_statements(raw, "SyncWorkerRole")
                  if isinstance(s, dict) and s.get("Sid") == "Table"]),
    ("no Sweep index", "table", _set(f"{R}.Table.Properties.GlobalSecondaryIndexes.4", DELETE)),
    ("worker reads the page-token key", "function_permissions",
     lambda raw: _role_statements(raw, "SyncWorkerRole").append(
         {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": "PageTokenSecret"}})),
    ("api may describe secrets", "function_permissions",
     lambda raw: [s["Action"].append("secretsmanager:DescribeSecret") for s in _role_statements(raw, "ConnectionsApiRole")
                  if isinstance(s, dict) and s.get("Sid") == "GrantSecrets"]),
    ("no GoogleDriveNeedsItsSecret rule", "provider_parameters", _set("Rules.GoogleDriveNeedsItsSecret", DELETE)),
    ("Google Drive rule checks the client id", "provider_parameters",
     _set("Rules.GoogleDriveNeedsItsSecret.Assertions.0.Assert",
          {"Fn::Not": [{"Fn::Equals": [{"Ref": "GoogleDriveClientId"}, ""]}]})),
    ("undescribed GoogleDriveClientSecretId", "provider_parameters",
     _set("Parameters.GoogleDriveClientSecretId.Description", DELETE)),
    ("no GoogleDriveRedirectUri output", "provider_parameters", _set("Outputs.GoogleDriveRedirectUri", DELETE)),
    ("Drive redirect URI on Dropbox's path", "provider_parameters",
     _set("Outputs.GoogleDriveRedirectUri.Value.Fn::If.1", {"Fn::Sub": "${PublicBaseUrl}/v1/oauth/dropbox/callback"})),
]


# ----------------------------------------------------------------------------- runner


def run(raw: dict) -> dict[str, str | None]:
    """Check name -> None (passed) or the failure message."""
    t = Template(raw)
    results: dict[str, str | None] = {}
    for name, fn in CHECKS:
        try:
            fn(t)
            results[name] = None
        except AssertionError as e:
            results[name] = str(e) or "assertion failed"
        except Exception as e:  # a malformed template is a failure of the check that looked at it
            results[name] = f"{type(e).__name__}: {e}"
    return results


def main(argv: list[str]) -> int:
    raw = load_raw()
    results = run(raw)
    failed = 0
    for name, msg in results.items():
        print(f"{'ok  ' if msg is None else 'FAIL'} {name}" + ("" if msg is None else f": {msg}"))
        failed += msg is not None
    if "--mutations" in argv:
        known = {n for n, _ in CHECKS}
        untested = known - {target for _, target, _ in MUTATIONS}
        print(f"-- mutations ({len(MUTATIONS)}): each must make its check fail")
        for label, target, mutate in MUTATIONS:
            assert target in known, target
            m = copy.deepcopy(raw)
            try:
                mutate(m)
                got = run(m)
            except Exception:
                print(f"FAIL mutation {label!r}: the template could not be checked\n{traceback.format_exc()}")
                failed += 1
                continue
            if got[target] is None:
                print(f"FAIL mutation {label!r}: {target} still passes")
                failed += 1
            else:
                print(f"ok   mutation {label!r} -> {target}: {got[target][:110]}")
        if untested:
            print(f"FAIL checks without a mutation: {sorted(untested)}")
            failed += len(untested)
        total = len(CHECKS) + len(MUTATIONS) + len(untested)
    else:
        total = len(CHECKS)
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
