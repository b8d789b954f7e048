// lods view: a run page (splat + mesh side by side, turntable, views, metrics, loss curve) or a benchmark gallery.
// Everything is fetched from the local server that served this page.
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { SparkRenderer, SplatMesh } from "@sparkjsdev/spark";

const main = document.getElementById("main");
const params = new URLSearchParams(location.search);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function note(parent, text, isError = false) {
  const p = el("p", { class: isError ? "note error" : "note" }, text);
  parent.append(p);
  return p;
}

function fileUrl(run, name, version) {
  const prefix = run ? `/run-files/${run.split("/").map(encodeURIComponent).join("/")}/` : "/run-files/";
  return prefix + encodeURIComponent(name) + (version ? `?v=${encodeURIComponent(version)}` : "");
}

async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json().catch(() => ({ error: `${url}: HTTP ${r.status}` }));
  if (!r.ok) throw new Error(body.error || `${url}: HTTP ${r.status}`);
  return body;
}

function mark(key, value) {
  document.body.dataset[key] = value;
}

// --- one three.js view with orbit controls; y is up (glTF's and model.ply's convention) ---
function makeView(container, withSpark) {
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(1);
  renderer.setClearColor(0xffffff, 1);
  container.append(renderer.domElement);
  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(40, 1, 0.01, 100);
  const elev = (20 * Math.PI) / 180;
  camera.position.set(0, 2.5 * Math.sin(elev), 2.5 * Math.cos(elev)); // as the turntable: elevation 20°, distance 2.5
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.target.set(0, 0, 0);
  controls.update();
  if (withSpark) scene.add(new SparkRenderer({ renderer }));
  const resize = () => {
    const w = container.clientWidth, h = container.clientHeight;
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
  };
  resize();
  new ResizeObserver(resize).observe(container);
  renderer.setAnimationLoop(() => {
    controls.update();
    renderer.render(scene, camera);
  });
  return { renderer, scene, camera, object: null };
}

function replaceObject(view, object) {
  if (view.object) {
    view.scene.remove(view.object);
    view.object.dispose?.();
  }
  view.object = object;
  if (object) view.scene.add(object);
}

async function loadSplat(view, url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`model.ply: HTTP ${r.status}`);
  const bytes = new Uint8Array(await r.arrayBuffer());
  const splat = new SplatMesh({ fileBytes: bytes, fileType: "ply", fileName: "model.ply" });
  await splat.initialized;
  replaceObject(view, splat);
}

async function loadMesh(view, url) {
  const gltf = await new GLTFLoader().loadAsync(url);
  if (!view.lit) {
    view.scene.add(new THREE.HemisphereLight(0xffffff, 0x888888, 1.6));
    const sun = new THREE.DirectionalLight(0xffffff, 1.4);
    sun.position.set(2, 3, 2);
    view.scene.add(sun);
    view.lit = true;
  }
  replaceObject(view, gltf.scene);
}

// --- loss curve as an SVG line chart ---
function lossChart(curves) {
  const names = Object.keys(curves).filter((k) => curves[k].length > 1);
  if (!names.length) return el("p", { class: "muted" }, "No losses recorded yet.");
  const W = 520, H = 220, L = 48, B = 24;
  const pts = names.flatMap((k) => curves[k]);
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]).filter(Number.isFinite);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => L + ((x - x0) / Math.max(x1 - x0, 1e-9)) * (W - L - 8);
  const sy = (y) => 8 + (1 - (y - y0) / Math.max(y1 - y0, 1e-12)) * (H - B - 8);
  const colours = ["#d33", "#36c", "#393", "#c70", "#939"];
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", "100%");
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
  };
  add("line", { x1: L, y1: H - B, x2: W - 8, y2: H - B, stroke: "#999" });
  add("line", { x1: L, y1: 8, x2: L, y2: H - B, stroke: "#999" });
  add("text", { x: 2, y: 14 }, y1.toPrecision(3));
  add("text", { x: 2, y: H - B }, y0.toPrecision(3));
  add("text", { x: L, y: H - 6 }, `step ${x0}`);
  add("text", { x: W - 70, y: H - 6 }, `step ${x1}`);
  names.forEach((k, i) => {
    const d = curves[k].filter((p) => Number.isFinite(p[1])).map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    add("path", { d, fill: "none", stroke: colours[i % colours.length], "stroke-width": 1.2 });
    add("text", { x: W - 130, y: 18 + 14 * i, fill: colours[i % colours.length] }, k);
  });
  return svg;
}

function metricsTable(info) {
  const rows = [["prompt", info.prompt], ["method", info.guidance], ["backbone", info.backbone],
    ["steps", `${info.step ?? 0} / ${info.steps ?? "?"}${info.finished ? "" : " (in progress)"}`]];
  if (info.seconds != null) rows.push(["time", `${info.seconds.toFixed(0)} s`]);
  for (const [k, v] of Object.entries(info.ground_truth || {})) rows.push([k, typeof v === "number" ? +v.toPrecision(4) : v]);
  return el("table", {}, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, String(v ?? "—")))));
}

