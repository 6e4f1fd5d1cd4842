import pytest

from llm_worker.engine import BACKENDS as LLM
from s2s.errors import UnknownBackendError
from s2s.registry import Registry
from stt_worker.engine import BACKENDS as STT
from tts_worker.engine import BACKENDS as TTS


def test_unknown_backend_lists_valid_names() -> None:
    with pytest.raises(UnknownBackendError) as err:
        STT.load("whisperx")
    assert "unknown stt backend 'whisperx'" in str(err.value)
    assert "faster-whisper" in str(err.value)


def test_each_stage_registers_its_cpu_default() -> None:
    assert "faster-whisper" in STT.names()
    assert "xllamacpp" in LLM.names()
    assert "piper" in TTS.names()


def test_backends_import_lazily() -> None:
    registry: Registry[object] = Registry("x", {"later": "module_that_does_not_exist:Engine"})
    assert registry.names() == ["later"]  # nothing imported yet
    with pytest.raises(ModuleNotFoundError):
        registry.load("later")
