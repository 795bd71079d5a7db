"""The typed helper over the generated permd.v1 stubs."""

from __future__ import annotations

import collections
import struct
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from permd_client._gen.permd.v1 import admin_pb2_grpc, authorizer_pb2, authorizer_pb2_grpc

__all__ = [
    "DEFAULT_MAX_CACHED_HANDLES",
    "Answer",
    "Client",
    "PermdError",
    "decode_allowed",
    "pack_ids",
    "principal",
]

#: Default deadline of each call made through the helper, in seconds.
DEFAULT_TIMEOUT_S = 30.0
#: Default channel limits: a BatchCheck of 100,000 string ids is ~4 MiB, the
#: gRPC default receive limit.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_KINDS = {
    "user": authorizer_pb2.Principal.USER,
    "integration": authorizer_pb2.Principal.INTEGRATION,
    "automation": authorizer_pb2.Principal.AUTOMATION,
}

#: Default bound of a client's record-handle cache, handles per object.
DEFAULT_MAX_CACHED_HANDLES = 2_000_000
#: The handle permd returns for an id it has never seen: not cached.
_NO_HANDLE = 0xFFFFFFFF
#: How permd's FAILED_PRECONDITION for handles it did not give out begins.
_STALE_HANDLES = "record_handles were not given out"

PrincipalLike = Union[str, "authorizer_pb2.Principal"]
TlsLike = Union[None, bool, grpc.ChannelCredentials]


