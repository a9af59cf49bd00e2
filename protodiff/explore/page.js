// protodiff explore: the page. It holds no analysis: every number and image comes from the
// server's JSON API (/api/run, /api/images, /api/pick, /api/upload, /api/edit, /api/gallery).
"use strict";

const state = {
  run: null,        // /api/run
  picture: null,    // /api/pick or /api/upload: the image held open
  edit: null,       // /api/edit: the latest edit shown
  values: [],       // the slider values: the condition asked for
  selected: 0,      // the dimension the map and the curves show
  inflight: false,  // one edit at a time; moves made meanwhile are sent once it returns
  pending: false,
};
const $ = (id) => document.getElementById(id);
const esc = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (v) => (v === null || v === undefined ? "-" : Number(v).toFixed(2));

function say(text, error = false) {
  const box = $("message");
  box.textContent = text;
  box.className = error ? "error" : "";
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (exc) {
    throw new Error(`the server did not answer (${exc.message}); is protodiff explore still running?`);
  }
  let body;
  try {
    body = await response.json();
  } catch (exc) {
    throw new Error(`the server answered ${response.status} without JSON`);
  }
  if (!response.ok || body.error) throw new Error(body.error || `the server answered ${response.status}`);
  return body;
}

function post(path, value) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(value) });
}

function busy(flag) {
  document.body.dataset.state = flag ? "busy" : "ready";
}

// -- the run ------------------------------------------------------------------------------------
async function start() {
  let run;
  try {
    run = await api("/api/run");
  } catch (exc) {
    say(exc.message, true);
    $("message").classList.add("big");
    document.body.dataset.state = "failed";
    return;
  }
  state.run = run;
  const s = run.settings;
  $("about").textContent = `${run.run}: ${run.conditioner} conditioner, ${run.dimensions.length} dimensions, on ${run.dataset}` +
    ` · edits: ${s.sampler} ${s.steps} steps, guidance ${s.guidance}${s.start === null ? ", from the inversion" : `, from step ${s.start}`}`;
  $("index").max = run.test_images - 1;
  for (const name of run.attributes) $("attribute").add(new Option(name, name));
  $("by-attribute").hidden = run.attributes.length === 0;
  buildSliders();
  select(0);
  showEffects();
  $("explorer").hidden = false;
  if (run.notes.length) say(run.notes.join(" · "), true);
  await Promise.all([thumbnails(), pick(0)]);
  gallery();
}

function label(d) {
  return d.suggested ? `${esc(d.name)} <span class="suggested">(${esc(d.suggested)}?)</span>` : esc(d.name);
}

function buildSliders() {
  const box = $("sliders");
  box.textContent = "";
  for (const d of state.run.dimensions) {
    const row = document.createElement("div");
    row.className = "dim";
    row.dataset.index = d.index;
    row.dataset.name = `${d.name} ${d.suggested || ""}`.toLowerCase();
    const step = (d.high - d.low) / 400;
    const span = d.high - d.low || 1;
    const left = ((d.observed[0] - d.low) / span) * 100;
    const width = ((d.observed[1] - d.observed[0]) / span) * 100;
    row.innerHTML = `<div class="head"><span class="name">${label(d)}</span>` +
      `<span class="values">set <b class="value">-</b> · own <span class="own">-</span> · read back <span class="after">-</span><span class="followed"></span></span></div>` +
      `<div class="track"><div class="band" style="left:${left}%;width:${width}%"></div>` +
      `<input type="range" min="${d.low}" max="${d.high}" step="${step}" aria-label="${esc(d.name)}"></div>` +
      (d.evidence ? `<div class="evidence">${esc(d.evidence)}</div>` : "");
    const slider = row.querySelector("input");
    slider.addEventListener("input", () => {
      state.values[d.index] = Number(slider.value);
      row.querySelector(".value").textContent = fmt(slider.value);
      select(d.index);
      requestEdit();
    });
    slider.addEventListener("focus", () => select(d.index));
    row.addEventListener("click", () => select(d.index));
    box.appendChild(row);
  }
  $("filter").addEventListener("input", () => {
    const text = $("filter").value.trim().toLowerCase();
    for (const row of box.children) row.hidden = text !== "" && !row.dataset.name.includes(text);
  });
  $("reset").addEventListener("click", () => {
    if (state.picture) setValues(state.picture.vector);
  });
}

function row(index) {
  return $("sliders").querySelector(`.dim[data-index="${index}"]`);
}

function setValues(values) {
  state.values = values.slice();
  for (const d of state.run.dimensions) {
    const r = row(d.index);
    r.querySelector("input").value = values[d.index];
    r.querySelector(".value").textContent = fmt(values[d.index]);
  }
  requestEdit();
}

