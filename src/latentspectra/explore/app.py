"""The page's web application (FastAPI): thin handlers over `ExploreSession`, request bodies validated at the edge,
every refusal a JSON answer {"detail": "..."} on one line with a 4xx status, and the OpenAPI schema at /openapi.json
so that scripts can make the page's calls (no /docs: Swagger UI would load from a CDN, and the page works offline).
No input a request can send reaches the 500 handler, which is left for the server's own faults (a bug, a disk that
cannot be written); no answer names a path of the server (the networks are named by `PublicNames.networks`, and
every message is scrubbed of the server's paths).

Only the package's static/ folder is served as files (Starlette's StaticFiles keeps requests inside it); no request
names a file on the server: exports are built from the method registry's names and the methods the server holds.
"""

from __future__ import annotations

import base64
import logging
import tempfile
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from ..config import MAX_SEED
from ..errors import LatentspectraError, OutputError
from ..io import json_text, save_tensors_with_record
from ..methods.directions import DirectionMethod, MethodError, save_method
from .fitting import LSD, MethodStatus, NotFitted
from .images import ImageInputError, uint8_png
from .session import ExploreSession, View

STATIC = Path(str(files("latentspectra.explore") / "static"))
LATENT_BOUND = 1e3  # |z_i| accepted: the prior's sigma is 1, so this is far outside anything meaningful, not a limit
OFFSET_BOUND = 100.0  # |t_k| accepted per direction (the page's sliders stay within ExploreConfig.slider_range)
MAX_VALUES = 65_536  # numbers in one latent or offset list: M of any network this package can hold in a request
JSON_BYTES = 2**20  # the largest JSON body: a latent of 65,536 numbers fits
LATENT_FORMAT = "latentspectra.ExploreLatent"
LOG = logging.getLogger("latentspectra.explore")

Finite = Annotated[float, Field(allow_inf_nan=False, ge=-LATENT_BOUND, le=LATENT_BOUND)]
Offset = Annotated[float, Field(allow_inf_nan=False, ge=-OFFSET_BOUND, le=OFFSET_BOUND)]
MethodName = Annotated[str, Field(max_length=64, pattern=r"^[a-z0-9_-]+$", description="a registered method")]


class Body(BaseModel):
    """Request bodies refuse unknown fields, so a misspelt one is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class SampleRequest(Body):
    seed: int = Field(0, ge=0, le=MAX_SEED, description="z ~ N(0, I) drawn with this seed")


class TestImageRequest(Body):
    index: int = Field(..., ge=0, description="a test image, 0..test_images - 1 (GET /api/info)")


class MoveRequest(Body):
    latent: Annotated[list[Finite], Field(min_length=1, max_length=MAX_VALUES)]
    method: MethodName = LSD
    offsets: Annotated[list[Offset], Field(max_length=MAX_VALUES)] = Field(
        default_factory=list, description="t_k along the method's directions d_k: z + sum_k t_k d_k"
    )


class ViewRequest(MoveRequest):
    top_n: int = Field(3, ge=1, description="components kept in the truncated (denoised) latent")


class StripRequest(MoveRequest):
    direction: int = Field(..., ge=0, description="k: the strip is G(z + s d_k) over the sliders' range")


class RotationRequest(Body):
    latent: Annotated[list[Finite], Field(min_length=1, max_length=MAX_VALUES)]
    labels: Annotated[list[int], Field(min_length=2, max_length=1000)] | None = Field(
        None, description="labels visited in order (default: every label)"
    )
    top_n: int = Field(3, ge=1)


class LatentOut(BaseModel):
    latent: list[float]
    input_image: str | None = None
    notes: list[str] = []
    label: int | None = None
    inversion: dict[str, Any] | None = None  # how an image became the latent (`ImageLatents.record`)


class ViewOut(BaseModel):
    latent: list[float]
    image: str
    probabilities: list[float]
    spectrum: list[float]
    top_labels: list[int]
    truncated_latent: list[float]
    truncated_image: str
    truncated_probabilities: list[float]


class StatusOut(BaseModel):
    name: str
    state: Literal["idle", "fitting", "ready", "failed"]
    stage: str
    seconds: float | None
    error: str | None
    directions: int
    cached: bool
    names: list[str]


class StripOut(BaseModel):
    amounts: list[float]
    images: list[str]


class RotationOut(BaseModel):
    frames: list[ViewOut]


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def view_out(view: View) -> ViewOut:
    return ViewOut(
        latent=view.latent,
        image=data_url(view.image),
        probabilities=view.probabilities,
        spectrum=view.spectrum,
        top_labels=view.top_labels,
        truncated_latent=view.truncated_latent,
        truncated_image=data_url(view.truncated_image),
        truncated_probabilities=view.truncated_probabilities,
    )


def error_answer(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": " ".join(detail.split())}, status_code=status)


def validation_message(error: RequestValidationError) -> str:
    """The validation errors as one line: "body.latent.3: Input should be a finite number; ..."; a body that is not
    JSON: "body: malformed JSON (at character N)"."""
    parts = [
        f"body: malformed JSON (at character {item['loc'][-1]})"
        if item.get("type") == "json_invalid"
        else f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg', '')}"
        for item in error.errors()
    ]
    return "; ".join(parts[:5]) + (f"; and {len(parts) - 5} more" if len(parts) > 5 else "")


def status_for(error: LatentspectraError) -> int:
    """The HTTP status of a refusal: 409 not fitted yet, 413 an image too large, 400 any other bad input."""
    if isinstance(error, NotFitted):
        return 409
    if isinstance(error, ImageInputError) and error.too_large:
        return 413
    return 400


def add_error_handlers(app: FastAPI, session: ExploreSession) -> None:
    """JSON answers for every refusal, never a traceback, and never a path of the server."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_answer(422, validation_message(error))

    @app.exception_handler(LatentspectraError)
    async def refused(request: Request, error: LatentspectraError) -> JSONResponse:
        if isinstance(error, OutputError):  # the server's disk, not the request: its paths are for its log only
            LOG.error("%s %s failed: %s", request.method, request.url.path, error)
            return error_answer(500, "the server could not write a file; the server's log has the details")
        return error_answer(status_for(error), session.names.scrub(str(error)))

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:
        LOG.error("%s %s failed: %s: %s", request.method, request.url.path, type(error).__name__, error)
        return error_answer(500, f"internal error ({type(error).__name__}); the server's log has the details")


