from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    EMAIL: _ClassVar[Channel]
    TEXT: _ClassVar[Channel]

class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_UNSPECIFIED: _ClassVar[Reason]
    UNKNOWN_RECORD: _ClassVar[Reason]
    OBJECT_NOT_VISIBLE: _ClassVar[Reason]
    ARCHIVED: _ClassVar[Reason]
    NOT_ARCHIVED: _ClassVar[Reason]
    NO_RECORD_ACCESS: _ClassVar[Reason]
    ACTION_NOT_PERMITTED: _ClassVar[Reason]
    FIELD_RESTRICTED: _ClassVar[Reason]
    NO_EMAIL: _ClassVar[Reason]
    SUPPRESSED: _ClassVar[Reason]
    UNSUBSCRIBED: _ClassVar[Reason]
    OPTED_OUT_OF_LIST: _ClassVar[Reason]
    EMAIL_NOT_CONFIGURED: _ClassVar[Reason]
    SENDER_BLOCKED: _ClassVar[Reason]
    NO_MOBILE: _ClassVar[Reason]
    SMS_OPTED_OUT: _ClassVar[Reason]
    SMS_NOT_CONFIGURED: _ClassVar[Reason]
    SYSTEM_MANAGED: _ClassVar[Reason]
    SINGLE_RECORD_ONLY: _ClassVar[Reason]

class FieldLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NONE: _ClassVar[FieldLevel]
    VIEW: _ClassVar[FieldLevel]
    EDIT: _ClassVar[FieldLevel]
CHANNEL_UNSPECIFIED: Channel
EMAIL: Channel
TEXT: Channel
REASON_UNSPECIFIED: Reason
UNKNOWN_RECORD: Reason
OBJECT_NOT_VISIBLE: Reason
ARCHIVED: Reason
NOT_ARCHIVED: Reason
NO_RECORD_ACCESS: Reason
ACTION_NOT_PERMITTED: Reason
FIELD_RESTRICTED: Reason
NO_EMAIL: Reason
SUPPRESSED: Reason
UNSUBSCRIBED: Reason
OPTED_OUT_OF_LIST: Reason
EMAIL_NOT_CONFIGURED: Reason
SENDER_BLOCKED: Reason
NO_MOBILE: Reason
SMS_OPTED_OUT: Reason
SMS_NOT_CONFIGURED: Reason
SYSTEM_MANAGED: Reason
SINGLE_RECORD_ONLY: Reason
NONE: FieldLevel
VIEW: FieldLevel
EDIT: FieldLevel

class Principal(_message.Message):
    __slots__ = ("kind", "id")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Principal.Kind]
        USER: _ClassVar[Principal.Kind]
        INTEGRATION: _ClassVar[Principal.Kind]
        AUTOMATION: _ClassVar[Principal.Kind]
    KIND_UNSPECIFIED: Principal.Kind
    USER: Principal.Kind
    INTEGRATION: Principal.Kind
    AUTOMATION: Principal.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    kind: Principal.Kind
    id: str
    def __init__(self, kind: _Optional[_Union[Principal.Kind, str]] = ..., id: _Optional[str] = ...) -> None: ...

class ActionContext(_message.Message):
    __slots__ = ("channel", "transactional", "subscription_list", "fields", "target_email_status")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONAL_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_LIST_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    TARGET_EMAIL_STATUS_FIELD_NUMBER: _ClassVar[int]
    channel: Channel
    transactional: bool
    subscription_list: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    target_email_status: str
    def __init__(self, channel: _Optional[_Union[Channel, str]] = ..., transactional: _Optional[bool] = ..., subscription_list: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., target_email_status: _Optional[str] = ...) -> None: ...