// --- the run page ---
async function runPage(run) {
  const splatPanel = el("div", { class: "panel", id: "splat-panel" }, el("h2", {}, "Gaussian splat (model.ply)"));
  const meshPanel = el("div", { class: "panel", id: "mesh-panel" }, el("h2", {}, "Mesh (mesh.glb)"));
  const splatBox = el("div", { class: "view3d", id: "splat" }), meshBox = el("div", { class: "view3d", id: "mesh" });
  const splatNotes = el("div"), meshNotes = el("div");
  splatPanel.append(splatNotes, splatBox);
  meshPanel.append(meshNotes, meshBox);
  const mediaPanel = el("div", { class: "panel" }, el("h2", {}, "Turntable"));
  const viewsPanel = el("div", { class: "panel" }, el("h2", {}, "Evaluation views (views.png)"));
  const metricsPanel = el("div", { class: "panel", id: "metrics" }, el("h2", {}, "Metrics"));
  const lossPanel = el("div", { class: "panel", id: "loss" }, el("h2", {}, "Loss"));
  main.replaceChildren(el("div", { class: "row" }, splatPanel, meshPanel), el("div", { class: "row" }, mediaPanel, viewsPanel),
    el("div", { class: "row" }, metricsPanel, lossPanel));
  const views = { splat: null, mesh: null };
  let shown = {};

  async function refresh() {
    let state;
    try {
      state = await getJson(`/api/run?run=${encodeURIComponent(run)}`);
    } catch (e) {
      main.replaceChildren();
      note(main, `Cannot show this run: ${e.message}`, true);
      mark("splat", "error");
      return false;
    }
    const { info, files, version } = state;
    document.getElementById("title").textContent = info.prompt || "(no prompt)";
    document.getElementById("subtitle").textContent = `${info.guidance} on ${info.backbone}` + (info.finished ? "" : ` — step ${info.step} / ${info.steps}, refreshing`);
    if (version === shown.version) return !info.finished;
    const stamp = version.length.toString(36) + "-" + Date.now().toString(36);
    splatNotes.replaceChildren();
    meshNotes.replaceChildren();
    for (const n of info.notes) note(/splat|NeRF|model\.ply|preview/.test(n) ? splatNotes : meshNotes, n);

    const plyName = files.ply ? files.ply : info.preview ? "preview.ply" : null;
    if (plyName && (plyName !== shown.ply || version !== shown.version)) {
      views.splat ??= makeView(splatBox, true);
      loadSplat(views.splat, fileUrl(run, plyName, stamp)).then(
        () => setTimeout(() => mark("splat", "loaded"), 500),
        (e) => { note(splatNotes, `Could not load the splat: ${e.message}`, true); mark("splat", "error"); });
    } else if (!plyName) {
      splatBox.style.display = "none";
      mark("splat", "absent");
    }
    if (files.mesh) {
      meshBox.style.display = "";
      views.mesh ??= makeView(meshBox, false);
      loadMesh(views.mesh, fileUrl(run, files.mesh, stamp)).then(
        () => setTimeout(() => mark("mesh", "loaded"), 300),
        (e) => { note(meshNotes, `Could not load the mesh: ${e.message}`, true); mark("mesh", "error"); });
    } else {
      meshBox.style.display = "none";
      mark("mesh", "absent");
    }
    mediaPanel.replaceChildren(mediaPanel.firstChild);
    if (files.turntable) {
      const url = fileUrl(run, files.turntable, stamp);
      mediaPanel.append(files.turntable.endsWith(".mp4")
        ? el("video", { src: url, autoplay: "", loop: "", muted: "", playsinline: "", width: "256" })
        : el("img", { src: url, width: "256", alt: "turntable" }));
    } else note(mediaPanel, "No turntable yet: it is written when the run finishes.");
    viewsPanel.replaceChildren(viewsPanel.firstChild);
    if (files.views) viewsPanel.append(el("img", { src: fileUrl(run, files.views, stamp), alt: "evaluation views" }));
    else note(viewsPanel, "No views.png yet: it is written when the run finishes.");
    metricsPanel.replaceChildren(metricsPanel.firstChild, metricsTable(info));
    lossPanel.replaceChildren(lossPanel.firstChild, lossChart(info.curves || {}));
    shown = { version, ply: plyName };
    mark("state", info.finished ? "finished" : "running");
    return !info.finished;
  }

  const again = await refresh();
  if (again) {
    const timer = setInterval(async () => {
      if (!(await refresh())) clearInterval(timer);
    }, 2000);
  }
}

// --- the benchmark gallery ---
async function galleryPage() {
  const { name, runs } = await getJson("/api/gallery");
  document.getElementById("title").textContent = `Benchmark ${name}`;
  document.getElementById("subtitle").textContent = `${runs.length} runs`;
  const grid = el("div", { class: "gallery", id: "gallery" });
  for (const r of runs) {
    const href = `/?run=${encodeURIComponent(r.path)}`;
    const card = el("a", { class: "card", href });
    if (r.thumbnail) card.append(el("img", { src: fileUrl(r.path, r.thumbnail), alt: r.prompt, loading: "lazy" }));
    else card.append(el("p", { class: "muted" }, r.finished ? "no views.png" : "in progress"));
    card.append(el("div", { class: "prompt" }, r.prompt), el("div", { class: "muted" }, `${r.guidance} · ${r.backbone} · seed ${r.seed}`),
      el("div", { class: "muted" }, r.path));
    const m = r.metrics;
    const parts = [];
    if (m.psnr != null) parts.push(`PSNR ${m.psnr.toFixed(1)} dB`);
    if (m.iou != null) parts.push(`IoU ${m.iou.toFixed(2)}`);
    if (m.recognized_views != null) parts.push(`judge ${m.recognized_views}/${m.n_views}`);
    if (r.seconds != null) parts.push(`${r.seconds.toFixed(0)} s`);
    card.append(el("div", {}, parts.join(" · ") || "—"));
    grid.append(card);
  }
  main.replaceChildren(grid);
  mark("state", "gallery");
}

async function start() {
  try {
    const root = await getJson("/api/root");
    const run = params.get("run");
    if (run !== null) await runPage(run);
    else if (root.kind === "run") await runPage("");
    else await galleryPage();
  } catch (e) {
    main.replaceChildren();
    note(main, `Cannot show this folder: ${e.message}`, true);
    mark("state", "error");
  }
}

start();
