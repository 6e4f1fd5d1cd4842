"""`s2s-api`: serve the API with uvicorn, on the host and port from the settings."""

import sys

import uvicorn

from s2s import tracing
from s2s.logs import setup_logging
from s2s.settings import load_settings

from .app import create_app


def main() -> int:
    settings = load_settings("s2s-api")
    # None: uvicorn's own plain lines, its access log included; with LOG_FORMAT=json, every line
    # is JSON and the app's request line (`request_ids`) takes the access log's place.
    log_config = setup_logging(settings, "api")
    tracing.setup("api")
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        log_config=log_config or uvicorn.config.LOGGING_CONFIG,
        access_log=log_config is None,
        timeout_graceful_shutdown=5,
        # Beyond this many connections uvicorn answers 503 at once instead of accepting more.
        limit_concurrency=settings.api_max_connections,
        timeout_keep_alive=settings.api_keepalive_s,
        # Headers larger than this are refused (h11 default is 16 KiB).
        h11_max_incomplete_event_size=16 * 1024,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
