from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WriteRequest(_message.Message):
    __slots__ = ("mutations",)
    MUTATIONS_FIELD_NUMBER: _ClassVar[int]
    mutations: _containers.RepeatedCompositeFieldContainer[Mutation]
    def __init__(self, mutations: _Optional[_Iterable[_Union[Mutation, _Mapping]]] = ...) -> None: ...

class Mutation(_message.Message):
    __slots__ = ("tenant", "entity", "upsert_json", "delete_key")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    UPSERT_JSON_FIELD_NUMBER: _ClassVar[int]
    DELETE_KEY_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    entity: str
    upsert_json: str
    delete_key: str
    def __init__(self, tenant: _Optional[str] = ..., entity: _Optional[str] = ..., upsert_json: _Optional[str] = ..., delete_key: _Optional[str] = ...) -> None: ...

class WriteResponse(_message.Message):
    __slots__ = ("revision", "mutations")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    MUTATIONS_FIELD_NUMBER: _ClassVar[int]
    revision: int
    mutations: int
    def __init__(self, revision: _Optional[int] = ..., mutations: _Optional[int] = ...) -> None: ...

class RevisionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RevisionResponse(_message.Message):
    __slots__ = ("revision", "database", "database_revision")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    DATABASE_REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    database: bool
    database_revision: int
    def __init__(self, revision: _Optional[int] = ..., database: _Optional[bool] = ..., database_revision: _Optional[int] = ...) -> None: ...
