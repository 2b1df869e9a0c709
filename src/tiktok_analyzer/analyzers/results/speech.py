"""The speech analyzer's result models: pure pydantic, importable without the
analyzer's libraries (the orchestrator reads them)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tiktok_analyzer.analyzers.base import AnalyzerResult


class Word(BaseModel):
    word: str
    start_s: float
    end_s: float
    probability: float


class SpeechSegment(BaseModel):
    start_s: float
    end_s: float
    text: str
    no_speech_prob: float = Field(
        description="Whisper's probability that the window holds no speech"
    )
    avg_logprob: float
    sung: bool = Field(description="sung over music rather than spoken (heuristic)")
    music_ratio_db: float = Field(
        description="sustained (music) energy against the voice's within the segment, dB"
    )


class VoicedSpan(BaseModel):
    start_s: float
    end_s: float


class SpeechTimings(BaseModel):
    """Where a batched openai-whisper transcription's time went (seconds; on a GPU each
    clock is read after the device finished its work)."""

    language_s: float = Field(description="language detection on the voiced audio (0: forced)")
    mel_s: float = Field(description="the clip's log-mel and the windows cut from it")
    encoder_s: float = Field(description="the encoder calls (one a batch of windows)")
    decode_s: float = Field(description="the batched beam searches")
    align_s: float = Field(
        description="word timestamps: one batched decoder pass a batch, then DTW per window"
    )
    windows: int = Field(description="voiced windows transcribed")
    batch_windows: int = Field(description="windows at most in one encoder call and decode")


class SpeechTranscriptionResult(AnalyzerResult):
    language: str | None = Field(
        description="ISO 639-1 code detected on the voiced audio; None without speech"
    )
    language_probability: float
    text: str
    segments: list[SpeechSegment]
    words: list[Word]
    voiced: list[VoicedSpan] = Field(description="voice activity (Silero VAD)")
    speech_s: float = Field(description="seconds of voiced audio")
    sung_share: float = Field(description="share of the transcribed time flagged sung")
    engine: str
    decoded_tokens: int = Field(
        default=0,
        description="tokens the decoder emitted for the transcript (synthetic weights: "
        "exactly the budget, synthetic_tokens)",
    )
    timings: SpeechTimings | None = Field(
        default=None, description="openai-whisper batched only: where the time went"
    )
