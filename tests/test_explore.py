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
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from latentspectra.cli import main
from latentspectra.config import ExploreConfig
from latentspectra.errors import LatentspectraError
from latentspectra.explore import bind, create_app, open_session, serving
from latentspectra.explore.images import convert_image, png_bytes
from latentspectra.io import load_tensors_and_record

PER_SET = 20  # a small basis: the tests check the plumbing, not LSD's accuracy
WAIT = 30.0  # seconds any test waits for the server or the browser, at most
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("explore-cache")


@pytest.fixture(scope="module")
def session(cache_root):
    opened = open_session(ExploreConfig(per_set=PER_SET), cache_root=cache_root)
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


def image_file(pixels: np.ndarray, format: str = "PNG") -> bytes:  # noqa: A002
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

def test_info_and_the_openapi_schema_describe_the_api(client, session):
    info = client.get("/api/info").json()
    assert info["latent_dim"] == 100 and info["image_shape"] == [1, 28, 28] and len(info["labels"]) == 10
    assert info["methods"][0] == "lsd" and {"sefa", "ganspace", "interfacegan", "sfvq", "reds"} <= set(info["methods"])
    assert len(info["basis"]["labels"]) == 100
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/view", "/api/encode", "/api/rotation", "/api/strip", "/api/methods/{name}/fit",
            "/api/export/latent"} <= set(paths)
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
    assert client.post("/api/view", json={"latent": sample(client), "method": "sefa", "offsets": [1.0]}).status_code \
        in (200, 409)  # 409 until it is fitted (another test may have fitted it)
    status = wait_ready(client, "sefa")
    assert status["directions"] == 10 and status["names"][0] == "d0"
    assert client.post("/api/view", json={"latent": sample(client), "method": "sefa", "offsets": [1.0]}).status_code \
        == 200
    exported = client.get("/api/methods/sefa/export", params={"format": "json"}).json()
    assert np.allclose(exported["directions"], session.methods.get("sefa").directions_.numpy())
    tensors_file = client.get("/api/methods/sefa/export", params={"format": "safetensors"})
    assert tensors_file.headers["content-disposition"] == 'attachment; filename="sefa.safetensors"'
    assert session.methods.path("sefa").read_bytes() == tensors_file.content
    again = open_session(ExploreConfig(per_set=PER_SET), cache_root=cache_root)  # a second server: from the cache
    try:
        assert again.methods.status("sefa").cached and torch.equal(again.methods.get("sefa").directions_,
                                                                   session.methods.get("sefa").directions_)
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
    assert np.allclose(answer["latent"], expected.numpy(), atol=1e-6)
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

def crafted_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with one tiny IDAT: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


BAD_JSON = [
    ("/api/view", b'{"latent": [NaN]}', 422),
    ("/api/view", b'{"latent": [Infinity]}', 422),
    ("/api/view", b'{"latent": [1e308]}', 422),
    ("/api/view", b'{"latent": [1, 2', 422),
    ("/api/view", b'[1, 2]', 422),
    ("/api/view", b'{"latent": [0.5], "colour": 1}', 422),
    ("/api/view", b'{"latent": [0.5]}', 400),
    ("/api/sample", b'{"seed": -1}', 422),
    ("/api/sample", b'{"seed": 1.5}', 422),
    ("/api/test-image", b'{"index": 10000}', 400),
    ("/api/test-image", b'{"index": -1}', 422),
    ("/api/rotation", b'{"latent": ZZ, "labels": [3, 3]}', 400),
]


@pytest.mark.parametrize("path, body, status", BAD_JSON)
def test_bad_json_is_a_4xx_with_one_line(client, path, body, status):
    body = body.replace(b"ZZ", json.dumps([0.1] * 100).encode())
    answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert list(answer.json()) == ["detail"] and "\n" not in answer.json()["detail"]
    assert "Traceback" not in answer.text


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
    ]
    for body, status in cases:
        answer = client.post("/api/encode", content=body, headers={"Content-Type": "image/png"})
        assert answer.status_code == status, answer.text
        assert isinstance(answer.json()["detail"], str)


def test_no_request_names_a_file_on_the_server(client):
    for path in ("/static/../pyproject.toml", "/static/%2e%2e/app.py", "/static/..%2f..%2fcli.py",
                 "/static/%2e%2e%2f%2e%2e%2fconfig.py", "/static//etc/passwd", "/api/methods/..%2fbasis/export"):
        answer = client.get(path)
        assert answer.status_code in (400, 404), (path, answer.status_code)
        assert "import " not in answer.text and "root:" not in answer.text
    assert client.get("/static/app.js").status_code == 200


def test_concurrent_requests_get_their_own_answers(client):
    latents = {seed: sample(client, seed) for seed in range(4)}
    expected = {seed: client.post("/api/view", json={"latent": z, "offsets": [1.0]}).json()["image"]
                for seed, z in latents.items()}
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
        code, out, err = run_cli(["explore", "--port", str(port), "--cache", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "in use" in err and "Traceback" not in err, err


def test_check_serves_once_and_another_host_warns(capsys, cache_root, session):
    code, out, err = run_cli(["explore", "--host", "0.0.0.0", "--port", "0", "--check", "--quiet", "--per-set",
                              str(PER_SET), "--cache", str(cache_root)], capsys)
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
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1500,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def page_values(driver) -> dict:
    return driver.execute_script(
        "return {views: Number(document.body.dataset.views || 0), image: document.getElementById('decoded').src,"
        " spectrum: JSON.parse(document.getElementById('spectrum').dataset.values || '[]'),"
        " probabilities: JSON.parse(document.getElementById('probabilities').dataset.values || '[]'),"
        " caption: document.getElementById('input-caption').textContent,"
        " error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent};")


def wait_for(driver, condition, what: str) -> dict:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        values = page_values(driver)
        assert values["error"] == "", values["error"]
        if condition(values):
            return values
        time.sleep(0.05)
    raise AssertionError(f"the page did not {what} within {WAIT} s")


@pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_the_page_in_headless_chromium(url, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver = chromium(tmp_path / "profile")
    try:
        driver.get(url)
        start = wait_for(driver, lambda v: v["views"] >= 1 and v["caption"].startswith("sample"), "show a sample")
        canvas = driver.find_element(By.ID, "drawing")  # a stroke: the drawing is encoded when the pointer lifts
        ActionChains(driver).move_to_element_with_offset(canvas, 0, -50).click_and_hold().move_by_offset(
            5, 30).move_by_offset(0, 30).move_by_offset(-5, 30).release().perform()
        drawn = wait_for(driver, lambda v: v["caption"] == "drawing" and v["views"] > start["views"],
                         "show the drawing")
        assert drawn["image"] != start["image"] and drawn["spectrum"] != start["spectrum"]
        slider = driver.find_element(By.CSS_SELECTOR, "#sliders input[data-direction='0']")
        ActionChains(driver).move_to_element_with_offset(slider, slider.size["width"] // 3, 0).click().perform()
        moved = wait_for(driver, lambda v: v["views"] > drawn["views"] and v["image"] != drawn["image"],
                         "move along the slider")
        assert moved["spectrum"] != drawn["spectrum"]
        assert len(moved["probabilities"]) == 10 and math.isclose(sum(moved["probabilities"]), 1.0, abs_tol=1e-9)
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "explore-browser.png"))
        severe = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert severe == []
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)
