"""`latentspectra explore`: the JSON API against a real uvicorn server on a free loopback port (httpx), the page in
headless Chromium (Selenium with Debian's chromium and chromium-driver), and the command line. One server for the
module: the shipped networks, a basis of V = 20 in a temporary cache."""

from __future__ import annotations

import base64
import io
import json
import math
import shutil
import socket
import struct
import threading
import time
import zlib
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from latentspectra.cli import main
from latentspectra.config import ExploreConfig
from latentspectra.errors import LatentspectraError, OutputError
from latentspectra.explore import bind, create_app, open_session, serving
from latentspectra.explore.images import convert_image, png_bytes
from latentspectra.explore.names import PublicNames, hidden_paths, networks_name, without_paths
from latentspectra.io import load_tensors_and_record
from latentspectra.methods.directions import save_method
from latentspectra.methods.ours import LSDDirections
from latentspectra.models.files import shipped_models_dir
from latentspectra.models.spec import LatentNetworks

PER_SET = 20  # a small basis: the tests check the plumbing, not LSD's accuracy
INVERSION_STEPS = 5  # the hybrid's descent from the encoder's means, short: the plumbing again
WAIT = 30.0  # seconds any test waits for the server or the browser, at most
# one worker under pytest-xdist's loadgroup, so that the session and its server start once (seconds)
pytestmark = pytest.mark.xdist_group("explore")
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("explore-cache")


@pytest.fixture(scope="module")
def session(cache_root):
    opened = open_session(ExploreConfig(per_set=PER_SET, inversion_steps=INVERSION_STEPS), cache_root=cache_root)
    yield opened
    opened.methods.close()


@pytest.fixture(scope="module")
def url(session):
    with serving(create_app(session), bind("127.0.0.1", 0)) as address:
        yield address


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, timeout=WAIT, trust_env=False) as opened:
        yield opened


def sample(client, seed: int = 1) -> list[float]:
    return client.post("/api/sample", json={"seed": seed}).json()["latent"]


def png_pixels(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def image_file(pixels: np.ndarray, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format)
    return buffer.getvalue()


def wait_ready(client, name: str) -> dict:
    """Start fitting ``name`` and poll its status until it is ready (bounded)."""
    status = client.post(f"/api/methods/{name}/fit").json()
    deadline = time.monotonic() + WAIT
    while status["state"] == "fitting" and time.monotonic() < deadline:
        time.sleep(0.1)
        status = client.get(f"/api/methods/{name}").json()
    assert status["state"] == "ready", status
    return status


# --- What a latent is made of ------------------------------------------------------------------------


@pytest.mark.slow
def test_info_and_the_openapi_schema_describe_the_api(client, session):
    info = client.get("/api/info").json()
    assert info["latent_dim"] == 100 and info["image_shape"] == [1, 28, 28] and len(info["labels"]) == 10
    assert info["methods"][0] == "lsd" and {"sefa", "ganspace", "interfacegan", "sfvq", "reds"} <= set(info["methods"])
    assert len(info["basis"]["labels"]) == 100
    assert info["inversion"] == {"inversion": "hybrid", "requested": "auto"}  # auto: hybrid with an encoder
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/view",
        "/api/encode",
        "/api/rotation",
        "/api/strip",
        "/api/methods/{name}/fit",
        "/api/export/latent",
    } <= set(paths)
    assert "image/*" in paths["/api/encode"]["post"]["requestBody"]["content"]


def test_a_view_holds_the_image_probabilities_and_lsd_spectrum_of_the_latent(client, session):
    z = sample(client)
    view = client.post("/api/view", json={"latent": z, "top_n": 3}).json()
    assert math.isclose(sum(view["probabilities"]), 1.0, abs_tol=1e-9)
    assert png_pixels(view["image"]).shape == (28, 28)
    latent = torch.tensor(z, dtype=torch.float64)
    assert np.allclose(view["spectrum"], session.basis.decompose(latent).numpy(), atol=1e-6)
    assert view["top_labels"] == session.basis.classify(latent, top=4).tolist()
    assert np.allclose(view["truncated_latent"], session.basis.truncate(latent, 3).numpy(), atol=1e-5)
    whole = client.post("/api/view", json={"latent": z, "top_n": 100}).json()
    assert np.allclose(whole["truncated_latent"], z, atol=1e-5)  # all M components kept: the latent itself


