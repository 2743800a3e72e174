// GraphView front end: an attribution graph drawn as SVG (layers left to right, prompt positions top to
// bottom), edges as wide as |weight| (red raises, blue lowers), nodes as large as their influence. Clicking a
// node sets `selected` and shows its card: label, token, activation, influence, strongest incoming and
// outgoing edges, and its explanation when the kernel sent one. No network access.

/** The SVG namespace, read off an element the HTML parser made (no URL literal in the module). */
function svgNamespace() {
  const d = document.createElement("div");
  d.innerHTML = "<svg></svg>";
  return /** @type {Element} */ (d.firstChild).namespaceURI;
}
const TOP_EDGES = 5;
const COL_W = 120, ROW_H = 44, PAD_L = 110, PAD_T = 34, PAD_B = 20;

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

/** @param {string} tag @param {Record<string, any>} attrs */
function s(tag, attrs = {}) {
  s.ns = s.ns || svgNamespace();
  const node = document.createElementNS(s.ns, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** @param {number|null|undefined} v @param {number} [d] */
function fmt(v, d = 3) {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toPrecision(d);
}

/** A token shown visibly (newlines and tabs as symbols, quotes around it). */
function showToken(t) {
  return JSON.stringify(String(t ?? "")).replace(/\\n/g, "⏎").replace(/\\t/g, "→");
}

/**
 * The card of one node: its row, its strongest incoming and outgoing edges, its explanation.
 * @param {any[]} nodes @param {any[]} links @param {Record<string, any>} explanations @param {string} id
 */
export function nodeCard(nodes, links, explanations, id) {
  const node = nodes.find((n) => n.id === id);
  if (!node) return null;
  const top = (side) => links.filter((e) => e[side] === id)
    .sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight)).slice(0, TOP_EDGES);
  return { ...node, incoming: top("target"), outgoing: top("source"), explanation: explanations[id] ?? null };
}

/** @param {any} card @param {(id: string) => void} select */
function renderCard(card, select) {
  if (!card) return [h("p", { class: "ik-graph-none", text: "click a node to see its card" })];
  const title = card.label ? `${card.id} · ${card.label}` : card.id;
  const rows = [["kind", card.kind], ["token", `${card.position} ${showToken(card.token)}`],
    ["layer", card.kind === "embedding" ? "embedding" : card.kind === "target" ? "target" : String(card.layer)],
    ...(card.latent === null || card.latent === undefined ? [] : [["latent", String(card.latent)]]),
    ["activation", fmt(card.activation, 4)], ["influence", fmt(card.influence)]];
  const table = h("table", {}, ...rows.map(([k, v]) => h("tr", {}, h("th", { text: k }), h("td", { text: v }))));
  const edgeList = (name, edges, other) => [
    h("h4", { text: `${name} (${edges.length})` }),
    edges.length
      ? h("ul", { class: "ik-graph-edges", testid: `graph-card-${name}` }, ...edges.map((e) => {
        const li = h("li", { "data-node-id": e[other] },
          h("span", { class: e.weight >= 0 ? "ik-graph-pos" : "ik-graph-neg", text: fmt(e.weight, 3) }), ` ${e[other]}`);
        li.addEventListener("click", () => select(e[other]));
        return li;
      }))
      : h("p", { class: "ik-graph-none", text: "none" }),
  ];
  const out = [h("h3", { testid: "graph-card-title", text: title }), table,
    ...edgeList("incoming", card.incoming, "source"), ...edgeList("outgoing", card.outgoing, "target")];
  const ex = card.explanation;
  if (ex) {
    const box = h("div", { class: "ik-graph-explanation", testid: "graph-card-explanation" }, h("h4", { text: "explanation" }));
    if (ex.label) box.append(h("p", { class: "ik-graph-label", text: String(ex.label) }));
    const examples = Array.isArray(ex.top_examples) ? ex.top_examples.slice(0, 5) : [];
    if (examples.length) {
      box.append(h("ol", { class: "ik-graph-examples" }, ...examples.map((x) =>
        h("li", {}, h("span", { class: "ik-graph-act", text: fmt(x.activation, 3) }), ` ${String(x.text ?? "")}`))));
    }
    const rest = Object.fromEntries(Object.entries(ex).filter(([k]) => k !== "label" && k !== "top_examples"));
    if (Object.keys(rest).length) box.append(h("pre", { text: JSON.stringify(rest, null, 1).slice(0, 2000) }));
    out.push(box);
  }
  return out;
}

