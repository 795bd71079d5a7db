"""Black-box tests of permd's AuthZEN Authorization API 1.0 listener.

The contract is docs/authzen.md. These tests talk HTTP to an already running
permd and compare its answers with the same permd's gRPC API (BatchCheck,
Check, LookupRecords through the stubs shipped in clients/python).

Runner note
-----------
    python3 -m pip install -r tests/authzen/requirements.txt
    permd serve --authzen-listen 127.0.0.1:8181 &        # built-in demo tenant,
                                                         # --authzen-tenant NOT set
    PERMD_AUTHZEN_URL=http://127.0.0.1:8181 PERMD_ADDR=127.0.0.1:50051 \\
        python3 tests/authzen/test_authzen.py -v

Environment:
    PERMD_AUTHZEN_URL     (required) base URL of the AuthZEN listener
    PERMD_ADDR            (required) gRPC address of the same permd
    PERMD_API_TOKEN       the server runs with --api-token THIS: the 401 cases
                          are tested and the token is sent on every other request
    PERMD_AUTHZEN_TENANT  the server runs with --authzen-tenant THIS: the
                          missing-tenant cases check the default instead of the 400
    PERMD_AUTHZEN_TEST_429=1  the server runs with --max-concurrent-requests 1:
                          the 429 case runs (skipped otherwise)

Only the standard library's unittest runner is needed (pytest works too).
Every request has a timeout; nothing here starts or stops a server.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import random
import socket
import sys
import threading
import time
import unittest
import urllib.parse
from typing import Any, Callable, Iterable, Optional

import requests

# The gRPC stubs shipped with the repository's Python client (not regenerated).
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(_REPO, "clients", "python"))

from permd_client import Client, authorizer_pb2  # noqa: E402

BASE = os.environ.get("PERMD_AUTHZEN_URL", "").rstrip("/")
GRPC_ADDR = os.environ.get("PERMD_ADDR", "")
TOKEN = os.environ.get("PERMD_API_TOKEN") or None
DEFAULT_TENANT = os.environ.get("PERMD_AUTHZEN_TENANT") or None
TEST_429 = os.environ.get("PERMD_AUTHZEN_TEST_429") == "1"

TENANT = "demo"
HTTP_TIMEOUT_S = 60.0
BODY_LIMIT = 4 * 1024 * 1024  # 4 MiB: the largest body accepted
SEARCH_DEFAULT_LIMIT = 1000
SEARCH_MAX_LIMIT = 10000
CONTEXT_KEYS = (
    "channel",
    "transactional",
    "subscription_list",
    "fields",
    "target_email_status",
    "min_revision",
)
SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")
DEMO_CONTACTS = 10000
DEMO_DEALS = 600
DEMO_COMPANIES = 200

EVALUATION = "/access/v1/evaluation"
EVALUATIONS = "/access/v1/evaluations"
SEARCH = "/access/v1/search/resource"
METADATA = "/.well-known/authzen-configuration"


# --------------------------------------------------------------------------
# demo data (src/source/demo.rs)


def contact(n: int) -> str:
    """Id of the n-th demo Contact (demo.rs `contact_id`)."""
    return "c0000000-0000-4000-8000-%012x" % n


def deal(n: int) -> str:
    return "d0000000-0000-4000-8000-%012x" % n


def company(n: int) -> str:
    return "a0000000-0000-4000-8000-%012x" % n


UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
ALL_CONTACTS = [contact(n) for n in range(DEMO_CONTACTS)]
FIRST_300 = ALL_CONTACTS[:300]

# (kind, id) of the principals compared record by record.
PRINCIPALS = [
    ("user", "alice"),
    ("user", "bob"),
    ("user", "carol"),
    ("user", "dave"),
    ("user", "frank"),
    ("user", "ada"),
    ("user", "warehouse-bot"),
    ("integration", "warehouse-sync"),
    ("automation", "welcome-series"),
]

# (action, AuthZEN context) on Contacts.
CONTACT_ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("view", {}),
    ("edit", {}),
    ("edit", {"fields": ["tags", "first_name"]}),
    ("edit", {"fields": ["email"]}),
    ("archive", {}),
    ("bulk_send_email", {}),
    ("bulk_send_email", {"subscription_list": "newsletter"}),
    ("bulk_send_email", {"subscription_list": "product-updates", "transactional": True}),
    ("bulk_send_email", {"transactional": True}),
    ("send_single_message", {"channel": "email"}),
    ("send_single_message", {"channel": "text"}),
    ("bulk_send_text", {}),
    ("bulk_change_tags", {}),
    ("bulk_export", {}),
    ("bulk_manage_subscription", {"target_email_status": "opted_in"}),
]

DEAL_ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("view", {}),
    ("edit", {}),
    ("archive", {}),
    ("unarchive", {}),
    ("bulk_archive", {}),
    ("bulk_change_field_values", {"fields": ["stage"]}),
]

COMPANY_ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("view", {}),
    ("edit", {}),
    ("export", {}),
    ("bulk_export", {}),
]


# --------------------------------------------------------------------------
# request builders


def subject(pid: str, kind: str = "user", tenant: Optional[str] = TENANT, **extra: Any) -> dict:
    s: dict[str, Any] = {"type": kind, "id": pid}
    props = dict(extra.pop("properties", {}) or {})
    if tenant is not None:
        props["tenant"] = tenant
    if props:
        s["properties"] = props
    s.update(extra)
    return s


def resource(rid: Optional[str], rtype: str = "contacts") -> dict:
    r: dict[str, Any] = {"type": rtype}
    if rid is not None:
        r["id"] = rid
    return r


def action(name: str) -> dict:
    return {"name": name}


def evaluation(
    pid: str,
    act: str,
    rid: Optional[str],
    ctx: Optional[dict] = None,
    kind: str = "user",
    rtype: str = "contacts",
    tenant: Optional[str] = TENANT,
) -> dict:
    body: dict[str, Any] = {
        "subject": subject(pid, kind, tenant),
        "action": action(act),
        "resource": resource(rid, rtype),
    }
    if ctx is not None:
        body["context"] = ctx
    return body


# --------------------------------------------------------------------------
# HTTP


_session = requests.Session()


def _headers(extra: Optional[dict], content_type: Optional[str], auth: bool) -> dict:
    h: dict[str, str] = {}
    if content_type is not None:
        h["Content-Type"] = content_type
    if auth and TOKEN:
        h["Authorization"] = "Bearer " + TOKEN
    if extra:
        h.update(extra)
    return h


def post(
    path: str,
    body: Any = None,
    *,
    raw: Optional[bytes] = None,
    headers: Optional[dict] = None,
    content_type: Optional[str] = "application/json",
    auth: bool = True,
) -> requests.Response:
    """POST a JSON body (or `raw` bytes as they are)."""
    data = raw if raw is not None else json.dumps(body).encode()
    return _session.post(
        BASE + path,
        data=data,
        headers=_headers(headers, content_type, auth),
        timeout=HTTP_TIMEOUT_S,
    )


def request(method: str, path: str, *, headers: Optional[dict] = None, auth: bool = True,
            data: Optional[bytes] = None, content_type: Optional[str] = None) -> requests.Response:
    return _session.request(
        method,
        BASE + path,
        data=data,
        headers=_headers(headers, content_type, auth),
        timeout=HTTP_TIMEOUT_S,
    )


def describe(resp: requests.Response) -> str:
    body = resp.text
    if len(body) > 600:
        body = body[:600] + "…"
    return "HTTP %d %s: %s" % (resp.status_code, resp.headers.get("Content-Type"), body)


def _url_authority() -> tuple[str, int, str]:
    u = urllib.parse.urlsplit(BASE)
    port = u.port or (443 if u.scheme == "https" else 80)
    return u.hostname or "127.0.0.1", port, u.netloc


# --------------------------------------------------------------------------
# gRPC (the reference answers)

_client: Optional[Client] = None


def grpc_client() -> Client:
    global _client
    if _client is None:
        _client = Client(GRPC_ADDR, token=TOKEN, timeout=60.0)
    return _client


def pb_principal(kind: str, pid: str) -> authorizer_pb2.Principal:
    return authorizer_pb2.Principal(kind=authorizer_pb2.Principal.Kind.Value(kind.upper()), id=pid)


def pb_context(ctx: Optional[dict]) -> authorizer_pb2.ActionContext:
    c = authorizer_pb2.ActionContext()
    ctx = ctx or {}
    if ctx.get("channel") is not None:
        c.channel = authorizer_pb2.Channel.Value(ctx["channel"].upper())
    if ctx.get("transactional"):
        c.transactional = True
    if ctx.get("subscription_list"):
        c.subscription_list = ctx["subscription_list"]
    if ctx.get("fields"):
        c.fields.extend(ctx["fields"])
    if ctx.get("target_email_status"):
        c.target_email_status = ctx["target_email_status"]
    return c


def reason_name(value: int) -> str:
    return authorizer_pb2.Reason.Name(value)


Decision = tuple[bool, Optional[str]]  # (allowed, reason name when denied)


def grpc_batch(
    kind: str, pid: str, obj: str, act: str, ids: list[str], ctx: Optional[dict] = None,
    tenant: str = TENANT,
) -> tuple[list[Decision], int]:
    """BatchCheck with string ids: per position (allowed, reason), and the revision."""
    req = authorizer_pb2.BatchCheckRequest(
        tenant=tenant, principal=pb_principal(kind, pid), object=obj, action=act,
        record_ids=authorizer_pb2.StringIds(ids=ids), context=pb_context(ctx),
    )
    resp = grpc_client().stub.BatchCheck(req, timeout=60.0)
    mask = bytes(resp.allowed)
    denied = {d.position: reason_name(d.reason) for d in resp.denials}
    out: list[Decision] = []
    for i in range(len(ids)):
        allowed = bool(i // 8 < len(mask) and mask[i // 8] >> (i % 8) & 1)
        out.append((allowed, None if allowed else denied.get(i, "<no denial entry>")))
    return out, resp.revision


def grpc_check(
    kind: str, pid: str, obj: str, act: str, rid: str, ctx: Optional[dict] = None,
    tenant: str = TENANT,
) -> tuple[Decision, int]:
    req = authorizer_pb2.CheckRequest(
        tenant=tenant, principal=pb_principal(kind, pid), object=obj, action=act,
        record_id=rid, context=pb_context(ctx),
    )
    resp = grpc_client().stub.Check(req, timeout=60.0)
    return ((resp.allowed, None if resp.allowed else reason_name(resp.reason)), resp.revision)


def grpc_lookup(kind: str, pid: str, obj: str, act: str, ctx: Optional[dict] = None,
                tenant: str = TENANT) -> tuple[list[str], int]:
    req = authorizer_pb2.LookupRecordsRequest(
        tenant=tenant, principal=pb_principal(kind, pid), object=obj, action=act,
        context=pb_context(ctx), page_size=10000,
    )
    ids: list[str] = []
    revision = 0
    for page in grpc_client().stub.LookupRecords(req, timeout=60.0):
        ids.extend(page.record_ids.ids)
        revision = max(revision, page.revision)
    return [i.lower() for i in ids], revision


def grpc_revision() -> int:
    (_, revision) = grpc_check("user", "alice", "contacts", "view", contact(1))
    return revision


# --------------------------------------------------------------------------
# assertions


class AuthzenCase(unittest.TestCase):
    maxDiff = 4000

    # -- response shapes ---------------------------------------------------

    def json_ok(self, resp: requests.Response, what: str) -> Any:
        self.assertEqual(resp.status_code, 200, "%s: expected 200, got %s" % (what, describe(resp)))
        ctype = resp.headers.get("Content-Type", "")
        self.assertTrue(
            ctype.split(";")[0].strip().lower() == "application/json",
            "%s: Content-Type %r, expected application/json" % (what, ctype),
        )
        try:
            return resp.json()
        except ValueError:
            self.fail("%s: the 200 body is not JSON: %s" % (what, describe(resp)))

    def assert_decision_shape(self, d: Any, what: str) -> None:
        self.assertIsInstance(d, dict, "%s: a Decision must be a JSON object, got %r" % (what, d))
        self.assertIn("decision", d, "%s: Decision without 'decision': %r" % (what, d))
        self.assertIsInstance(d["decision"], bool, "%s: 'decision' must be a boolean: %r" % (what, d))
        if "context" in d:
            self.assertIsInstance(d["context"], dict, "%s: 'context' must be an object: %r" % (what, d))
        ctx = d.get("context", {})
        if "error" in ctx:
            self.assertFalse(d["decision"], "%s: a Decision with context.error must be false: %r" % (what, d))
            self.assertNotIn("reason", ctx, "%s: context.error and context.reason together: %r" % (what, d))
            return
        self.assertIsInstance(ctx.get("revision"), int, "%s: context.revision (an integer) missing: %r" % (what, d))
        if d["decision"]:
            self.assertNotIn("reason", ctx, "%s: an allowed Decision carries a reason: %r" % (what, d))
        else:
            self.assertIsInstance(ctx.get("reason"), str, "%s: a denial without context.reason: %r" % (what, d))

    def decision_of(self, d: dict) -> Decision:
        return (d["decision"], None if d["decision"] else d.get("context", {}).get("reason"))

    def assert_error(self, resp: requests.Response, status: int, code: str, *needles: str,
                     what: str = "") -> dict:
        """An HTTP error: status, JSON body {"error": {"status", "code", "message"}}, and a
        message that contains each needle (case-insensitive)."""
        what = what or "request"
        self.assertEqual(resp.status_code, status, "%s: expected HTTP %d, got %s" % (what, status, describe(resp)))
        ctype = resp.headers.get("Content-Type", "")
        self.assertEqual(ctype.split(";")[0].strip().lower(), "application/json",
                         "%s: error Content-Type %r, expected application/json (%s)" % (what, ctype, describe(resp)))
        try:
            body = resp.json()
        except ValueError:
            self.fail("%s: error body is not JSON: %s" % (what, describe(resp)))
        self.assertIsInstance(body, dict, "%s: error body not an object: %s" % (what, describe(resp)))
        err = body.get("error")
        self.assertIsInstance(err, dict, "%s: error body lacks the 'error' object: %s" % (what, describe(resp)))
        self.assertEqual(err.get("status"), status, "%s: error.status %r != HTTP %d" % (what, err.get("status"), status))
        self.assertEqual(err.get("code"), code, "%s: error.code %r, expected %r: %s" % (what, err.get("code"), code, describe(resp)))
        message = err.get("message")
        self.assertIsInstance(message, str, "%s: error.message missing: %s" % (what, describe(resp)))
        self.assertTrue(message.strip(), "%s: error.message is empty" % what)
        for needle in needles:
            self.assertIn(needle.lower(), message.lower(),
                          "%s: error.message should mention %r: %r" % (what, needle, message))
        return err

    def assert_item_error(self, d: Any, status: int, code: str, *needles: str, what: str = "") -> dict:
        """A Decision that could not be evaluated: false with context.error {status, code, message}."""
        self.assert_decision_shape(d, what)
        self.assertFalse(d["decision"], "%s: expected a closed decision, got %r" % (what, d))
        err = d.get("context", {}).get("error")
        self.assertIsInstance(err, dict, "%s: expected context.error, got %r" % (what, d))
        self.assertEqual(err.get("status"), status, "%s: context.error.status, got %r" % (what, d))
        self.assertEqual(err.get("code"), code, "%s: context.error.code, got %r" % (what, d))
        message = err.get("message") or ""
        self.assertTrue(message.strip(), "%s: context.error.message empty: %r" % (what, d))
        for needle in needles:
            self.assertIn(needle.lower(), message.lower(),
                          "%s: context.error.message should mention %r: %r" % (what, needle, message))
        return err

    # -- comparisons -------------------------------------------------------

    def assert_same_decisions(
        self,
        label: str,
        rows: list[str],
        got: list[dict],
        want: list[Decision],
        want_revisions: Optional[list[int]] = None,
    ) -> None:
        """AuthZEN Decisions equal to gRPC's, row by row; the message lists what differed."""
        self.assertEqual(len(got), len(want), "%s: %d Decisions for %d evaluations" % (label, len(got), len(want)))
        diffs = []
        for i, (row, d, w) in enumerate(zip(rows, got, want)):
            self.assert_decision_shape(d, "%s, evaluations[%d] (%s)" % (label, i, row))
            g = self.decision_of(d)
            if g != w:
                diffs.append("  [%d] %s: AuthZEN %s, gRPC %s" % (i, row, fmt(g), fmt(w)))
            elif want_revisions is not None and d["context"]["revision"] != want_revisions[i]:
                diffs.append("  [%d] %s: AuthZEN revision %s, gRPC revision %s"
                             % (i, row, d["context"]["revision"], want_revisions[i]))
        if diffs:
            self.fail("%s: %d of %d decisions differ from gRPC:\n%s%s" % (
                label, len(diffs), len(want), "\n".join(diffs[:25]),
                "\n  …" if len(diffs) > 25 else ""))


