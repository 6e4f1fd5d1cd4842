"""LLM backends, one module each; registered by name in `llm_worker.engine.BACKENDS`."""