def test_sliders_move_the_latent_along_the_methods_directions(client, session):
    z = sample(client, seed=2)
    moved = client.post("/api/view", json={"latent": z, "method": "lsd", "offsets": [0.0, 2.5]}).json()
    expected = torch.tensor(z) + 2.5 * session.methods.get("lsd").directions_[1]
    assert np.allclose(moved["latent"], expected.numpy(), atol=1e-5)
    assert moved["image"] != client.post("/api/view", json={"latent": z}).json()["image"]


def test_a_method_is_fitted_on_first_use_cached_and_exported(client, session, cache_root):
    assert client.post(
        "/api/view", json={"latent": sample(client), "method": "sefa", "offsets": [1.0]}
    ).status_code in (200, 409)  # 409 until it is fitted (another test may have fitted it)
    status = wait_ready(client, "sefa")
    assert status["directions"] == 10 and status["names"][0] == "d0"
    assert (
        client.post("/api/view", json={"latent": sample(client), "method": "sefa", "offsets": [1.0]}).status_code == 200
    )
    exported = client.get("/api/methods/sefa/export", params={"format": "json"}).json()
    assert np.allclose(exported["directions"], session.methods.get("sefa").directions_.numpy())
    tensors_file = client.get("/api/methods/sefa/export", params={"format": "safetensors"})
    assert tensors_file.headers["content-disposition"] == 'attachment; filename="sefa.safetensors"'
    assert session.methods.path("sefa").read_bytes() == tensors_file.content
    again = open_session(ExploreConfig(per_set=PER_SET), cache_root=cache_root)  # a second server: from the cache
    try:
        assert again.methods.status("sefa").cached and torch.equal(
            again.methods.get("sefa").directions_, session.methods.get("sefa").directions_
        )
    finally:
        again.methods.close()


def test_strip_and_rotation(client, session):
    z = sample(client, seed=3)
    strip = client.post("/api/strip", json={"latent": z, "direction": 4}).json()
    assert len(strip["images"]) == len(strip["amounts"]) == session.config.strip_images
    frames = client.post("/api/rotation", json={"latent": z}).json()["frames"]
    assert len(frames) == 1 + session.config.rotation_steps * 9  # Algorithm 1 through the ten labels
    assert np.allclose(frames[0]["latent"], z, atol=1e-6)
    assert all(math.isclose(sum(frame["probabilities"]), 1.0, abs_tol=1e-9) for frame in frames)
    end = torch.tensor(frames[-1]["latent"], dtype=torch.float64)
    assert math.isclose(float(end @ end), 100.0, rel_tol=1e-9)  # each step rescales to <z|z> = M


def test_starting_points_test_image_upload_and_export(client, session, tmp_path):
    answer = client.post("/api/test-image", json={"index": 7}).json()
    expected = session.encode(session.test_images[7:8])
    assert np.allclose(answer["latent"], expected.latent.numpy(), atol=1e-6)
    assert answer["inversion"] == expected.inversion and answer["inversion"]["inversion"] == "hybrid"
    assert answer["inversion"]["settings"]["steps"] == INVERSION_STEPS
    assert np.array_equal(png_pixels(answer["input_image"]), session.test_images[7, 0])
    uploaded = client.post("/api/encode", content=image_file(session.test_images[7, 0])).json()
    assert np.allclose(uploaded["latent"], answer["latent"], atol=1e-5) and uploaded["notes"] == []
    photo = np.full((56, 40, 3), 250, dtype=np.uint8)  # a dark digit on white paper, RGB, another size
    photo[10:46, 17:23] = 10
    notes = client.post("/api/encode", content=image_file(photo, "JPEG")).json()["notes"]
    assert [note.split(":")[0].split(" ")[0] for note in notes] == ["converted", "resized", "inverted"], notes
    moved = {"latent": answer["latent"], "offsets": [1.0]}
    exported = json.loads(client.post("/api/export/latent", params={"format": "json"}, json=moved).content)
    path = tmp_path / "latent.safetensors"
    path.write_bytes(client.post("/api/export/latent", params={"format": "safetensors"}, json=moved).content)
    tensors, record = load_tensors_and_record(path, LatentspectraError, "latent")
    assert np.allclose(tensors["latent"].numpy(), exported["latent"]) and record["offsets"] == [1.0]


# --- Bad input: a JSON 4xx, never a 500 --------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def crafted_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with one tiny IDAT: a decompression bomb's header."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0"))
        + png_chunk(b"IEND", b"")
    )


