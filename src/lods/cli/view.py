"""`lods view` and the live view of `lods generate --view`."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Optional

import typer


def open_page(url: str) -> None:
    """Open `url` in the user's browser when there is one; the URL is printed either way."""
    try:
        webbrowser.open(url)
    except webbrowser.Error:
        pass


def live_view(out: Path, open_browser: bool = True):
    """A progress callback for run_generate that serves `out` once its config.yaml exists (after the first step)
    and opens the page; the page refreshes as checkpoints land. Returns (callback, stop)."""
    from ..viewer.server import make_server, serve_in_background

    holder = {}

    def on_progress(step, total, logs):
        if "server" not in holder and (Path(out) / "config.yaml").exists():
            server = make_server(out)
            serve_in_background(server)
            holder["server"] = server
            typer.echo(f"viewing the run at {server.url} (refreshes as checkpoints land)", err=True)
            if open_browser:
                open_page(server.url)

    on_progress.holder = holder  # the server, once started (tests look at it)

    def stop():
        if "server" in holder:
            holder["server"].shutdown()
            holder["server"].server_close()

    return on_progress, stop


def keep_serving(stop) -> None:
    """After a run with --view: keep the page up until Ctrl-C."""
    import time

    typer.echo("the run is finished; the page stays up (Ctrl-C stops)", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop()


def view(
    folder: Path = typer.Argument(..., help="A run folder (lods generate / image-to-3d --out) or a benchmark folder."),
    port: Optional[int] = typer.Option(None, help="Port on 127.0.0.1 (default 8765, or a free one when taken)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Only print the URL."),
):
    """A local web page: the splat and the mesh side by side with orbit controls, the turntable, the views, the
    metrics and the loss curve; for a benchmark folder, a gallery of its runs. Ctrl-C stops it."""
    from ..viewer.server import make_server

    server = make_server(folder, port)
    typer.echo(f"serving {server.kind} {folder} at {server.url} (Ctrl-C stops)")
    if not no_browser:
        open_page(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
