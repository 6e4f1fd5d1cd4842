"""STT backends, one module each; registered by name in `stt_worker.engine.BACKENDS`."""
