from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_STATUS_UNSPECIFIED: _ClassVar[ReportStatus]
    REPORT_STATUS_COMPLETE: _ClassVar[ReportStatus]
    REPORT_STATUS_PARTIAL: _ClassVar[ReportStatus]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_DONE: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
REPORT_STATUS_UNSPECIFIED: ReportStatus
REPORT_STATUS_COMPLETE: ReportStatus
REPORT_STATUS_PARTIAL: ReportStatus
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_DONE: JobState
JOB_STATE_FAILED: JobState

class AnalyzeRequest(_message.Message):
    __slots__ = ("video_path", "analyzers", "deadline_s")
    VIDEO_PATH_FIELD_NUMBER: _ClassVar[int]
    ANALYZERS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_S_FIELD_NUMBER: _ClassVar[int]
    video_path: str
    analyzers: _containers.RepeatedScalarFieldContainer[str]
    deadline_s: float
    def __init__(self, video_path: _Optional[str] = ..., analyzers: _Optional[_Iterable[str]] = ..., deadline_s: _Optional[float] = ...) -> None: ...

class AnalyzeResponse(_message.Message):
    __slots__ = ("job_id", "status", "report_json", "wall_s", "realtime_factor", "analyzer_status", "failed")
    class AnalyzerStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    WALL_S_FIELD_NUMBER: _ClassVar[int]
    REALTIME_FACTOR_FIELD_NUMBER: _ClassVar[int]
    ANALYZER_STATUS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: ReportStatus
    report_json: str
    wall_s: float
    realtime_factor: float
    analyzer_status: _containers.ScalarMap[str, str]
    failed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[_Union[ReportStatus, str]] = ..., report_json: _Optional[str] = ..., wall_s: _Optional[float] = ..., realtime_factor: _Optional[float] = ..., analyzer_status: _Optional[_Mapping[str, str]] = ..., failed: _Optional[_Iterable[str]] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class JobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "state", "video", "analyzers", "submitted_at", "progress", "result", "error")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    ANALYZERS_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    video: str
    analyzers: _containers.RepeatedScalarFieldContainer[str]
    submitted_at: float
    progress: _containers.RepeatedCompositeFieldContainer[AnalyzerEvent]
    result: AnalyzeResponse
    error: JobError
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., video: _Optional[str] = ..., analyzers: _Optional[_Iterable[str]] = ..., submitted_at: _Optional[float] = ..., progress: _Optional[_Iterable[_Union[AnalyzerEvent, _Mapping]]] = ..., result: _Optional[_Union[AnalyzeResponse, _Mapping]] = ..., error: _Optional[_Union[JobError, _Mapping]] = ...) -> None: ...

class AnalyzerEvent(_message.Message):
    __slots__ = ("analyzer", "kind", "status", "elapsed_s", "error")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[AnalyzerEvent.Kind]
        KIND_START: _ClassVar[AnalyzerEvent.Kind]
        KIND_DONE: _ClassVar[AnalyzerEvent.Kind]
    KIND_UNSPECIFIED: AnalyzerEvent.Kind
    KIND_START: AnalyzerEvent.Kind
    KIND_DONE: AnalyzerEvent.Kind
    ANALYZER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_S_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    analyzer: str
    kind: AnalyzerEvent.Kind
    status: str
    elapsed_s: float
    error: str
    def __init__(self, analyzer: _Optional[str] = ..., kind: _Optional[_Union[AnalyzerEvent.Kind, str]] = ..., status: _Optional[str] = ..., elapsed_s: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("seq", "job_id", "state", "analyzer", "result", "error")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ANALYZER_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    seq: int
    job_id: str
    state: JobState
    analyzer: AnalyzerEvent
    result: AnalyzeResponse
    error: JobError
    def __init__(self, seq: _Optional[int] = ..., job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., analyzer: _Optional[_Union[AnalyzerEvent, _Mapping]] = ..., result: _Optional[_Union[AnalyzeResponse, _Mapping]] = ..., error: _Optional[_Union[JobError, _Mapping]] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("filename", "analyzers", "deadline_s", "size_bytes")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    ANALYZERS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_S_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    filename: str
    analyzers: _containers.RepeatedScalarFieldContainer[str]
    deadline_s: float
    size_bytes: int
    def __init__(self, filename: _Optional[str] = ..., analyzers: _Optional[_Iterable[str]] = ..., deadline_s: _Optional[float] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class UploadRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ListAnalyzersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AnalyzerInfo(_message.Message):
    __slots__ = ("name", "frames", "audio", "depends_on", "state")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    frames: str
    audio: bool
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    state: str
    def __init__(self, name: _Optional[str] = ..., frames: _Optional[str] = ..., audio: bool = ..., depends_on: _Optional[_Iterable[str]] = ..., state: _Optional[str] = ...) -> None: ...

class ListAnalyzersResponse(_message.Message):
    __slots__ = ("analyzers",)
    ANALYZERS_FIELD_NUMBER: _ClassVar[int]
    analyzers: _containers.RepeatedCompositeFieldContainer[AnalyzerInfo]
    def __init__(self, analyzers: _Optional[_Iterable[_Union[AnalyzerInfo, _Mapping]]] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("ready", "triton_ready", "draining", "triton_url", "running", "queued", "version", "reason")
    READY_FIELD_NUMBER: _ClassVar[int]
    TRITON_READY_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    TRITON_URL_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ready: bool
    triton_ready: bool
    draining: bool
    triton_url: str
    running: int
    queued: int
    version: str
    reason: str
    def __init__(self, ready: bool = ..., triton_ready: bool = ..., draining: bool = ..., triton_url: _Optional[str] = ..., running: _Optional[int] = ..., queued: _Optional[int] = ..., version: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