def broken_chunk_png() -> bytes:
    """An 8 x 8 grey PNG whose pixel data runs on into a chunk with a nonsense name: Pillow raises SyntaxError."""
    rows = np.random.default_rng(0).integers(0, 255, (8, 9), dtype=np.uint8)
    rows[:, 0] = 0  # each row's filter byte: none
    data = zlib.compress(rows.tobytes())
    header = struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", data[:20])
        + png_chunk(b"\0\0IE", data[20:])
        + png_chunk(b"IEND", b"")
    )


def one_line_refusal(answer: httpx.Response) -> str:
    """The one-line detail of a 4xx answer, checked: {"detail": "..."} and nothing else, never a traceback."""
    assert 400 <= answer.status_code < 500, (answer.request.url, answer.status_code, answer.text[:300])
    detail = answer.json()["detail"]
    assert list(answer.json()) == ["detail"] and isinstance(detail, str) and detail and "\n" not in detail
    assert "Traceback" not in answer.text
    return detail


BAD_JSON = [
    ("/api/view", b'{"latent": [NaN]}', 422),
    ("/api/view", b'{"latent": [Infinity]}', 422),
    ("/api/view", b'{"latent": [1e308]}', 422),
    ("/api/view", b'{"latent": [1, 2', 422),
    ("/api/view", b"[1, 2]", 422),
    ("/api/view", b'{"latent": [0.5], "colour": 1}', 422),
    ("/api/view", b'{"latent": [0.5]}', 400),
    ("/api/sample", b'{"seed": -1}', 422),
    ("/api/sample", b'{"seed": 1.5}', 422),
    ("/api/test-image", b'{"index": 10000}', 400),
    ("/api/test-image", b'{"index": -1}', 422),
    ("/api/rotation", b'{"latent": ZZ, "labels": [3, 3]}', 400),
    # each of these was once a 500, or is a value of the kind that was
    ("/api/rotation", b'{"latent": Z0}', 400),  # the rotation rescales every step: a zero latent cannot be
    ("/api/rotation", b'{"latent": Z0, "labels": [0, 1], "top_n": 1}', 400),
    ("/api/rotation", b'{"latent": ZZ, "labels": []}', 422),
    ("/api/rotation", b'{"latent": ZZ, "labels": [0, 10]}', 400),
    ("/api/rotation", b'{"latent": ZZ, "labels": [0, 1e400]}', 422),
    ("/api/rotation", b'{"latent": ZZ, "top_n": 0}', 422),
    ("/api/rotation", b'{"latent": [NaN, 1]}', 422),
    ("/api/rotation", b'{"latent": [-Infinity]}', 422),
    ("/api/strip", b'{"latent": ZZ, "direction": 10}', 400),
    ("/api/strip", b'{"latent": ZZ, "direction": 100000000000000000000000}', 400),
    ("/api/strip", b'{"latent": ZZ, "direction": -1}', 422),
    ("/api/strip", b'{"latent": ZZ, "direction": 0, "offsets": [NaN]}', 422),
    ("/api/strip", b'{"latent": ZZ, "direction": 0, "offsets": [-Infinity]}', 422),
    ("/api/strip", b'{"latent": ZZ, "direction": 0, "method": "nope"}', 400),
    ("/api/strip", b'{"latent": [1e999], "direction": 0}', 422),
    ("/api/view", b'{"latent": ZZ, "offsets": [Infinity]}', 422),
    ("/api/view", b'{"latent": ZZ, "offsets": [NaN]}', 422),
    ("/api/view", b'{"latent": []}', 422),
    ("/api/view", b'{"latent": ZZ, "top_n": 1e400}', 422),
    ("/api/export/latent", b'{"latent": ZZ, "offsets": [NaN]}', 422),
    ("/api/export/latent", b'{"latent": [0.5]}', 400),
    ("/api/export/latent", b'{"latent": ZZ, "method": "nope", "offsets": [1]}', 400),
    ("/api/sample", b'{"seed": 18446744073709551616}', 422),  # 2**64
    ("/api/sample", b'{"seed": 18446744073709551617}', 422),
    ("/api/sample", b'{"seed": NaN}', 422),
    ("/api/sample", b'{"seed": ' + b"9" * 5000 + b"}", 400),  # more digits than Python's JSON reads
    ("/api/test-image", b'{"index": 1e400}', 422),
    ("/api/test-image", b'{"index": 100000000000000000000000}', 400),
]


