// FingerprintHeatmap front end: draws the float32 similarity buffer on a canvas (one pixel per cell,
// scaled up without smoothing), sorts rows and columns, zooms, and sends the clicked cell to the
// kernel, which answers with the pair's details in `selected_pair`.

const MAX_CANVAS = 16000;

/**
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {(Node|string)[]} children
 */
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "testid") node.dataset.testid = v;
    else if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

/** @param {number|null|undefined} v @param {number} [d] */
function fmt(v, d = 3) {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(d);
}

/**
 * A copy of a synced binary trait as a typed array (copied: the DataView may be unaligned).
 * @template T
 * @param {DataView|ArrayBuffer|null} view
 * @param {new (b: ArrayBuffer) => T} Type
 * @returns {T}
 */
function typed(view, Type) {
  if (!view) return new Type(new ArrayBuffer(0));
  if (view instanceof ArrayBuffer) return new Type(view.slice(0));
  return new Type(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
}

/** Diverging colour for a score in [-1, 1]: blue (negative), white (0), red (positive); grey for NaN. */
function colour(v) {
  if (Number.isNaN(v)) return [236, 238, 242];
  const t = Math.max(-1, Math.min(1, v));
  if (t >= 0) return [255, Math.round(255 - 165 * t), Math.round(255 - 200 * t)];
  return [Math.round(255 + 200 * t), Math.round(255 + 120 * t), 255];
}

/** Order of n items by score descending (NaN last), stable. */
function byScore(n, score) {
  return Array.from({ length: n }, (_, i) => i)
    .sort((a, b) => (Number.isNaN(score[b]) ? -Infinity : score[b]) - (Number.isNaN(score[a]) ? -Infinity : score[a]) || a - b);
}

export default {
  /** @param {{ model: any, el: HTMLElement }} ctx */
  render({ model, el }) {
    el.classList.add("ik-hm");
    const colorBy = h("select", { testid: "heatmap-color", "aria-label": "colour by" });
    const sortBy = h("select", { testid: "heatmap-sort", "aria-label": "sort" },
      ...[["matched", "matched pairs first"], ["best", "best score"], ["index", "feature order"]]
        .map(([v, t]) => h("option", { value: v, text: t })));
    const zoom = /** @type {HTMLInputElement} */ (h("input", { type: "range", min: "1", max: "40", step: "1",
      testid: "heatmap-zoom", "aria-label": "cell size" }));
    const canvas = /** @type {HTMLCanvasElement} */ (h("canvas", { class: "ik-hm-canvas", testid: "heatmap-canvas" }));
    const scroll = h("div", { class: "ik-hm-scroll" }, canvas);
    const tip = h("div", { class: "ik-hm-tip", testid: "heatmap-tooltip" });
    const detail = h("div", { class: "ik-hm-detail", testid: "heatmap-detail" });
    const matches = h("ol", { class: "ik-hm-matches", testid: "heatmap-matches" });
    const legend = h("div", { class: "ik-hm-legend" }, h("span", { text: "−1" }), h("span", { class: "ik-hm-ramp" }),
      h("span", { text: "+1" }));
    el.append(h("div", { class: "ik-hm-controls" }, h("label", {}, "colour ", colorBy), h("label", {}, "sort ", sortBy),
      h("label", {}, "zoom ", zoom), legend),
      h("div", { class: "ik-hm-body" }, h("div", { class: "ik-hm-main" }, scroll, tip),
        h("div", { class: "ik-hm-side" }, detail, h("h4", { text: "matched pairs" }), matches)));

    let data = new Float32Array(0), layers = 1, n = 0, m = 0;
    let pairs = new Int32Array(0), flags = new Int8Array(0);
    /** @type {number[]} */ let rowOrder = [];
    /** @type {number[]} */ let colOrder = [];
    let cell = 8;

    const layerIndex = () => Math.max(0, model.get("layers").indexOf(model.get("color_by")));
    const value = (k, i, j) => data[(k * n + i) * m + j];

    const load = () => {
      [layers, n, m] = model.get("shape");
      data = typed(model.get("matrix"), Float32Array);
      pairs = typed(model.get("matched"), Int32Array);
      flags = typed(model.get("validated"), Int8Array);
      colorBy.replaceChildren(...model.get("layers").map((l) => h("option", { value: l, text: l })));
      colorBy.value = model.get("color_by");
      cell = Math.max(1, Math.min(40, Math.floor(640 / Math.max(n, m, 1))));
      zoom.value = String(cell);
      order();
      listMatches();
    };
    const order = () => {
      const k = 0;  // orders use the combined score, so colouring by a component keeps positions
      const rowBest = new Float32Array(n).fill(NaN), colBest = new Float32Array(m).fill(NaN);
      for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) {
        const v = value(k, i, j);
        if (!Number.isNaN(v)) {
          if (!(rowBest[i] >= v)) rowBest[i] = v;
          if (!(colBest[j] >= v)) colBest[j] = v;
        }
      }
      const mode = model.get("sort");
      if (mode === "index") {
        rowOrder = Array.from({ length: n }, (_, i) => i);
        colOrder = Array.from({ length: m }, (_, j) => j);
      } else if (mode === "best" || pairs.length === 0) {
        rowOrder = byScore(n, rowBest);
        colOrder = byScore(m, colBest);
      } else {
        const np = pairs.length / 2;
        const ps = Array.from({ length: np }, (_, t) => t)
          .sort((a, b) => (value(k, pairs[2 * b], pairs[2 * b + 1]) || -Infinity) - (value(k, pairs[2 * a], pairs[2 * a + 1]) || -Infinity));
        const seenR = new Set(ps.map((t) => pairs[2 * t])), seenC = new Set(ps.map((t) => pairs[2 * t + 1]));
        rowOrder = [...ps.map((t) => pairs[2 * t]), ...byScore(n, rowBest).filter((i) => !seenR.has(i))];
        colOrder = [...ps.map((t) => pairs[2 * t + 1]), ...byScore(m, colBest).filter((j) => !seenC.has(j))];
      }
      draw();
    };
    const draw = () => {
      cell = Math.max(1, Math.min(cell, Math.floor(MAX_CANVAS / Math.max(n, m, 1))));
      const k = layerIndex();
      const img = new ImageData(Math.max(m, 1), Math.max(n, 1));
      for (let r = 0; r < n; r++) for (let c = 0; c < m; c++) {
        const [R, G, B] = colour(value(k, rowOrder[r], colOrder[c]));
        const o = (r * m + c) * 4;
        img.data[o] = R; img.data[o + 1] = G; img.data[o + 2] = B; img.data[o + 3] = 255;
      }
      const off = document.createElement("canvas");
      off.width = img.width; off.height = img.height;
      off.getContext("2d").putImageData(img, 0, 0);
      canvas.width = m * cell; canvas.height = n * cell;
      const ctx = canvas.getContext("2d");
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(off, 0, 0, m * cell, n * cell);
      if (cell >= 4) {
        const rowPos = new Int32Array(n), colPos = new Int32Array(m);
        rowOrder.forEach((i, r) => { rowPos[i] = r; });
        colOrder.forEach((j, c) => { colPos[j] = c; });
        for (let t = 0; t < pairs.length / 2; t++) {
          ctx.strokeStyle = flags[t] === 1 ? "#1b7f3b" : flags[t] === 0 ? "#b3261e" : "#1d2330";
          ctx.lineWidth = Math.max(1, cell / 8);
          ctx.strokeRect(colPos[pairs[2 * t + 1]] * cell + 0.5, rowPos[pairs[2 * t]] * cell + 0.5, cell - 1, cell - 1);
        }
      }
      Object.assign(canvas.dataset, { cell: String(cell), rows: String(n), cols: String(m),
        rowOrder: rowOrder.join(","), colOrder: colOrder.join(",") });
      zoom.value = String(cell);
    };
    const cellAt = (e) => {
      const rect = canvas.getBoundingClientRect();
      const c = Math.floor((e.clientX - rect.left) / cell), r = Math.floor((e.clientY - rect.top) / cell);
      if (r < 0 || c < 0 || r >= n || c >= m) return null;
      return [rowOrder[r], colOrder[c]];
    };
    const listMatches = () => {
      const ids = model.get("left_ids"), rids = model.get("right_ids");
      const np = pairs.length / 2;
      const ps = Array.from({ length: np }, (_, t) => t)
        .sort((a, b) => (value(0, pairs[2 * b], pairs[2 * b + 1]) || -Infinity) - (value(0, pairs[2 * a], pairs[2 * a + 1]) || -Infinity))
        .slice(0, 200);
      matches.replaceChildren(...ps.map((t) => {
        const i = pairs[2 * t], j = pairs[2 * t + 1];
        const flag = flags[t] === 1 ? "validated" : flags[t] === 0 ? "rejected" : "untested";
        const li = h("li", { testid: "heatmap-match", "data-i": String(i), "data-j": String(j), "data-validated": flag,
          tabindex: "0", text: `${ids[i]} ↔ ${rids[j]} · ${fmt(value(0, i, j))} · ${flag}` });
        li.addEventListener("click", () => model.send({ type: "select", i, j }));
        return li;
      }));
    };
    const showDetail = () => {
      const p = model.get("selected_pair");
      if (!p) { detail.replaceChildren(h("p", { class: "ik-hm-none", text: "click a cell" })); return; }
      detail.dataset.leftId = p.left_id; detail.dataset.rightId = p.right_id;
      const comps = Object.entries(p.components || {});
      detail.replaceChildren(
        h("div", { class: "ik-hm-pair" }, h("code", { text: p.left_id }), " ↔ ", h("code", { text: p.right_id })),
        h("div", { class: "ik-hm-labels", text: `${p.left_label ?? "(no label)"} ↔ ${p.right_label ?? "(no label)"}` }),
        h("table", {}, h("tbody", {},
          h("tr", { "data-component": "combined" }, h("th", { text: "combined" }), h("td", { text: fmt(p.combined) })),
          ...comps.map(([k, v]) => h("tr", { "data-component": k }, h("th", { text: k }), h("td", { text: fmt(v) }))))),
        h("div", { class: "ik-hm-flags", testid: "heatmap-validated", "data-validated": String(p.validated),
          text: p.matched
            ? `matched · confidence ${fmt(p.confidence)} · ${p.validated === null ? "not validated" : p.validated ? "validated" : "rejected by validation"}`
            : "not a matched pair" }));
    };

    canvas.addEventListener("mousemove", (e) => {
      const hit = cellAt(e);
      if (!hit) { tip.hidden = true; return; }
      const [i, j] = hit;
      const ll = model.get("left_labels")[i], rl = model.get("right_labels")[j];
      tip.hidden = false;
      tip.textContent = `${model.get("left_ids")[i]}${ll ? ` (${ll})` : ""} ↔ ${model.get("right_ids")[j]}` +
        `${rl ? ` (${rl})` : ""}: ${model.get("color_by")} ${fmt(value(layerIndex(), i, j))}`;
    });
    canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
    canvas.addEventListener("click", (e) => {
      const hit = cellAt(e);
      if (hit) model.send({ type: "select", i: hit[0], j: hit[1] });
    });
    canvas.addEventListener("wheel", (e) => {
      if (!e.ctrlKey && !e.metaKey) return;
      e.preventDefault();
      cell = Math.max(1, Math.min(40, cell + (e.deltaY < 0 ? 1 : -1)));
      draw();
    }, { passive: false });
    zoom.addEventListener("input", () => { cell = Number(zoom.value); draw(); });
    colorBy.addEventListener("change", () => { model.set("color_by", colorBy.value); model.save_changes(); });
    sortBy.addEventListener("change", () => { model.set("sort", sortBy.value); model.save_changes(); });
    const syncSort = () => { sortBy.value = model.get("sort"); order(); };
    const syncColour = () => { colorBy.value = model.get("color_by"); draw(); };

    const handlers = [["change:matrix", load], ["change:shape", load], ["change:matched", load],
      ["change:sort", syncSort], ["change:color_by", syncColour], ["change:selected_pair", showDetail]];
    tip.hidden = true;
    sortBy.value = model.get("sort");
    load(); showDetail();
    for (const [ev, fn] of handlers) model.on(ev, fn);
    return () => { for (const [ev, fn] of handlers) model.off(ev, fn); };
  },
};
