from voice.v1 import audio_pb2 as _audio_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SynthesizeRequest(_message.Message):
    __slots__ = ("config", "text", "flush", "cancel")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FLUSH_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    config: SynthesizeConfig
    text: TextInput
    flush: FlushTurn
    cancel: CancelSynthesis
    def __init__(self, config: _Optional[_Union[SynthesizeConfig, _Mapping]] = ..., text: _Optional[_Union[TextInput, _Mapping]] = ..., flush: _Optional[_Union[FlushTurn, _Mapping]] = ..., cancel: _Optional[_Union[CancelSynthesis, _Mapping]] = ...) -> None: ...

class SynthesizeConfig(_message.Message):
    __slots__ = ("session_id", "sample_rate", "voice")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    sample_rate: int
    voice: str
    def __init__(self, session_id: _Optional[str] = ..., sample_rate: _Optional[int] = ..., voice: _Optional[str] = ...) -> None: ...

class TextInput(_message.Message):
    __slots__ = ("turn_id", "text", "trace_context")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    text: str
    trace_context: _audio_pb2.TraceContext
    def __init__(self, turn_id: _Optional[str] = ..., text: _Optional[str] = ..., trace_context: _Optional[_Union[_audio_pb2.TraceContext, _Mapping]] = ...) -> None: ...

class FlushTurn(_message.Message):
    __slots__ = ("turn_id",)
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    def __init__(self, turn_id: _Optional[str] = ...) -> None: ...

class CancelSynthesis(_message.Message):
    __slots__ = ("turn_id",)
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    def __init__(self, turn_id: _Optional[str] = ...) -> None: ...

class SynthesizeResponse(_message.Message):
    __slots__ = ("start", "audio", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: AudioStart
    audio: SynthesizedAudio
    end: AudioEnd
    def __init__(self, start: _Optional[_Union[AudioStart, _Mapping]] = ..., audio: _Optional[_Union[SynthesizedAudio, _Mapping]] = ..., end: _Optional[_Union[AudioEnd, _Mapping]] = ...) -> None: ...

class AudioStart(_message.Message):
    __slots__ = ("turn_id", "sample_rate", "engine")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    sample_rate: int
    engine: str
    def __init__(self, turn_id: _Optional[str] = ..., sample_rate: _Optional[int] = ..., engine: _Optional[str] = ...) -> None: ...

class SynthesizedAudio(_message.Message):
    __slots__ = ("turn_id", "audio", "text")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    audio: _audio_pb2.AudioChunk
    text: str
    def __init__(self, turn_id: _Optional[str] = ..., audio: _Optional[_Union[_audio_pb2.AudioChunk, _Mapping]] = ..., text: _Optional[str] = ...) -> None: ...

class AudioEnd(_message.Message):
    __slots__ = ("turn_id", "cancelled", "error")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    cancelled: bool
    error: str
    def __init__(self, turn_id: _Optional[str] = ..., cancelled: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...