@pytest.mark.parametrize("path, body, status", BAD_JSON)
def test_bad_json_is_a_4xx_with_one_line(client, path, body, status):
    body = body.replace(b"ZZ", json.dumps([0.1] * 100).encode()).replace(b"Z0", json.dumps([0.0] * 100).encode())
    answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    one_line_refusal(answer)


# Any JSON body to the calls that take a latent: a 2xx or a one-line 4xx, never a 500. Most bodies are valid ones
# (zero, subnormal and extreme latents among them), so that they reach the networks, the basis, the methods and the
# rotation; the others have one field set to any value, fields left out, or are any JSON at all.
NUMBERS = st.one_of(
    st.floats(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0.0, -0.0, 1e-45, 1e-320, 1e3, -1e3, 1000.5, 1e308, math.nan, math.inf]),
)
VALID_LATENTS = st.one_of(
    st.just([0.0] * 100),
    st.lists(st.floats(-1e3, 1e3), min_size=100, max_size=100),
    st.lists(st.sampled_from([0.0, 5e-324, 1e-45, -1e3, 1e3]), min_size=100, max_size=100),
)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
ODD_VALUES = st.one_of(NUMBERS, ANY_JSON, st.lists(NUMBERS, max_size=101), st.sampled_from(["nope", "../x", ""]))
VALID_FIELDS = {
    "method": st.sampled_from(["lsd", "sefa"]),
    "offsets": st.lists(st.floats(-100, 100), max_size=10),
    "top_n": st.integers(1, 100),
    "direction": st.integers(0, 9),
    "labels": st.none() | st.lists(st.integers(0, 9), min_size=2, max_size=4),
}
CALLS = {
    "/api/view": ("method", "offsets", "top_n"),
    "/api/strip": ("direction", "method", "offsets"),
    "/api/rotation": ("labels", "top_n"),
    "/api/export/latent": ("method", "offsets"),
}


def call_bodies(path: str) -> st.SearchStrategy:
    """Bodies for ``path``: valid ones, the same with one field (or an unknown one) set to any value, some fields
    left out, or any JSON."""
    fields = {name: VALID_FIELDS[name] for name in CALLS[path]}
    valid = st.fixed_dictionaries({"latent": VALID_LATENTS, **fields})
    one_odd = st.builds(
        lambda body, name, value: {**body, name: value},
        valid,
        st.sampled_from(["latent", *fields, "colour"]),
        ODD_VALUES,
    )
    some = st.fixed_dictionaries({"latent": VALID_LATENTS}, optional=fields)
    return st.one_of(valid, valid, one_odd, one_odd, some, ANY_JSON)


