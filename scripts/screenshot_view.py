"""Screenshot `lods view` of a run or benchmark folder in headless Chromium (the README's images):
`python scripts/screenshot_view.py FOLDER OUT.png [--width 1200] [--height 1000] [--query '?run=REL']`."""

import argparse
import shutil

from playwright.sync_api import sync_playwright

from lods.viewer.server import make_server, serve_in_background

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("out")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=1000)
    ap.add_argument("--query", default="")
    args = ap.parse_args()
    server = make_server(args.folder, 0)
    serve_in_background(server)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(server.url + args.query)
        page.wait_for_function("document.body.dataset.state && document.body.dataset.state !== 'running' "
                               "&& (document.body.dataset.state === 'gallery' || document.body.dataset.splat)", timeout=120_000)
        page.wait_for_timeout(2500)
        page.screenshot(path=args.out)
        browser.close()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
