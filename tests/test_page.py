"""The draw-a-digit page in a real headless Chromium: mouse strokes in, the predicted class out.

Uses Debian's `chromium` (apt-get install chromium) through Playwright's `executable_path`;
Playwright's own browser download is never used. Skips when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from servers import running_server

from mnist_cnn.data.idx import load_split
from mnist_cnn.data.registry import get_spec
from mnist_cnn.inference.predict import Predictor

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ANSWER_TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def base_url(trained_model: Path) -> Iterator[str]:
    pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
    from mnist_cnn.serving.app import create_app

    with running_server(create_app(Predictor.from_path(trained_model))) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the [dev] extra)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, base_url):
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(base_url)
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()
    assert requests and all(url.startswith(base_url) for url in requests), requests  # offline: no CDN


def draw(page, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw strokes given in 0..1 canvas coordinates with the mouse, like a person would."""
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=4)
        page.mouse.up()


def answer(page) -> str:
    """The class the page shows once the answer for the latest drawing has arrived."""
    page.wait_for_function("document.getElementById('predicted').dataset.index !== ''",
                           timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_load_state("networkidle")  # the last stroke's request, not a live one mid-stroke
    return page.locator("#predicted").inner_text()


ONE = [[(0.52, 0.18), (0.50, 0.50), (0.48, 0.82)]]
ZERO = [[(0.5 + 0.2 * math.sin(t / 20 * 2 * math.pi), 0.5 - 0.32 * math.cos(t / 20 * 2 * math.pi))
         for t in range(21)]]
SEVEN = [[(0.30, 0.20), (0.72, 0.20)], [(0.72, 0.20), (0.55, 0.50), (0.42, 0.82)]]


@pytest.mark.parametrize("strokes, expected", [(ONE, "1"), (ZERO, "0"), (SEVEN, "7")], ids=["1", "0", "7"])
def test_drawing_a_digit_shows_the_right_class(page, strokes, expected):
    draw(page, strokes)
    assert answer(page) == expected
    bars = page.locator("#bars li")
    assert bars.count() == 10
    assert page.locator("#bars li.best").get_attribute("data-index") == expected
    widths = page.locator("#bars .fill").evaluate_all("els => els.map(e => e.getBoundingClientRect().width)")
    assert max(widths) == widths[int(expected)] > 0  # the chart draws the winner's bar longest
    seen_ink = page.evaluate("Array.from(document.getElementById('seen').getContext('2d')"
                             ".getImageData(0, 0, 28, 28).data).reduce((a, b) => a + b, 0)")
    assert seen_ink > 28 * 28 * 255  # the 28x28 input is shown (alpha alone is 28*28*255)


def test_undo_and_clear(page):
    draw(page, SEVEN)
    assert answer(page) == "7"
    page.click("#undo")  # the diagonal goes; only the top bar is left, so the answer changes
    page.wait_for_function("document.getElementById('predicted').innerText !== '7'", timeout=ANSWER_TIMEOUT_MS)
    page.click("#clear")
    assert page.locator("#predicted").inner_text() == "–"
    blank = page.evaluate("Array.from(document.getElementById('pad').getContext('2d')"
                          ".getImageData(0, 0, 280, 280).data).every(v => v === 255)")
    assert blank


def test_uploading_an_image_reads_it(page, tmp_path):
    images, labels, _ = load_split(get_spec("mnist"), SHARED_DATA / "mnist", "test")
    index = int(np.flatnonzero(labels[:50] == 3)[0])
    path = tmp_path / "three.png"
    Image.fromarray(255 - images[index]).resize((140, 140)).save(path)
    page.set_input_files("#upload", str(path))
    assert answer(page) == "3"


def test_a_bad_upload_shows_the_servers_message(page, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    page.set_input_files("#upload", str(path))
    page.wait_for_function("document.getElementById('status').innerText !== ''", timeout=ANSWER_TIMEOUT_MS)
    assert "not a readable image" in page.locator("#status").inner_text()
    assert page.locator("#predicted").inner_text() == "–"


def test_a_refused_upload_says_why_in_the_browsers_language(browser, base_url, tmp_path):
    square = np.full((84, 84), 255, np.uint8)
    square[6:78, 6:78] = 0  # a filled black square on white paper: not writing
    path = tmp_path / "square.png"
    Image.fromarray(square).save(path)
    for locale, start in (("pt-BR", "não é um dígito: a tinta cobre"), ("en-US", "not a digit: ink covers")):
        context = browser.new_context(viewport={"width": 1000, "height": 900}, locale=locale)
        page = context.new_page()
        page.goto(base_url)
        page.wait_for_selector("body[data-ready=true]")
        page.set_input_files("#upload", str(path))
        answer(page)
        page.wait_for_function("document.getElementById('verdict').innerText !== ''", timeout=ANSWER_TIMEOUT_MS)
        assert page.locator("#verdict").inner_text().startswith(start)
        context.close()


def settled_number(page, expected: str) -> str:
    """The number the page shows once it has shown `expected` and then nothing newer for a second.

    Answers arrive while the last stroke is drawn (live requests); a partial 2 may read as
    a 7, so wait for the expected text, then make sure no later answer replaces it.
    """
    try:
        page.wait_for_function(f"document.getElementById('number').innerText === {expected!r}",
                               timeout=ANSWER_TIMEOUT_MS)
    except Exception:  # Playwright's TimeoutError: report what the page says instead
        return page.locator("#number").inner_text()
    page.wait_for_timeout(1000)
    return page.locator("#number").inner_text()


# "12" across the wide number-mode canvas (x over its 560 px, y over its 280 px): a 1, then a 2
# (an arc over the top, a diagonal down to the left, a base line), a clear gap between them.
TWELVE = [[(0.30, 0.22), (0.29, 0.50), (0.28, 0.80)],
          [*((0.60 + 0.08 * math.cos(math.radians(a)), 0.36 - 0.14 * math.sin(math.radians(a)))
             for a in range(170, -41, -15)),
           (0.52, 0.80), (0.70, 0.80)]]


def test_number_mode_reads_12_and_boxes_each_digit(page):
    page.check("#number-mode")
    assert page.locator("#pad").evaluate("c => c.width") == 560  # a wider pad for several digits
    assert page.locator("#digit-result").is_hidden() and page.locator("#number-result").is_visible()
    draw(page, TWELVE)
    assert settled_number(page, "12") == "12"
    assert page.locator("#digits li").count() == 2
    assert page.locator("#digits li .class").all_inner_texts() == ["1", "2"]
    # Each digit is boxed on the drawing: the overlay has coloured pixels over both halves.
    inked = page.evaluate("""() => {
        const c = document.getElementById('boxes'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let left = 0, right = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) ((i / 4) % c.width < c.width * 0.45 ? left++ : right++);
        return [left, right]; }""")
    assert min(inked) > 100, inked
    page.click("#clear")
    assert page.locator("#number").inner_text() == "–" and page.locator("#digits li").count() == 0
    page.uncheck("#number-mode")  # back to one digit: the square pad and the bars
    assert page.locator("#pad").evaluate("c => c.width") == 280 and page.locator("#bars").is_visible()


# The same "12" written as people do: the 2's arc starts just right of the 1 and its base
# line runs back through the 1's foot, so the two digits are one connected stroke of ink.
TOUCHING_TWELVE = [[(0.45, 0.22), (0.45, 0.50), (0.45, 0.80)],
                   [*((0.56 + 0.08 * math.cos(math.radians(a)), 0.36 - 0.14 * math.sin(math.radians(a)))
                      for a in range(170, -41, -15)),
                    (0.45, 0.80), (0.66, 0.80)]]


@pytest.fixture(scope="module")
def shipped_url() -> Iterator[str]:
    pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
    from mnist_cnn.inference.shipped import resolve_model
    from mnist_cnn.serving.app import create_app

    with running_server(create_app(Predictor.from_path(resolve_model("mnist")))) as url:
        yield url


def test_number_mode_reads_a_touching_12_with_the_shipped_model(browser, shipped_url):
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.goto(shipped_url)
    page.wait_for_selector("body[data-ready=true]")
    page.check("#number-mode")
    assert "may touch" in page.locator("#hint").inner_text()  # the hint no longer asks for separate digits
    draw(page, TOUCHING_TWELVE)
    assert settled_number(page, "12") == "12"
    assert page.locator("#digits li .class").all_inner_texts() == ["1", "2"]
    boxes = page.evaluate("""() => {
        const c = document.getElementById('boxes'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const columns = new Set();
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) columns.add((i / 4) % c.width);
        return columns.size; }""")
    assert boxes > 100, boxes  # two boxes drawn over the one connected stroke
    context.close()


SLOW_SERVER = """
(() => {
  // A slow server, seen from the page: every /predict answer arrives 400 ms late.
  window.__inFlight = 0; window.__maxInFlight = 0; window.__sentAt = []; window.__lastUp = 0;
  const realFetch = window.fetch.bind(window);
  window.fetch = async (url, options) => {
    if (!String(url).includes("/predict")) return realFetch(url, options);
    window.__inFlight++;
    window.__maxInFlight = Math.max(window.__maxInFlight, window.__inFlight);
    window.__sentAt.push(performance.now());
    try {
      await new Promise((resolve) => setTimeout(resolve, 400));
      return await realFetch(url, options);
    } finally {
      window.__inFlight--;
    }
  };
  addEventListener("pointerup", () => { window.__lastUp = performance.now(); }, true);
})();
"""


def test_a_slow_server_gets_one_request_at_a_time_and_the_newest_drawing_last(browser, base_url):
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    context.add_init_script(SLOW_SERVER)
    page = context.new_page()
    page.goto(base_url)
    page.wait_for_selector("body[data-ready=true]")
    box = page.locator("#pad").bounding_box()
    # A 7 drawn slowly: live requests are due every 150 ms, each answer takes 400 ms.
    for stroke in SEVEN:
        page.mouse.move(box["x"] + stroke[0][0] * box["width"], box["y"] + stroke[0][1] * box["height"])
        page.mouse.down()
        for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
            for t in np.linspace(0, 1, 12)[1:]:
                page.mouse.move(box["x"] + (x0 + t * (x1 - x0)) * box["width"],
                                box["y"] + (y0 + t * (y1 - y0)) * box["height"])
                page.wait_for_timeout(40)
        page.mouse.up()
    page.wait_for_function("window.__inFlight === 0 && window.__sentAt.length > 0 && "
                           "performance.now() - window.__sentAt.at(-1) > 1000", timeout=ANSWER_TIMEOUT_MS)
    stats = page.evaluate("({max: window.__maxInFlight, sent: window.__sentAt, up: window.__lastUp})")
    context.close()
    assert stats["max"] == 1, stats  # never two requests at once
    assert stats["sent"][-1] >= stats["up"], stats  # the last one left after the last stroke: the final drawing
    assert page.is_closed()
