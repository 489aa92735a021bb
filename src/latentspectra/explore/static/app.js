// latentspectra explore: the page's behaviour. Every number comes from the JSON API (/openapi.json); this file only asks
// and draws. Plain browser JavaScript, nothing to build; Chart.js (vendored) draws the two bar charts.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  origin: null,      // the latent as loaded (Reset returns to it)
  base: null,        // the latent the sliders move from
  method: "lsd",
  offsets: [],       // t_k of the current method's sliders
  names: [],         // the current method's slider names
  view: null,        // the last answer of /api/view
  frames: [],        // the rotation's frames for the current latent
  playing: null,     // the rotation's timer while it plays
  pending: false,    // a view is wanted after the one in flight
  inFlight: false,
};
let charts = null;

// --- Talking to the server ---------------------------------------------------------------------------

async function api(path, options = {}) {
  const answer = await fetch(path, options);
  if (!answer.ok) {
    let detail = `${answer.status} ${answer.statusText}`;
    try { detail = (await answer.json()).detail || detail; } catch (ignored) { /* not JSON */ }
    throw new Error(detail);
  }
  return answer;
}

async function post(path, body) {
  const answer = await api(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                  body: JSON.stringify(body)});
  return answer.json();
}

function showError(error) {
  $("error").textContent = error ? String(error.message || error) : "";
  $("error").hidden = !error;
}

async function guarded(action) {
  try {
    await action();
    showError(null);
  } catch (error) {
    showError(error);
  }
}

// --- Charts ------------------------------------------------------------------------------------------

function labelColour(label, alpha = 1) {
  return label < 0 ? `rgba(140,140,140,${alpha})` : `hsla(${(label * 360) / state.info.labels.length},70%,45%,${alpha})`;
}

// The rows of the basis ordered by label, then set: the spectrum grouped by label, the unlabelled rows last.
function spectrumOrder() {
  const {labels, sets} = state.info.basis;
  const rows = labels.map((label, row) => row);
  const key = (row) => (labels[row] < 0 ? 1e9 : labels[row] * 1e6 + sets[row]);
  return rows.sort((a, b) => key(a) - key(b));
}

function makeCharts() {
  const names = state.info.labels;
  const {labels} = state.info.basis;
  const order = spectrumOrder();
  const common = {animation: false, responsive: true, maintainAspectRatio: false, plugins: {legend: {display: false}}};
  const probabilities = new Chart($("probabilities"), {
    type: "bar",
    data: {labels: names, datasets: [{data: names.map(() => 0), backgroundColor: names.map((n, i) => labelColour(i))}]},
    options: {...common, scales: {y: {min: 0, max: 1, title: {display: true, text: "probability"}}}},
  });
  const spectrum = new Chart($("spectrum"), {
    type: "bar",
    data: {
      labels: order.map((row, i) => (i === 0 || labels[order[i - 1]] !== labels[row]) ?
        (labels[row] < 0 ? "unlabelled" : names[labels[row]]) : ""),
      datasets: [{data: order.map(() => 0), backgroundColor: order.map((row) => labelColour(labels[row])),
                  categoryPercentage: 1.0, barPercentage: 0.9}],
    },
    options: {...common, scales: {x: {ticks: {autoSkip: false, maxRotation: 0}},
                                  y: {title: {display: true, text: "c_k (Eq. 10)"}}},
              plugins: {legend: {display: false}, title: {display: true, text: "LSD spectrum, grouped by label"},
                        tooltip: {callbacks: {title: (items) => {
                          const row = order[items[0].dataIndex];
                          return `xi${row}: label ${labels[row] < 0 ? "none" : names[labels[row]]}, ` +
                            `set ${state.info.basis.sets[row]}`;
                        }}}}},
  });
  return {probabilities, spectrum, order};
}

// --- Showing a latent --------------------------------------------------------------------------------

function render(view) {
  state.view = view;
  $("decoded").src = view.image;
  $("truncated").src = view.truncated_image;
  const names = state.info.labels;
  $("top-labels").textContent = view.top_labels.map((label) => names[label]).join(", ");
  const best = view.probabilities.indexOf(Math.max(...view.probabilities));
  $("classified").textContent = `${names[best]} (${(100 * view.probabilities[best]).toFixed(1)}%)`;
  charts.probabilities.data.datasets[0].data = view.probabilities;
  charts.probabilities.update("none");
  charts.spectrum.data.datasets[0].data = charts.order.map((row) => view.spectrum[row]);
  charts.spectrum.update("none");
  $("probabilities").dataset.values = JSON.stringify(view.probabilities);
  $("spectrum").dataset.values = JSON.stringify(view.spectrum);
  document.body.dataset.views = String(Number(document.body.dataset.views || 0) + 1);
}

