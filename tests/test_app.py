"""`piti app`: its plain parts (mask snapping, time left, the job stream), then the served app
through Gradio's client (same bytes as the API; bad uploads answered in the page while the
server keeps serving) and in a real browser (Debian's chromium driven by Selenium)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from piti_cli.app import Clock, class_colour, snap_mask, snap_sketch, stream
from piti_cli.data.palettes import decode_color_mask
from piti_cli.data.scenes import COCO_IDS

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "mask" / "scene_0.png"
STEPS = 4  # the page's base steps in these tests (the upsampler starts at 300 of fast27: 8 steps)


# ---------------------------------------------------------------- plain parts

def test_snap_mask_gives_a_mask_the_reader_accepts():
    a, b = class_colour(COCO_IDS[0]), class_colour(COCO_IDS[1])
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:, :16], rgb[:, 16:] = a, b
    for col, share in ((15, 0.7), (16, 0.3)):  # an anti-aliased stroke edge: mostly a, then mostly b
        rgb[:, col] = (share * np.asarray(a, float) + (1 - share) * np.asarray(b, float)).round().astype(np.uint8)
    snapped = snap_mask(rgb)
    ids = decode_color_mask(snapped, "coco-stuff")  # raises on a colour outside the palette
    assert set(np.unique(ids)) == {COCO_IDS[0], COCO_IDS[1]}
    keep = np.ones((32, 32), bool)
    keep[:, 15:17] = False
    assert np.array_equal(snapped[keep], rgb[keep])  # exact class pixels never move
    d = ((rgb[:, 15:17, None].astype(int) - np.array([a, b])[None, None]) ** 2).sum(-1)
    assert np.array_equal(snapped[:, 15:17], np.array([a, b])[d.argmin(-1)])  # the nearest class


def test_snap_mask_without_class_colours_says_so():
    with pytest.raises(ValueError, match="no class colour"):
        snap_mask(np.full((8, 8, 3), 7, np.uint8))


def test_snap_sketch_is_white_on_black():
    grey = np.array([[0, 127, 128, 255]], np.uint8)
    out = snap_sketch(np.repeat(grey[..., None], 3, -1))
    assert out.tolist() == [[0, 0, 255, 255]]


def test_clock_time_left_follows_the_measured_rates():
    now = [0.0]
    clock = Clock(now=lambda: now[0])
    clock.start()
    assert clock.left({"base": 3, "upsampler": 0}) is None
    now[0] = 2.0
    clock.tick("base")  # 2 s a base step
    assert clock.left({"base": 3, "upsampler": 0}) == pytest.approx(6.0)
    assert clock.left({"base": 3, "upsampler": 2}) is None  # no upsampler rate yet
    now[0] = 7.0
    clock.tick("upsampler")
    assert clock.left({"base": 0, "upsampler": 2}) == pytest.approx(10.0)
    now[0] = 8.0
    clock.tick("upsampler")  # a running mean: 0.7·5 + 0.3·1
    assert clock.rates["upsampler"] == pytest.approx(3.8)


def test_stream_yields_steps_then_the_result_and_stops_the_job_when_closed():
    events = list(stream(lambda callback, cancel: [callback(k) for k in range(3)] and "done"))
    assert events == [("step", 0), ("step", 1), ("step", 2), ("done", "done")]
    stopped = threading.Event()

    def endless(callback, cancel):
        while not cancel():
            callback(0)
            time.sleep(0.01)
        stopped.set()
        raise RuntimeError("cancelled")

    jobs = stream(endless)
    assert next(jobs) == ("step", 0)
    jobs.close()  # what a closed tab or Stop does to the page's generator
    assert stopped.wait(5)
    kind, err = list(stream(lambda callback, cancel: 1 / 0))[0]
    assert kind == "error" and isinstance(err, ZeroDivisionError)


# ---------------------------------------------------------------- the served app

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    pytest.importorskip("gradio", reason='the app extra is not installed (pip install "piti[app]")')
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from piti_cli.app import build_app, launch

    out = tmp_path_factory.mktemp("app")
    blocks = build_app(out / "pictures", device="cpu", precision="fp32", steps=STEPS, guidance=3.0)
    url = launch(blocks, port=0, max_file_size="1mb")
    yield url, out
    blocks.close()


def editor_value(path):
    from gradio_client import handle_file

    return {"background": handle_file(str(path)), "layers": [], "composite": handle_file(str(path)), "id": None}


def test_the_app_makes_the_apis_bytes_and_records(served):
    from gradio_client import Client

    from piti_cli import PitiPipeline
    from piti_cli.data.images import png_text

    url, _ = served
    client = Client(url, verbose=False)
    # four outputs: the page's state (what Edit starts from) stays on the server
    status, _, gallery, files = client.predict(editor_value(EXAMPLE), "", "", 3.0, False, "ddim", STEPS, False, 300,
                                               5, 1, api_name="/generate")
    assert status.startswith("done: 1 picture"), status
    written = Path(files[0])
    pipe = PitiPipeline.from_pretrained(device="cpu", precision="fp32")
    mask = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    out = pipe(mask, seed=5, guidance_scale=3.0, sampler="ddim", num_inference_steps=STEPS, upsample_start=300)
    assert np.array_equal(np.asarray(Image.open(written).convert("RGB")), np.asarray(out.images[0]))
    assert "piti" in png_text(written)  # the settings ride along in the download


def test_bad_uploads_get_a_message_and_the_server_keeps_serving(served, tmp_path):
    from gradio_client import Client, handle_file

    url, _ = served
    client = Client(url, verbose=False)
    off = np.full((64, 64, 3), 7, np.uint8)
    Image.fromarray(off).save(tmp_path / "off_palette.png")
    (tmp_path / "not_an_image.png").write_bytes(b"hello")
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")  # a small file claiming 4e8 pixels
    for name, message in (("off_palette.png", "not in the coco-stuff palette"), ("not_an_image.png", "not_an_image"),
                          ("bomb.png", "too large")):
        with pytest.raises(Exception, match=message):
            client.predict(handle_file(str(tmp_path / name)), False, "", "", api_name="/upload")
    big = tmp_path / "big.png"
    Image.fromarray((np.random.default_rng(0).random((1024, 1024, 3)) * 255).astype(np.uint8)).save(big)
    assert big.stat().st_size > 1 << 20
    with pytest.raises(Exception):
        client.predict(handle_file(str(big)), False, "", "", api_name="/upload")
    value = client.predict(handle_file(str(EXAMPLE)), False, "", "", api_name="/upload")  # still serving
    assert value["composite"] is not None


def test_edit_in_place_keeps_what_the_mask_keeps(served, tmp_path):
    from gradio_client import Client

    url, _ = served
    client = Client(url, verbose=False)
    client.predict(editor_value(EXAMPLE), "", "", 3.0, False, "ddim", STEPS, False, 300, 0, 1, api_name="/generate")
    mask = np.asarray(Image.open(EXAMPLE).convert("RGB")).copy()
    mask[96:160, 96:160] = class_colour(COCO_IDS[3])
    Image.fromarray(mask).save(tmp_path / "edited.png")
    # the page's state is per session: edit in the same client session
    status, pair = client.predict(editor_value(tmp_path / "edited.png"), "", "", 3.0, STEPS, api_name="/edit_in_place")
    assert status.startswith("edited"), status
    paths = [item["image"] if isinstance(item["image"], str) else item["image"]["path"] for item in pair]
    before, after = (np.asarray(Image.open(p).convert("RGB")).astype(int) for p in paths)
    changed = np.abs(before - after).max(-1) > 24
    outside = np.ones(changed.shape, bool)
    outside[80:176, 80:176] = False
    assert changed[96:160, 96:160].mean() > 3 * changed[outside].mean()


# ---------------------------------------------------------------- in a browser

def _browser():
    pytest.importorskip("selenium", reason="selenium is not installed (the test extra)")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("no chromium / chromedriver (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)  # the given driver: nothing downloaded


def test_in_a_browser_upload_generate_and_see_a_picture(served, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = served
    browser = _browser()
    try:
        browser.get(url)
        wait = WebDriverWait(browser, 120)
        wait.until(ec.element_to_be_clickable((By.ID, "generate")))
        Image.fromarray(np.full((64, 64, 3), 7, np.uint8)).save(tmp_path / "off_palette.png")
        browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(tmp_path / "off_palette.png"))
        wait.until(lambda b: "not in the coco-stuff palette" in b.page_source)  # the message, in the page
        browser.refresh()
        wait.until(ec.element_to_be_clickable((By.ID, "generate")))
        browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(EXAMPLE))
        time.sleep(2)  # the upload lands in the canvas
        browser.find_element(By.ID, "generate").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#pictures img"))
        wait.until(lambda b: "done: 1 picture" in b.find_element(By.ID, "status").text)
        shot = os.environ.get("PITI_APP_SCREENSHOT")
        if shot:
            browser.save_screenshot(shot)
    finally:
        browser.quit()


def test_two_tabs_queue_and_both_get_their_pictures(served):
    """One job runs at a time; a second session's job waits in the queue instead of failing."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    url, _ = served

    def tab(seed):
        client = Client(url, verbose=False)
        return client.predict(editor_value(EXAMPLE), "", "", 3.0, False, "ddim", STEPS, False, 300, seed, 1,
                              api_name="/generate")

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(tab, (1, 2))
    assert first[0].startswith("done: 1 picture") and second[0].startswith("done: 1 picture")
    assert Path(first[3][0]).read_bytes() != Path(second[3][0]).read_bytes()  # each tab its own seed