def fmt(d: Decision) -> str:
    return "ALLOWED" if d[0] else "DENIED %s" % d[1]


def batch_for(kind: str, pid: str, act: str, ctx: dict, ids: list[str], rtype: str = "contacts") -> dict:
    """One principal, one action, many records: every element only names its resource."""
    body: dict[str, Any] = {
        "subject": subject(pid, kind),
        "action": action(act),
        "evaluations": [{"resource": resource(i, rtype)} for i in ids],
    }
    if ctx:
        body["context"] = ctx
    return body


# ==========================================================================
# Access Evaluation


class AccessEvaluation(AuthzenCase):
    def test_allowed_shape(self) -> None:
        resp = post(EVALUATION, evaluation("alice", "view", contact(1)))
        d = self.json_ok(resp, "alice view c…001")
        self.assert_decision_shape(d, "alice view c…001")
        self.assertIs(d["decision"], True, "alice (sales_rep, All Records view) views Contact 1: %r" % d)
        self.assertNotIn("reason", d["context"], "allowed: no reason expected: %r" % d)
        self.assertNotIn("evaluations", d, "single evaluation answered with 'evaluations': %r" % d)
        self.assertEqual(d["context"]["revision"], grpc_revision(), "revision differs from gRPC Check's: %r" % d)

    def test_readme_tour_reasons(self) -> None:
        """The README's tour: alice bulk_send_email on the newsletter list; dave view."""
        cases = [
            (contact(0), "NO_EMAIL"),
            (contact(1), None),
            (contact(3), "SUPPRESSED"),
            (contact(6), "OPTED_OUT_OF_LIST"),
            (contact(7), "UNSUBSCRIBED"),
            (UNKNOWN_ID, "UNKNOWN_RECORD"),
        ]
        for rid, reason in cases:
            with self.subTest(record=rid):
                d = self.json_ok(post(EVALUATION, evaluation(
                    "alice", "bulk_send_email", rid, {"subscription_list": "newsletter"})), rid)
                self.assert_decision_shape(d, rid)
                self.assertEqual(self.decision_of(d), (reason is None, reason),
                                 "alice bulk_send_email newsletter on %s: got %r" % (rid, d))
        d = self.json_ok(post(EVALUATION, evaluation("dave", "view", contact(1))), "dave view")
        self.assertEqual(self.decision_of(d), (False, "NO_RECORD_ACCESS"), "dave view c…001: %r" % d)

    def test_equals_check_on_a_sample(self) -> None:
        rng = random.Random(1)
        combos = []
        for _ in range(80):
            kind, pid = rng.choice(PRINCIPALS)
            act, ctx = rng.choice(CONTACT_ACTIONS)
            rid = contact(rng.randrange(DEMO_CONTACTS))
            combos.append((kind, pid, "contacts", act, ctx, rid))
        for _ in range(20):
            kind, pid = rng.choice(PRINCIPALS + [("user", "erin")])
            act, ctx = rng.choice(DEAL_ACTIONS)
            combos.append((kind, pid, "deals", act, ctx, deal(rng.randrange(DEMO_DEALS))))
        diffs = []
        for kind, pid, obj, act, ctx, rid in combos:
            row = "%s:%s %s %s %s %s" % (kind, pid, act, json.dumps(ctx), obj, rid)
            d = self.json_ok(post(EVALUATION, evaluation(pid, act, rid, ctx or None, kind, obj)), row)
            self.assert_decision_shape(d, row)
            want, revision = grpc_check(kind, pid, obj, act, rid, ctx)
            if self.decision_of(d) != want:
                diffs.append("  %s: AuthZEN %s, Check %s" % (row, fmt(self.decision_of(d)), fmt(want)))
            elif d["context"]["revision"] != revision:
                diffs.append("  %s: revision %s, Check's %s" % (row, d["context"]["revision"], revision))
        if diffs:
            self.fail("%d of %d single evaluations differ from Check:\n%s" % (len(diffs), len(combos), "\n".join(diffs)))

    def test_principal_kinds(self) -> None:
        for kind, pid in [("integration", "warehouse-sync"), ("automation", "welcome-series"),
                          ("user", "warehouse-bot")]:
            for act, ctx in [("view", {}), ("bulk_export", {}), ("bulk_send_email", {})]:
                for rid in (contact(1), contact(2), contact(12)):
                    row = "%s:%s %s %s" % (kind, pid, act, rid)
                    with self.subTest(row=row):
                        d = self.json_ok(post(EVALUATION, evaluation(pid, act, rid, ctx, kind)), row)
                        want, _ = grpc_check(kind, pid, "contacts", act, rid, ctx)
                        self.assertEqual(self.decision_of(d), want, "%s: AuthZEN %r, Check %s" % (row, d, fmt(want)))

    def test_record_less_actions(self) -> None:
        for pid, act, obj in [("alice", "create", "contacts"), ("carol", "create", "contacts"),
                              ("dave", "create", "contacts"), ("erin", "upload", "deals"),
                              ("alice", "upload", "deals"), ("ada", "create", "deals")]:
            row = "%s %s %s (id \"\")" % (pid, act, obj)
            with self.subTest(row=row):
                d = self.json_ok(post(EVALUATION, evaluation(pid, act, "", None, "user", obj)), row)
                self.assert_decision_shape(d, row)
                want, _ = grpc_check("user", pid, obj, act, "")
                self.assertEqual(self.decision_of(d), want, "%s: AuthZEN %r, Check %s" % (row, d, fmt(want)))

    def test_record_less_mismatch_is_400(self) -> None:
        self.assert_error(post(EVALUATION, evaluation("alice", "create", contact(1))),
                          400, "INVALID_ARGUMENT", "create", what="create with a record id")
        self.assert_error(post(EVALUATION, evaluation("alice", "view", "")),
                          400, "INVALID_ARGUMENT", "view", what="view with the empty id")
        self.assert_error(post(EVALUATION, evaluation("alice", "create", None)),
                          400, "INVALID_ARGUMENT", "resource.id", what="create without resource.id (required by the spec)")

    def test_unknown_record_is_a_denial(self) -> None:
        for rid in (UNKNOWN_ID, company(3)):
            d = self.json_ok(post(EVALUATION, evaluation("alice", "view", rid)), rid)
            self.assert_decision_shape(d, rid)
            want, _ = grpc_check("user", "alice", "contacts", "view", rid)
            self.assertEqual(self.decision_of(d), want, "alice view %s: AuthZEN %r, Check %s" % (rid, d, fmt(want)))
        d = self.json_ok(post(EVALUATION, evaluation("alice", "view", UNKNOWN_ID)), "unknown")
        self.assertEqual(self.decision_of(d), (False, "UNKNOWN_RECORD"), "unknown record: %r" % d)

    def test_unknown_principal_tenant_object_are_closed_decisions(self) -> None:
        cases = [
            ("unknown user", evaluation("zed", "view", contact(1)), ["zed"]),
            ("unknown integration", evaluation("alice", "view", contact(1), kind="integration"), ["alice"]),
            ("unknown automation", evaluation("nightly", "view", contact(1), kind="automation"), ["nightly"]),
            ("unknown tenant", evaluation("alice", "view", contact(1), tenant="no-such-tenant"), ["no-such-tenant"]),
            ("unknown object", evaluation("alice", "view", contact(1), rtype="spaceships"), ["spaceships"]),
        ]
        for what, body, needles in cases:
            with self.subTest(what=what):
                d = self.json_ok(post(EVALUATION, body), what)
                self.assert_item_error(d, 404, "NOT_FOUND", *needles, what=what)

    def test_missing_tenant(self) -> None:
        body = evaluation("alice", "view", contact(1), tenant=None)
        resp = post(EVALUATION, body)
        if DEFAULT_TENANT is None:
            self.assert_error(resp, 400, "INVALID_ARGUMENT", "subject.properties.tenant", "--authzen-tenant",
                              what="no tenant and no --authzen-tenant")
        else:
            d = self.json_ok(resp, "default tenant")
            want, _ = grpc_check("user", "alice", "contacts", "view", contact(1), tenant=DEFAULT_TENANT)
            self.assertEqual(self.decision_of(d), want, "default tenant %s: %r" % (DEFAULT_TENANT, d))
        # Explicitly null: the same as absent.
        body["subject"]["properties"] = {"tenant": None}
        resp = post(EVALUATION, body)
        if DEFAULT_TENANT is None:
            self.assert_error(resp, 400, "INVALID_ARGUMENT", "tenant", what="tenant null")
        else:
            self.json_ok(resp, "tenant null with a default")
        for bad in ("", 7, ["demo"]):
            body["subject"]["properties"] = {"tenant": bad}
            self.assert_error(post(EVALUATION, body), 400, "INVALID_ARGUMENT", "tenant",
                              what="tenant %r" % (bad,))

    def test_subject_type(self) -> None:
        self.assert_error(post(EVALUATION, evaluation("alice", "view", contact(1), kind="robot")),
                          400, "INVALID_ARGUMENT", "user", "integration", "automation",
                          what="subject.type robot")

    def test_bad_uuid(self) -> None:
        err = self.assert_error(post(EVALUATION, evaluation("alice", "view", "not-a-uuid")),
                                400, "INVALID_ARGUMENT", "resource.id", "not-a-uuid", what="bad UUID")
        self.assertNotIn("evaluations[", err["message"], "single evaluation error names a batch path")

    def test_unknown_action_and_object_action_mismatch(self) -> None:
        self.assert_error(post(EVALUATION, evaluation("alice", "fly", contact(1))),
                          400, "INVALID_ARGUMENT", "fly", what="unknown action")
        self.assert_error(post(EVALUATION, evaluation("alice", "view_archived", contact(1))),
                          400, "INVALID_ARGUMENT", "view_archived", what="retired action view_archived")
        self.assert_error(post(EVALUATION, evaluation("alice", "bulk_send_email", deal(1), rtype="deals")),
                          400, "INVALID_ARGUMENT", "contacts", what="a Contacts-only action on deals")

    def test_required_context(self) -> None:
        self.assert_error(post(EVALUATION, evaluation("alice", "send_single_message", contact(1))),
                          400, "INVALID_ARGUMENT", "channel", what="send_single_message without channel")
        self.assert_error(post(EVALUATION, evaluation("carol", "bulk_manage_subscription", contact(1))),
                          400, "INVALID_ARGUMENT", "target_email_status",
                          what="bulk_manage_subscription without target_email_status")
        self.assert_error(post(EVALUATION, evaluation("erin", "bulk_change_field_values", deal(1), rtype="deals")),
                          400, "INVALID_ARGUMENT", "fields", what="bulk_change_field_values without fields")

    def test_context_keys(self) -> None:
        err = self.assert_error(
            post(EVALUATION, evaluation("alice", "bulk_send_email", contact(6), {"subscription_lst": "newsletter"})),
            400, "INVALID_ARGUMENT", "subscription_lst", *CONTEXT_KEYS, what="misspelt context key")
        self.assertTrue(err["message"], err)
        self.assert_error(post(EVALUATION, evaluation("alice", "view", contact(1), {"time": "1985-10-26T01:22-07:00"})),
                          400, "INVALID_ARGUMENT", "time", what="context key 'time'")

    def test_context_values(self) -> None:
        bad = [
            ("send_single_message", {"channel": "fax"}, "channel"),
            ("send_single_message", {"channel": "EMAILS"}, "channel"),
            ("send_single_message", {"channel": 1}, "channel"),
            ("bulk_send_email", {"transactional": "yes"}, "transactional"),
            ("bulk_send_email", {"transactional": 1}, "transactional"),
            ("bulk_send_email", {"subscription_list": ["newsletter"]}, "subscription_list"),
            ("edit", {"fields": "tags"}, "fields"),
            ("edit", {"fields": [1]}, "fields"),
            ("edit", {"fields": ["no_such_field"]}, "no_such_field"),
            ("bulk_manage_subscription", {"target_email_status": "maybe"}, "target_email_status"),
            ("view", {"min_revision": -1}, "min_revision"),
            ("view", {"min_revision": 1.5}, "min_revision"),
            ("view", {"min_revision": "1"}, "min_revision"),
        ]
        for act, ctx, needle in bad:
            with self.subTest(ctx=ctx):
                self.assert_error(post(EVALUATION, evaluation("carol" if "subscription" in act else "alice",
                                                              act, contact(1), ctx)),
                                  400, "INVALID_ARGUMENT", needle, what="context %s" % json.dumps(ctx))
        self.assert_error(post(EVALUATION, {**evaluation("alice", "view", contact(1)), "context": ["channel"]}),
                          400, "INVALID_ARGUMENT", "context", what="context not an object")

    def test_context_values_accepted(self) -> None:
        """Each context key in its proper type, compared with Check; null means absent;
        a key the action does not read is ignored."""
        cases = [
            ("send_single_message", {"channel": "email"}),
            ("send_single_message", {"channel": "text"}),
            ("bulk_send_email", {"transactional": True, "subscription_list": "newsletter"}),
            ("bulk_send_email", {"transactional": False, "subscription_list": ""}),
            ("edit", {"fields": []}),
            ("edit", {"fields": ["tags", "tags", "birthday"]}),
            ("view", {"subscription_list": "newsletter", "channel": "text"}),
        ]
        for act, ctx in cases:
            for rid in (contact(1), contact(6), contact(7)):
                row = "alice %s %s %s" % (act, json.dumps(ctx), rid)
                with self.subTest(row=row):
                    d = self.json_ok(post(EVALUATION, evaluation("alice", act, rid, ctx)), row)
                    want, _ = grpc_check("user", "alice", "contacts", act, rid, ctx)
                    self.assertEqual(self.decision_of(d), want, "%s: AuthZEN %r, Check %s" % (row, d, fmt(want)))
        d = self.json_ok(post(EVALUATION, evaluation("alice", "bulk_send_email", contact(6),
                                                     {"subscription_list": None, "transactional": None})), "nulls")
        want, _ = grpc_check("user", "alice", "contacts", "bulk_send_email", contact(6), {})
        self.assertEqual(self.decision_of(d), want, "context keys set to null must count as absent: %r" % d)
        d = self.json_ok(post(EVALUATION, {**evaluation("alice", "view", contact(1)), "context": None}), "context null")
        self.assertIs(d["decision"], True, "'context': null must count as absent: %r" % d)

    def test_min_revision(self) -> None:
        revision = grpc_revision()
        d = self.json_ok(post(EVALUATION, evaluation("alice", "view", contact(1), {"min_revision": revision})),
                         "min_revision reached")
        self.assertGreaterEqual(d["context"]["revision"], revision, "answered below min_revision: %r" % d)
        d = self.json_ok(post(EVALUATION, evaluation("alice", "view", contact(1), {"min_revision": 0})), "min_revision 0")
        self.assertIs(d["decision"], True, "min_revision 0: %r" % d)
        self.assert_error(
            post(EVALUATION, evaluation("alice", "view", contact(1), {"min_revision": revision + 10_000_000})),
            400, "FAILED_PRECONDITION", "min_revision", what="min_revision far ahead")

    def test_unknown_fields_are_ignored(self) -> None:
        """The spec: receivers MUST ignore unknown fields (everywhere but permd's context)."""
        plain = self.json_ok(post(EVALUATION, evaluation("alice", "bulk_send_email", contact(7))), "plain")
        body = evaluation("alice", "bulk_send_email", contact(7))
        body["foo"] = "bar"
        body["futureField"] = {"nested": True}
        body["options"] = {"evaluations_semantic": "whatever: /evaluation has no options"}
        body["subject"]["properties"]["department"] = "Sales"
        body["subject"]["properties"]["ip_address"] = "172.217.22.14"
        body["subject"]["extra"] = 1
        body["resource"]["properties"] = {"status": "active", "library_record": {"title": "x"}}
        body["action"]["properties"] = {"method": "GET"}
        d = self.json_ok(post(EVALUATION, body), "unknown fields")
        self.assertEqual(self.decision_of(d), self.decision_of(plain),
                         "unknown members changed the decision: %r vs %r" % (d, plain))

    def test_context_keys_in_properties_are_refused(self) -> None:
        body = evaluation("alice", "bulk_send_email", contact(6))
        body["action"]["properties"] = {"subscription_list": "newsletter"}
        self.assert_error(post(EVALUATION, body), 400, "INVALID_ARGUMENT", "subscription_list", "context",
                          what="subscription_list in action.properties")
        body = evaluation("alice", "send_single_message", contact(1), {"channel": "email"})
        body["resource"]["properties"] = {"channel": "text"}
        self.assert_error(post(EVALUATION, body), 400, "INVALID_ARGUMENT", "channel", "context",
                          what="channel in resource.properties")

    def test_missing_and_mistyped_members(self) -> None:
        full = evaluation("alice", "view", contact(1))
        cases: list[tuple[str, Callable[[dict], None], str]] = [
            ("no subject", lambda b: b.pop("subject"), "subject"),
            ("no action", lambda b: b.pop("action"), "action"),
            ("no resource", lambda b: b.pop("resource"), "resource"),
            ("no subject.type", lambda b: b["subject"].pop("type"), "subject.type"),
            ("no subject.id", lambda b: b["subject"].pop("id"), "subject.id"),
            ("empty subject.id", lambda b: b["subject"].update(id=""), "subject.id"),
            ("no action.name", lambda b: b["action"].pop("name"), "action.name"),
            ("no resource.type", lambda b: b["resource"].pop("type"), "resource.type"),
            ("no resource.id", lambda b: b["resource"].pop("id"), "resource.id"),
            ("subject a string", lambda b: b.update(subject="alice"), "subject"),
            ("action.name a number", lambda b: b["action"].update(name=123), "action.name"),
            ("resource.id a number", lambda b: b["resource"].update(id=1), "resource.id"),
            ("subject.properties a string", lambda b: b["subject"].update(properties="demo"), "subject.properties"),
            ("subject null", lambda b: b.update(subject=None), "subject"),
        ]
        for what, change, needle in cases:
            with self.subTest(what=what):
                body = json.loads(json.dumps(full))
                change(body)
                self.assert_error(post(EVALUATION, body), 400, "INVALID_ARGUMENT", needle, what=what)

    def test_long_names(self) -> None:
        self.assert_error(post(EVALUATION, evaluation("a" * 300, "view", contact(1))),
                          400, "INVALID_ARGUMENT", what="subject.id above --max-name-bytes")


