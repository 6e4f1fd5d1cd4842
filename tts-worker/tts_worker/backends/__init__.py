"""TTS backends, one module each; registered by name in `tts_worker.engine.BACKENDS`."""
