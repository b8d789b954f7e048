"""`lods view`: a local web page (stdlib http.server on 127.0.0.1) over a run or a benchmark folder.

Routes (all GET): `/` the page; `/static/...` the page's code and the vendored three.js and Spark; `/api/root`
what the folder is; `/api/run?run=REL` a run's state (RunState); `/api/gallery` a benchmark's runs;
`/run-files/REL/NAME` a run's files (only the names in catalog.RUN_FILES, and `preview.ply`, a splat exported from
the last checkpoint of a run in progress). REL is a run's path below the served folder ("" for the folder itself).
"""

from __future__ import annotations

import errno
import json
import mimetypes
import shutil
import tempfile
import threading
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import UserError
from .catalog import RUN_FILES, classify, gallery, is_run, preview_ply, run_state

DEFAULT_PORT = 8765
HOST = "127.0.0.1"
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".html": "text/html; charset=utf-8",
         ".ply": "application/octet-stream", ".glb": "model/gltf-binary", ".mp4": "video/mp4", ".gif": "image/gif",
         ".png": "image/png", ".json": "application/json", ".yaml": "text/plain; charset=utf-8",
         ".obj": "text/plain; charset=utf-8", ".mtl": "text/plain; charset=utf-8", ".md": "text/plain; charset=utf-8"}


def static_root() -> Path:
    return Path(str(resources.files("lods.viewer") / "static"))


class PortInUseError(OSError):
    """The port asked for is taken (an environment error: exit code 1 in the CLI)."""


class ViewerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path, port: int):
        self.folder = Path(folder).resolve()
        self.kind = classify(self.folder)
        self.static = static_root().resolve()
        self.cache = Path(tempfile.mkdtemp(prefix="lods-view-"))
        super().__init__((HOST, port), partial(_Handler))

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def run_folder(self, rel: str) -> Path:
        """The run at `rel` below the served folder; UserError outside it or when it is not a run."""
        run = (self.folder / rel).resolve()
        if run != self.folder and self.folder not in run.parents:
            raise UserError("outside the served folder")
        if not is_run(run):
            raise UserError(f"{rel or '.'} is not a run")
        return run

    def server_close(self) -> None:
        super().server_close()
        shutil.rmtree(self.cache, ignore_errors=True)


class _Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet: the CLI prints the URL, not every request
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        try:
            if path in ("/", "/index.html"):
                return self._file(self.server.static / "index.html")
            if path.startswith("/static/"):
                return self._static(path[len("/static/"):])
            if path == "/api/root":
                return self._json({"kind": self.server.kind, "name": self.server.folder.name})
            if path == "/api/run":
                rel = query.get("run", [""])[0]
                state = run_state(self.server.run_folder(rel))
                return self._json({"run": rel, "info": state.info, "files": state.files, "version": state.version})
            if path == "/api/gallery":
                return self._json({"name": self.server.folder.name, "runs": gallery(self.server.folder)})
            if path.startswith("/run-files/"):
                rel, _, name = path[len("/run-files/"):].rpartition("/")
                return self._run_file(rel, name)
        except UserError as e:
            return self._error(HTTPStatus.NOT_FOUND, str(e))
        return self._error(HTTPStatus.NOT_FOUND, f"no such page: {path}")

    do_HEAD = do_GET  # noqa: N815

    def _static(self, rel: str):
        target = (self.server.static / rel).resolve()
        if self.server.static not in target.parents or not target.is_file():
            return self._error(HTTPStatus.NOT_FOUND, f"no such file: {rel}")
        return self._file(target)

    def _run_file(self, rel: str, name: str):
        run = self.server.run_folder(rel)
        if name == "preview.ply":
            target = preview_ply(run, self.server.cache)
        elif name in RUN_FILES:
            target = run / name
        else:
            target = None
        if target is None or not target.is_file():
            return self._error(HTTPStatus.NOT_FOUND, f"{rel or '.'} has no {name}")
        return self._file(target)

    def _file(self, path: Path):
        try:
            data = path.read_bytes()
        except OSError as e:
            return self._error(HTTPStatus.NOT_FOUND, f"cannot read {path.name}: {e.strerror}")
        ctype = TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, data, ctype)

    def _json(self, obj):
        self._send(HTTPStatus.OK, json.dumps(obj).encode(), "application/json")

    def _error(self, status, message: str):
        self._send(status, json.dumps({"error": message}).encode(), "application/json")

    def _send(self, status, data: bytes, ctype: str):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def make_server(folder, port: int | None = None) -> ViewerServer:
    """A server over `folder` on 127.0.0.1. `port` None: DEFAULT_PORT, or a free port when that is taken; a port
    given and taken raises PortInUseError. Raises NotARunError / FileNotFoundError for a folder it cannot show."""
    folder = Path(folder)
    classify(folder)  # a clear error before any port is touched
    if port is not None:
        if not 0 <= port <= 65535:
            raise UserError(f"--port must be 0..65535, got {port}")
        try:
            return ViewerServer(folder, port)
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUseError(f"port {port} on {HOST} is in use (or not allowed); choose another --port, or omit "
                                     "it to get a free one") from None
            raise
    try:
        return ViewerServer(folder, DEFAULT_PORT)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
    return ViewerServer(folder, 0)  # the system's choice of a free port


def serve_in_background(server: ViewerServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="lods-view", daemon=True)
    thread.start()
    return thread
