"""Tests of permd_client against a real permd serving its built-in demo tenant.

    PERMD_BIN=/path/to/permd python3 -m unittest discover -s clients/python/tests -v

The server is started once per run on an ephemeral loopback port
(127.0.0.1:0; the port is read from its JSON log), with an admin token, and
is killed at the end. Every wait is bounded. With PERMD_SERVER_PIDFILE set,
the server's pid is written to that file while it runs (ci.sh kills it
should this run die before tearDownModule).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
import unittest
import uuid
from typing import Any

import grpc

import permd_client
from permd_client import Answer, Client, PermdError, admin_pb2, authorizer_pb2

ADMIN_TOKEN = "python-client-test-token"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
# permd waits at most this long for a min_revision it has not reached.
MIN_REVISION_WAIT = "1s"


def demo_contact_id(n: int) -> str:
    """Id of the n-th demo Contact (src/source/demo.rs `contact_id`)."""
    return "c0000000-0000-4000-8000-%012x" % n


class PermdServer:
    """`permd serve` (demo tenant) on 127.0.0.1:<ephemeral>."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.proc: subprocess.Popen[str] | None = None
        self.pidfile = ""
        self.addr = ""
        self.log: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self) -> None:
        # Only our flags: no PERMD_* setting (a config file, a listen
        # address, a database) from the environment leaks in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PERMD_")}
        env["PERMD_ADMIN_TOKEN"] = ADMIN_TOKEN  # not on the command line
        env["RUST_LOG"] = "info"  # the 'permd serving' line carries the port
        self.proc = subprocess.Popen(
            [
                self.binary,
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--no-metrics",
                "--log-format",
                "json",
                "--max-min-revision-wait",
                MIN_REVISION_WAIT,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        # ci.sh kills this pid on exit, should this process die before
        # tearDownModule.
        self.pidfile = os.environ.get("PERMD_SERVER_PIDFILE", "")
        if self.pidfile:
            with open(self.pidfile, "w") as f:
                f.write("%d\n" % self.proc.pid)
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(
                    "permd exited (%s) before serving:\n%s" % (self.proc.wait(), "".join(self.log))
                )
            listen = _serving_addr(line)
            if listen:
                self.addr = listen
                return
        self.stop()
        raise AssertionError(
            "permd did not log 'permd serving' within %.0f s:\n%s" % (START_TIMEOUT_S, "".join(self.log))
        )

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self.pidfile and os.path.exists(self.pidfile):
            os.remove(self.pidfile)


def _serving_addr(line: str) -> str:
    """The listen address of permd's 'permd serving' JSON log line, or ''."""
    try:
        entry = json.loads(line)
    except ValueError:
        return ""
    fields = entry.get("fields", entry) if isinstance(entry, dict) else {}
    if fields.get("message") != "permd serving":
        return ""
    return str(fields.get("listen", ""))


SERVER: PermdServer | None = None


def setUpModule() -> None:
    global SERVER
    binary = os.environ.get("PERMD_BIN", "")
    if not binary:
        raise AssertionError("set PERMD_BIN to a permd binary (e.g. target/debug/permd)")
    if not os.access(binary, os.X_OK):
        raise AssertionError("PERMD_BIN=%s is not an executable file" % binary)
    SERVER = PermdServer(binary)
    SERVER.start()


def tearDownModule() -> None:
    if SERVER is not None:
        SERVER.stop()


class UnitTests(unittest.TestCase):
    """No server needed."""

    def test_pack_ids_is_16_big_endian_bytes_each(self) -> None:
        ids = [demo_contact_id(1), str(uuid.uuid4()), "C0000000-0000-4000-8000-0000000000FF"]
        packed = permd_client.pack_ids(ids)
        self.assertEqual(len(packed), 48)
        self.assertEqual([uuid.UUID(bytes=packed[i : i + 16]) for i in (0, 16, 32)], [uuid.UUID(i) for i in ids])
        self.assertEqual(packed[:16], bytes.fromhex("c0000000000040008000000000000001"))

    def test_pack_ids_names_a_malformed_id(self) -> None:
        with self.assertRaises(PermdError) as caught:
            permd_client.pack_ids([demo_contact_id(0), "not-a-uuid"])
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("ids[1]", caught.exception.message)

    def test_decode_allowed_reads_bits_least_significant_first(self) -> None:
        self.assertEqual(permd_client.decode_allowed(bytes([0b0000_0101, 0b1000_0001]), 16), [0, 2, 8, 15])
        # Bits past `count` are ignored.
        self.assertEqual(permd_client.decode_allowed(bytes([0xFF]), 3), [0, 1, 2])
        self.assertEqual(permd_client.decode_allowed(b"", 0), [])

    def test_packed_denials_read_as_the_denials_messages(self) -> None:
        from permd_client._client import _denials

        R = authorizer_pb2
        entries = [(0, R.ARCHIVED), (3, R.UNKNOWN_RECORD), (70000, R.NO_EMAIL), (9, 200)]
        plain = R.BatchCheckResponse()
        for p, r in entries:
            plain.denials.add(position=p).reason = r  # type: ignore[assignment]  # 200: newer than the stubs
        packed = R.BatchCheckResponse()
        packed.packed_denials.positions = b"".join(p.to_bytes(4, "little") for p, _ in entries)
        packed.packed_denials.reasons = bytes(r for _, r in entries)
        self.assertEqual(_denials(packed), _denials(plain))
        self.assertEqual(_denials(packed)[2], (70000, "NO_EMAIL"))
        self.assertEqual(_denials(packed)[3], (9, "REASON_200"))  # newer than these stubs
        packed.packed_denials.reasons = b"\x01"
        with self.assertRaises(PermdError) as caught:
            _denials(packed)
        self.assertEqual(caught.exception.code, grpc.StatusCode.INTERNAL)

    def test_principal_forms(self) -> None:
        P = authorizer_pb2.Principal
        self.assertEqual(permd_client.principal("user:carol"), P(kind=P.USER, id="carol"))
        self.assertEqual(permd_client.principal("carol"), P(kind=P.USER, id="carol"))
        self.assertEqual(permd_client.principal("integration:k1"), P(kind=P.INTEGRATION, id="k1"))
        self.assertEqual(permd_client.principal("AUTOMATION:a:b"), P(kind=P.AUTOMATION, id="a:b"))
        with self.assertRaises(PermdError) as caught:
            permd_client.principal("robot:r2")
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)

    def test_stubs_are_the_packaged_ones(self) -> None:
        self.assertTrue(authorizer_pb2.__name__.startswith("permd_client._gen."))
        self.assertEqual(authorizer_pb2.DESCRIPTOR.package, "permd.v1")
        self.assertEqual(permd_client.__version__, "0.1.0")


class AgainstPermd(unittest.TestCase):
    client: Client
    ids: list[str]

    @classmethod
    def setUpClass(cls) -> None:
        assert SERVER is not None
        cls.client = Client(SERVER.addr, timeout=30.0)
        cls.client.wait_ready(timeout=30.0)
        cls.ids = [demo_contact_id(n) for n in range(1000)]

    @classmethod
    def tearDownClass(cls) -> None:
        cls.client.close()

    def ask(self, **kw: object) -> Answer:
        args: dict[str, object] = dict(
            tenant="demo", principal="user:carol", action="bulk_send_email", ids=self.ids
        )
        args.update(kw)
        return self.client.batch_check(**args)  # type: ignore[arg-type]

    def test_health(self) -> None:
        self.assertEqual(self.client.health(), "SERVING")
        self.assertEqual(self.client.health("permd.v1.Authorizer"), "SERVING")

    def test_packed_and_string_ids_give_the_same_answer(self) -> None:
        packed = self.ask(packed=True)
        strings = self.ask(packed=False)
        self.assertEqual(packed, strings)
        self.assertEqual(packed.mask, strings.mask)
        self.assertEqual(packed.denials, strings.denials)
        # A mixed answer, so the comparison means something.
        self.assertGreater(len(packed.allowed), 0)
        self.assertGreater(len(packed.reasons), 0)

    def test_counts_add_up(self) -> None:
        answer = self.ask()
        self.assertEqual(len(answer.allowed), answer.allowed_count)
        self.assertEqual(len(answer.allowed) + len(answer.reasons), len(self.ids))
        self.assertEqual(answer.denied_count, len(answer.reasons))
        self.assertEqual(sum(answer.counts.values()), len(answer.reasons))
        self.assertEqual(set(answer.allowed) & set(answer.reasons), set())
        self.assertEqual(set(answer.allowed) | set(answer.reasons), set(self.ids))
        # The bitmask and the denials agree position by position.
        denied_positions = {p for p, _ in answer.denials}
        for i in range(len(self.ids)):
            self.assertNotEqual(answer.is_allowed(i), i in denied_positions, i)
        # Allowed ids come in request order.
        self.assertEqual(answer.allowed, sorted(answer.allowed, key=self.ids.index))

    def test_denial_reasons_are_named(self) -> None:
        answer = self.ask()
        names = {r.name for r in authorizer_pb2.Reason.DESCRIPTOR.values} - {"REASON_UNSPECIFIED"}
        self.assertTrue(answer.counts)
        self.assertLessEqual(set(answer.counts), names)
        self.assertLessEqual(set(answer.reasons.values()), names)
        # bulk_send_email on demo Contacts: some have no email / are suppressed / ...
        self.assertTrue(
            set(answer.counts) & {"NO_EMAIL", "SUPPRESSED", "UNSUBSCRIBED", "NO_RECORD_ACCESS"},
            answer.counts,
        )

    def test_field_mask_and_revision(self) -> None:
        answer = self.ask(action="view")
        self.assertTrue(answer.field_mask, "view on contacts: some fields")
        self.assertLessEqual(set(answer.field_mask.values()), {"NONE", "VIEW", "EDIT"})
        self.assertGreaterEqual(answer.revision, 1)

    def test_an_empty_batch(self) -> None:
        for packed in (True, False):
            answer = self.ask(ids=[], packed=packed)
            self.assertEqual((answer.allowed, answer.reasons, answer.counts), ([], {}, {}))

    def test_min_revision(self) -> None:
        revision = self.ask().revision
        self.assertEqual(self.ask(min_revision=0).revision, revision)
        self.assertEqual(self.ask(min_revision=None).revision, revision)
        self.assertEqual(self.ask(min_revision=revision).revision, revision)
        # Far ahead: refused at once (more than max_revision_lead ahead).
        started = time.monotonic()
        with self.assertRaises(PermdError) as caught:
            self.ask(min_revision=revision + 10**12)
        self.assertEqual(caught.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("min_revision", caught.exception.message)
        self.assertLess(time.monotonic() - started, 5.0, "refused without waiting")
        # Just ahead: permd waits (at most --max-min-revision-wait), then refuses.
        with self.assertRaises(PermdError) as caught:
            self.ask(min_revision=revision + 1, timeout=20.0)
        self.assertEqual(caught.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("not reached", caught.exception.message)

    def test_record_handles_are_cached_sent_and_renewed(self) -> None:
        sent: list[str] = []
        with Client(SERVER.addr if SERVER else "", timeout=30.0, record_handles=True) as caching:
            call = caching.stub.BatchCheck

            def recording(req: authorizer_pb2.BatchCheckRequest, **kw: Any) -> Any:
                sent.append(str(req.WhichOneof("records")))
                return call(req, **kw)

            caching.stub.BatchCheck = recording
            expected = self.ask()
            ask = dict(tenant="demo", principal="user:carol", action="bulk_send_email")
            first = caching.batch_check(ids=self.ids, **ask)  # type: ignore[arg-type]
            second = caching.batch_check(ids=self.ids, **ask)  # type: ignore[arg-type]
            self.assertEqual(sent, ["packed_record_ids", "record_handles"])
            self.assertEqual(first, expected)
            self.assertEqual(second, expected)
            # A mixed answer, so the comparison means something.
            self.assertGreater(len(expected.allowed), 0)
            self.assertGreater(len(expected.reasons), 0)
            # A subset, reordered, and an id permd never saw: answered alike.
            some = list(reversed(self.ids[:300]))
            unseen = [*some, "c0000000-0000-4000-8000-00000fffffff"]
            for ids, form in ((some, "record_handles"), (unseen, "packed_record_ids")):
                sent.clear()
                got = caching.batch_check(ids=ids, **ask)  # type: ignore[arg-type]
                self.assertEqual(got, self.ask(ids=ids))
                self.assertEqual(sent, [form])
            # Handles permd did not give out (as after its restart): refused,
            # forgotten, the ids sent again, the same answer.
            handles = caching._handles
            assert handles is not None
            space, table = handles.by_object[("demo", "contacts")]
            handles.by_object[("demo", "contacts")] = (space ^ 1, table)
            sent.clear()
            self.assertEqual(caching.batch_check(ids=self.ids, **ask), expected)  # type: ignore[arg-type]
            self.assertEqual(sent, ["record_handles", "packed_record_ids"])
            self.assertEqual(handles.by_object[("demo", "contacts")][0], space)
            # Another refusal is not retried.
            with self.assertRaises(PermdError) as caught:
                caching.batch_check(ids=self.ids, tenant="demo", principal="user:nobody", action="view")
            self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)
        # The cache is bounded: past the bound it starts again.
        with Client(SERVER.addr if SERVER else "", timeout=30.0, record_handles=True, max_cached_handles=500) as small:
            small.batch_check(ids=self.ids[:400], **ask)  # type: ignore[arg-type]
            small.batch_check(ids=self.ids[400:800], **ask)  # type: ignore[arg-type]
            assert small._handles is not None
            self.assertEqual(len(small._handles.by_object[("demo", "contacts")][1]), 400)
        with self.assertRaises(ValueError):
            Client("127.0.0.1:1", record_handles=True, max_cached_handles=0)

    def test_unknown_tenant_is_not_found(self) -> None:
        with self.assertRaises(PermdError) as caught:
            self.ask(tenant="no-such-tenant")
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertTrue(caught.exception.message)
        self.assertTrue(str(caught.exception).startswith("NOT_FOUND: "))

    def test_unknown_principal_is_not_found(self) -> None:
        with self.assertRaises(PermdError) as caught:
            self.ask(principal="user:nobody-at-all")
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)

    def test_bad_principal_is_invalid_argument(self) -> None:
        # An empty id: refused by permd.
        with self.assertRaises(PermdError) as caught:
            self.ask(principal="user:")
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("principal", caught.exception.message)
        # An unknown kind: refused before sending.
        with self.assertRaises(PermdError) as caught:
            self.ask(principal="robot:r2")
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)

    def test_malformed_id_is_invalid_argument_in_both_forms(self) -> None:
        ids = self.ids[:3] + ["not-a-uuid"]
        for packed in (True, False):
            with self.assertRaises(PermdError) as caught:
                self.ask(ids=ids, packed=packed)
            self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT, packed)
            self.assertIn("ids[3]", caught.exception.message)
            self.assertIn("is not a UUID", caught.exception.message)

    def test_raw_stub(self) -> None:
        resp = self.client.stub.Check(
            authorizer_pb2.CheckRequest(
                tenant="demo",
                principal=permd_client.principal("user:carol"),
                object="contacts",
                action="view",
                record_id=demo_contact_id(1),
            ),
            timeout=30.0,
        )
        answer = self.ask(action="view", ids=[demo_contact_id(1)])
        self.assertEqual(resp.allowed, answer.allowed == [demo_contact_id(1)])
        self.assertEqual(resp.revision, answer.revision)

    def test_token_is_sent_on_raw_stub_calls(self) -> None:
        assert SERVER is not None
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.admin.Revision(admin_pb2.RevisionRequest(), timeout=30.0)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        with Client(SERVER.addr, token="wrong") as wrong:
            with self.assertRaises(grpc.RpcError) as caught:
                wrong.admin.Revision(admin_pb2.RevisionRequest(), timeout=30.0)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        with Client(SERVER.addr, token=ADMIN_TOKEN) as admin:
            resp = admin.admin.Revision(admin_pb2.RevisionRequest(), timeout=30.0)
            self.assertEqual(resp.revision, self.ask().revision)
            # The Authorizer answers with the header too.
            self.assertEqual(admin.batch_check("demo", "carol", "bulk_send_email", self.ids), self.ask())

    def test_context_manager_closes(self) -> None:
        assert SERVER is not None
        with Client(SERVER.addr) as c:
            self.assertEqual(c.health(), "SERVING")
        with self.assertRaises(Exception):
            c.health()

    def test_unreachable_is_unavailable(self) -> None:
        # A port nothing listens on: bind one, then close it.
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with Client("127.0.0.1:%d" % port, timeout=2.0) as c:
            with self.assertRaises(PermdError) as caught:
                c.wait_ready(timeout=1.0)
            self.assertEqual(caught.exception.code, grpc.StatusCode.UNAVAILABLE)
            with self.assertRaises(PermdError) as caught:
                c.batch_check("demo", "carol", "view", self.ids[:1])
            self.assertIn(caught.exception.code, (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED))


if __name__ == "__main__":
    unittest.main()
