"""A real OpenAI-compatible server for the tests: llama.cpp's own HTTP server (through the xllamacpp
wheel the CPU LLM backend installs anyway) serving the bundled Qwen 0.5B GGUF.

    python tests/llama_server.py PORT      # serves http://127.0.0.1:PORT/v1 until killed
"""

from __future__ import annotations

import signal
import sys
import threading

import xllamacpp as xlc

from llm_worker.backends.xllamacpp import model_path
from s2s.settings import Settings

#: The model name the tests ask for; llama.cpp's server answers with the one it has.
MODEL = "qwen2.5-0.5b"


def main(port: int) -> None:
    settings = Settings()
    params = xlc.CommonParams()
    params.model.path = str(model_path(settings.llm_model, settings.model_cache_dir))
    params.model_alias = {MODEL}
    params.n_ctx = settings.llm_context_tokens
    params.n_parallel = 2
    params.verbosity = 0
    params.cpuparams.n_threads = settings.cpu_threads
    params.cpuparams_batch.n_threads = settings.cpu_threads
    params.hostnames = ["127.0.0.1"]
    params.port = port
    server = xlc.Server(params)
    print(f"listening on {server.listening_address}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()


if __name__ == "__main__":
    main(int(sys.argv[1]))
