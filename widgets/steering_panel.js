// SteeringPanel front end: a strength slider per steering vector, the prompt, and the baseline and
// steered continuations side by side with their scores. Generation runs in the kernel.

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

export default {
  /** @param {{ model: any, el: HTMLElement }} ctx */
  render({ model, el }) {
    el.classList.add("ik-sp");
    const sliders = h("div", { class: "ik-sp-sliders", testid: "steer-sliders" });
    const prompt = h("textarea", { class: "ik-sp-prompt", rows: "2", testid: "steer-prompt", "aria-label": "prompt",
      placeholder: "prompt" });
    const generate = h("button", { type: "button", class: "ik-sp-generate", testid: "steer-generate", text: "Generate" });
    const live = h("input", { type: "checkbox", testid: "steer-live" });
    const status = h("span", { class: "ik-sp-status", testid: "steer-status", role: "status" });
    const baseline = h("pre", { class: "ik-sp-text", testid: "steer-baseline" });
    const steered = h("pre", { class: "ik-sp-text", testid: "steer-steered" });
    const baseScores = h("div", { class: "ik-sp-scores", testid: "steer-baseline-scores" });
    const steerScores = h("div", { class: "ik-sp-scores", testid: "steer-steered-scores" });
    const shift = h("div", { class: "ik-sp-shift", testid: "steer-shift" });
    const error = h("pre", { class: "ik-sp-error", testid: "steer-error" });
    el.append(sliders,
      h("div", { class: "ik-sp-row" }, prompt,
        h("div", { class: "ik-sp-controls" }, generate, h("label", {}, live, " live"), status)),
      error,
      h("div", { class: "ik-sp-cols" },
        h("div", { class: "ik-sp-col" }, h("h4", { text: "baseline" }), baseline, baseScores),
        h("div", { class: "ik-sp-col" }, h("h4", { text: "steered" }), steered, steerScores)),
      shift);

    /** @type {Map<string, {input: HTMLInputElement, out: HTMLElement}>} */
    const controls = new Map();
    const buildSliders = () => {
      controls.clear();
      const lo = model.get("strength_min"), hi = model.get("strength_max");
      const step = (hi - lo) / 200;
      sliders.replaceChildren(...model.get("features").map((f) => {
        const input = /** @type {HTMLInputElement} */ (h("input", { type: "range", min: String(lo), max: String(hi),
          step: String(step), testid: "steer-slider", "data-feature": f.name, "aria-label": `strength of ${f.name}` }));
        const out = h("output", { class: "ik-sp-value", testid: "steer-value", "data-feature": f.name });
        input.addEventListener("input", () => { out.textContent = fmt(Number(input.value), 2); });
        input.addEventListener("change", () => {
          model.set("strengths", { ...model.get("strengths"), [f.name]: Number(input.value) });
          model.save_changes();
        });
        controls.set(f.name, { input, out });
        return h("div", { class: "ik-sp-slider" },
          h("span", { class: "ik-sp-name", title: `${f.site} · norm ${fmt(f.norm, 2)}`, text: f.name }),
          h("span", { class: "ik-sp-site", text: f.site }), input, out);
      }));
      syncStrengths();
    };
    const syncStrengths = () => {
      const s = model.get("strengths");
      for (const [name, { input, out }] of controls) {
        const v = Number(s[name] ?? 0);
        if (document.activeElement !== input) input.value = String(v);
        out.textContent = fmt(v, 2);
      }
    };
    const scoreLines = (node, sc) => {
      node.replaceChildren(
        h("span", { "data-score": "criterion", text: `criterion ${fmt(sc?.criterion_score)}` }),
        h("span", { "data-score": "perplexity", text: `perplexity ${fmt(sc?.perplexity, 2)}` }),
        ...(sc?.metric === null || sc?.metric === undefined ? [] :
          [h("span", { "data-score": "metric", text: `metric ${fmt(sc.metric)}` })]));
    };
    const syncResult = () => {
      baseline.textContent = model.get("baseline");
      steered.textContent = model.get("steered");
      const sc = model.get("scores") || {};
      scoreLines(baseScores, sc.baseline);
      scoreLines(steerScores, sc.steered);
      shift.textContent = sc.next_token_tv === undefined ? "" :
        `next-token distribution shift (total variation): ${fmt(sc.next_token_tv)}`;
      steered.dataset.version = String(model.get("version"));
    };
    const syncStatus = () => {
      const busy = model.get("busy");
      el.dataset.busy = busy ? "true" : "false";
      status.dataset.state = busy ? "busy" : model.get("error") ? "error" : "ready";
      status.textContent = busy ? "generating…" : model.get("error") ? "error" : "ready";
      error.textContent = model.get("error");
      error.hidden = !model.get("error");
      live.checked = model.get("live");
      if (document.activeElement !== prompt) prompt.value = model.get("prompt");
    };

    const sendPrompt = () => { model.set("prompt", prompt.value); model.save_changes(); };
    prompt.addEventListener("change", sendPrompt);
    prompt.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); sendPrompt(); model.send({ type: "generate" }); }
    });
    generate.addEventListener("click", () => { sendPrompt(); model.send({ type: "generate" }); });
    live.addEventListener("change", () => { model.set("live", live.checked); model.save_changes(); });

    const handlers = [
      ["change:features", buildSliders], ["change:strength_min", buildSliders], ["change:strength_max", buildSliders],
      ["change:strengths", syncStrengths],
      ["change:baseline", syncResult], ["change:steered", syncResult], ["change:scores", syncResult],
      ["change:version", syncResult],
      ["change:busy", syncStatus], ["change:error", syncStatus], ["change:live", syncStatus],
      ["change:prompt", syncStatus],
    ];
    buildSliders(); syncResult(); syncStatus();
    for (const [ev, fn] of handlers) model.on(ev, fn);
    return () => { for (const [ev, fn] of handlers) model.off(ev, fn); };
  },
};
