#!/usr/bin/env python3
"""A small Python gRPC client of permd.

Uses the permd-client package (clients/python: the permd.v1 stubs ship
inside it, so nothing is generated at run time), lists the server's services
through server reflection, checks health, then asks one BatchCheck:
may `carol` bulk_send_email the first N Contacts of the built-in demo tenant?
It prints the allowed count and a histogram of the denial reasons.

    pip install -r examples/python/requirements.txt   # from the repository root
    permd serve &                       # the demo tenant on 127.0.0.1:50051
    python3 examples/python/client.py --count 10000
    python3 examples/python/client.py --count 10000 --json
"""

import argparse
import json
import os
import sys

import grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import permd_client
except ImportError:  # not installed: the package's source in this checkout
    sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..", "clients", "python")))
    import permd_client

SERVICE = "permd.v1.Authorizer"
RPC_TIMEOUT_S = 30.0


def demo_contact_id(n):
    """Id of the n-th demo Contact (src/source/demo.rs `contact_id`)."""
    return "c0000000-0000-4000-8000-%012x" % n


def list_services(channel):
    # grpcio-reflection's client speaks grpc.reflection.v1alpha.
    return sorted(ProtoReflectionDescriptorDatabase(channel).get_services())


def batch_check(client, args):
    ids = [demo_contact_id(n) for n in range(args.count)]
    answer = client.batch_check(
        args.tenant,
        args.principal,
        args.action,
        ids,
        packed=args.packed,
        object="contacts",
        timeout=RPC_TIMEOUT_S,
    )
    # Counted from the raw bitmask, independently of answer.allowed.
    allowed_bits = sum(1 for i in range(args.count) if answer.is_allowed(i))
    return {
        "count": args.count,
        "allowed_count": answer.allowed_count,
        "allowed_bits": allowed_bits,
        "denied_count": answer.denied_count,
        "denials": answer.counts,
        "revision": answer.revision,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addr", default="127.0.0.1:50051", help="host:port of permd")
    parser.add_argument("--count", type=int, default=10000, help="demo Contacts to check")
    parser.add_argument("--tenant", default="demo")
    parser.add_argument(
        "--principal",
        default="carol",
        help="a user id, or kind:id (user:carol, integration:key1, automation:nightly)",
    )
    parser.add_argument("--action", default="bulk_send_email")
    parser.add_argument("--packed", action="store_true", help="send 16-byte packed ids")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.count < 0:
        parser.error("--count must be at least 0")

    with permd_client.Client(args.addr, timeout=RPC_TIMEOUT_S) as client:
        try:
            client.wait_ready()
        except permd_client.PermdError:
            raise SystemExit("permd not reachable at %s" % args.addr)
        try:
            services = list_services(client.channel)
            status = client.health(SERVICE)
            result = batch_check(client, args)
        except permd_client.PermdError as e:
            raise SystemExit("permd refused: %s" % e)
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