# ==========================================================================
# Access Evaluations


class AccessEvaluations(AuthzenCase):
    @classmethod
    def setUpClass(cls) -> None:
        # alice bulk_send_email on the newsletter list over the first 300 Contacts.
        answers, _ = grpc_batch("user", "alice", "contacts", "bulk_send_email", FIRST_300,
                                {"subscription_list": "newsletter"})
        cls.allowed = [rid for rid, (ok, _) in zip(FIRST_300, answers) if ok]
        cls.denied = [(rid, r) for rid, (ok, r) in zip(FIRST_300, answers) if not ok]
        assert len(cls.allowed) >= 6 and len(cls.denied) >= 6, "the demo should give both answers"

    def run_semantic(self, ids: list[str], semantic: Optional[str], extra: Optional[list[dict]] = None) -> list[dict]:
        body = {
            "subject": subject("alice"),
            "action": action("bulk_send_email"),
            "context": {"subscription_list": "newsletter"},
            "evaluations": extra if extra is not None else [{"resource": resource(i)} for i in ids],
        }
        if semantic is not None:
            body["options"] = {"evaluations_semantic": semantic}
        out = self.json_ok(post(EVALUATIONS, body), "semantic %s" % semantic)
        self.assertIsInstance(out, dict)
        self.assertIn("evaluations", out, "no 'evaluations' in %r" % out)
        self.assertNotIn("decision", out, "top-level 'decision' beside 'evaluations' (the spec RECOMMENDS omitting it): %r"
                         % {k: v for k, v in out.items() if k != "evaluations"})
        for i, d in enumerate(out["evaluations"]):
            self.assert_decision_shape(d, "%s evaluations[%d]" % (semantic, i))
        return out["evaluations"]

    def test_batch_shape_and_order(self) -> None:
        ids = [self.allowed[0], self.denied[0][0], self.allowed[1], self.denied[1][0], UNKNOWN_ID, self.allowed[0]]
        got = self.run_semantic(ids, None)
        want, revision = grpc_batch("user", "alice", "contacts", "bulk_send_email", ids, {"subscription_list": "newsletter"})
        self.assert_same_decisions("alice bulk_send_email newsletter", ids, got, want, [revision] * len(ids))

    def test_execute_all(self) -> None:
        ids = [d for d, _ in self.denied[:3]] + self.allowed[:3]
        for semantic in (None, "execute_all"):
            got = self.run_semantic(ids, semantic)
            self.assertEqual(len(got), len(ids), "%s: every evaluation answered" % semantic)
            self.assertEqual([d["decision"] for d in got], [False] * 3 + [True] * 3, "%s: %r" % (semantic, got))

    def test_deny_on_first_deny(self) -> None:
        a, d = self.allowed, self.denied
        got = self.run_semantic([a[0], a[1], d[0][0], a[2], d[1][0]], "deny_on_first_deny")
        self.assertEqual([x["decision"] for x in got], [True, True, False],
                         "deny_on_first_deny must stop at (and include) the first denial: %r" % got)
        self.assertEqual(got[-1]["context"].get("reason"), d[0][1], "the stopping denial keeps its reason: %r" % got[-1])
        got = self.run_semantic(a[:5], "deny_on_first_deny")
        self.assertEqual([x["decision"] for x in got], [True] * 5, "no denial: every Decision returned: %r" % got)
        got = self.run_semantic([d[0][0], a[0], a[1]], "deny_on_first_deny")
        self.assertEqual([x["decision"] for x in got], [False], "a first denial stops at once: %r" % got)
        # An evaluation with an error is a denial for this semantic.
        evals = [{"resource": resource(a[0])},
                 {"resource": resource(a[1]), "subject": subject("zed")},
                 {"resource": resource(a[2])}]
        got = self.run_semantic([], "deny_on_first_deny", evals)
        self.assertEqual(len(got), 2, "deny_on_first_deny must stop at the evaluation with an error: %r" % got)
        self.assertIs(got[0]["decision"], True, got)
        self.assert_item_error(got[1], 404, "NOT_FOUND", "zed", what="deny_on_first_deny, unknown principal")

    def test_permit_on_first_permit(self) -> None:
        a, d = self.allowed, self.denied
        got = self.run_semantic([d[0][0], d[1][0], a[0], d[2][0], a[1]], "permit_on_first_permit")
        self.assertEqual([x["decision"] for x in got], [False, False, True],
                         "permit_on_first_permit must stop at (and include) the first permit: %r" % got)
        self.assertEqual([x["context"].get("reason") for x in got[:2]], [d[0][1], d[1][1]],
                         "the denials before the permit keep their reasons: %r" % got)
        got = self.run_semantic([x for x, _ in d[:5]], "permit_on_first_permit")
        self.assertEqual([x["decision"] for x in got], [False] * 5, "no permit: every Decision returned: %r" % got)
        got = self.run_semantic([a[0], d[0][0]], "permit_on_first_permit")
        self.assertEqual([x["decision"] for x in got], [True], "a first permit stops at once: %r" % got)
        evals = [{"resource": resource(a[0]), "subject": subject("zed")}, {"resource": resource(a[1])},
                 {"resource": resource(a[2])}]
        got = self.run_semantic([], "permit_on_first_permit", evals)
        self.assertEqual(len(got), 2, "an error is not a permit; the next allowed one stops: %r" % got)
        self.assert_item_error(got[0], 404, "NOT_FOUND", "zed", what="permit_on_first_permit, unknown principal")
        self.assertIs(got[1]["decision"], True, got)

    def test_bad_semantic(self) -> None:
        for bad in ("first_deny", "", "EXECUTE_ALL", 1, ["execute_all"]):
            with self.subTest(value=bad):
                body = batch_for("user", "alice", "view", {}, [contact(1)])
                body["options"] = {"evaluations_semantic": bad}
                self.assert_error(post(EVALUATIONS, body), 400, "INVALID_ARGUMENT", *SEMANTICS,
                                  what="evaluations_semantic %r" % (bad,))
        body = batch_for("user", "alice", "view", {}, [contact(1)])
        body["options"] = "execute_all"
        self.assert_error(post(EVALUATIONS, body), 400, "INVALID_ARGUMENT", "options", what="options a string")

    def test_other_options_ignored(self) -> None:
        body = batch_for("user", "alice", "view", {}, [contact(1), contact(2)])
        body["options"] = {"evaluations_semantic": "execute_all", "another_option": "value"}
        out = self.json_ok(post(EVALUATIONS, body), "another_option")
        self.assertEqual(len(out["evaluations"]), 2, out)

    def test_without_evaluations_is_a_single_evaluation(self) -> None:
        single = evaluation("alice", "bulk_send_email", contact(6), {"subscription_list": "newsletter"})
        want = self.json_ok(post(EVALUATION, single), "/evaluation")
        for what, body in [("absent", single), ("empty", {**single, "evaluations": []})]:
            with self.subTest(evaluations=what):
                out = self.json_ok(post(EVALUATIONS, body), "evaluations %s" % what)
                self.assertNotIn("evaluations", out, "evaluations %s: the response must be a single Decision: %r" % (what, out))
                self.assert_decision_shape(out, "evaluations %s" % what)
                self.assertEqual(out, want, "evaluations %s: differs from /access/v1/evaluation" % what)
        incomplete = {"subject": subject("alice"), "action": action("view"), "evaluations": []}
        self.assert_error(post(EVALUATIONS, incomplete), 400, "INVALID_ARGUMENT", "resource",
                          what="empty evaluations and no top-level resource")

    def test_defaults_and_overrides(self) -> None:
        # Find a Contact whose answer depends on the list (alice, newsletter vs none).
        with_list, _ = grpc_batch("user", "alice", "contacts", "bulk_send_email", FIRST_300, {"subscription_list": "newsletter"})
        without, _ = grpc_batch("user", "alice", "contacts", "bulk_send_email", FIRST_300, {})
        differs = [rid for rid, x, y in zip(FIRST_300, with_list, without) if x != y]
        self.assertTrue(differs, "no Contact among the first 300 whose bulk_send_email answer depends on the list")
        rid = differs[0]
        body = {
            "subject": subject("alice"),
            "action": action("bulk_send_email"),
            "resource": resource(contact(1)),
            "context": {"subscription_list": "newsletter"},
            "evaluations": [
                {},                                                       # every default
                {"resource": resource(rid)},                              # inherits the list
                {"resource": resource(rid), "context": {}},               # context replaced: no list
                {"resource": resource(rid), "action": action("view")},    # action replaced
                {"subject": subject("dave"), "action": action("view")},   # subject replaced (default resource)
                {"subject": subject("carol"), "resource": resource(rid), "context": {"transactional": True}},
                {"resource": resource(deal(1), "deals"), "action": action("view"), "context": {}},
            ],
        }
        out = self.json_ok(post(EVALUATIONS, body), "defaults")
        got = out["evaluations"]
        rows = [
            "alice bulk_send_email newsletter c…001 (all defaults)",
            "alice bulk_send_email newsletter %s (inherited context)" % rid,
            "alice bulk_send_email {} %s (context replaced)" % rid,
            "alice view %s (action replaced)" % rid,
            "dave view c…001 (subject and action replaced)",
            "carol bulk_send_email transactional %s" % rid,
            "alice view deal 1 (resource type replaced)",
        ]
        want = [
            grpc_check("user", "alice", "contacts", "bulk_send_email", contact(1), {"subscription_list": "newsletter"})[0],
            grpc_check("user", "alice", "contacts", "bulk_send_email", rid, {"subscription_list": "newsletter"})[0],
            grpc_check("user", "alice", "contacts", "bulk_send_email", rid, {})[0],
            grpc_check("user", "alice", "contacts", "view", rid, {})[0],
            grpc_check("user", "dave", "contacts", "view", contact(1), {})[0],
            grpc_check("user", "carol", "contacts", "bulk_send_email", rid, {"transactional": True})[0],
            grpc_check("user", "alice", "deals", "view", deal(1), {})[0],
        ]
        self.assert_same_decisions("defaults and overrides", rows, got, want)
        self.assertNotEqual(self.decision_of(got[1]), self.decision_of(got[2]),
                            "an evaluation's context must replace the default context as a whole: %r / %r" % (got[1], got[2]))

    def test_subject_override_replaces_properties(self) -> None:
        """An element's subject replaces the default one whole: its tenant too."""
        body = {
            "subject": subject("alice"),
            "action": action("view"),
            "evaluations": [
                {"resource": resource(contact(1))},
                {"resource": resource(contact(1)), "subject": {"type": "user", "id": "bob"}},
            ],
        }
        got = self.json_ok(post(EVALUATIONS, body), "subject override")["evaluations"]
        self.assertIs(got[0]["decision"], True, got)
        if DEFAULT_TENANT is None:
            self.assert_item_error(got[1], 400, "INVALID_ARGUMENT", "tenant",
                                   what="element subject without a tenant (properties are not merged)")
        else:
            want, _ = grpc_check("user", "bob", "contacts", "view", contact(1), tenant=DEFAULT_TENANT)
            self.assertEqual(self.decision_of(got[1]), want, got[1])

    def test_per_evaluation_errors(self) -> None:
        """Errors inside one element close that element only (execute_all)."""
        ok = {"resource": resource(contact(1))}
        evals = [
            ok,
            {},                                                                         # no resource, no default
            {"resource": resource("not-a-uuid")},
            {"resource": resource(contact(1)), "subject": subject("zed")},
            {"resource": resource(contact(1)), "subject": subject("alice", tenant="no-such-tenant")},
            {"resource": resource(contact(1), "spaceships")},
            {"resource": resource(contact(1)), "action": action("fly")},
            {"resource": resource(contact(1)), "context": {"subscription_lst": "newsletter"}},
            {"resource": resource(contact(1)), "subject": subject("alice", kind="robot")},
            {"resource": resource(contact(1)), "action": action("create")},
            {"resource": resource(""), "action": action("view")},
            {"resource": resource(deal(1), "deals"), "action": action("bulk_send_email")},
            {"resource": resource(contact(1)), "action": action("send_single_message")},
            {"resource": {"type": "contacts"}},                                         # no id
            {"resource": resource(contact(1)), "action": {"name": 5}},
            {"resource": resource(contact(2))},
        ]
        expected = [
            None,
            (400, "INVALID_ARGUMENT", "resource"),
            (400, "INVALID_ARGUMENT", "not-a-uuid"),
            (404, "NOT_FOUND", "zed"),
            (404, "NOT_FOUND", "no-such-tenant"),
            (404, "NOT_FOUND", "spaceships"),
            (400, "INVALID_ARGUMENT", "fly"),
            (400, "INVALID_ARGUMENT", "subscription_lst"),
            (400, "INVALID_ARGUMENT", "robot"),
            (400, "INVALID_ARGUMENT", "create"),
            (400, "INVALID_ARGUMENT", "view"),
            (400, "INVALID_ARGUMENT", "contacts"),
            (400, "INVALID_ARGUMENT", "channel"),
            (400, "INVALID_ARGUMENT", "resource.id"),
            (400, "INVALID_ARGUMENT", "action.name"),
            None,
        ]
        body = {"subject": subject("alice"), "action": action("view"), "evaluations": evals,
                "options": {"evaluations_semantic": "execute_all"}}
        got = self.json_ok(post(EVALUATIONS, body), "per-evaluation errors")["evaluations"]
        self.assertEqual(len(got), len(evals), "execute_all answers every element, errors included: %r" % got)
        for i, (d, exp) in enumerate(zip(got, expected)):
            what = "evaluations[%d] %s" % (i, json.dumps(evals[i]))
            if exp is None:
                want, _ = grpc_check("user", "alice", "contacts", "view", evals[i]["resource"]["id"])
                self.assert_decision_shape(d, what)
                self.assertEqual(self.decision_of(d), want, "%s: a good element beside bad ones: %r" % (what, d))
            else:
                self.assert_item_error(d, *exp, what=what)
        # The message of an element names where it is.
        msg = got[2]["context"]["error"]["message"]
        self.assertIn("evaluations[2]", msg, "an element's error should name evaluations[2]: %r" % msg)

    def test_whole_request_errors(self) -> None:
        good = batch_for("user", "alice", "view", {}, [contact(1)])
        cases: list[tuple[str, Callable[[dict], None], str]] = [
            ("evaluations an object", lambda b: b.update(evaluations={"a": 1}), "evaluations"),
            ("evaluations a string", lambda b: b.update(evaluations="x"), "evaluations"),
            ("an element not an object", lambda b: b["evaluations"].append(1), "evaluations[1]"),
            ("default context with an unknown key", lambda b: b.update(context={"time": "now"}), "time"),
            ("default context not an object", lambda b: b.update(context="x"), "context"),
            ("default subject without id", lambda b: b.update(subject={"type": "user", "properties": {"tenant": TENANT}}),
             "subject.id"),
            ("default subject with a bad type", lambda b: b.update(subject=subject("alice", kind="robot")), "robot"),
            ("default action without name", lambda b: b.update(action={}), "action.name"),
            ("default action.name a number", lambda b: b.update(action={"name": 3}), "action.name"),
            ("default resource without id", lambda b: b.update(resource={"type": "contacts"}), "resource.id"),
            ("default context min_revision a string", lambda b: b.update(context={"min_revision": "1"}), "min_revision"),
        ]
        if DEFAULT_TENANT is None:
            cases.append(("default subject without tenant",
                          lambda b: b.update(subject={"type": "user", "id": "alice"}), "tenant"))
        for what, change, needle in cases:
            with self.subTest(what=what):
                body = json.loads(json.dumps(good))
                change(body)
                self.assert_error(post(EVALUATIONS, body), 400, "INVALID_ARGUMENT", needle, what=what)

    def test_min_revision_acts_on_the_whole_request(self) -> None:
        revision = grpc_revision()
        body = batch_for("user", "alice", "view", {}, [contact(1), contact(2)])
        body["evaluations"][1]["context"] = {"min_revision": revision + 10_000_000}
        self.assert_error(post(EVALUATIONS, body), 400, "FAILED_PRECONDITION", "min_revision",
                          what="an element's min_revision far ahead")
        body["evaluations"][1]["context"] = {"min_revision": revision}
        got = self.json_ok(post(EVALUATIONS, body), "min_revision reached")["evaluations"]
        want, _ = grpc_batch("user", "alice", "contacts", "view", [contact(1), contact(2)])
        self.assert_same_decisions("min_revision reached", [contact(1), contact(2)], got, want)

    def test_record_less_in_a_batch(self) -> None:
        evals = [
            {"subject": subject("alice"), "action": action("create"), "resource": resource("")},
            {"subject": subject("carol"), "action": action("create"), "resource": resource("")},
            {"subject": subject("alice"), "action": action("view"), "resource": resource(contact(1))},
            {"subject": subject("erin"), "action": action("upload"), "resource": resource("", "deals")},
            {"subject": subject("bob"), "action": action("upload"), "resource": resource("", "deals")},
        ]
        got = self.json_ok(post(EVALUATIONS, {"evaluations": evals}), "record-less in a batch")["evaluations"]
        want = [
            grpc_check("user", "alice", "contacts", "create", "")[0],
            grpc_check("user", "carol", "contacts", "create", "")[0],
            grpc_check("user", "alice", "contacts", "view", contact(1))[0],
            grpc_check("user", "erin", "deals", "upload", "")[0],
            grpc_check("user", "bob", "deals", "upload", "")[0],
        ]
        rows = ["alice create", "carol create", "alice view c…001", "erin upload deals", "bob upload deals"]
        self.assert_same_decisions("record-less actions in a batch", rows, got, want)


