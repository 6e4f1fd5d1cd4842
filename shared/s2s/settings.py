"""One settings class for every service, read from the environment (and `.env`) and checked at start.

What every service or stage reads is a field of `Settings`; what only one backend reads is a group
of its own (`TorchSettings`, `NemoSettings`, `TransformersSettings`), a field named after it, set
with the group's name, two underscores and the option: `NEMO__ATT_CONTEXT_RIGHT=6`. A new
backend with options adds a group and one field here. Each variable is documented in
`.env.example` (a test checks that every field and group option is there, with its default).
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
Port = Annotated[int, Field(ge=1, le=65535)]

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Your answer will be spoken aloud, so reply in one or two "
    "short, plain sentences, with no lists, markdown, emoji or code."
)


class TorchSettings(BaseModel):
    """The torch backends: nemo, transformers, chatterbox."""

    #: Where they run: "auto" (the GPU when torch sees one, else the CPU), "cpu", "cuda" or
    #: "cuda:N". Naming a GPU that is not there stops the worker at start.
    device: Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")] = "auto"


class NemoSettings(BaseModel):
    """STT_BACKEND=nemo."""

    #: Cache-aware streaming: R of the attention context [70, R]; each chunk is (R + 1) x 80 ms
    #: (nemotron-speech-streaming was trained with R = 0, 1, 6, 13: 80, 160, 560, 1120 ms).
    att_context_right: Annotated[int, Field(ge=0)] = 13


class TransformersSettings(BaseModel):
    """LLM_BACKEND=transformers."""

    #: Weights: "auto" is bfloat16 on a GPU that has it, else float16 on a GPU, and float32 on
    #: the CPU.
    dtype: Annotated[str, Field(pattern=r"^(auto|float32|float16|bfloat16)$")] = "auto"


class OpenAISettings(BaseModel):
    """LLM_BACKEND=openai: an OpenAI-compatible server (vLLM, llama.cpp's server, Ollama, TGI)."""

    #: Its API root, e.g. http://vllm:8000/v1.
    base_url: str = ""
    #: The model name the server knows it by.
    model: str = ""
    api_key: SecretStr | None = None
    #: How long a reply may take to start and between its pieces.
    timeout_s: PositiveFloat = 60.0

    @field_validator("api_key")
    @classmethod
    def _empty_key(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_nested_delimiter="__")

    # --- shared by every service
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Redis Sentinels (host:port, comma separated): then the master of `redis_master_name` is
    #: found through them and followed across failovers (`s2s.connection`); REDIS_URL gives only
    #: the password and database.
    redis_sentinels: Annotated[list[str], NoDecode] = []
    redis_master_name: str = "s2s"
    redis_sentinel_password: SecretStr | None = None
    job_ttl_s: PositiveInt = 24 * 3600
    log_level: str = "INFO"
    #: "plain": each service's own lines; "json": one JSON object per line on stderr (`s2s.logs`).
    log_format: Literal["plain", "json"] = "plain"

    # --- API
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    max_upload_bytes: PositiveInt = 25 * 1024 * 1024
    max_audio_seconds: PositiveFloat = 120.0
    #: Unfinished jobs (all clients together) beyond which uploads get 429.
    max_queue_depth: PositiveInt = 100
    #: Unfinished jobs one client (API key, or address when the API is open) may have.
    max_jobs_per_client: PositiveInt = 20
    #: Uploads one client may make per minute.
    max_uploads_per_minute: PositiveInt = 60
    #: Turns one conversation may have; then 409 (start a new one).
    max_conversation_turns: PositiveInt = 100
    #: Characters the `instructions` field of an upload may have.
    max_instructions_chars: PositiveInt = 500
    #: Voices one key may clone (POST /v1/voices), each a clip of at most 30 s (~1 MB in Redis).
    max_voices_per_key: PositiveInt = 10
    #: The whole request body must arrive within this many seconds, or the answer is 408.
    upload_timeout_s: PositiveFloat = 30.0
    #: Request bodies being received at once by one API process; beyond it, 503 at once.
    max_uploads_in_flight: PositiveInt = 512
    #: Uploads decoded at once by one API process (each holds at most its 16 kHz result).
    decode_concurrency: PositiveInt = 2
    #: Long polls (`?wait=`) one API process holds at once; beyond it, 429.
    max_waiters: PositiveInt = 1000
    #: Connections one API process serves at once (uvicorn's limit; beyond it, 503).
    api_max_connections: PositiveInt = 2048
    #: Seconds an idle keep-alive connection is kept open.
    api_keepalive_s: PositiveInt = 5
    #: Serve /docs, /redoc and /openapi.json (behind a key when API_KEYS is set).
    api_docs: bool = True
    #: Bearer tokens; empty means the API is open. Comma separated in the environment.
    api_keys: Annotated[list[str], NoDecode] = []

    # --- metrics (Prometheus; s2s.metrics)
    #: With API keys set, /metrics takes a key or this token (`Authorization: Bearer`); without
    #: keys, /metrics needs this token when it is set.
    metrics_token: SecretStr | None = None
    #: Where each worker serves its own /metrics: the address, and a port per service (empty: none).
    metrics_host: str = "127.0.0.1"
    stt_metrics_port: Port | None = 9101
    llm_metrics_port: Port | None = 9102
    tts_metrics_port: Port | None = 9103
    webhook_metrics_port: Port | None = 9104

    # --- webhooks (`callback_url` on POST /v1/jobs; s2s.webhooks)
    #: The signing secret, Standard Webhooks style: `whsec_` + base64 (24 bytes or more). Without
    #: it the API refuses `callback_url` (422): nothing is sent unsigned.
    webhook_secret: SecretStr | None = None
    #: Hosts a callback may go to although they resolve to loopback, private or link-local
    #: addresses (e.g. a receiver on the same network). Comma separated in the environment.
    webhook_allow_hosts: Annotated[list[str], NoDecode] = []
    #: Waits between delivery attempts (seconds; one more attempt than waits).
    webhook_retry_s: Annotated[list[float], NoDecode] = [5, 30, 120, 600, 2700]
    #: One attempt's limit: connect, send, and the receiver's answer.
    webhook_timeout_s: PositiveFloat = 10.0

    # --- workers (all stages)
    cpu_threads: PositiveInt = 2
    #: Where derived model files (e.g. the assembled GGUF) are kept between starts.
    model_cache_dir: Path = Path.home() / ".cache" / "s2s"
    #: How often a worker looks for jobs whose worker died (RQ's maintenance interval).
    maintenance_interval_s: PositiveInt = 15
    #: A worker that has not been heard from for this long counts as dead: /readyz stops counting
    #: it and its job is retried. Bound on retrying a dead worker's job: this + the interval above.
    worker_liveness_s: Annotated[int, Field(ge=4)] = 20
    #: Retries of a stage after a transient error, and the waits between them.
    stage_retries: Annotated[int, Field(ge=0)] = 2
    retry_intervals_s: Annotated[list[int], NoDecode] = [1, 5]

    # --- STT
    stt_backend: str = "faster-whisper"
    #: Model name or local path; empty means the backend's default.
    stt_model: str = ""
    stt_language: str = "en"
    stt_timeout_s: PositiveInt = 120

    # --- LLM
    llm_backend: str = "xllamacpp"
    llm_model: str = ""
    llm_system_prompt: str = DEFAULT_SYSTEM_PROMPT
    llm_max_tokens: PositiveInt = 48
    llm_temperature: Annotated[float, Field(ge=0)] = 0.0
    llm_context_tokens: PositiveInt = 2048
    llm_timeout_s: PositiveInt = 120
    #: What the LLM is shown of a conversation's earlier turns: at most this many, and at most
    #: about this many tokens of them (the most recent first).
    llm_history_turns: Annotated[int, Field(ge=0)] = 8
    llm_history_tokens: Annotated[int, Field(ge=0)] = 1024

    # --- TTS
    tts_backend: str = "piper"
    tts_voice: str = ""
    tts_timeout_s: PositiveInt = 120

    # --- options of one backend each (NAME__OPTION in the environment)
    torch: TorchSettings = TorchSettings()
    nemo: NemoSettings = NemoSettings()
    transformers: TransformersSettings = TransformersSettings()
    openai: OpenAISettings = OpenAISettings()

    @field_validator("llm_system_prompt", mode="before")
    @classmethod
    def _default_prompt(cls, value: object) -> object:
        return value if value not in (None, "") else DEFAULT_SYSTEM_PROMPT

    @field_validator("model_cache_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("api_keys", "webhook_allow_hosts", "redis_sentinels", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("retry_intervals_s", mode="before")
    @classmethod
    def _split_ints(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(v) for v in value.split(",") if v.strip()]
        return value

    @field_validator(
        "stt_metrics_port", "llm_metrics_port", "tts_metrics_port", "webhook_metrics_port", mode="before"
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("metrics_token", "redis_sentinel_password")
    @classmethod
    def _empty_secret(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @field_validator("webhook_retry_s", mode="before")
    @classmethod
    def _split_floats(cls, value: object) -> object:
        if isinstance(value, str):
            return [float(v) for v in value.split(",") if v.strip()]
        return value

    @field_validator("retry_intervals_s", "webhook_retry_s")
    @classmethod
    def _non_negative(cls, value: list[float]) -> list[float]:
        if any(v < 0 for v in value):
            raise ValueError("retry intervals must be >= 0 seconds")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        try:
            key = base64.b64decode(value.get_secret_value().removeprefix("whsec_"), validate=True)
        except ValueError as exc:
            raise ValueError("WEBHOOK_SECRET must be whsec_ followed by base64") from exc
        if len(key) < 24:
            raise ValueError("WEBHOOK_SECRET must hold at least 24 bytes (32 random bytes, base64)")
        return value


def load_settings(prog: str) -> Settings:
    """The settings a service starts with; bad ones stop it with one line and exit status 2."""
    try:
        return Settings()
    except ValueError as exc:
        print(f"{prog}: invalid settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