function moveRequest() {
  const moving = state.offsets.some((t) => t !== 0);
  return {latent: state.base, method: state.method, offsets: moving ? state.offsets : []};
}

// Ask for the view of the current latent; while one request is in flight, only the latest wish is kept.
async function requestView() {
  if (!state.base) return;
  state.pending = true;
  if (state.inFlight) return;
  state.inFlight = true;
  try {
    while (state.pending) {
      state.pending = false;
      render(await post("/api/view", {...moveRequest(), top_n: Number($("top-n").value)}));
    }
    showError(null);
  } catch (error) {
    showError(error);
  } finally {
    state.inFlight = false;
  }
}

function load(answer, caption) {
  state.origin = answer.latent;
  state.base = answer.latent;
  state.offsets = state.offsets.map(() => 0);
  state.frames = [];
  stopRotation();
  setSliders();
  $("input-image").hidden = !answer.input_image;
  if (answer.input_image) $("input-image").src = answer.input_image;
  $("input-caption").textContent = caption;
  $("notes").replaceChildren(...(answer.notes || []).map((note) => {
    const item = document.createElement("li");
    item.textContent = note;
    return item;
  }));
  $("strip").replaceChildren();
  return requestView();
}

// --- Starting points ---------------------------------------------------------------------------------

async function sample() {
  const seed = Number($("seed").value);
  await load(await post("/api/sample", {seed}), `sample, seed ${seed}`);
}

async function testImage(index) {
  $("test-index").value = index;
  await load(await post("/api/test-image", {index}), `test image ${index}`);
}

async function encodeFile(blob, caption) {
  const answer = await api("/api/encode", {method: "POST", headers: {"Content-Type": blob.type || "image/png"},
                                           body: blob});
  await load(await answer.json(), caption);
}

function setupDrawing() {
  const canvas = $("drawing");
  const pen = canvas.getContext("2d");
  const clear = () => { pen.fillStyle = "#000"; pen.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let drawing = false;
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    pen.strokeStyle = "#fff"; pen.lineWidth = 15; pen.lineCap = "round"; pen.lineJoin = "round";
    pen.beginPath();
    pen.moveTo(...at(event));
    pen.lineTo(...at(event));
    pen.stroke();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    pen.lineTo(...at(event));
    pen.stroke();
  });
  const finish = () => {
    if (!drawing) return;
    drawing = false;
    encodeDrawing();
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  $("draw-clear").addEventListener("click", clear);
  $("draw-encode").addEventListener("click", encodeDrawing);
}

function encodeDrawing() {
  $("drawing").toBlob((blob) => guarded(() => encodeFile(blob, "drawing")), "image/png");
}

// --- Methods and sliders -----------------------------------------------------------------------------

function setSliders() {
  const range = state.info.slider_range;
  $("sliders").replaceChildren(...state.names.map((name, k) => {
    const row = document.createElement("div");
    row.className = "slider";
    const title = document.createElement("button");
    title.textContent = name;
    title.title = "show the strip along this direction";
    title.addEventListener("click", () => guarded(() => strip(k)));
    const slider = document.createElement("input");
    Object.assign(slider, {type: "range", min: -range, max: range, step: range / 100, value: state.offsets[k] || 0});
    slider.dataset.direction = String(k);
    slider.setAttribute("aria-label", name);
    const value = document.createElement("output");
    value.textContent = Number(slider.value).toFixed(2);
    slider.addEventListener("input", () => {
      state.offsets[k] = Number(slider.value);
      value.textContent = state.offsets[k].toFixed(2);
      state.frames = [];
      requestView();
    });
    row.append(title, slider, value);
    return row;
  }));
}

async function waitForFit(name) {
  let status = await (await api(`/api/methods/${name}`)).json();
  if (status.state === "idle" || status.state === "failed") status = await post(`/api/methods/${name}/fit`, {});
  $("fit-status").hidden = status.state === "ready";
  while (status.state === "fitting") {
    $("fit-stage").textContent = `fitting ${name}: ${status.stage || "fitting"}, ` +
      `${(status.seconds || 0).toFixed(0)} s (first use; cached on disk afterwards)`;
    await new Promise((resolve) => setTimeout(resolve, 500));
    status = await (await api(`/api/methods/${name}`)).json();
  }
  $("fit-status").hidden = true;
  if (status.state === "failed") throw new Error(`${name} could not be fitted: ${status.error}`);
  return status;
}

