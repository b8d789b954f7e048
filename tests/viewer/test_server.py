"""`lods view`'s server: what it serves for a run, a NeRF run, a run in progress, a benchmark; bad input."""

import json
import shutil
import socket
import urllib.error
import urllib.request

import pytest
import torch

from lods.scenes.field import FieldConfig, RadianceField
from lods.utils.io import save_checkpoint
from lods.viewer.catalog import NotARunError
from lods.viewer.server import PortInUseError, make_server, serve_in_background

from .runs import write_run


@pytest.fixture(scope="module")
def cone_run(tmp_path_factory, red_cone_factory):
    return write_run(red_cone_factory(1500), tmp_path_factory.mktemp("runs") / "cone")


def get(server, path):
    try:
        with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


@pytest.fixture
def serve():
    servers = []

    def start(folder, port=0):
        s = make_server(folder, port)
        serve_in_background(s)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def test_a_run_page_and_its_files(cone_run, serve):
    server = serve(cone_run)
    status, ctype, body = get(server, "/")
    assert status == 200 and b'src="/static/app.js"' in body and b"http" not in body.split(b"<body>")[0].replace(b"http-equiv", b"")
    assert get(server, "/static/vendor/spark/spark.module.min.js")[1] == "text/javascript"
    state = json.loads(get(server, "/api/run?run=")[2])
    assert state["info"]["prompt"] == "a red cone" and state["info"]["finished"]
    assert state["files"]["ply"] == "model.ply" and state["files"]["mesh"] == "mesh.glb"
    assert state["info"]["curves"]["loss_distill"][0] == [1, 1.0]
    status, _, ply = get(server, "/run-files/model.ply")
    assert status == 200 and ply.startswith(b"ply")
    assert get(server, "/run-files/mesh.glb")[2][:4] == b"glTF"
    # only the run's own export files, nothing outside the folder
    assert get(server, "/run-files/checkpoints/last.safetensors")[0] == 404
    assert get(server, "/run-files/..%2F..%2Fetc/passwd")[0] == 404
    assert get(server, "/static/../viewer/server.py")[0] == 404


def test_nerf_run_says_it_has_no_splat(tmp_path, serve):
    field = RadianceField(FieldConfig(resolution=16, channels=4, hidden_dim=16))
    run = write_run(field, tmp_path / "nerf", backbone="nerf")
    state = json.loads(get(serve(run), "/api/run?run=")[2])
    assert "ply" not in state["files"]
    assert any("NeRF" in n and "no Gaussian splat" in n for n in state["info"]["notes"])


def test_run_in_progress_serves_a_preview_from_its_checkpoint(cone_run, tmp_path, serve):
    from lods.scenes.ply import load_ply
    from lods.scenes.gaussians import PARAMS

    run = tmp_path / "running"
    run.mkdir()
    shutil.copy(cone_run / "config.yaml", run / "config.yaml")
    tensors = load_ply(cone_run / "model.ply")
    save_checkpoint(run / "checkpoints" / "last.safetensors",
                    {f"scene/gaussians/{k}": tensors[k] for k in PARAMS},
                    {"step": 2, "history": [{"step": 1, "loss_distill": 2.0}, {"step": 2, "loss_distill": 1.5}]})
    server = serve(run)
    state = json.loads(get(server, "/api/run?run=")[2])
    assert not state["info"]["finished"] and state["info"]["step"] == 2 and state["info"]["preview"]
    status, _, body = get(server, "/run-files/preview.ply")
    assert status == 200
    preview = tmp_path / "preview.ply"
    preview.write_bytes(body)
    assert torch.equal(load_ply(preview)["means"], tensors["means"])


def test_benchmark_gallery_links_to_its_runs(cone_run, tmp_path, serve):
    bench = tmp_path / "bench"
    for group in ("sds-gs-s0", "lods-embedding-gs-s0"):
        shutil.copytree(cone_run, bench / "runs" / group / "a-red-cone")
    server = serve(bench)
    assert json.loads(get(server, "/api/root")[2])["kind"] == "bench"
    runs = json.loads(get(server, "/api/gallery")[2])["runs"]
    assert [r["path"] for r in runs] == ["runs/lods-embedding-gs-s0/a-red-cone", "runs/sds-gs-s0/a-red-cone"]
    assert runs[0]["thumbnail"] == "views.png" and runs[0]["prompt"] == "a red cone"
    assert get(server, f"/run-files/{runs[0]['path']}/views.png")[1] == "image/png"
    assert json.loads(get(server, f"/api/run?run={runs[1]['path']}")[2])["files"]["ply"] == "model.ply"


def test_bad_folders_and_ports(tmp_path, cone_run, serve):
    with pytest.raises(FileNotFoundError):
        make_server(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotARunError, match="not a run folder"):
        make_server(tmp_path / "empty")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port}"):
            make_server(cone_run, port)
    assert serve(cone_run).server_address[0] == "127.0.0.1"


def test_a_taken_default_port_falls_back_to_a_free_one(cone_run, serve):
    from lods.viewer.server import DEFAULT_PORT

    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", DEFAULT_PORT))
            taken.listen()
        except OSError:
            pass  # already taken by someone else: the same situation
        server = serve(cone_run, None)
        assert server.server_address[1] != DEFAULT_PORT
        assert json.loads(get(server, "/api/root")[2])["kind"] == "run"


def test_cli_errors_are_one_line(tmp_path):
    import subprocess
    import sys

    (tmp_path / "empty").mkdir()
    r = subprocess.run([sys.executable, "-m", "lods.cli", "view", str(tmp_path / "empty"), "--no-browser"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a run folder" in r.stderr


def test_generate_view_serves_once_the_run_folder_exists(tmp_path, cone_run):
    from lods.cli.view import live_view

    out = tmp_path / "run"
    on_step, stop = live_view(out, open_browser=False)
    on_step(1, 10, {})  # no config.yaml yet: nothing to serve
    assert "server" not in on_step.holder
    out.mkdir()
    shutil.copy(cone_run / "config.yaml", out / "config.yaml")
    on_step(2, 10, {})
    try:
        server = on_step.holder["server"]
        assert json.loads(get(server, "/api/root")[2])["kind"] == "run"
        assert json.loads(get(server, "/api/run?run=")[2])["info"]["finished"] is False
    finally:
        stop()