@pytest.mark.parametrize("path", list(CALLS))
@pytest.mark.slow
def test_any_json_body_is_answered_or_refused_never_a_500(client, path):
    @settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=call_bodies(path))
    def answered_or_refused(body):
        answer = client.post(path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        if answer.status_code >= 300:
            one_line_refusal(answer)

    answered_or_refused()


def test_networks_that_overflow_are_a_4xx(client, session, monkeypatch):
    """Networks that give NaN or infinity (low precision far from the prior): a 400, not a JSON encoder's 500."""
    generator = session.networks.generator
    monkeypatch.setattr(session.networks, "generator", lambda z: generator(z) * math.inf)
    assert "NaN or infinite" in one_line_refusal(client.post("/api/view", json={"latent": [0.5] * 100}))
    monkeypatch.setattr(session.networks, "generator", generator)
    monkeypatch.setattr(session.networks.encoder, "encode_mean", lambda images: torch.full((1, 100), math.nan))
    assert "NaN or infinite" in one_line_refusal(client.post("/api/test-image", json={"index": 0}))


def test_bad_requests_on_methods_and_values(client):
    z = sample(client)
    cases = [
        (client.post("/api/view", json={"latent": z, "method": "nope", "offsets": [1.0]}), 400),
        (client.post("/api/view", json={"latent": z, "method": "../etc", "offsets": [1.0]}), 422),
        (client.post("/api/view", json={"latent": z, "offsets": [1.0] * 11}), 400),
        (client.post("/api/view", json={"latent": z, "offsets": [1e9]}), 422),
        (client.post("/api/view", json={"latent": z, "top_n": 0}), 422),
        (client.post("/api/view", json={"latent": z, "top_n": 101}), 400),
        (client.post("/api/strip", json={"latent": z, "direction": 10}), 400),
        (client.post("/api/rotation", json={"latent": z, "labels": [3, 42]}), 400),
        (client.post("/api/rotation", json={"latent": [0.0] * 100, "labels": [3, 4]}), 400),
        (client.get("/api/methods/nope"), 404),
        (client.post("/api/methods/nope/fit"), 404),
        (client.get("/api/methods/lsd/export", params={"format": "pickle"}), 422),
        (client.post("/api/export/latent", params={"format": "npy"}, json={"latent": z}), 422),
    ]
    for answer, status in cases:
        assert answer.status_code == status, (answer.request.url, answer.text)
        assert isinstance(answer.json()["detail"], str)


def test_bad_uploads(client, session):
    limit = session.config.upload_bytes
    cases = [
        (b"not an image at all", 400),
        (b"%PDF-1.4\n" + b"0" * 100, 400),
        (image_file(session.test_images[0, 0])[:60], 400),  # a truncated PNG
        (crafted_png(5000, 5000), 413),  # more pixels than the page takes, refused from the header
        (crafted_png(100_000, 100_000), 413),  # a decompression bomb for Pillow itself
        (b"\0" * (limit + 1), 413),
        (b"", 400),
        (crafted_png(0, 0), 400),  # no pixels at all
        (crafted_png(4096, 4096), 400),  # as large as the page takes, but its data is one byte
        (crafted_png(2**31 - 1, 1), 413),
        (broken_chunk_png(), 400),  # Pillow: SyntaxError, once a 500
        (crafted_png(8, 8)[:8] + png_chunk(b"IHDR", b"\0" * 5), 400),  # Pillow: ValueError, once a 500
    ]
    for body, status in cases:
        answer = client.post("/api/encode", content=body, headers={"Content-Type": "image/png"})
        assert answer.status_code == status, answer.text
        one_line_refusal(answer)


def test_no_request_names_a_file_on_the_server(client):
    for path in (
        "/static/../pyproject.toml",
        "/static/%2e%2e/app.py",
        "/static/..%2f..%2fcli.py",
        "/static/%2e%2e%2f%2e%2e%2fconfig.py",
        "/static//etc/passwd",
        "/api/methods/..%2fbasis/export",
    ):
        answer = client.get(path)
        assert answer.status_code in (400, 404), (path, answer.status_code)
        assert "import " not in answer.text and "root:" not in answer.text
    assert client.get("/static/app.js").status_code == 200


def test_no_answer_names_a_path_of_the_server(client, session, cache_root):
    """The networks' directory and the cache appear in no answer: the page, /api/info, every call, the exports and
    the refusals (the page names the networks: "shipped mnist networks")."""
    private = {
        str(shipped_models_dir("mnist")),
        str(shipped_models_dir("mnist").resolve()),
        str(cache_root),
        str(session.methods.directory),
    }
    z = sample(client, seed=5)
    answers = [
        client.get(path)
        for path in (
            "/",
            "/static/app.js",
            "/api/info",
            "/openapi.json",
            "/api/methods",
            "/api/methods/lsd",
            "/api/methods/lsd/export",
            "/api/methods/lsd/export?format=safetensors",
            "/api/methods/nope",
            "/api/methods/reds/export",
        )
    ]
    answers += [
        client.post(path, json=body)
        for path, body in [
            ("/api/sample", {"seed": 5}),
            ("/api/test-image", {"index": 3}),
            ("/api/view", {"latent": z}),
            ("/api/strip", {"latent": z, "direction": 1}),
            ("/api/rotation", {"latent": z, "labels": [1, 2]}),
            ("/api/export/latent", {"latent": z}),
            ("/api/view", {"latent": z, "method": "reds", "offsets": [1.0]}),
            ("/api/rotation", {"latent": [0.0] * 100}),
            ("/api/view", {"latent": [1.0]}),
        ]
    ]
    answers.append(client.post("/api/export/latent", params={"format": "safetensors"}, json={"latent": z}))
    answers.append(client.post("/api/encode", content=b"not an image", headers={"Content-Type": "image/png"}))
    for answer in answers:
        assert answer.status_code < 500, (answer.request.url, answer.text)
        for path in private:
            assert path.encode() not in answer.content, (answer.request.url, path)
    assert client.get("/api/info").json()["networks"] == "shipped mnist networks"
    written = session.names.scrub(f"cannot write {session.methods.path('sefa')}")
    assert written == "cannot write <cache>/sefa.safetensors"


def test_lsd_cached_by_an_older_server_is_served_without_its_path(session, cache_root):
    """An LSD file cached before the page hid paths names the networks' directory in its basis' provenance: the next
    server makes LSD from its own basis instead, and says it is cached (the directions are the same)."""
    private = str(shipped_models_dir("mnist"))
    older = replace(session.basis, provenance={**session.basis.provenance, "models": private})
    save_method(LSDDirections.from_basis(older, 10, per_set=PER_SET), session.methods.path("lsd"))
    again = open_session(ExploreConfig(per_set=PER_SET), cache_root=cache_root)
    try:
        assert private not in json.dumps(again.methods.get("lsd").basis_provenance_)
        assert again.methods.status("lsd").cached
    finally:
        again.methods.close()


def test_a_file_the_server_cannot_write_is_a_500_without_its_path(client, monkeypatch):
    """The server's own disk failing is its fault, not the request's: a 500 whose line names no path."""

    def full(path, *args):
        raise OutputError(f"{path}: no space left on the device")

    monkeypatch.setattr("latentspectra.explore.app.save_tensors_with_record", full)
    answer = client.post("/api/export/latent", params={"format": "safetensors"}, json={"latent": [0.1] * 100})
    assert answer.status_code == 500 and "/" not in answer.json()["detail"], answer.text


def test_networks_are_named_and_paths_hidden(tmp_path):
    shipped = shipped_models_dir("mnist")
    assert networks_name(None, "mnist") == "shipped mnist networks"
    assert networks_name(str(shipped), "mnist") == "mnist" and networks_name(shipped, "mnist") == "mnist"
    assert networks_name("mypackage.nets:build", "mnist") == "mypackage.nets:build"
    assert (
        networks_name(str(shipped), "mnist", {"generator": tmp_path / "g.pt", "encoder": None})
        == "mnist with generator g.pt"
    )
    assert networks_name(LatentNetworks(4, (1, 2, 2), source="/home/someone/nets"), "mnist") == "nets"
    names = PublicNames("nets", hidden_paths([(tmp_path / "nets", "nets"), (tmp_path, "<cache>"), ("/", "root")]))
    assert names.scrub(f"{tmp_path}/nets/g.pt and {tmp_path}/x at /") == "nets/g.pt and <cache>/x at /"
    assert names.provenance({"models": "/elsewhere/nets", "sets": [f"{tmp_path}/a"], "seed": 3}) == {
        "models": "nets",
        "sets": ["a"],
        "seed": 3,
    }
    assert (
        without_paths("/a/b/mnist with generator C:\\w\\g.pt, classifier ./c.pt")
        == "mnist with generator g.pt, classifier c.pt"
    )


@pytest.mark.slow
def test_concurrent_requests_get_their_own_answers(client):
    latents = {seed: sample(client, seed) for seed in range(4)}
    expected = {
        seed: client.post("/api/view", json={"latent": z, "offsets": [1.0]}).json()["image"]
        for seed, z in latents.items()
    }
    failures = []

    def ask(seed: int) -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=WAIT, trust_env=False) as own:
            for _ in range(5):
                answer = own.post("/api/view", json={"latent": latents[seed], "offsets": [1.0]})
                if answer.status_code != 200 or answer.json()["image"] != expected[seed]:
                    failures.append((seed, answer.status_code))

    threads = [threading.Thread(target=ask, args=(seed % 4,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert failures == []


def test_only_real_transparency_is_laid_on_the_background():
    opaque = Image.new("RGBA", (28, 28), (0, 0, 0, 255))  # a canvas' PNG: an alpha channel, all of it opaque
    assert convert_image(opaque, (1, 28, 28), dark_background=True).notes == ("converted from RGBA to grey",)
    clear = convert_image(Image.new("RGBA", (28, 28), (255, 255, 255, 0)), (1, 28, 28), dark_background=True)
    assert clear.notes[0] == "transparent pixels laid on black" and clear.pixels.max() == 0
    assert clear.pixels.shape == (1, 1, 28, 28) and clear.pixels.dtype == np.uint8


def test_png_bytes_round_trip():
    image = torch.linspace(-1, 1, 28 * 28).reshape(1, 28, 28)
    pixels = np.asarray(Image.open(io.BytesIO(png_bytes(image))))
    assert pixels.shape == (28, 28) and pixels.min() == 0 and pixels.max() == 255


# --- The command line --------------------------------------------------------------------------------


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as done:
        code = done.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_port_in_use_is_one_line_and_exit_code_2(capsys, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, _out, err = run_cli(["explore", "--port", str(port), "--cache", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "in use" in err and "Traceback" not in err, err


def test_check_serves_once_and_another_host_warns(capsys, cache_root, session):
    code, out, err = run_cli(
        [
            "explore",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--check",
            "--quiet",
            "--per-set",
            str(PER_SET),
            "--cache",
            str(cache_root),
        ],
        capsys,
    )
    assert code == 0, err
    assert err.count("warning") == 1 and "0.0.0.0" in err
    assert out.startswith("checked http://0.0.0.0:") and "9 methods" in out


# --- The page in a real browser ----------------------------------------------------------------------


def chromium(profile: Path):
    """Headless Debian Chromium driven by Debian's chromedriver (no Selenium Manager, no download)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1500,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def page_values(driver) -> dict:
    return driver.execute_script(
        "return {views: Number(document.body.dataset.views || 0), image: document.getElementById('decoded').src,"
        " spectrum: JSON.parse(document.getElementById('spectrum').dataset.values || '[]'),"
        " probabilities: JSON.parse(document.getElementById('probabilities').dataset.values || '[]'),"
        " caption: document.getElementById('input-caption').textContent,"
        " error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent};"
    )


def wait_for(driver, condition, what: str) -> dict:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        values = page_values(driver)
        assert values["error"] == "", values["error"]
        if condition(values):
            return values
        time.sleep(0.05)
    raise AssertionError(f"the page did not {what} within {WAIT} s")


def shown_error(driver) -> str:
    """The page's error line once it shows one (bounded)."""
    deadline = time.monotonic() + WAIT
    while not page_values(driver)["error"] and time.monotonic() < deadline:
        time.sleep(0.05)
    return page_values(driver)["error"]


@pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)
@pytest.mark.slow
def test_the_page_in_headless_chromium(url, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver = chromium(tmp_path / "profile")
    try:
        driver.get(url)
        start = wait_for(driver, lambda v: v["views"] >= 1 and v["caption"].startswith("sample"), "show a sample")
        canvas = driver.find_element(By.ID, "drawing")  # a stroke: the drawing is encoded when the pointer lifts
        ActionChains(driver).move_to_element_with_offset(canvas, 0, -50).click_and_hold().move_by_offset(
            5, 30
        ).move_by_offset(0, 30).move_by_offset(-5, 30).release().perform()
        drawn = wait_for(
            driver, lambda v: v["caption"] == "drawing" and v["views"] > start["views"], "show the drawing"
        )
        assert drawn["image"] != start["image"] and drawn["spectrum"] != start["spectrum"]
        slider = driver.find_element(By.CSS_SELECTOR, "#sliders input[data-direction='0']")
        ActionChains(driver).move_to_element_with_offset(slider, slider.size["width"] // 3, 0).click().perform()
        moved = wait_for(
            driver, lambda v: v["views"] > drawn["views"] and v["image"] != drawn["image"], "move along the slider"
        )
        assert moved["spectrum"] != drawn["spectrum"]
        assert len(moved["probabilities"]) == 10 and math.isclose(sum(moved["probabilities"]), 1.0, abs_tol=1e-9)
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "explore-browser.png"))
        severe = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert severe == []
        header = driver.find_element(By.ID, "source").text  # the networks by name, not by their directory
        assert header.startswith("networks: shipped mnist networks;") and "/" not in header, header
        driver.execute_script("guarded(() => post('/api/rotation', {latent: new Array(100).fill(0)}));")
        assert shown_error(driver).startswith("latent: all zeros"), "the page did not show the refusal's detail"
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_the_lsd_method_records_the_v_its_basis_settled_at():
    """With --per-set auto the LSD method's V is the one its basis was drawn at (the basis' provenance); a number
    is kept as given."""
    from latentspectra.explore.start import basis_vectors
    from latentspectra.latent import QuasiEigenBasis

    etas = torch.eye(4, dtype=torch.float64)
    basis = QuasiEigenBasis.from_etas(
        etas, torch.arange(4), torch.ones(4, dtype=torch.int64), provenance={"per_set": 250}
    )
    assert basis_vectors(basis, ExploreConfig(per_set="auto")) == 250
    assert basis_vectors(basis, ExploreConfig(per_set=300)) == 300