function setOne(index, value) {
  if (!state.picture) return;
  const values = state.picture.vector.slice();
  values[index] = value;
  select(index);
  row(index).scrollIntoView({ block: "nearest" });
  setValues(values);
}

function select(index) {
  if (state.selected === index && row(index).classList.contains("selected")) return;
  row(state.selected)?.classList.remove("selected");
  state.selected = index;
  row(index).classList.add("selected");
  $("map-title").textContent = state.run.dimensions[index].name;
  drawMaps();
  drawCurves();
}

// -- images -------------------------------------------------------------------------------------
async function thumbnails() {
  const query = new URLSearchParams({ attribute: $("attribute").value, present: $("present").value });
  try {
    const found = await api(`/api/images?${query}`);
    const box = $("thumbnails");
    box.textContent = "";
    if (!found.indices.length) box.textContent = "no test image matches";
    found.indices.forEach((index, k) => {
      const img = new Image();
      img.src = found.images[k];
      img.title = `test image ${index}`;
      img.addEventListener("click", () => pick(index));
      box.appendChild(img);
    });
  } catch (exc) {
    say(exc.message, true);
  }
}

async function pick(index) {
  $("index").value = index;
  await hold(() => post("/api/pick", { index: Number(index) }), `test image ${index}`);
}

async function upload(file) {
  await hold(
    () => api("/api/upload", {
      method: "POST",
      headers: { "Content-Type": file.type || "application/octet-stream", "X-Filename": encodeURIComponent(file.name) },
      body: file,
    }),
    file.name,
  );
}

async function hold(request, what) {
  busy(true);
  say(`encoding and inverting ${what} ...`);
  try {
    const picture = await request();
    state.picture = picture;
    state.edit = null;
    $("original").src = picture.image;
    $("regenerated").src = picture.regenerated;
    $("edited").src = picture.regenerated;
    $("picture-label").textContent = picture.label;
    $("timing").textContent = "";
    const own = picture.vector;
    for (const d of state.run.dimensions) row(d.index).querySelector(".own").textContent = fmt(own[d.index]);
    state.values = own.slice();
    for (const d of state.run.dimensions) {
      const r = row(d.index);
      r.querySelector("input").value = own[d.index];
      r.querySelector(".value").textContent = fmt(own[d.index]);
      r.querySelector(".after").textContent = "-";
      r.querySelector(".followed").textContent = "";
    }
    showTimeline(picture.baseline);
    drawMaps();
    say(`${picture.label}: ready; move a slider`);
    busy(false);
  } catch (exc) {
    say(exc.message, true);
    busy(false);
  }
}

// -- edits --------------------------------------------------------------------------------------
async function requestEdit() {
  if (!state.picture) return;
  if (state.inflight) {
    state.pending = true;
    return;
  }
  state.inflight = true;
  busy(true);
  const started = performance.now();
  try {
    const result = await post("/api/edit", { key: state.picture.key, vector: state.values });
    const roundTrip = (performance.now() - started) / 1000;
    state.edit = result;
    $("edited").src = result.image;
    $("timing").textContent = `(${result.seconds.toFixed(2)} s on the server, ${roundTrip.toFixed(2)} s round trip)`;
    for (const d of state.run.dimensions) {
      const r = row(d.index);
      r.querySelector(".after").textContent = fmt(result.after[d.index]);
      // Under follow=regression the dimensions not set move with those that are: show where to.
      const moved = Math.abs(result.followed[d.index] - result.vector[d.index]) > 1e-6;
      r.querySelector(".followed").textContent = moved ? ` · followed to ${fmt(result.followed[d.index])}` : "";
    }
    showTimeline(result.timeline);
    drawMaps();
    say(`edited ${state.picture.label}`);
    document.body.dataset.edits = Number(document.body.dataset.edits) + 1;
  } catch (exc) {
    say(exc.message, true);
  } finally {
    state.inflight = false;
    if (state.pending) {
      state.pending = false;
      requestEdit();
    } else {
      busy(false);
    }
  }
}

// -- where: the map of the selected dimension over the image and over the edit -----------------
function drawMap(canvas, source, maps) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!source) return;
  const img = new Image();
  img.onload = () => {
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    if (!maps) return;
    const map = maps[state.selected];
    // The fifth of the patches with the lowest values, brightest at the lowest.
    const flat = map.flat().filter((v) => v !== null).sort((a, b) => a - b);
    const lo = flat[0], cut = flat[Math.floor(0.2 * (flat.length - 1))];
    const h = map.length, w = map[0].length;
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        const strength = cut > lo ? Math.max(0, (cut - map[r][c]) / (cut - lo)) : map[r][c] === lo ? 1 : 0;
        if (strength <= 0) continue;
        ctx.fillStyle = `rgba(255, 220, 0, ${0.2 + 0.6 * strength})`;
        ctx.fillRect((c * canvas.width) / w, (r * canvas.height) / h, canvas.width / w + 0.5, canvas.height / h + 0.5);
      }
    }
  };
  img.src = source;
}

