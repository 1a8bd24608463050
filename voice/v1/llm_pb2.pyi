from voice.v1 import audio_pb2 as _audio_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConverseRequest(_message.Message):
    __slots__ = ("config", "turn", "cancel")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    config: ConverseConfig
    turn: UserTurn
    cancel: CancelTurn
    def __init__(self, config: _Optional[_Union[ConverseConfig, _Mapping]] = ..., turn: _Optional[_Union[UserTurn, _Mapping]] = ..., cancel: _Optional[_Union[CancelTurn, _Mapping]] = ...) -> None: ...

class ConverseConfig(_message.Message):
    __slots__ = ("session_id", "system_prompt")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    system_prompt: str
    def __init__(self, session_id: _Optional[str] = ..., system_prompt: _Optional[str] = ...) -> None: ...

class UserTurn(_message.Message):
    __slots__ = ("turn_id", "text", "trace_context")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    text: str
    trace_context: _audio_pb2.TraceContext
    def __init__(self, turn_id: _Optional[str] = ..., text: _Optional[str] = ..., trace_context: _Optional[_Union[_audio_pb2.TraceContext, _Mapping]] = ...) -> None: ...

class CancelTurn(_message.Message):
    __slots__ = ("turn_id", "heard_text", "has_heard_text")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    HEARD_TEXT_FIELD_NUMBER: _ClassVar[int]
    HAS_HEARD_TEXT_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    heard_text: str
    has_heard_text: bool
    def __init__(self, turn_id: _Optional[str] = ..., heard_text: _Optional[str] = ..., has_heard_text: _Optional[bool] = ...) -> None: ...

class ConverseResponse(_message.Message):
    __slots__ = ("delta", "done")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    delta: TextDelta
    done: TurnDone
    def __init__(self, delta: _Optional[_Union[TextDelta, _Mapping]] = ..., done: _Optional[_Union[TurnDone, _Mapping]] = ...) -> None: ...

class TextDelta(_message.Message):
    __slots__ = ("turn_id", "text")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    text: str
    def __init__(self, turn_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class TurnDone(_message.Message):
    __slots__ = ("turn_id", "provider", "model", "cancelled", "prompt_tokens", "completion_tokens", "first_token_ms", "error")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    provider: str
    model: str
    cancelled: bool
    prompt_tokens: int
    completion_tokens: int
    first_token_ms: float
    error: str
    def __init__(self, turn_id: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., cancelled: _Optional[bool] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., first_token_ms: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...
