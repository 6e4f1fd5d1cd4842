"""The browser page at `/`: record or pick a recording, watch the job's stages, read the transcript
and reply as they come, hear the reply while it is made, and keep talking in one conversation.

Plain files shipped in the package (`s2s_api/static`), no build step and nothing from another
origin; they load without an API key (`limits.OPEN_PATHS`), and the page sends the key the user
enters with each API call it makes. Only the files named in `STATIC` are served."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
#: The files the page is made of, and their media types; nothing else under /static is served.
STATIC: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "audio.js": "text/javascript; charset=utf-8",
    "sse.js": "text/javascript; charset=utf-8",
    "wav-recorder.js": "text/javascript; charset=utf-8",
    "capture-worklet.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}

#: Everything from this origin only; recordings and replies play from blob: URLs.
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    # Revalidated on every load (cheap: an ETag), so a new version shows at once.
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _answer(request: Request, name: str, media_type: str) -> Response:
    data = (STATIC_DIR / name).read_bytes()
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {**HEADERS, "ETag": etag}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else data
    headers["Content-Length"] = str(len(data))
    return Response(body, media_type=media_type, headers=headers)


@router.api_route("/", methods=["GET", "HEAD"])
async def page(request: Request) -> Response:
    return _answer(request, "index.html", "text/html; charset=utf-8")


@router.api_route("/static/{name}", methods=["GET", "HEAD"])
async def static(request: Request, name: str) -> Response:
    media_type = STATIC.get(name)
    if media_type is None:
        raise HTTPException(404, "no such file")
    return _answer(request, name, media_type)