function drawMaps() {
  const picture = state.picture;
  if (!picture) return;
  const hasMaps = picture.maps !== null;
  $("maps").hidden = !hasMaps;
  $("map-note").textContent = hasMaps
    ? "Yellow: the fifth of the patches where this dimension's map is lowest, brightest at the lowest (Patronus: the patches nearest the prototype, i.e. where it fires), stretched over the image."
    : `This run's ${state.run.conditioner} conditioner gives no spatial map: its dimensions are not tied to places in the image.`;
  if (!hasMaps) return;
  drawMap($("map-before"), picture.image, picture.maps);
  drawMap($("map-after"), state.edit ? state.edit.image : null, state.edit ? state.edit.maps : null);
}

// -- when: the timeline of the edit -------------------------------------------------------------
function showTimeline(timeline) {
  state.timeline = timeline;
  const scrubber = $("scrubber");
  scrubber.max = timeline.frames.length - 1;
  scrubber.value = timeline.frames.length - 1;
  scrub();
}

function scrub() {
  const t = state.timeline;
  if (!t) return;
  const i = Number($("scrubber").value);
  $("frame").src = t.frames[i];
  $("frame-label").textContent = `step ${i + 1}/${t.frames.length} (t = ${t.timesteps[i]}): x0 estimate`;
  drawCurves();
}

const COLOURS = ["#1f5fbf", "#d9822b", "#2a9d4b", "#9b59b6"];

function drawCurves() {
  const canvas = $("curves"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const t = state.timeline, picture = state.picture;
  if (!t || !picture) return;
  const base = picture.baseline.activations, acts = t.activations, S = acts.length;
  // The selected dimension, then the (up to) three others this edit moved most at the last step.
  const moved = state.run.dimensions.map((d) => d.index).filter((j) => j !== state.selected)
    .map((j) => [Math.abs(acts[S - 1][j] - base[base.length - 1][j]), j]).sort((a, b) => b[0] - a[0])
    .filter(([delta]) => delta > 1e-3).slice(0, 3).map(([, j]) => j);
  const shown = [state.selected, ...moved];
  const all = shown.flatMap((j) => [...acts.map((a) => a[j]), ...base.map((a) => a[j])]).concat([state.values[state.selected]]);
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hi - lo < 1e-6) { lo -= 1; hi += 1; }
  const pad = { l: 40, r: 8, t: 8, b: 22 };
  const x = (i) => pad.l + (i / Math.max(1, S - 1)) * (canvas.width - pad.l - pad.r);
  const y = (v) => canvas.height - pad.b - ((v - lo) / (hi - lo)) * (canvas.height - pad.t - pad.b);
  ctx.font = "11px system-ui";
  ctx.fillStyle = "#666";
  ctx.fillText(hi.toFixed(2), 2, pad.t + 8);
  ctx.fillText(lo.toFixed(2), 2, canvas.height - pad.b);
  ctx.fillText("denoising step →", pad.l, canvas.height - 6);
  const line = (values, colour, dash, width) => {
    ctx.strokeStyle = colour; ctx.setLineDash(dash); ctx.lineWidth = width; ctx.beginPath();
    values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
    ctx.stroke();
  };
  shown.forEach((j, k) => {
    line(base.map((a) => a[j]), COLOURS[k], [4, 3], 1);
    line(acts.map((a) => a[j]), COLOURS[k], [], k ? 1.2 : 2.2);
  });
  line(acts.map(() => state.values[state.selected]), "#b00020", [1, 3], 1);
  const i = Number($("scrubber").value);
  ctx.setLineDash([]); ctx.strokeStyle = "#999"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(x(i), pad.t); ctx.lineTo(x(i), canvas.height - pad.b); ctx.stroke();
  const names = shown.map((j, k) => `<span style="color:${COLOURS[k]}">${esc(state.run.dimensions[j].name)}</span>`);
  $("curves-legend").innerHTML = `The condition of each step's x0 estimate, read by the model's encoder: ${names.join(", ")} ` +
    "(solid: this edit; dashed: the unedited regeneration; red dots: the value the slider asks for).";
}