# ==========================================================================
# Equality with BatchCheck, record by record


class EqualsBatchCheck(AuthzenCase):
    """For every principal × action (with contexts) the AuthZEN batch over the first
    300 demo Contacts (and a few odd ids) equals gRPC BatchCheck, position by position."""

    IDS = FIRST_300 + [UNKNOWN_ID, company(1), deal(2), contact(1), contact(299), contact(DEMO_CONTACTS - 1)]

    def test_contacts_matrix(self) -> None:
        for kind, pid in PRINCIPALS:
            for act, ctx in CONTACT_ACTIONS:
                label = "%s:%s %s %s" % (kind, pid, act, json.dumps(ctx))
                with self.subTest(combo=label):
                    out = self.json_ok(post(EVALUATIONS, batch_for(kind, pid, act, ctx, self.IDS)), label)
                    want, revision = grpc_batch(kind, pid, "contacts", act, self.IDS, ctx)
                    self.assert_same_decisions(label, self.IDS, out.get("evaluations", []), want,
                                               [revision] * len(self.IDS))

    def test_deals_and_companies(self) -> None:
        deals = [deal(n) for n in range(120)] + [UNKNOWN_ID]
        companies = [company(n) for n in range(120)]
        for kind, pid in PRINCIPALS + [("user", "erin")]:
            for obj, ids, actions in (("deals", deals, DEAL_ACTIONS), ("companies", companies, COMPANY_ACTIONS)):
                for act, ctx in actions:
                    label = "%s:%s %s %s %s" % (kind, pid, obj, act, json.dumps(ctx))
                    with self.subTest(combo=label):
                        out = self.json_ok(post(EVALUATIONS, batch_for(kind, pid, act, ctx, ids, obj)), label)
                        want, revision = grpc_batch(kind, pid, obj, act, ids, ctx)
                        self.assert_same_decisions(label, ids, out.get("evaluations", []), want,
                                                   [revision] * len(ids))

    def test_mixed_batch(self) -> None:
        """3,000 elements mixing principals, objects, actions and contexts, most overriding
        the defaults: grouped onto BatchCheck by permd, answered in request order."""
        rng = random.Random(20260101)
        pool: list[tuple[str, list[tuple[str, dict]], Callable[[], str]]] = [
            ("contacts", CONTACT_ACTIONS, lambda: contact(rng.randrange(DEMO_CONTACTS))),
            ("deals", DEAL_ACTIONS, lambda: deal(rng.randrange(DEMO_DEALS))),
            ("companies", COMPANY_ACTIONS, lambda: company(rng.randrange(DEMO_COMPANIES))),
        ]
        default_subject = ("user", "alice")
        default_action = ("view", {})
        rows = []
        evals = []
        keys = []
        for _ in range(3000):
            obj, actions, pick = rng.choices(pool, weights=[8, 1, 1])[0]
            kind, pid = rng.choice(PRINCIPALS + [("user", "erin")]) if rng.random() < 0.7 else default_subject
            act, ctx = rng.choice(actions) if rng.random() < 0.7 else default_action
            rid = pick()
            e: dict[str, Any] = {"resource": resource(rid, obj)}
            if (kind, pid) != default_subject or rng.random() < 0.2:
                e["subject"] = subject(pid, kind)
            if (act, ctx) != default_action or rng.random() < 0.2:
                e["action"] = action(act)
                if ctx:
                    e["context"] = ctx
            evals.append(e)
            keys.append((kind, pid, obj, act, json.dumps(ctx, sort_keys=True)))
            rows.append("%s:%s %s %s %s %s" % (kind, pid, act, json.dumps(ctx), obj, rid))
        body = {"subject": subject("alice", "user"), "action": action(default_action[0]),
                "evaluations": evals}
        out = self.json_ok(post(EVALUATIONS, body), "mixed batch")
        # The reference: one BatchCheck per group, mapped back to request positions.
        groups: dict[tuple, list[int]] = collections.defaultdict(list)
        for i, k in enumerate(keys):
            groups[k].append(i)
        want: list[Optional[Decision]] = [None] * len(evals)
        revisions = [0] * len(evals)
        for (kind, pid, obj, act, ctx_json), positions in groups.items():
            ids = [evals[i]["resource"]["id"] for i in positions]
            answers, revision = grpc_batch(kind, pid, obj, act, ids, json.loads(ctx_json))
            for i, a in zip(positions, answers):
                want[i] = a
                revisions[i] = revision
        self.assert_same_decisions("mixed batch of 3000", rows, out.get("evaluations", []),
                                   [w for w in want if w is not None], revisions)

    def test_search_results_evaluate_true(self) -> None:
        """The spec: a search result, evaluated, SHOULD be allowed — here it is."""
        body = {"subject": subject("carol"), "action": action("bulk_send_email"), "resource": {"type": "contacts"},
                "context": {"subscription_list": "newsletter"}, "page": {"limit": 2000}}
        page = self.json_ok(post(SEARCH, body), "carol search")
        ids = [r["id"] for r in page["results"]]
        self.assertTrue(ids, "carol's search found nothing")
        out = self.json_ok(post(EVALUATIONS, batch_for("user", "carol", "bulk_send_email",
                                                       {"subscription_list": "newsletter"}, ids)), "evaluate results")
        denied = [(rid, d) for rid, d in zip(ids, out["evaluations"]) if not d["decision"]]
        self.assertFalse(denied, "search results that evaluate to false: %r" % denied[:10])