class PermdError(Exception):
    """A call refused by permd (or refused by this client before it was sent,
    for an argument that permd would refuse the same way).

    ``code`` is the :class:`grpc.StatusCode`, ``message`` permd's details.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__("%s: %s" % (code.name, message))
        self.code = code
        self.message = message

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "PermdError":
        # A grpc.RpcError raised by a call is also a grpc.Call.
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        return cls(code or grpc.StatusCode.UNKNOWN, details or "")


@dataclass(frozen=True)
class Answer:
    """permd's answer to one :meth:`Client.batch_check`.

    Ids are reported as they were passed in, in request order.
    """

    #: The allowed ids, decoded from the response's bitmask.
    allowed: list[str]
    #: For each denied id, the name of its reason (``"NO_EMAIL"``, ...).
    reasons: dict[str, str]
    #: How many ids were denied for each reason.
    counts: dict[str, int]
    #: The principal's field levels on the object (``"NONE"``, ``"VIEW"``,
    #: ``"EDIT"``); they apply to the allowed ids only.
    field_mask: dict[str, str]
    #: The data revision permd answered at (pass it as ``min_revision`` to
    #: read at least this fresh later).
    revision: int
    #: How many ids permd counted as allowed (``allowed_count`` of the response).
    allowed_count: int
    #: The raw bitmask: bit i (byte i // 8, bit i % 8, least significant
    #: first) is set iff the id at request position i is allowed.
    mask: bytes = field(repr=False)
    #: (position, reason name) for each denied position, in request order.
    denials: list[tuple[int, str]] = field(repr=False, default_factory=list)

    @property
    def denied_count(self) -> int:
        return len(self.denials)

    def is_allowed(self, position: int) -> bool:
        """Whether the id at request ``position`` is allowed."""
        byte = position // 8
        return 0 <= position and byte < len(self.mask) and bool(self.mask[byte] >> (position % 8) & 1)


def principal(value: PrincipalLike) -> "authorizer_pb2.Principal":
    """A ``permd.v1.Principal`` from ``"user:carol"``, ``"integration:key1"``,
    ``"automation:nightly"`` or a bare ``"carol"`` (a user). An id that holds
    a colon must be written with its kind: ``"user:a:b"``. A Principal
    message is returned as it is.

    An unknown kind raises :class:`PermdError` (INVALID_ARGUMENT); an empty id
    is sent as it is and permd refuses it with INVALID_ARGUMENT.
    """
    if isinstance(value, authorizer_pb2.Principal):
        return value
    if not isinstance(value, str):
        raise PermdError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "principal must be a string like 'user:carol' or a permd.v1.Principal, not %s"
            % type(value).__name__,
        )
    kind, sep, ident = value.partition(":")
    if not sep:
        return authorizer_pb2.Principal(kind=authorizer_pb2.Principal.USER, id=value)
    try:
        return authorizer_pb2.Principal(kind=_KINDS[kind.lower()], id=ident)
    except KeyError:
        raise PermdError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "principal %r: kind %r is unknown; use user:, integration: or automation:"
            % (value[:100], kind[:100]),
        ) from None


def _uuid_bytes(s: str, position: int) -> bytes:
    if isinstance(s, str) and len(s) == 36:
        try:
            b = bytes.fromhex(s.replace("-", ""))
            if len(b) == 16 and s[8] == s[13] == s[18] == s[23] == "-":
                return b
        except ValueError:
            pass
    try:
        return uuid.UUID(s).bytes
    except (ValueError, TypeError, AttributeError):
        raise PermdError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "ids[%d]: %r is not a UUID" % (position, str(s)[:100]),
        ) from None


def pack_ids(ids: Iterable[str]) -> bytes:
    """The ``PackedIds`` form of UUID strings: 16 bytes each (RFC 4122 byte
    order), concatenated. A malformed id raises :class:`PermdError`
    (INVALID_ARGUMENT), naming its position, as permd would."""
    return b"".join(_uuid_bytes(s, i) for i, s in enumerate(ids))


def decode_allowed(mask: bytes, count: int) -> list[int]:
    """The allowed positions among ``count`` in a BatchCheck bitmask: bit i is
    byte i // 8, bit i % 8, least significant first."""
    positions = []
    for byte_index, byte in enumerate(mask[: (count + 7) // 8]):
        if not byte:
            continue
        base = byte_index * 8
        for bit in range(8):
            if byte >> bit & 1 and base + bit < count:
                positions.append(base + bit)
    return positions


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    try:
        return str(enum.Name(value))
    except ValueError:  # a value newer than these stubs
        return "%s_%d" % (prefix, value)


class _CallDetails(grpc.ClientCallDetails):
    """A call's details with metadata added (grpc.ClientCallDetails is abstract)."""

    def __init__(self, details: grpc.ClientCallDetails, extra: Sequence[tuple[str, str]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = (*(details.metadata or ()), *extra)
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class _MetadataInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds fixed metadata (the bearer token) to every call on the channel,
    including calls made through the raw stubs."""

    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self._metadata = list(metadata)

    def _details(self, details: grpc.ClientCallDetails) -> _CallDetails:
        return _CallDetails(details, self._metadata)

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


class _Handles:
    """The record handles one permd gave for ids, per (tenant, object), with
    the handle space they belong to."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.by_object: dict[tuple[str, str], tuple[int, dict[str, int]]] = {}

    def packed(self, tenant: str, object: str, ids: Sequence[str]) -> Optional[tuple[int, bytes]]:
        """The space and packed handles of ``ids``, if every one has a handle."""
        entry = self.by_object.get((tenant, object))
        if entry is None or not ids:
            return None
        space, table = entry
        try:
            ordinals = [table[i] for i in ids]
        except KeyError:
            return None
        return space, struct.pack("<%dI" % len(ordinals), *ordinals)

    def learn(
        self, tenant: str, object: str, ids: Sequence[str], handles: "authorizer_pb2.RecordHandles"
    ) -> None:
        raw = bytes(handles.ordinals)
        if len(raw) != 4 * len(ids):
            raise PermdError(
                grpc.StatusCode.INTERNAL,
                "handles: %d bytes for %d ids" % (len(raw), len(ids)),
            )
        key = (tenant, object)
        space, table = self.by_object.get(key, (handles.space, {}))
        if space != handles.space or len(table) + len(ids) > self.limit:
            # Another index (a restart, a reload): the old handles are void.
            # Or the cache is full: it starts again from this batch.
            table = {}
        for i, ordinal in zip(ids, struct.unpack("<%dI" % len(ids), raw)):
            if ordinal != _NO_HANDLE:
                table[i] = ordinal
        self.by_object[key] = (handles.space, table)

    def forget(self, tenant: str, object: str) -> None:
        self.by_object.pop((tenant, object), None)


class Client:
    """A connection to one permd.

    >>> with Client("127.0.0.1:50051") as permd:
    ...     answer = permd.batch_check("demo", "user:carol", "view", ids)

    ``tls``: ``None``/``False`` for plaintext, ``True`` for TLS with the
    system's roots, or a :class:`grpc.ChannelCredentials` (e.g. from
    ``grpc.ssl_channel_credentials(root_certificates=..., private_key=...,
    certificate_chain=...)`` for a CA of your own or mutual TLS).

    ``token`` is sent as ``authorization: Bearer <token>`` on every call,
    also those made through :attr:`stub` and :attr:`admin` (the Admin service
    needs it). ``timeout`` is the deadline of each call the helper makes, in
    seconds (``None``: no deadline). ``options`` are extra gRPC channel
    options, added after the defaults (64 MiB message limits).

    ``record_handles``: remember the handle permd gives each id (per tenant
    and object, at most ``max_cached_handles`` per object) and, when every
    id of a batch has one, send the handles instead of the ids: permd skips
    finding each id, most of its work per record on a large object, and the
    request is 4 bytes per record instead of 16. Handles are valid only for
    the permd that gave them and only while it keeps the object's index;
    when permd refuses them (a restart, a reload, or ``addr`` reaching
    another permd), the client forgets them and sends the ids again, so
    answers are the same either way. Point a caching client at one permd
    (its sidecar), not at a load balancer in front of several.

    Connecting is lazy: the first call connects; :meth:`wait_ready` waits.
    """

    def __init__(
        self,
        addr: str,
        tls: TlsLike = None,
        token: Optional[str] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT_S,
        options: Sequence[tuple[str, Any]] = (),
        record_handles: bool = False,
        max_cached_handles: int = DEFAULT_MAX_CACHED_HANDLES,
    ) -> None:
        self.addr = addr
        self.timeout = timeout
        if max_cached_handles < 1:
            raise ValueError("max_cached_handles must be at least 1, not %d" % max_cached_handles)
        self._handles: Optional[_Handles] = _Handles(max_cached_handles) if record_handles else None
        channel_options = [
            ("grpc.max_send_message_length", DEFAULT_MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", DEFAULT_MAX_MESSAGE_BYTES),
            *options,
        ]
        if tls is None or tls is False:
            self._raw_channel = grpc.insecure_channel(addr, options=channel_options)
        elif tls is True:
            self._raw_channel = grpc.secure_channel(
                addr, grpc.ssl_channel_credentials(), options=channel_options
            )
        elif isinstance(tls, grpc.ChannelCredentials):
            self._raw_channel = grpc.secure_channel(addr, tls, options=channel_options)
        else:
            raise TypeError("tls must be None, a bool or grpc.ChannelCredentials, not %s" % type(tls).__name__)
        channel: grpc.Channel = self._raw_channel
        if token is not None:
            if not token:
                raise ValueError("token is empty; pass None to send no authorization header")
            channel = grpc.intercept_channel(
                channel, _MetadataInterceptor([("authorization", "Bearer " + token)])
            )
        #: The gRPC channel (with the token interceptor, if any).
        self.channel: grpc.Channel = channel
        #: The raw ``permd.v1.Authorizer`` stub, for the calls the helper does not wrap.
        self.stub = authorizer_pb2_grpc.AuthorizerStub(channel)
        #: The raw ``permd.v1.Admin`` stub (needs ``token``).
        self.admin = admin_pb2_grpc.AdminStub(channel)
        # Any: typeshed's HealthStub declares no methods.
        self._health: Any = health_pb2_grpc.HealthStub(channel)

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        self._raw_channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def wait_ready(self, timeout: Optional[float] = None) -> None:
        """Waits until the channel is connected; raises :class:`PermdError`
        (UNAVAILABLE) after ``timeout`` seconds (default: the client's)."""
        timeout = self.timeout if timeout is None else timeout
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise PermdError(
                grpc.StatusCode.UNAVAILABLE,
                "permd not reachable at %s within %s s" % (self.addr, timeout),
            ) from None

    # -- calls -------------------------------------------------------------

    def health(self, service: str = "", timeout: Optional[float] = None) -> str:
        """The ``grpc.health.v1`` status of ``service`` ("" for the server,
        or e.g. "permd.v1.Authorizer"): ``"SERVING"``, ``"NOT_SERVING"``, ..."""
        try:
            resp = self._health.Check(
                health_pb2.HealthCheckRequest(service=service),
                timeout=self._timeout(timeout),
            )
        except grpc.RpcError as e:
            raise PermdError.from_rpc_error(e) from None
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))

    def batch_check(
        self,
        tenant: str,
        principal: PrincipalLike,
        action: str,
        ids: Sequence[str],
        packed: bool = True,
        min_revision: Optional[int] = None,
        object: str = "contacts",
        context: Optional["authorizer_pb2.ActionContext"] = None,
        timeout: Optional[float] = None,
    ) -> Answer:
        """May ``principal`` do ``action`` on each record of ``object`` in ``ids``?

        ``ids`` are UUID strings; with ``packed`` they travel as 16 bytes
        each (``PackedIds``), else as strings. ``min_revision``: refuse to
        answer from data older than that revision (FAILED_PRECONDITION when
        permd does not reach it in time). ``context`` is a
        ``permd.v1.ActionContext`` for the actions that need one (e.g. the
        channel of ``send_single_message``).

        Raises :class:`PermdError` with permd's code: NOT_FOUND for an unknown
        tenant or principal, INVALID_ARGUMENT for a malformed request, ...
        """
        ids = list(ids)
        req = authorizer_pb2.BatchCheckRequest(
            tenant=tenant,
            principal=_principal(principal),
            object=object,
            action=action,
            min_revision=min_revision or 0,
            # Denials as two byte arrays, not one message each: a fifth of a
            # bulk action's positions are denied, and decoding 2,000
            # messages in Python costs more than the call.
            packed_denials=True,
        )
        if context is not None:
            req.context.CopyFrom(context)
        handles = self._handles
        cached = handles.packed(tenant, object, ids) if handles is not None else None
        if handles is not None and cached is not None:
            req.record_handles.space, req.record_handles.ordinals = cached
            try:
                return _answer(ids, self.stub.BatchCheck(req, timeout=self._timeout(timeout)))
            except grpc.RpcError as e:
                error = PermdError.from_rpc_error(e)
                if not (
                    error.code == grpc.StatusCode.FAILED_PRECONDITION
                    and error.message.startswith(_STALE_HANDLES)
                ):
                    raise error from None
            # This permd did not give them out (it restarted, reloaded the
            # tenant, or is another permd): the ids again, for new handles.
            handles.forget(tenant, object)
        if packed:
            req.packed_record_ids.SetInParent()
            req.packed_record_ids.uuids = pack_ids(ids)
        else:
            req.record_ids.SetInParent()
            req.record_ids.ids.extend(ids)
        req.return_handles = handles is not None
        try:
            resp = self.stub.BatchCheck(req, timeout=self._timeout(timeout))
        except grpc.RpcError as e:
            raise PermdError.from_rpc_error(e) from None
        if handles is not None and resp.HasField("handles"):
            handles.learn(tenant, object, ids, resp.handles)
        return _answer(ids, resp)

    def _timeout(self, timeout: Optional[float]) -> Optional[float]:
        return self.timeout if timeout is None else timeout


def _principal(value: PrincipalLike) -> "authorizer_pb2.Principal":
    return principal(value)


def _denials(resp: "authorizer_pb2.BatchCheckResponse") -> list[tuple[int, str]]:
    """(position, reason name) per denied position, from the packed arrays
    (or from ``denials``, as a server older than ``packed_denials`` sends them)."""
    if not resp.HasField("packed_denials"):
        return [
            (d.position, _enum_name(authorizer_pb2.Reason, d.reason, "REASON"))
            for d in resp.denials
        ]
    positions = bytes(resp.packed_denials.positions)
    reasons = bytes(resp.packed_denials.reasons)
    if len(positions) != 4 * len(reasons):
        raise PermdError(
            grpc.StatusCode.INTERNAL,
            "packed_denials: %d position bytes for %d reasons" % (len(positions), len(reasons)),
        )
    names: dict[int, str] = {}
    out = []
    for position, reason in zip(struct.unpack("<%dI" % len(reasons), positions), reasons):
        name = names.get(reason)
        if name is None:
            name = names[reason] = _enum_name(authorizer_pb2.Reason, reason, "REASON")
        out.append((position, name))
    return out


def _answer(ids: Sequence[str], resp: "authorizer_pb2.BatchCheckResponse") -> Answer:
    mask = bytes(resp.allowed)
    denials = _denials(resp)
    reasons = {ids[p]: r for p, r in denials if p < len(ids)}
    counts: Mapping[str, int] = collections.Counter(r for _, r in denials)
    field_mask = {
        name: _enum_name(authorizer_pb2.FieldLevel, level, "LEVEL")
        for name, level in sorted(resp.field_mask.fields.items())
    }
    return Answer(
        allowed=[ids[p] for p in decode_allowed(mask, len(ids))],
        reasons=reasons,
        counts=dict(sorted(counts.items())),
        field_mask=field_mask,
        revision=resp.revision,
        allowed_count=resp.allowed_count,
        mask=mask,
        denials=denials,
    )