// -- the gallery and the saved effect matrices --------------------------------------------------
async function gallery() {
  const box = $("gallery");
  try {
    const found = await api("/api/gallery");
    box.textContent = "";
    if (found.unavailable) {
      box.innerHTML = `<p class="note">No prototype gallery for this run: ${esc(found.unavailable)}.</p>`;
      return;
    }
    const head = document.createElement("p");
    head.className = "note";
    head.textContent = "Each prototype: its nearest training patch, then test images regenerated with it turned up, and the patch where it fires most. Click a name to set its slider.";
    box.appendChild(head);
    for (const p of found.prototypes) {
      const line = document.createElement("div");
      line.className = "proto";
      const link = document.createElement("a");
      link.href = "#";
      link.textContent = `${p.name} → ${fmt(p.target)}`;
      link.addEventListener("click", (event) => { event.preventDefault(); setOne(p.index, p.target); });
      line.appendChild(link);
      const images = [p.nearest, null];
      p.regenerated.forEach((src, k) => images.push(src, p.crops[k], null));
      for (const src of images) {
        const cell = src ? new Image() : document.createElement("span");
        if (src) cell.src = src; else cell.className = "gap";
        line.appendChild(cell);
      }
      box.appendChild(line);
    }
  } catch (exc) {
    box.innerHTML = "";
    const p = document.createElement("p");
    p.className = "note";
    p.textContent = `The gallery failed: ${exc.message}`;
    box.appendChild(p);
  }
}

function colour(v) {
  if (v === null || v === undefined) return "#f4f4f4";
  const a = Math.min(1, Math.abs(v));
  return v >= 0 ? `rgba(200, 40, 40, ${a})` : `rgba(40, 80, 200, ${a})`;
}

function showEffects() {
  const box = $("effects");
  box.textContent = "";
  if (!state.run.effects.length) {
    box.innerHTML = '<p class="note">This run has no saved effect matrix. <code>protodiff explain effects RUN --classifier DIR --out RUN/explain/effects</code> ' +
      "(or <code>explain shortcuts</code>) saves one where this page finds it.</p>";
    return;
  }
  for (const e of state.run.effects) {
    const title = document.createElement("h3");
    title.textContent = `${e.name}: ${e.explainer}${e.images ? ` over ${e.images} images` : ""}`;
    box.appendChild(title);
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = "Mean change of each attribute's probability when the dimension is set to its plausible maximum. Click a cell to make that edit here.";
    box.appendChild(note);
    const table = document.createElement("table");
    table.className = "effects";
    table.innerHTML = `<tr><th></th>${e.attributes.map((a) => `<th>${esc(a)}</th>`).join("")}</tr>`;
    for (const j of e.rows) {
      const tr = document.createElement("tr");
      tr.innerHTML = `<th>${esc(e.dimensions[j])}</th>`;
      e.attributes.forEach((a, k) => {
        const v = e.effect[j][k];
        const td = document.createElement("td");
        td.style.background = colour(v);
        const link = document.createElement("a");
        link.href = "#";
        link.textContent = v === null ? "-" : v.toFixed(2);
        link.title = `${e.dimensions[j]} → ${fmt(e.enhanced[j])}: ${a} ${v === null ? "" : v.toFixed(2)}`;
        link.addEventListener("click", (event) => { event.preventDefault(); setOne(j, e.enhanced[j]); });
        td.appendChild(link);
        tr.appendChild(td);
      });
      table.appendChild(tr);
    }
    box.appendChild(table);
    if (e.couplings) {
      const list = document.createElement("ol");
      list.className = "couplings";
      const SHOWN = 12;
      for (const c of e.couplings.slice(0, SHOWN)) {
        const j = e.dimensions.indexOf(c.prototype);
        const item = document.createElement("li");
        const link = document.createElement("a");
        link.href = "#";
        link.textContent = `${c.prototype}: ${c.attributes.join(" + ")} (${c.effects.map((v) => v.toFixed(2)).join(", ")})` +
          `${c.score === null ? "" : `, score ${c.score.toFixed(2)}`}${c.flagged ? " — flagged" : ""}`;
        if (c.flagged) link.className = "flagged";
        link.addEventListener("click", (event) => { event.preventDefault(); if (j >= 0) setOne(j, e.enhanced[j]); });
        item.appendChild(link);
        list.appendChild(item);
      }
      const head = document.createElement("p");
      head.className = "note";
      head.textContent = "Shortcut ranking: couplings one dimension carries (flagged first). Click one to make its edit.";
      box.appendChild(head);
      box.appendChild(list);
      if (e.couplings.length > SHOWN) {
        const more = document.createElement("p");
        more.className = "note";
        more.textContent = `... and ${e.couplings.length - SHOWN} more in ${e.name}/shortcuts.json.`;
        box.appendChild(more);
      }
    }
  }
}

// -- wiring -------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("open").addEventListener("click", () => pick($("index").value));
  $("index").addEventListener("keydown", (event) => { if (event.key === "Enter") pick($("index").value); });
  $("attribute").addEventListener("change", thumbnails);
  $("present").addEventListener("change", thumbnails);
  $("upload").addEventListener("change", () => {
    const file = $("upload").files[0];
    if (file) upload(file);
    $("upload").value = "";
  });
  $("scrubber").addEventListener("input", scrub);
  start();
});