def limit_bodies(app: FastAPI, upload_bytes: int) -> None:
    """Refuse a body larger than the endpoint takes (images: ``upload_bytes``; JSON: `JSON_BYTES`) from its
    Content-Length, before reading it, and a POST without one (411)."""

    @app.middleware("http")
    async def check_length(request: Request, call_next: Any) -> Response:
        if request.method != "POST":
            return await call_next(request)
        limit = upload_bytes if request.url.path == "/api/encode" else JSON_BYTES
        length = request.headers.get("content-length")
        if length is None:
            return error_answer(411, "a Content-Length header is required")
        if not length.isdigit():
            return error_answer(400, f"Content-Length: expected a whole number, got {length!r}")
        if int(length) > limit:
            return error_answer(413, f"request body of {int(length)} bytes: expected at most {limit}")
        return await call_next(request)


def create_app(session: ExploreSession) -> FastAPI:
    """The application serving ``session``: the page at /, its files at /static, the JSON API under /api."""
    app = FastAPI(
        title="latentspectra explore",
        version="1",
        docs_url=None,
        redoc_url=None,  # both load from a CDN
        description="Read and move through the latent space of a generator and classifier (and an encoder, where "
        "there is one): "
        "the page's calls. Images are PNG data URLs; latents are lists of M numbers.",
    )
    add_error_handlers(app, session)
    limit_bodies(app, session.config.upload_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    add_start_routes(app, session)
    add_view_routes(app, session)
    add_method_routes(app, session)
    add_export_routes(app, session)
    return app


def add_start_routes(app: FastAPI, session: ExploreSession) -> None:
    """The page, the facts about the networks, and the four ways to get a latent."""

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        """Latent size, image shape, labels, the basis' rows (label and set of each c_k), limits, methods."""
        return session.info()

    @app.post("/api/sample")
    def sample(request: SampleRequest) -> LatentOut:
        """A latent drawn from the prior N(0, I) with the seed."""
        return LatentOut(latent=session.sample(request.seed).tolist())

    @app.post("/api/test-image")
    def test_image(request: TestImageRequest) -> LatentOut:
        """The latent of a test image (its encoder's mean code, or its inversion: --inversion), with the image and
        how the latent was made."""
        image = session.test_image(request.index)
        found = session.encode(image)
        return LatentOut(
            latent=found.latent.tolist(), input_image=data_url(uint8_png(image[0])), inversion=found.inversion
        )

    @app.post(
        "/api/encode",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def encode(request: Request) -> LatentOut:
        """The latent of an image file sent as the body (PNG, JPEG, GIF, BMP or WebP; a drawing is a PNG), after
        converting it to the networks' image shape, as for a test image; the notes say what was changed."""
        data = bytearray()
        async for chunk in request.stream():
            data.extend(chunk)
            if len(data) > session.config.upload_bytes:
                raise ImageInputError(
                    f"image file: expected at most {session.config.upload_bytes} bytes", too_large=True
                )
        converted = await run_in_threadpool(session.read_upload, bytes(data))
        found = await run_in_threadpool(session.encode, converted.pixels)
        return LatentOut(
            latent=found.latent.tolist(),
            input_image=data_url(uint8_png(converted.pixels[0])),
            notes=list(converted.notes),
            inversion=found.inversion,
        )


def add_view_routes(app: FastAPI, session: ExploreSession) -> None:
    """A latent moved and shown, a strip along one direction, Algorithm 1's rotation."""

    @app.post("/api/view")
    def view(request: ViewRequest) -> ViewOut:
        """z moved by the offsets along the method's directions, decoded and classified, its LSD spectrum, and
        its top_n truncation decoded and classified."""
        z = session.check_latent(request.latent)
        moved = session.move(z, request.method, request.offsets) if request.offsets else z
        return view_out(session.views(moved[None], request.top_n)[0])

    @app.post("/api/strip")
    def strip(request: StripRequest) -> StripOut:
        """G(z' + s d_k) for amounts s evenly over the sliders' range, z' the latent moved by the offsets."""
        z = session.check_latent(request.latent)
        moved = session.move(z, request.method, request.offsets) if request.offsets else z
        amounts, images = session.strip(moved, request.method, request.direction)
        return StripOut(amounts=amounts, images=[data_url(image) for image in images])

    @app.post("/api/rotation")
    def rotation(request: RotationRequest) -> RotationOut:
        """Algorithm 1: the latent rotated from each label's quasi-eigenvector to the next; every frame shown."""
        path = session.rotation(session.check_latent(request.latent), request.labels)
        return RotationOut(frames=[view_out(frame) for frame in session.views(path, request.top_n)])


def status_out(session: ExploreSession, status: MethodStatus) -> StatusOut:
    """A method's status as the API answers it: its slider names when ready, why its fit failed without paths."""
    names = session.direction_names(status.name) if status.state == "ready" else []
    error = None if status.error is None else session.names.scrub(status.error)
    return StatusOut(
        name=status.name,
        state=status.state,
        stage=status.stage,
        seconds=status.seconds,
        error=error,
        directions=status.directions,
        cached=status.cached,
        names=names,
    )


def known_method(session: ExploreSession, name: str) -> str:
    """``name`` when it is a registered method, else a 404."""
    if name not in session.methods.names():
        raise HTTPException(404, f"method: expected one of {', '.join(session.methods.names())}, got {name!r}")
    return name


def add_method_routes(app: FastAPI, session: ExploreSession) -> None:
    """The direction methods: their states, and a fit started on first use."""

    @app.get("/api/methods")
    def methods() -> list[StatusOut]:
        """Every method's state (idle, fitting, ready, failed), stage, seconds and slider names."""
        return [status_out(session, session.methods.status(name)) for name in session.methods.names()]

    @app.get("/api/methods/{name}")
    def method(name: str) -> StatusOut:
        return status_out(session, session.methods.status(known_method(session, name)))

    @app.post("/api/methods/{name}/fit", status_code=202)
    def fit(name: str) -> StatusOut:
        """Start fitting the method in the background unless it is ready (poll GET /api/methods/{name})."""
        return status_out(session, session.methods.request_fit(known_method(session, name)))


def add_export_routes(app: FastAPI, session: ExploreSession) -> None:
    """Downloads: the current latent, and a method's directions, as JSON or safetensors."""

    @app.post("/api/export/latent")
    def export_latent(request: MoveRequest, format: Literal["json", "safetensors"] = "json") -> Response:
        """The latent moved by the offsets, with the latent it started from and the move, as a JSON file or a
        safetensors file whose header holds the same record (`io.save_tensors_with_record`)."""
        base = session.check_latent(request.latent)
        moved = session.move(base, request.method, request.offsets) if request.offsets else base
        record = {
            "format": LATENT_FORMAT,
            "networks": session.names.networks,
            "method": request.method,
            "offsets": request.offsets,
        }
        if format == "json":
            body = json_text({**record, "latent": moved.tolist(), "base": base.tolist()})
            return download(body.encode(), "latent.json", "application/json")
        return download(
            safetensors_bytes({"latent": moved, "base": base}, record), "latent.safetensors", "application/octet-stream"
        )

    @app.get("/api/methods/{name}/export")
    def export_directions(name: str, format: Literal["json", "safetensors"] = "json") -> Response:
        """A fitted method's directions: JSON (name, parameters, directions K x M), or the method's safetensors file
        as `methods.save_method` writes it (its record in the header; `load_method` reads it with the JSON)."""
        method = session.methods.get(known_method(session, name))
        if format == "json":
            body = json_text({"method": name, "params": method.get_params(), "directions": method.directions_.tolist()})
            return download(body.encode(), f"{name}-directions.json", "application/json")
        return download(method_bytes(method), f"{name}.safetensors", "application/octet-stream")


def written_bytes(write: Callable[[Path], Path]) -> bytes:
    """The bytes of the file that ``write`` writes (to a path in a temporary directory it is given) and returns."""
    with tempfile.TemporaryDirectory(prefix="latentspectra-export-") as directory:
        return write(Path(directory) / "export.safetensors").read_bytes()


def safetensors_bytes(tensors: dict[str, torch.Tensor], record: dict[str, Any]) -> bytes:
    """``tensors`` as a safetensors file with ``record`` (and its digest) in its header, as bytes."""
    return written_bytes(lambda path: save_tensors_with_record(path, tensors, record, MethodError))


def method_bytes(method: DirectionMethod) -> bytes:
    """The fitted ``method`` as `save_method` writes it, as bytes: the served method itself, not a cache file that
    another server may have written since."""
    return written_bytes(lambda path: save_method(method, path))


def download(body: bytes, name: str, media_type: str) -> Response:
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})