class FieldMask(_message.Message):
    __slots__ = ("fields",)
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FieldLevel
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FieldLevel, str]] = ...) -> None: ...
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.ScalarMap[str, FieldLevel]
    def __init__(self, fields: _Optional[_Mapping[str, FieldLevel]] = ...) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("tenant", "principal", "object", "action", "record_id", "context", "min_revision")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    principal: Principal
    object: str
    action: str
    record_id: str
    context: ActionContext
    min_revision: int
    def __init__(self, tenant: _Optional[str] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ..., object: _Optional[str] = ..., action: _Optional[str] = ..., record_id: _Optional[str] = ..., context: _Optional[_Union[ActionContext, _Mapping]] = ..., min_revision: _Optional[int] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("allowed", "reason", "field_mask", "revision")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_MASK_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: Reason
    field_mask: FieldMask
    revision: int
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[_Union[Reason, str]] = ..., field_mask: _Optional[_Union[FieldMask, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class PackedIds(_message.Message):
    __slots__ = ("uuids",)
    UUIDS_FIELD_NUMBER: _ClassVar[int]
    uuids: bytes
    def __init__(self, uuids: _Optional[bytes] = ...) -> None: ...

class StringIds(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordHandles(_message.Message):
    __slots__ = ("space", "ordinals")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    ORDINALS_FIELD_NUMBER: _ClassVar[int]
    space: int
    ordinals: bytes
    def __init__(self, space: _Optional[int] = ..., ordinals: _Optional[bytes] = ...) -> None: ...

class BatchCheckRequest(_message.Message):
    __slots__ = ("tenant", "principal", "object", "action", "record_ids", "packed_record_ids", "record_handles", "context", "return_allowed_ids", "min_revision", "return_handles", "packed_denials")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    PACKED_RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    RECORD_HANDLES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    RETURN_ALLOWED_IDS_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    RETURN_HANDLES_FIELD_NUMBER: _ClassVar[int]
    PACKED_DENIALS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    principal: Principal
    object: str
    action: str
    record_ids: StringIds
    packed_record_ids: PackedIds
    record_handles: RecordHandles
    context: ActionContext
    return_allowed_ids: bool
    min_revision: int
    return_handles: bool
    packed_denials: bool
    def __init__(self, tenant: _Optional[str] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ..., object: _Optional[str] = ..., action: _Optional[str] = ..., record_ids: _Optional[_Union[StringIds, _Mapping]] = ..., packed_record_ids: _Optional[_Union[PackedIds, _Mapping]] = ..., record_handles: _Optional[_Union[RecordHandles, _Mapping]] = ..., context: _Optional[_Union[ActionContext, _Mapping]] = ..., return_allowed_ids: _Optional[bool] = ..., min_revision: _Optional[int] = ..., return_handles: _Optional[bool] = ..., packed_denials: _Optional[bool] = ...) -> None: ...

class BatchCheckResponse(_message.Message):
    __slots__ = ("allowed", "allowed_count", "denials", "field_mask", "revision", "allowed_ids", "allowed_packed_ids", "handles", "packed_denials")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DENIALS_FIELD_NUMBER: _ClassVar[int]
    FIELD_MASK_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_IDS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_PACKED_IDS_FIELD_NUMBER: _ClassVar[int]
    HANDLES_FIELD_NUMBER: _ClassVar[int]
    PACKED_DENIALS_FIELD_NUMBER: _ClassVar[int]
    allowed: bytes
    allowed_count: int
    denials: _containers.RepeatedCompositeFieldContainer[Denial]
    field_mask: FieldMask
    revision: int
    allowed_ids: StringIds
    allowed_packed_ids: PackedIds
    handles: RecordHandles
    packed_denials: PackedDenials
    def __init__(self, allowed: _Optional[bytes] = ..., allowed_count: _Optional[int] = ..., denials: _Optional[_Iterable[_Union[Denial, _Mapping]]] = ..., field_mask: _Optional[_Union[FieldMask, _Mapping]] = ..., revision: _Optional[int] = ..., allowed_ids: _Optional[_Union[StringIds, _Mapping]] = ..., allowed_packed_ids: _Optional[_Union[PackedIds, _Mapping]] = ..., handles: _Optional[_Union[RecordHandles, _Mapping]] = ..., packed_denials: _Optional[_Union[PackedDenials, _Mapping]] = ...) -> None: ...

class Denial(_message.Message):
    __slots__ = ("position", "reason")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    position: int
    reason: Reason
    def __init__(self, position: _Optional[int] = ..., reason: _Optional[_Union[Reason, str]] = ...) -> None: ...

class PackedDenials(_message.Message):
    __slots__ = ("positions", "reasons")
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    positions: bytes
    reasons: bytes
    def __init__(self, positions: _Optional[bytes] = ..., reasons: _Optional[bytes] = ...) -> None: ...

class LookupRecordsRequest(_message.Message):
    __slots__ = ("tenant", "principal", "object", "action", "context", "page_size", "packed", "min_revision")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    principal: Principal
    object: str
    action: str
    context: ActionContext
    page_size: int
    packed: bool
    min_revision: int
    def __init__(self, tenant: _Optional[str] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ..., object: _Optional[str] = ..., action: _Optional[str] = ..., context: _Optional[_Union[ActionContext, _Mapping]] = ..., page_size: _Optional[int] = ..., packed: _Optional[bool] = ..., min_revision: _Optional[int] = ...) -> None: ...

class LookupRecordsResponse(_message.Message):
    __slots__ = ("record_ids", "packed_record_ids", "revision")
    RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    PACKED_RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    record_ids: StringIds
    packed_record_ids: PackedIds
    revision: int
    def __init__(self, record_ids: _Optional[_Union[StringIds, _Mapping]] = ..., packed_record_ids: _Optional[_Union[PackedIds, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class ObjectAccessRequest(_message.Message):
    __slots__ = ("tenant", "principal", "object", "min_revision")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    principal: Principal
    object: str
    min_revision: int
    def __init__(self, tenant: _Optional[str] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ..., object: _Optional[str] = ..., min_revision: _Optional[int] = ...) -> None: ...

class ObjectFlags(_message.Message):
    __slots__ = ("object", "view", "edit", "remove", "create_record", "single_actions", "bulk_actions", "field_mask", "bulk_data_upload", "unarchive")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    EDIT_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    CREATE_RECORD_FIELD_NUMBER: _ClassVar[int]
    SINGLE_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    BULK_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    FIELD_MASK_FIELD_NUMBER: _ClassVar[int]
    BULK_DATA_UPLOAD_FIELD_NUMBER: _ClassVar[int]
    UNARCHIVE_FIELD_NUMBER: _ClassVar[int]
    object: str
    view: bool
    edit: bool
    remove: bool
    create_record: bool
    single_actions: _containers.RepeatedScalarFieldContainer[str]
    bulk_actions: _containers.RepeatedScalarFieldContainer[str]
    field_mask: FieldMask
    bulk_data_upload: bool
    unarchive: bool
    def __init__(self, object: _Optional[str] = ..., view: _Optional[bool] = ..., edit: _Optional[bool] = ..., remove: _Optional[bool] = ..., create_record: _Optional[bool] = ..., single_actions: _Optional[_Iterable[str]] = ..., bulk_actions: _Optional[_Iterable[str]] = ..., field_mask: _Optional[_Union[FieldMask, _Mapping]] = ..., bulk_data_upload: _Optional[bool] = ..., unarchive: _Optional[bool] = ...) -> None: ...

class ObjectAccessResponse(_message.Message):
    __slots__ = ("objects", "create_objects", "revision")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    CREATE_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[ObjectFlags]
    create_objects: bool
    revision: int
    def __init__(self, objects: _Optional[_Iterable[_Union[ObjectFlags, _Mapping]]] = ..., create_objects: _Optional[bool] = ..., revision: _Optional[int] = ...) -> None: ...

class RecordAccessRequest(_message.Message):
    __slots__ = ("tenant", "principal", "object", "record_ids", "min_revision")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    principal: Principal
    object: str
    record_ids: _containers.RepeatedScalarFieldContainer[str]
    min_revision: int
    def __init__(self, tenant: _Optional[str] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ..., object: _Optional[str] = ..., record_ids: _Optional[_Iterable[str]] = ..., min_revision: _Optional[int] = ...) -> None: ...

class RecordFlags(_message.Message):
    __slots__ = ("record_id", "view", "edit", "remove", "field_mask", "unarchive")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    EDIT_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    FIELD_MASK_FIELD_NUMBER: _ClassVar[int]
    UNARCHIVE_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    view: bool
    edit: bool
    remove: bool
    field_mask: FieldMask
    unarchive: bool
    def __init__(self, record_id: _Optional[str] = ..., view: _Optional[bool] = ..., edit: _Optional[bool] = ..., remove: _Optional[bool] = ..., field_mask: _Optional[_Union[FieldMask, _Mapping]] = ..., unarchive: _Optional[bool] = ...) -> None: ...

class RecordAccessResponse(_message.Message):
    __slots__ = ("records", "revision")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[RecordFlags]
    revision: int
    def __init__(self, records: _Optional[_Iterable[_Union[RecordFlags, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("tenant", "principal", "object", "action", "record_id", "context", "min_revision")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    principal: Principal
    object: str
    action: str
    record_id: str
    context: ActionContext
    min_revision: int
    def __init__(self, tenant: _Optional[str] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ..., object: _Optional[str] = ..., action: _Optional[str] = ..., record_id: _Optional[str] = ..., context: _Optional[_Union[ActionContext, _Mapping]] = ..., min_revision: _Optional[int] = ...) -> None: ...

class ExplainStep(_message.Message):
    __slots__ = ("layer", "passed", "reason", "detail")
    LAYER_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    layer: str
    passed: bool
    reason: Reason
    detail: str
    def __init__(self, layer: _Optional[str] = ..., passed: _Optional[bool] = ..., reason: _Optional[_Union[Reason, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("allowed", "reason", "steps", "groups", "revision")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: Reason
    steps: _containers.RepeatedCompositeFieldContainer[ExplainStep]
    groups: _containers.RepeatedScalarFieldContainer[str]
    revision: int
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[_Union[Reason, str]] = ..., steps: _Optional[_Iterable[_Union[ExplainStep, _Mapping]]] = ..., groups: _Optional[_Iterable[str]] = ..., revision: _Optional[int] = ...) -> None: ...