async function chooseMethod(name) {
  if (state.view) state.base = state.view.latent;  // moves compose: the next method starts where this one left
  state.method = name;
  state.names = [];
  state.offsets = [];
  setSliders();
  $("strip").replaceChildren();
  const status = await waitForFit(name);
  if (state.method !== name) return;  // another method was chosen meanwhile
  state.names = status.names;
  state.offsets = status.names.map(() => 0);
  setSliders();
}

function reset() {
  state.base = state.origin;
  state.offsets = state.offsets.map(() => 0);
  state.frames = [];
  stopRotation();
  setSliders();
  $("strip").replaceChildren();
  return requestView();
}

async function strip(k) {
  const answer = await post("/api/strip", {...moveRequest(), direction: k});
  [...$("sliders").querySelectorAll("button")].forEach((button, i) => button.classList.toggle("chosen", i === k));
  $("strip").replaceChildren(...answer.images.map((image, i) => {
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.src = image;
    img.alt = `${state.names[k]} at ${answer.amounts[i].toFixed(2)}`;
    const caption = document.createElement("figcaption");
    caption.textContent = answer.amounts[i].toFixed(1);
    figure.append(img, caption);
    return figure;
  }));
}

// --- Algorithm 1 as an animation ---------------------------------------------------------------------

function stopRotation() {
  clearInterval(state.playing);
  state.playing = null;
  $("play").textContent = "Play";
}

function showFrame(index) {
  const frame = state.frames[index];
  if (!frame) return;
  $("frame").value = index;
  const per = state.info.rotation_steps;
  const names = state.info.labels;
  const from = Math.min(Math.floor(index / per), names.length - 1);
  $("frame-label").textContent = `frame ${index} of ${state.frames.length - 1}` +
    (index % per === 0 ? `: at label ${names[from]}` : `: ${names[from]} to ${names[from + 1] ?? ""}`);
  render(frame);
}

async function play() {
  if (state.playing) { stopRotation(); return; }
  if (!state.frames.length) {
    const latent = state.view ? state.view.latent : state.base;
    state.frames = (await post("/api/rotation", {latent, top_n: Number($("top-n").value)})).frames;
    $("frame").max = state.frames.length - 1;
  }
  $("play").textContent = "Pause";
  let index = Number($("frame").value) >= state.frames.length - 1 ? 0 : Number($("frame").value);
  showFrame(index);
  state.playing = setInterval(() => {
    index += 1;
    if (index >= state.frames.length) { stopRotation(); return; }
    showFrame(index);
  }, 160);
}

// --- Export ------------------------------------------------------------------------------------------

async function exportFile(what, format) {
  const answer = what === "latent" ?
    await api(`/api/export/latent?format=${format}`, {method: "POST", headers: {"Content-Type": "application/json"},
                                                      body: JSON.stringify(moveRequest())}) :
    await api(`/api/methods/${state.method}/export?format=${format}`);
  const name = (answer.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await answer.blob());
  link.download = name ? name[1] : `${what}.${format}`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// --- Wiring ------------------------------------------------------------------------------------------

async function start() {
  state.info = await (await api("/api/info")).json();
  $("source").textContent = `networks: ${state.info.networks}; M = ${state.info.latent_dim}; ` +
    `${state.info.test_images} test images`;
  $("test-index").max = state.info.test_images - 1;
  $("top-n").max = state.info.latent_dim;
  charts = makeCharts();
  $("method").replaceChildren(...state.info.methods.map((name) => new Option(name, name)));
  $("sample").addEventListener("click", () => guarded(sample));
  $("test-load").addEventListener("click", () => guarded(() => testImage(Number($("test-index").value))));
  $("test-random").addEventListener("click",
    () => guarded(() => testImage(Math.floor(Math.random() * state.info.test_images))));
  $("upload").addEventListener("change", () => {
    const file = $("upload").files[0];
    if (file) guarded(() => encodeFile(file, file.name));
  });
  $("top-n").addEventListener("input", () => { $("top-n-value").textContent = $("top-n").value; requestView(); });
  $("method").addEventListener("change", () => guarded(() => chooseMethod($("method").value)));
  $("reset").addEventListener("click", () => guarded(reset));
  $("play").addEventListener("click", () => guarded(play));
  $("frame").addEventListener("input", () => { stopRotation(); showFrame(Number($("frame").value)); });
  document.querySelectorAll("[data-export]").forEach((button) => button.addEventListener("click",
    () => guarded(() => exportFile(button.dataset.export, button.dataset.format))));
  setupDrawing();
  await chooseMethod("lsd");
  await sample();
  document.body.dataset.ready = "true";
}

guarded(start);