export default {
  /** @param {{ model: any, el: HTMLElement }} ctx */
  render({ model, el }) {
    el.classList.add("ik-graph");
    const title = h("div", { class: "ik-graph-title", testid: "graph-title" });
    const svg = s("svg", { class: "ik-graph-svg", role: "img" });
    svg.dataset.testid = "graph-svg";
    const scroll = h("div", { class: "ik-graph-scroll" }, svg);
    const card = h("div", { class: "ik-graph-card", testid: "graph-card" });
    el.append(title, h("div", { class: "ik-graph-body" }, scroll, card));

    const select = (id) => {
      model.set("selected", id);
      model.save_changes();
    };

    const draw = () => {
      const nodes = model.get("nodes"), links = model.get("links"), columns = model.get("columns");
      const tokens = model.get("tokens");
      title.textContent = `targets: ${model.get("targets").map((t) => `${t.label} (${fmt(t.weight, 2)})`).join(", ")}`
        + ` · ${nodes.length} nodes, ${links.length} edges`;
      const x = (c) => PAD_L + c * COL_W, y = (v) => PAD_T + v * ROW_H;
      const width = PAD_L + Math.max(columns.length - 1, 1) * COL_W + 40;
      const height = PAD_T + Math.max(tokens.length - 1, 0) * ROW_H + PAD_B + 10;
      svg.setAttribute("width", String(width));
      svg.setAttribute("height", String(height));
      svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
      svg.replaceChildren();
      columns.forEach((name, c) => {
        const t = s("text", { x: x(c), y: 14, class: "ik-graph-col", "text-anchor": "middle" });
        t.textContent = name;
        svg.append(t, s("line", { x1: x(c), x2: x(c), y1: 20, y2: height - PAD_B, class: "ik-graph-grid" }));
      });
      tokens.forEach((tok, p) => {
        const t = s("text", { x: PAD_L - 40, y: y(p) + 4, class: "ik-graph-tok", "text-anchor": "end" });
        t.textContent = `${p} ${showToken(tok)}`;
        svg.append(t);
      });
      const byId = new Map(nodes.map((n) => [n.id, n]));
      const maxW = Math.max(1e-12, ...links.map((e) => Math.abs(e.weight)));
      const maxI = Math.max(1e-12, ...nodes.map((n) => n.influence ?? 0));
      const sel = model.get("selected");
      const edgeLayer = s("g", { class: "ik-graph-edges-layer" });
      for (const e of links) {
        const a = byId.get(e.source), b = byId.get(e.target);
        if (!a || !b) continue;
        const on = sel && (e.source === sel || e.target === sel);
        const line = s("line", { x1: x(a.column), y1: y(a.y), x2: x(b.column), y2: y(b.y),
          class: `ik-graph-edge ${e.weight >= 0 ? "ik-graph-pos" : "ik-graph-neg"}${on ? " ik-graph-on" : ""}`,
          "stroke-width": (0.6 + 5.4 * Math.abs(e.weight) / maxW).toFixed(2) });
        line.dataset.testid = "graph-edge";
        const tip = s("title");
        tip.textContent = `${e.source} → ${e.target}: ${fmt(e.weight, 4)}`;
        line.append(tip);
        edgeLayer.append(line);
      }
      const nodeLayer = s("g", { class: "ik-graph-nodes-layer" });
      for (const n of nodes) {
        const r = n.kind === "target" ? 9 : 4 + 12 * Math.sqrt(Math.max(0, n.influence ?? 0) / maxI);
        const c = s("circle", { cx: x(n.column), cy: y(n.y), r: r.toFixed(2),
          class: `ik-graph-node ik-graph-${n.kind}${n.id === sel ? " ik-graph-selected" : ""}`, tabindex: 0 });
        c.dataset.testid = "graph-node";
        c.dataset.nodeId = n.id;
        const tip = s("title");
        tip.textContent = `${n.id}${n.label ? ` · ${n.label}` : ""}\ntoken ${showToken(n.token)}`
          + `${n.latent === null || n.latent === undefined ? "" : `\nlatent ${n.latent}`}`
          + `\nactivation ${fmt(n.activation, 4)}\ninfluence ${fmt(n.influence)}`;
        c.append(tip);
        c.addEventListener("click", () => select(n.id));
        c.addEventListener("keydown", (ev) => { if (ev.key === "Enter") select(n.id); });
        nodeLayer.append(c);
      }
      svg.append(edgeLayer, nodeLayer);
      const info = sel ? nodeCard(nodes, links, model.get("explanations"), sel) : null;
      card.dataset.nodeId = info ? info.id : "";
      card.replaceChildren(...renderCard(info, select));
    };

    draw();
    const events = ["change:nodes", "change:links", "change:selected", "change:explanations", "change:columns"];
    for (const ev of events) model.on(ev, draw);
    return () => { for (const ev of events) model.off(ev, draw); };
  },
};
