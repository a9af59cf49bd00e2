"""The explorer's web layer: a Starlette app serving one page and a small JSON API over an
:class:`~protodiff.explore.session.Explorer`.

Starlette rather than Gradio (the field's convention): it is one small dependency (plus uvicorn
to serve it) instead of a framework with its own front-end build; the page is ours (``page.html``,
``page.js``, ``page.css``: plain files, no build step), so it can show a timeline scrubber or an
effect matrix whose cells set sliders, which Gradio's components do not offer; and the whole app
is tested in-process with Starlette's ``TestClient``.

Nothing a user sends reaches the model except numbers and image bytes: a request body is read up
to a size limit, JSON is parsed into checked numbers, and an upload is decoded in memory by
:mod:`~protodiff.explore.uploads` (never written to disk). Every failure is a JSON ``{"error":
...}`` the page shows, and one log line; a run that will not load leaves the server up, saying so.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from protodiff.errors import ProtodiffError
from protodiff.explain.edit import EditSettings
from protodiff.explore import payloads
from protodiff.explore.session import Explorer
from protodiff.explore.uploads import MAX_BYTES

log = logging.getLogger("protodiff.explore")

#: The largest JSON request accepted (an edit of a 512-dimension code is ~10 KB).
MAX_JSON_BYTES = 2**20
#: Test images the gallery explains (each prototype turned up in each).
GALLERY_IMAGES = 3

Handler = Callable[[Request], Awaitable[Any]]


class RequestError(ProtodiffError):
    """A request the explorer refuses; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class State:
    """The explorer the app serves, or why there is none; the gallery, computed once on demand."""

    def __init__(self, explorer: Explorer | None, error: str | None, gallery_images: int) -> None:
        self.explorer = explorer
        self.error = error
        self.gallery_images = gallery_images
        self._gallery: dict[str, Any] | None = None
        self._gallery_lock = threading.Lock()

    def require(self) -> Explorer:
        if self.explorer is None:
            raise RequestError(self.error or "no run is loaded", status=503)
        return self.explorer

    def gallery(self) -> dict[str, Any]:
        """The prototype gallery (computed by the first request, then kept; a model without
        prototypes gets the explainer's one-line refusal, kept as well)."""
        explorer = self.require()
        with self._gallery_lock:
            if self._gallery is None:
                try:
                    self._gallery = payloads.gallery(explorer.gallery(self.gallery_images))
                except ProtodiffError as exc:
                    self._gallery = {"unavailable": str(exc)}
            return self._gallery


def _api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """``handler``'s result as JSON; a refusal as ``{"error": message}`` with its status and a
    warning in the log, anything unexpected as a 500 with the traceback in the log: never a crash."""

    async def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(await handler(request))
        except ProtodiffError as exc:
            status = exc.status if isinstance(exc, RequestError) else 400
            log.warning("%s %s: %s", request.method, request.url.path, exc)
            return JSONResponse({"error": str(exc)}, status_code=status)
        except Exception as exc:
            log.exception("%s %s failed", request.method, request.url.path)
            return JSONResponse({"error": f"internal error ({type(exc).__name__}: {exc}); see the server's log"}, status_code=500)

    return endpoint


async def _body(request: Request, limit: int, what: str) -> bytes:
    """The request's body, refused as soon as it is longer than ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(f"{what} is {int(declared) / 2**20:.1f} MiB; at most {limit / 2**20:g} MiB is accepted", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"{what} is over {limit / 2**20:g} MiB, the most accepted", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request: Request) -> dict[str, Any]:
    try:
        value = json.loads(await _body(request, MAX_JSON_BYTES, "the request"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestError("the request is not JSON") from None
    if not isinstance(value, dict):
        raise RequestError("the request must be a JSON object")
    return value


def _integer(value: Any, what: str) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestError(f"{what} must be a whole number, not {str(value)[:20]!r}")
    return value


def _vector(value: Any) -> list[float]:
    if not isinstance(value, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        raise RequestError("'vector' must be a list of finite numbers, one per dimension")
    return [float(v) for v in value]


def create_app(explorer: Explorer | None = None, *, error: str | None = None, gallery_images: int = GALLERY_IMAGES) -> Starlette:
    """The app over ``explorer``; with none, every API call answers ``error`` (why the run did not load)."""
    state = State(explorer, error, gallery_images)

    async def run_info(request: Request) -> dict[str, Any]:
        return await run_in_threadpool(payloads.run, state.require())

    async def images(request: Request) -> dict[str, Any]:
        explorer = state.require()
        attribute = request.query_params.get("attribute") or None
        present = request.query_params.get("present", "1") != "0"
        indices = explorer.matching(attribute, present)
        return await run_in_threadpool(payloads.thumbnails, explorer, indices)

    async def pick(request: Request) -> dict[str, Any]:
        explorer = state.require()
        index = _integer((await _json(request)).get("index"), "'index'")
        return await run_in_threadpool(lambda: payloads.picture(explorer.pick(index)))

    async def upload(request: Request) -> dict[str, Any]:
        explorer = state.require()
        data = await _body(request, MAX_BYTES, "the upload")
        filename = unquote(request.headers.get("x-filename", ""))
        return await run_in_threadpool(lambda: payloads.picture(explorer.upload(data, filename)))

    async def edit(request: Request) -> dict[str, Any]:
        explorer = state.require()
        body = await _json(request)
        key = body.get("key")
        if not isinstance(key, str):
            raise RequestError("'key' must name a picture (from /api/pick or /api/upload)")
        vector = _vector(body.get("vector"))
        return await run_in_threadpool(lambda: payloads.edit(explorer.edit(key, vector)))

    async def gallery(request: Request) -> dict[str, Any]:
        return await run_in_threadpool(state.gallery)

    def page_file(name: str, media_type: str) -> Route:
        content = resources.files("protodiff.explore").joinpath(name).read_text()

        async def serve(request: Request) -> Response:
            return Response(content, media_type=media_type, headers={"Cache-Control": "no-store"})

        return Route("/" if name == "page.html" else f"/{name}", serve)

    routes = [
        page_file("page.html", "text/html"),
        page_file("page.js", "text/javascript"),
        page_file("page.css", "text/css"),
        Route("/api/run", _api(run_info)),
        Route("/api/images", _api(images)),
        Route("/api/pick", _api(pick), methods=["POST"]),
        Route("/api/upload", _api(upload), methods=["POST"]),
        Route("/api/edit", _api(edit), methods=["POST"]),
        Route("/api/gallery", _api(gallery)),
    ]
    return Starlette(routes=routes)


def open_app(
    run: str, *, device: str = "cpu", settings: EditSettings | None = None, gallery_images: int = GALLERY_IMAGES
) -> Starlette:
    """The app over ``run`` (its edits made as ``settings`` say; default: ``EditSettings()``); a run
    that will not load still gives an app, whose page says why (and the log, once)."""
    try:
        explorer = Explorer.open(run, device=device, settings=settings)
    except ProtodiffError as exc:
        log.error("cannot explore %s: %s", run, exc)
        return create_app(error=f"cannot explore {run}: {exc}", gallery_images=gallery_images)
    except Exception as exc:
        log.exception("cannot explore %s", run)
        return create_app(error=f"cannot explore {run}: {type(exc).__name__}: {exc}", gallery_images=gallery_images)
    log.info("exploring %s: %s conditioner, %d dimensions", run, explorer.experiment.model.conditioner.name, len(explorer.names))
    return create_app(explorer, gallery_images=gallery_images)
