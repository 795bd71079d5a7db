#!/usr/bin/env python3
"""A small Python gRPC client of permd.

Generates the permd.v1 stubs from ../../proto at run time (into a temporary
directory, so nothing generated is committed), lists the server's services
through server reflection, checks health, then asks one BatchCheck:
may `carol` bulk_send_email the first N Contacts of the built-in demo tenant?
It prints the allowed count and a histogram of the denial reasons.

    pip install -r examples/python/requirements.txt
    permd serve &                       # the demo tenant on 127.0.0.1:50051
    python3 examples/python/client.py --count 10000
    python3 examples/python/client.py --count 10000 --json
"""

import argparse
import collections
import importlib
import json
import os
import sys
import tempfile

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTO_FILE = "permd/v1/authorizer.proto"
SERVICE = "permd.v1.Authorizer"
RPC_TIMEOUT_S = 30.0


def demo_contact_id(n):
    """Id of the n-th demo Contact (src/source/demo.rs `contact_id`)."""
    return "c0000000-0000-4000-8000-%012x" % n


def generate_stubs(out_dir):
    """Compiles authorizer.proto into out_dir and imports the modules."""
    well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = [
        "grpc_tools.protoc",
        "-I" + PROTO_ROOT,
        "-I" + well_known,
        "--python_out=" + out_dir,
        "--grpc_python_out=" + out_dir,
        PROTO_FILE,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed on %s" % os.path.join(PROTO_ROOT, PROTO_FILE))
    sys.path.insert(0, out_dir)
    pb2 = importlib.import_module("permd.v1.authorizer_pb2")
    pb2_grpc = importlib.import_module("permd.v1.authorizer_pb2_grpc")
    return pb2, pb2_grpc


def list_services(channel):
    # grpcio-reflection's client speaks grpc.reflection.v1alpha.
    return sorted(ProtoReflectionDescriptorDatabase(channel).get_services())


def health(channel, service):
    stub = health_pb2_grpc.HealthStub(channel)
    resp = stub.Check(
        health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT_S
    )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)


def batch_check(pb2, pb2_grpc, channel, args):
    ids = [demo_contact_id(n) for n in range(args.count)]
    req = pb2.BatchCheckRequest(
        tenant=args.tenant,
        principal=pb2.Principal(kind=pb2.Principal.USER, id=args.principal),
        object="contacts",
        action=args.action,
    )
    if args.packed:
        req.packed_record_ids.uuids = b"".join(bytes.fromhex(i.replace("-", "")) for i in ids)
    else:
        req.record_ids.ids.extend(ids)
    stub = pb2_grpc.AuthorizerStub(channel)
    resp = stub.BatchCheck(req, timeout=RPC_TIMEOUT_S)
    histogram = collections.Counter(pb2.Reason.Name(d.reason) for d in resp.denials)
    allowed_bits = sum(
        1 for i in range(args.count) if resp.allowed[i // 8] & (1 << (i % 8))
    )
    return {
        "count": args.count,
        "allowed_count": resp.allowed_count,
        "allowed_bits": allowed_bits,
        "denied_count": len(resp.denials),
        "denials": dict(sorted(histogram.items())),
        "revision": resp.revision,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addr", default="127.0.0.1:50051", help="host:port of permd")
    parser.add_argument("--count", type=int, default=10000, help="demo Contacts to check")
    parser.add_argument("--tenant", default="demo")
    parser.add_argument("--principal", default="carol", help="a user id")
    parser.add_argument("--action", default="bulk_send_email")
    parser.add_argument("--packed", action="store_true", help="send 16-byte packed ids")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.count < 0:
        parser.error("--count must be at least 0")

    with tempfile.TemporaryDirectory(prefix="permd-stubs-") as out_dir:
        pb2, pb2_grpc = generate_stubs(out_dir)
        options = [
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ]
        with grpc.insecure_channel(args.addr, options=options) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
            except grpc.FutureTimeoutError:
                raise SystemExit("permd not reachable at %s" % args.addr)
            try:
                services = list_services(channel)
                status = health(channel, SERVICE)
                result = batch_check(pb2, pb2_grpc, channel, args)
            except grpc.RpcError as e:
                raise SystemExit("permd refused: %s: %s" % (e.code().name, e.details()))

    report = {
        "services": services,
        "health": status,
        "tenant": args.tenant,
        "principal": args.principal,
        "action": args.action,
        **result,
    }
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return
    print("services (reflection v1alpha):")
    for s in services:
        print("  " + s)
    print("health of %s: %s" % (SERVICE, status))
    print(
        "%s %s on %d contacts of %s (revision %d): %d allowed, %d denied"
        % (
            args.principal,
            args.action,
            args.count,
            args.tenant,
            result["revision"],
            result["allowed_count"],
            result["denied_count"],
        )
    )
    for reason, n in sorted(result["denials"].items(), key=lambda kv: (-kv[1], kv[0])):
        print("  %-22s %6d" % (reason, n))


if __name__ == "__main__":
    main()
