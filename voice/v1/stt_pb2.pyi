from voice.v1 import audio_pb2 as _audio_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TranscribeRequest(_message.Message):
    __slots__ = ("config", "audio", "control")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    config: TranscribeConfig
    audio: _audio_pb2.AudioChunk
    control: TranscribeControl
    def __init__(self, config: _Optional[_Union[TranscribeConfig, _Mapping]] = ..., audio: _Optional[_Union[_audio_pb2.AudioChunk, _Mapping]] = ..., control: _Optional[_Union[TranscribeControl, _Mapping]] = ...) -> None: ...

class TranscribeConfig(_message.Message):
    __slots__ = ("session_id", "sample_rate", "language")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    sample_rate: int
    language: str
    def __init__(self, session_id: _Optional[str] = ..., sample_rate: _Optional[int] = ..., language: _Optional[str] = ...) -> None: ...

class TranscribeControl(_message.Message):
    __slots__ = ("action", "trace_context")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[TranscribeControl.Action]
        ACTION_FLUSH: _ClassVar[TranscribeControl.Action]
        ACTION_RESET: _ClassVar[TranscribeControl.Action]
    ACTION_UNSPECIFIED: TranscribeControl.Action
    ACTION_FLUSH: TranscribeControl.Action
    ACTION_RESET: TranscribeControl.Action
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    action: TranscribeControl.Action
    trace_context: _audio_pb2.TraceContext
    def __init__(self, action: _Optional[_Union[TranscribeControl.Action, str]] = ..., trace_context: _Optional[_Union[_audio_pb2.TraceContext, _Mapping]] = ...) -> None: ...

class TranscribeResponse(_message.Message):
    __slots__ = ("transcript", "speech_event")
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    SPEECH_EVENT_FIELD_NUMBER: _ClassVar[int]
    transcript: Transcript
    speech_event: SpeechEvent
    def __init__(self, transcript: _Optional[_Union[Transcript, _Mapping]] = ..., speech_event: _Optional[_Union[SpeechEvent, _Mapping]] = ...) -> None: ...

class Transcript(_message.Message):
    __slots__ = ("utterance_id", "text", "final", "stable_text", "speech_start_s", "speech_end_s", "decode_ms")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    STABLE_TEXT_FIELD_NUMBER: _ClassVar[int]
    SPEECH_START_S_FIELD_NUMBER: _ClassVar[int]
    SPEECH_END_S_FIELD_NUMBER: _ClassVar[int]
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    utterance_id: str
    text: str
    final: bool
    stable_text: str
    speech_start_s: float
    speech_end_s: float
    decode_ms: float
    def __init__(self, utterance_id: _Optional[str] = ..., text: _Optional[str] = ..., final: _Optional[bool] = ..., stable_text: _Optional[str] = ..., speech_start_s: _Optional[float] = ..., speech_end_s: _Optional[float] = ..., decode_ms: _Optional[float] = ...) -> None: ...

class SpeechEvent(_message.Message):
    __slots__ = ("kind", "utterance_id", "stream_time_s", "speech_end_s")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[SpeechEvent.Kind]
        KIND_SPEECH_STARTED: _ClassVar[SpeechEvent.Kind]
        KIND_PAUSE: _ClassVar[SpeechEvent.Kind]
        KIND_END_OF_TURN: _ClassVar[SpeechEvent.Kind]
    KIND_UNSPECIFIED: SpeechEvent.Kind
    KIND_SPEECH_STARTED: SpeechEvent.Kind
    KIND_PAUSE: SpeechEvent.Kind
    KIND_END_OF_TURN: SpeechEvent.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_TIME_S_FIELD_NUMBER: _ClassVar[int]
    SPEECH_END_S_FIELD_NUMBER: _ClassVar[int]
    kind: SpeechEvent.Kind
    utterance_id: str
    stream_time_s: float
    speech_end_s: float
    def __init__(self, kind: _Optional[_Union[SpeechEvent.Kind, str]] = ..., utterance_id: _Optional[str] = ..., stream_time_s: _Optional[float] = ..., speech_end_s: _Optional[float] = ...) -> None: ...
