"""permd-client: a typed Python client of permd, the gRPC authorization sidecar.

    from permd_client import Client

    with Client("127.0.0.1:50051") as permd:
        answer = permd.batch_check("demo", "user:carol", "bulk_send_email", ids)
        print(len(answer.allowed), answer.counts)

The generated permd.v1 stubs ship with the package: ``authorizer_pb2``,
``authorizer_pb2_grpc``, ``admin_pb2`` and ``admin_pb2_grpc`` are importable
from here (or as ``permd_client._gen.permd.v1.*``, where generate.sh puts them).
"""

from permd_client._client import (
    DEFAULT_MAX_CACHED_HANDLES,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_TIMEOUT_S,
    Answer,
    Client,
    PermdError,
    decode_allowed,
    pack_ids,
    principal,
)
from permd_client._gen.permd.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    authorizer_pb2,
    authorizer_pb2_grpc,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_CACHED_HANDLES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_TIMEOUT_S",
    "Answer",
    "Client",
    "PermdError",
    "admin_pb2",
    "admin_pb2_grpc",
    "authorizer_pb2",
    "authorizer_pb2_grpc",
    "decode_allowed",
    "pack_ids",
    "principal",
    "__version__",
]
