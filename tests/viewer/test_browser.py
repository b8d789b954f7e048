"""`lods view` in headless Chromium: the splat and the mesh of a red cone are on screen, red, upright, and no
request leaves 127.0.0.1. Needs Chromium (`.ci/run` installs Debian's) and playwright (the `test` extra); skipped
without them only outside CI."""

import io
import os
import shutil
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from lods.scenes.field import FieldConfig, RadianceField
from lods.viewer.server import make_server, serve_in_background

from .runs import write_run

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]


def chromium_or_skip() -> str:
    path = os.environ.get("LODS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    missing = []
    if path is None:
        missing.append("chromium (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[test]')")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the browser test lacks {' and '.join(missing)}")
        pytest.skip(f"no {' and '.join(missing)}: the browser test needs them (CI installs them)")
    return path


def red_mask(png: bytes) -> np.ndarray:
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (r > 120) & (r > 2 * g) & (r > 2 * b)


def narrow_at_top(mask: np.ndarray) -> bool:
    """The red area is less than 0.6 times as wide in the top quarter of its height as in the bottom quarter."""
    rows = np.flatnonzero(mask.any(1))
    top, bottom = rows[0], rows[-1]
    quarter = max(1, (bottom - top) // 4)
    width = lambda sl: mask[sl].sum(0).astype(bool).sum()  # noqa: E731 - columns touched
    return width(slice(top, top + quarter)) < 0.6 * width(slice(bottom - quarter, bottom + 1))


@pytest.fixture(scope="module")
def browser():
    path = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_view(browser, folder, leaks: list):
    server = make_server(folder, 0)
    serve_in_background(server)
    page = browser.new_page(viewport={"width": 1200, "height": 1000})

    def guard(route):
        if urlsplit(route.request.url).hostname != "127.0.0.1":
            leaks.append(route.request.url)
            return route.abort()
        return route.continue_()

    page.route("**/*", guard)
    page.on("request", lambda r: None if urlsplit(r.url).hostname == "127.0.0.1" or r.url.startswith(("data:", "blob:"))
            else leaks.append(r.url))
    page.goto(server.url)
    return server, page


def test_the_red_cone_is_on_screen_upright_and_local(browser, tmp_path, red_cone_factory):
    run = write_run(red_cone_factory(3000), tmp_path / "cone")
    leaks, errors = [], []
    server, page = open_view(browser, run, leaks)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.wait_for_function("document.body.dataset.splat && document.body.dataset.mesh", timeout=120_000)
        assert page.evaluate("document.body.dataset.splat") == "loaded"
        assert page.evaluate("document.body.dataset.mesh") == "loaded"
        page.wait_for_timeout(1000)
        shots = {name: page.locator(f"#{name}").screenshot() for name in ("splat", "mesh")}
        if os.environ.get("LODS_SCREENSHOTS"):
            page.screenshot(path=os.path.join(os.environ["LODS_SCREENSHOTS"], "view_run.png"), full_page=True)
    finally:
        page.close()
        server.shutdown()
        server.server_close()
    assert not errors, errors
    assert not leaks, f"requests left 127.0.0.1: {leaks}"
    for name, png in shots.items():
        mask = red_mask(png)
        assert mask.mean() > 0.03, f"{name}: only {mask.mean():.1%} of the view is the cone's red"
        assert narrow_at_top(mask), f"{name}: the cone does not point up"


def test_a_nerf_run_says_so_instead_of_a_blank_splat(browser, tmp_path):
    field = RadianceField(FieldConfig(resolution=16, channels=4, hidden_dim=16))
    run = write_run(field, tmp_path / "nerf", backbone="nerf")
    leaks = []
    server, page = open_view(browser, run, leaks)
    try:
        page.wait_for_function("document.body.dataset.splat", timeout=60_000)
        assert page.evaluate("document.body.dataset.splat") == "absent"
        assert "no Gaussian splat" in page.locator("#splat-panel").inner_text()
    finally:
        page.close()
        server.shutdown()
        server.server_close()
    assert not leaks