# ==========================================================================
# Resource Search


class ResourceSearch(AuthzenCase):
    def search(self, body: dict, what: str) -> tuple[dict, list[str]]:
        resp = post(SEARCH, body)
        page = self.json_ok(resp, what)
        keys = list(json.loads(resp.content, object_pairs_hook=lambda kv: [k for k, _ in kv]))
        self.assertIsInstance(page, dict, "%s: search response not an object" % what)
        self.assertIn("results", page, "%s: 'results' is required: %r" % (what, page))
        self.assertIsInstance(page["results"], list, "%s: 'results' must be an array" % what)
        self.assertIn("page", page, "%s: permd always sends 'page': %r" % (what, {k: v for k, v in page.items() if k != "results"}))
        self.assertEqual(keys[0], "page", "%s: 'page' should be the first key (the spec RECOMMENDS it): %r" % (what, keys))
        p = page["page"]
        self.assertIsInstance(p.get("next_token"), str, "%s: page.next_token must be a string: %r" % (what, p))
        self.assertEqual(p.get("count"), len(page["results"]), "%s: page.count != number of results: %r" % (what, p))
        self.assertIsInstance(p.get("total"), int, "%s: page.total missing: %r" % (what, p))
        rtype = body["resource"]["type"]
        for r in page["results"]:
            self.assertEqual(set(r), {"type", "id"}, "%s: a result is {type, id}: %r" % (what, r))
            self.assertEqual(r["type"], rtype, "%s: result of another type: %r" % (what, r))
        return page, [r["id"].lower() for r in page["results"]]

    def walk(self, body: dict, what: str, limit: Optional[int]) -> tuple[list[list[str]], int]:
        """Every page, following next_token; returns the ids per page and the total."""
        body = json.loads(json.dumps(body))
        if limit is not None:
            body["page"] = {"limit": limit}
        pages: list[list[str]] = []
        seen_tokens: set[str] = set()
        total = None
        size = limit or SEARCH_DEFAULT_LIMIT
        for n in range(DEMO_CONTACTS // size + 3):
            page, ids = self.search(body, "%s, page %d" % (what, n + 1))
            pages.append(ids)
            if total is None:
                total = page["page"]["total"]
            self.assertEqual(page["page"]["total"], total, "%s: page.total changed between pages" % what)
            token = page["page"]["next_token"]
            if token == "":
                return pages, total
            self.assertEqual(len(ids), size, "%s: page %d is not the last but has %d results, not %d"
                             % (what, n + 1, len(ids), size))
            self.assertNotIn(token, seen_tokens, "%s: next_token repeats: the walk would loop" % what)
            seen_tokens.add(token)
            body["page"] = {"token": token} if n % 2 == 0 else {"token": token, "limit": size}
        self.fail("%s: no empty next_token after %d pages" % (what, len(pages)))

    def check_walk(self, kind: str, pid: str, act: str, ctx: dict, limit: Optional[int], obj: str = "contacts",
                   all_ids: Optional[list[str]] = None) -> list[str]:
        what = "search %s:%s %s %s %s limit %s" % (kind, pid, obj, act, json.dumps(ctx), limit)
        body: dict[str, Any] = {"subject": subject(pid, kind), "action": action(act), "resource": {"type": obj}}
        if ctx:
            body["context"] = ctx
        pages, total = self.walk(body, what, limit)
        flat = [i for p in pages for i in p]
        dupes = [i for i, c in collections.Counter(flat).items() if c > 1]
        self.assertFalse(dupes, "%s: ids listed twice across the pages: %r" % (what, dupes[:10]))
        lookup, _ = grpc_lookup(kind, pid, obj, act, ctx)
        self.assertEqual(total, len(lookup), "%s: page.total %d, LookupRecords %d" % (what, total, len(lookup)))
        missing = sorted(set(lookup) - set(flat))
        extra = sorted(set(flat) - set(lookup))
        self.assertFalse(missing or extra, "%s: pages differ from LookupRecords: %d missing (%r…), %d extra (%r…)"
                         % (what, len(missing), missing[:5], len(extra), extra[:5]))
        if all_ids is not None:
            answers, _ = grpc_batch(kind, pid, obj, act, all_ids, ctx)
            allowed = {i for i, (ok, _) in zip(all_ids, answers) if ok}
            self.assertEqual(set(flat), allowed, "%s: pages differ from BatchCheck over every record: %d vs %d"
                             % (what, len(flat), len(allowed)))
        return flat

    def test_default_limit_walk(self) -> None:
        flat = self.check_walk("user", "alice", "view", {}, None, all_ids=ALL_CONTACTS)
        self.assertGreater(len(flat), SEARCH_DEFAULT_LIMIT, "alice should see more than one default page of Contacts")

    def test_walks(self) -> None:
        self.check_walk("user", "carol", "bulk_send_email", {"subscription_list": "newsletter"}, 777, all_ids=ALL_CONTACTS)
        self.check_walk("user", "dave", "view", {}, 10000, all_ids=ALL_CONTACTS)
        self.check_walk("integration", "warehouse-sync", "bulk_export", {}, 2500)
        self.check_walk("automation", "welcome-series", "bulk_send_email", {"transactional": True}, 5000)
        self.check_walk("user", "bob", "send_single_message", {"channel": "text"}, 3000)
        self.check_walk("user", "erin", "view", {}, 100, obj="deals", all_ids=[deal(n) for n in range(DEMO_DEALS)])
        self.check_walk("user", "dave", "bulk_send_email", {}, 50)  # nothing: no toggle

    def test_exact_last_page(self) -> None:
        """The page that holds the last result says so (next_token ""), also when the
        total is a multiple of the limit."""
        lookup, _ = grpc_lookup("user", "carol", "contacts", "bulk_send_email", {})
        total = len(lookup)
        self.assertGreater(total, 0)
        limits = [total] if total <= SEARCH_MAX_LIMIT else []
        limits += [d for d in range(100, SEARCH_MAX_LIMIT + 1) if total % d == 0][:2]
        for limit in limits:
            pages, _ = self.walk({"subject": subject("carol"), "action": action("bulk_send_email"),
                                  "resource": {"type": "contacts"}}, "carol limit %d" % limit, limit)
            self.assertEqual(len(pages), total // limit, "limit %d dividing total %d: %d pages, expected %d"
                             % (limit, total, len(pages), total // limit))

    def test_single_page_and_empty(self) -> None:
        page, ids = self.search({"subject": subject("dave"), "action": action("bulk_send_email"),
                                 "resource": {"type": "contacts"}}, "dave bulk_send_email")
        self.assertEqual((ids, page["page"]["next_token"], page["page"]["total"]), ([], "", 0),
                         "no results: empty results, next_token \"\" and total 0: %r" % page)

    def test_resource_id_is_ignored(self) -> None:
        base = {"subject": subject("carol"), "action": action("bulk_send_email"), "page": {"limit": 50}}
        _, a = self.search({**base, "resource": {"type": "contacts"}}, "without id")
        _, b = self.search({**base, "resource": {"type": "contacts", "id": contact(0)}}, "with an id")
        _, c = self.search({**base, "resource": {"type": "contacts", "id": "not-a-uuid"}}, "with a non-UUID id")
        self.assertEqual(a, b, "resource.id must be ignored by a search (spec: MUST be ignored)")
        self.assertEqual(a, c, "resource.id must be ignored by a search, even a malformed one")

    def test_limits(self) -> None:
        base = {"subject": subject("alice"), "action": action("view"), "resource": {"type": "contacts"}}
        page, ids = self.search({**base, "page": {"limit": 10000}}, "limit 10000")
        self.assertEqual(len(ids), min(10000, page["page"]["total"]))
        page, ids = self.search({**base, "page": {"limit": 1}}, "limit 1")
        self.assertEqual(len(ids), 1)
        self.assertNotEqual(page["page"]["next_token"], "")
        page, ids = self.search({**base, "page": {}}, "empty page object")
        self.assertEqual(len(ids), SEARCH_DEFAULT_LIMIT, "page {} means the default limit")
        page, ids = self.search({**base, "page": {"limit": 5, "properties": {"sort": "id"}, "other": 1}}, "page extras")
        self.assertEqual(len(ids), 5, "page.properties and unknown page keys are ignored")
        for bad in (0, 10001, -1, 2.5, "10", [1]):
            with self.subTest(limit=bad):
                self.assert_error(post(SEARCH, {**base, "page": {"limit": bad}}), 400, "INVALID_ARGUMENT",
                                  "page.limit", "10000", what="page.limit %r" % (bad,))
        self.assert_error(post(SEARCH, {**base, "page": "x"}), 400, "INVALID_ARGUMENT", "page", what="page a string")

    def test_tokens(self) -> None:
        base = {"subject": subject("alice"), "action": action("view"), "resource": {"type": "contacts"},
                "page": {"limit": 100}}
        first, first_ids = self.search(base, "first page")
        token = first["page"]["next_token"]
        self.assertNotEqual(token, "", "alice has more than 100 Contacts to view")
        _, again = self.search({**base, "page": {"token": token, "limit": 100}}, "second page")
        self.assertFalse(set(again) & set(first_ids), "the second page repeats ids of the first")
        _, no_limit = self.search({**base, "page": {"token": token}}, "second page without limit")
        self.assertEqual(no_limit, again, "a follow-up without limit keeps the first request's limit")
        for bad in ("not-a-token", token[:-2] if len(token) > 2 else "x", token + "A", "", 7):
            if bad == "":
                # An empty token is "no token": the first page again.
                _, ids = self.search({**base, "page": {"token": "", "limit": 100}}, "empty token")
                self.assertEqual(ids, first_ids, "an empty page.token starts at the first page")
                continue
            with self.subTest(token=bad):
                self.assert_error(post(SEARCH, {**base, "page": {"token": bad, "limit": 100}}), 400,
                                  "INVALID_ARGUMENT", "page.token", what="page.token %r" % (bad,))
        changed = [
            ("another action", {"action": action("edit")}),
            ("another subject", {"subject": subject("bob")}),
            ("another kind", {"subject": subject("alice", kind="automation")}),
            ("another object", {"resource": {"type": "deals"}}),
            ("another context", {"context": {"subscription_list": "newsletter"}}),
            ("another limit", {"page": {"token": token, "limit": 99}}),
        ]
        for what, change in changed:
            with self.subTest(change=what):
                body = {**base, "page": {"token": token, "limit": 100}}
                body.update(change)
                self.assert_error(post(SEARCH, body), 400, "INVALID_ARGUMENT", "page.token",
                                  what="token with %s" % what)
        # resource.id is ignored, so adding one is no change.
        _, ids = self.search({**base, "resource": {"type": "contacts", "id": contact(5)},
                              "page": {"token": token, "limit": 100}}, "token, resource.id added")
        self.assertEqual(ids, again)

    def test_unknown_entities_give_no_results(self) -> None:
        cases = [
            ("unknown user", subject("zed"), "contacts", "zed"),
            ("unknown tenant", subject("alice", tenant="no-such-tenant"), "contacts", "no-such-tenant"),
            ("unknown object", subject("alice"), "spaceships", "spaceships"),
        ]
        for what, subj, obj, needle in cases:
            with self.subTest(what=what):
                page, ids = self.search({"subject": subj, "action": action("view"), "resource": {"type": obj}}, what)
                self.assertEqual(ids, [], "%s: no results expected" % what)
                self.assertEqual(page["page"]["next_token"], "", "%s: next_token \"\"" % what)
                err = page.get("context", {}).get("error")
                self.assertIsInstance(err, dict, "%s: context.error expected: %r" % (what, page))
                self.assertEqual((err.get("status"), err.get("code")), (404, "NOT_FOUND"), "%s: %r" % (what, err))
                self.assertIn(needle, err.get("message", ""), "%s: message should name %r: %r" % (what, needle, err))

    def test_search_errors(self) -> None:
        base = {"subject": subject("alice"), "action": action("view"), "resource": {"type": "contacts"}}
        cases: list[tuple[str, dict, str]] = [
            ("no subject", {k: v for k, v in base.items() if k != "subject"}, "subject"),
            ("no action", {k: v for k, v in base.items() if k != "action"}, "action"),
            ("no resource", {k: v for k, v in base.items() if k != "resource"}, "resource"),
            ("no resource.type", {**base, "resource": {}}, "resource.type"),
            ("no subject.id", {**base, "subject": {"type": "user", "properties": {"tenant": TENANT}}}, "subject.id"),
            ("unknown action", {**base, "action": action("fly")}, "fly"),
            ("record-less action", {**base, "action": action("create")}, "create"),
            ("unknown context key", {**base, "context": {"subscription_lst": "x"}}, "subscription_lst"),
            ("subject type", {**base, "subject": subject("alice", kind="robot")}, "robot"),
            ("Contacts-only action on deals", {**base, "action": action("bulk_send_email"), "resource": {"type": "deals"}},
             "contacts"),
        ]
        if DEFAULT_TENANT is None:
            cases.append(("no tenant", {**base, "subject": {"type": "user", "id": "alice"}}, "tenant"))
        for what, body, needle in cases:
            with self.subTest(what=what):
                self.assert_error(post(SEARCH, body), 400, "INVALID_ARGUMENT", needle, what="search: %s" % what)

    def test_search_min_revision(self) -> None:
        revision = grpc_revision()
        base = {"subject": subject("alice"), "action": action("view"), "resource": {"type": "contacts"},
                "page": {"limit": 10}}
        page, _ = self.search({**base, "context": {"min_revision": revision}}, "min_revision reached")
        self.assertGreaterEqual(page.get("context", {}).get("revision", -1), revision, "context.revision: %r" % page.get("context"))
        self.assert_error(post(SEARCH, {**base, "context": {"min_revision": revision + 10_000_000}}), 400,
                          "FAILED_PRECONDITION", "min_revision", what="search min_revision far ahead")


# ==========================================================================
# PDP metadata


class Metadata(AuthzenCase):
    def test_document(self) -> None:
        resp = request("GET", METADATA, auth=False)
        doc = self.json_ok(resp, "metadata")
        _, _, authority = _url_authority()
        pdp = "http://" + authority
        self.assertEqual(doc, {
            "policy_decision_point": pdp,
            "access_evaluation_endpoint": pdp + EVALUATION,
            "access_evaluations_endpoint": pdp + EVALUATIONS,
            "search_resource_endpoint": pdp + SEARCH,
        }, "metadata document (no search_subject/search_action endpoints: permd has none)")

    def test_host_header(self) -> None:
        doc = self.json_ok(request("GET", METADATA, auth=False, headers={"Host": "pdp.internal:9999"}), "Host")
        self.assertEqual(doc.get("policy_decision_point"), "http://pdp.internal:9999", doc)
        self.assertEqual(doc.get("access_evaluation_endpoint"), "http://pdp.internal:9999" + EVALUATION, doc)
        doc = self.json_ok(request("GET", METADATA, auth=False, headers={"Host": "localhost"}), "Host without port")
        self.assertEqual(doc.get("policy_decision_point"), "http://localhost", doc)
        resp = request("GET", METADATA, auth=False, headers={"Host": "pdp internal/x"})
        self.assertEqual(resp.status_code, 400, "a Host that is not host[:port]: %s" % describe(resp))

    def test_endpoints_listed_work(self) -> None:
        doc = self.json_ok(request("GET", METADATA, auth=False), "metadata")
        d = self.json_ok(_session.post(doc["access_evaluation_endpoint"],
                                       data=json.dumps(evaluation("alice", "view", contact(1))),
                                       headers=_headers(None, "application/json", True), timeout=HTTP_TIMEOUT_S),
                         "access_evaluation_endpoint")
        self.assertIs(d.get("decision"), True, d)

    def test_methods(self) -> None:
        resp = request("POST", METADATA, data=b"{}", content_type="application/json")
        self.assert_error(resp, 405, "UNIMPLEMENTED", what="POST metadata")
        self.assertIn("GET", resp.headers.get("Allow", ""), "405 needs an Allow header: %r" % dict(resp.headers))


# ==========================================================================
# HTTP: content type, bodies, methods, paths, sizes


class Transport(AuthzenCase):
    def test_content_type(self) -> None:
        body = json.dumps(evaluation("alice", "view", contact(1))).encode()
        for ctype in (None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx"):
            with self.subTest(content_type=ctype):
                self.assert_error(post(EVALUATION, raw=body, content_type=ctype), 400, "INVALID_ARGUMENT",
                                  "application/json", what="Content-Type %r" % ctype)
        for ctype in ("application/json; charset=utf-8", "application/json;charset=UTF-8"):
            with self.subTest(content_type=ctype):
                d = self.json_ok(post(EVALUATION, raw=body, content_type=ctype), ctype)
                self.assertIs(d["decision"], True, d)
        self.assert_error(post(EVALUATIONS, raw=body, content_type="text/plain"), 400, "INVALID_ARGUMENT",
                          "application/json", what="evaluations, text/plain")
        self.assert_error(post(SEARCH, raw=body, content_type=None), 400, "INVALID_ARGUMENT",
                          "application/json", what="search, no Content-Type")

    def test_bad_bodies(self) -> None:
        cases = [
            ("empty body", b""),
            ("not JSON", b"subject=alice"),
            ("truncated JSON", b'{"subject": {"type": "user"'),
            ("an array", b"[]"),
            ("a string", b'"evaluation"'),
            ("null", b"null"),
            ("trailing garbage", json.dumps(evaluation("alice", "view", contact(1))).encode() + b" x"),
            ("invalid UTF-8", b'{"subject": {"type": "user", "id": "\xff\xfe"}}'),
            ("duplicate key", b'{"subject": {"type": "user", "id": "alice", "properties": {"tenant": "demo"}},'
                              b' "action": {"name": "view"}, "action": {"name": "edit"},'
                              b' "resource": {"type": "contacts", "id": "c0000000-0000-4000-8000-000000000001"}}'),
            ("duplicate key inside", b'{"subject": {"type": "user", "id": "alice", "id": "bob",'
                                     b' "properties": {"tenant": "demo"}}, "action": {"name": "view"},'
                                     b' "resource": {"type": "contacts", "id": "c0000000-0000-4000-8000-000000000001"}}'),
        ]
        for path in (EVALUATION, EVALUATIONS, SEARCH):
            for what, raw in cases:
                with self.subTest(path=path, body=what):
                    self.assert_error(post(path, raw=raw), 400, "INVALID_ARGUMENT", what="%s, %s" % (path, what))

    def test_methods(self) -> None:
        for path in (EVALUATION, EVALUATIONS, SEARCH):
            for method in ("GET", "PUT", "DELETE"):
                with self.subTest(path=path, method=method):
                    resp = request(method, path)
                    self.assert_error(resp, 405, "UNIMPLEMENTED", what="%s %s" % (method, path))
                    self.assertIn("POST", resp.headers.get("Allow", ""), "405 without Allow: POST: %r" % dict(resp.headers))

    def test_unknown_paths(self) -> None:
        for path in ("/access/v1/nothing", "/access/v1/search/subject", "/access/v1/search/action",
                     "/access/v2/evaluation", "/", "/access/v1/evaluation/extra"):
            with self.subTest(path=path):
                self.assert_error(post(path, evaluation("alice", "view", contact(1))), 404, "NOT_FOUND",
                                  EVALUATION, what="POST %s" % path)

    def test_body_at_the_limit_is_accepted(self) -> None:
        body = json.dumps(evaluation("alice", "view", contact(1))).encode()
        padded = body[:-1] + b" " * (BODY_LIMIT - len(body)) + b"}"
        self.assertEqual(len(padded), BODY_LIMIT)
        d = self.json_ok(post(EVALUATION, raw=padded), "a body of exactly 4 MiB")
        self.assertIs(d["decision"], True, d)

    def test_content_length_over_the_limit(self) -> None:
        """Content-Length above 4 MiB: 413 before the body is sent."""
        host, port, authority = _url_authority()
        head = ("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\nX-Request-ID: big-1\r\nConnection: close\r\n%s\r\n"
                % (EVALUATION, authority, BODY_LIMIT + 1, auth_line())).encode()
        status, headers, body = raw_exchange(host, port, [head], read_timeout=15.0,
                                             what="Content-Length %d with no body sent" % (BODY_LIMIT + 1))
        self.assertEqual(status, 413, "Content-Length over 4 MiB: HTTP %d %r" % (status, body[:300]))
        self.assert_raw_error(headers, body, 413, "RESOURCE_EXHAUSTED", "4194304")
        self.assertEqual(headers.get("x-request-id"), "big-1", "X-Request-ID not echoed on 413: %r" % headers)

    def test_chunked_body_over_the_limit(self) -> None:
        host, port, authority = _url_authority()
        head = ("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n%s\r\n" % (EVALUATION, authority, auth_line())).encode()
        chunk = b"[" + b" " * (64 * 1024 - 1)
        pieces = [head] + [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * ((BODY_LIMIT // len(chunk)) + 8) + [b"0\r\n\r\n"]
        status, headers, body = raw_exchange(host, port, pieces, read_timeout=30.0, what="chunked body over 4 MiB")
        self.assertEqual(status, 413, "a chunked body over 4 MiB: HTTP %d %r" % (status, body[:300]))
        self.assert_raw_error(headers, body, 413, "RESOURCE_EXHAUSTED")

    def test_chunked_body_is_accepted(self) -> None:
        body = json.dumps(evaluation("alice", "view", contact(1))).encode()
        gen = (body[i:i + 16] for i in range(0, len(body), 16))
        resp = _session.post(BASE + EVALUATION, data=gen, headers=_headers(None, "application/json", True),
                             timeout=HTTP_TIMEOUT_S)
        d = self.json_ok(resp, "chunked request body")
        self.assertIs(d["decision"], True, d)

    def assert_raw_error(self, headers: dict, body: bytes, status: int, code: str, *needles: str) -> None:
        self.assertEqual(headers.get("content-type", "").split(";")[0].strip().lower(), "application/json",
                         "error Content-Type: %r" % headers)
        err = json.loads(body).get("error", {})
        self.assertEqual((err.get("status"), err.get("code")), (status, code), "error body: %r" % body[:300])
        for n in needles:
            self.assertIn(n, err.get("message", ""), "error message should mention %r: %r" % (n, err))

    def test_keep_alive(self) -> None:
        """Several requests on one HTTP/1.1 connection, errors between them."""
        s = requests.Session()
        try:
            for i in range(5):
                r = s.post(BASE + EVALUATION, data=json.dumps(evaluation("alice", "view", contact(i))),
                           headers=_headers(None, "application/json", True), timeout=HTTP_TIMEOUT_S)
                self.assertEqual(r.status_code, 200, describe(r))
                r = s.post(BASE + EVALUATION, data=b"{", headers=_headers(None, "application/json", True),
                           timeout=HTTP_TIMEOUT_S)
                self.assertEqual(r.status_code, 400, describe(r))
        finally:
            s.close()

    ROUNDS_429 = 20

    @unittest.skipUnless(TEST_429, "set PERMD_AUTHZEN_TEST_429=1 with a server run with --max-concurrent-requests 1")
    def test_429_when_permits_are_busy(self) -> None:
        body = json.dumps(batch_for("user", "carol", "bulk_send_email", {}, ALL_CONTACTS)).encode()
        results: list[requests.Response] = []
        lock = threading.Lock()

        def worker() -> None:
            s = requests.Session()
            try:
                for _ in range(3):
                    r = s.post(BASE + EVALUATIONS, data=body, headers=_headers(None, "application/json", True),
                               timeout=HTTP_TIMEOUT_S)
                    with lock:
                        results.append(r)
            finally:
                s.close()

        # Whether two batches overlap on the one permit is up to timing: a
        # fast server can answer each before the next client (these threads
        # share one interpreter lock) has sent its body. Rounds go on until
        # one is refused, at most ROUNDS_429 rounds of 72.
        rounds = 0
        while rounds < self.ROUNDS_429 and not any(r.status_code == 429 for r in results):
            rounds += 1
            threads = [threading.Thread(target=worker) for _ in range(24)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
        codes = collections.Counter(r.status_code for r in results)
        self.assertEqual(set(codes) - {200, 429}, set(), "only 200 and 429 expected: %r" % codes)
        refused = [r for r in results if r.status_code == 429]
        self.assertTrue(refused, "%d rounds of 72 concurrent batches of 10,000 on one permit gave no 429: %r"
                        % (rounds, codes))
        self.assert_error(refused[0], 429, "RESOURCE_EXHAUSTED", "max_concurrent_requests", what="429")
        self.assertTrue(refused[0].headers.get("Retry-After"), "429 without Retry-After")

    def test_503_needs_a_database(self) -> None:
        self.skipTest("503 (no snapshot loaded yet) needs a database- or NATS-backed permd; the demo is loaded at start")


def auth_line() -> str:
    return ("Authorization: Bearer %s\r\n" % TOKEN) if TOKEN else ""


def raw_exchange(host: str, port: int, pieces: Iterable[bytes], read_timeout: float,
                 what: str) -> tuple[int, dict, bytes]:
    """Send `pieces` on a fresh connection (from a thread: the server may answer, and
    close, before it has read them all) while reading the response."""
    sock = socket.create_connection((host, port), timeout=10.0)
    sock.settimeout(read_timeout)
    pieces = list(pieces)

    def send() -> None:
        try:
            for p in pieces:
                sock.sendall(p)
        except OSError:
            pass  # the server answered and closed: expected for a refused body

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        resp = http.client.HTTPResponse(sock, method="POST")
        try:
            resp.begin()
            body = resp.read()
        except socket.timeout:
            raise AssertionError("%s: no response within %.0f s (did the server wait for the body?)"
                                 % (what, read_timeout)) from None
        except (ConnectionResetError, http.client.RemoteDisconnected) as e:
            raise AssertionError("%s: the connection was closed without a response (%s)" % (what, e)) from None
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, headers, body
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        sender.join(timeout=10)


# ==========================================================================
# X-Request-ID


class RequestIds(AuthzenCase):
    def test_echoed_everywhere(self) -> None:
        cases: list[tuple[str, Callable[[dict], requests.Response], int]] = [
            ("evaluation 200", lambda h: post(EVALUATION, evaluation("alice", "view", contact(1)), headers=h), 200),
            ("evaluations 200", lambda h: post(EVALUATIONS, batch_for("user", "alice", "view", {}, [contact(1)]), headers=h), 200),
            ("search 200", lambda h: post(SEARCH, {"subject": subject("alice"), "action": action("view"),
                                                  "resource": {"type": "contacts"}, "page": {"limit": 3}}, headers=h), 200),
            ("metadata 200", lambda h: request("GET", METADATA, headers=h, auth=False), 200),
            ("400", lambda h: post(EVALUATION, raw=b"{", headers=h), 400),
            ("404 path", lambda h: post("/access/v1/nothing", {}, headers=h), 404),
            ("405", lambda h: request("GET", EVALUATION, headers=h), 405),
            ("closed decision", lambda h: post(EVALUATION, evaluation("zed", "view", contact(1)), headers=h), 200),
        ]
        if TOKEN:
            cases.append(("401", lambda h: post(EVALUATION, evaluation("alice", "view", contact(1)), headers=h, auth=False), 401))
        for what, call, status in cases:
            for rid in ("bfe9eb29-ab87-4ca3-be83-a1d5d8305716", "req 42 / with spaces;and=odd:chars"):
                with self.subTest(case=what, request_id=rid):
                    resp = call({"X-Request-ID": rid})
                    self.assertEqual(resp.status_code, status, "%s: %s" % (what, describe(resp)))
                    self.assertEqual(resp.headers.get("X-Request-ID"), rid,
                                     "%s: X-Request-ID not echoed: %r" % (what, dict(resp.headers)))

    def test_absent_is_fine(self) -> None:
        d = self.json_ok(post(EVALUATION, evaluation("alice", "view", contact(1))), "no X-Request-ID")
        self.assertIs(d["decision"], True)


# ==========================================================================
# Authentication


class Authentication(AuthzenCase):
    def assert_401(self, resp: requests.Response, what: str) -> None:
        self.assert_error(resp, 401, "UNAUTHENTICATED", what=what)
        self.assertTrue(resp.headers.get("WWW-Authenticate", "").lower().startswith("bearer"),
                        "%s: 401 needs WWW-Authenticate: Bearer …: %r" % (what, dict(resp.headers)))

    @unittest.skipUnless(TOKEN, "PERMD_API_TOKEN not set: the server runs without --api-token")
    def test_token_required(self) -> None:
        ev = evaluation("alice", "view", contact(1))
        for path, body in ((EVALUATION, ev), (EVALUATIONS, batch_for("user", "alice", "view", {}, [contact(1)])),
                           (SEARCH, {"subject": subject("alice"), "action": action("view"), "resource": {"type": "contacts"}})):
            for what, headers in [
                ("no Authorization", {}),
                ("a wrong token", {"Authorization": "Bearer " + TOKEN + "x"}),
                ("a token prefix", {"Authorization": "Bearer " + TOKEN[:-1]}),
                ("Basic scheme", {"Authorization": "Basic " + TOKEN}),
                ("token without scheme", {"Authorization": TOKEN}),
                ("empty bearer", {"Authorization": "Bearer "}),
            ]:
                with self.subTest(path=path, case=what):
                    self.assert_401(post(path, body, headers=headers, auth=False), "%s %s" % (path, what))
        # Checked before anything else: a broken request without a token is a 401.
        self.assert_401(post(EVALUATION, raw=b"{", auth=False), "malformed JSON without a token")
        self.assert_401(post(EVALUATION, raw=b"{}", content_type="text/plain", auth=False), "bad Content-Type without a token")
        self.assert_401(post("/access/v1/nothing", {}, auth=False), "unknown path without a token")

    @unittest.skipUnless(TOKEN, "PERMD_API_TOKEN not set: the server runs without --api-token")
    def test_token_accepted(self) -> None:
        for scheme in ("Bearer", "bearer", "BEARER"):
            with self.subTest(scheme=scheme):
                d = self.json_ok(post(EVALUATION, evaluation("alice", "view", contact(1)),
                                      headers={"Authorization": "%s %s" % (scheme, TOKEN)}, auth=False), scheme)
                self.assertIs(d["decision"], True, d)

    def test_metadata_is_open(self) -> None:
        self.json_ok(request("GET", METADATA, auth=False), "metadata without a token")

    @unittest.skipIf(TOKEN, "the server runs with --api-token")
    def test_no_token_configured_ignores_authorization(self) -> None:
        d = self.json_ok(post(EVALUATION, evaluation("alice", "view", contact(1)),
                              headers={"Authorization": "Bearer whatever"}), "Authorization ignored")
        self.assertIs(d["decision"], True, d)
        d = self.json_ok(post(EVALUATION, evaluation("alice", "view", contact(1)), auth=False), "no Authorization")
        self.assertIs(d["decision"], True, d)


# ==========================================================================


def setUpModule() -> None:
    missing = [name for name, value in (("PERMD_AUTHZEN_URL", BASE), ("PERMD_ADDR", GRPC_ADDR)) if not value]
    if missing:
        raise RuntimeError("set %s (see the runner note at the top of %s)" % (" and ".join(missing), __file__))
    deadline = time.monotonic() + 10.0
    while True:
        try:
            request("GET", METADATA, auth=False)
            break
        except requests.ConnectionError as e:
            if time.monotonic() > deadline:
                raise RuntimeError("no AuthZEN listener at %s: %s" % (BASE, e)) from None
            time.sleep(0.2)
    try:
        grpc_client().wait_ready(10.0)
    except Exception as e:  # noqa: BLE001
        raise RuntimeError("no permd gRPC at %s: %s" % (GRPC_ADDR, e)) from None


def tearDownModule() -> None:
    _session.close()
    if _client is not None:
        _client.close()


if __name__ == "__main__":
    unittest.main()
