// CriterionEditor front end: criterion text, compiler, pinned examples, the ranked table and the
// selected feature's card. All ranking happens in the kernel; this module only shows state and
// sends edits. Stable hooks for tests: data-testid attributes (see the README of interpkit.widgets).

const DEBOUNCE_MS = 350;

/**
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {(Node|string)[]} children
 * @returns {HTMLElement}
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

/** @param {string} text */
const lines = (text) => text.split("\n").map((s) => s.trim()).filter((s) => s.length > 0);

/** One component bar (width = value in [0, 1]). */
function bar(value, cls, title) {
  const outer = h("span", { class: `ik-bar ${cls}`, title: `${title}: ${fmt(value)}` });
  const inner = h("span", { class: "ik-bar-fill" });
  inner.style.width = `${Math.max(0, Math.min(1, value ?? 0)) * 100}%`;
  outer.append(inner);
  return outer;
}

export default {
  /** @param {{ model: any, el: HTMLElement }} ctx */
  render({ model, el }) {
    el.classList.add("ik-ce");
    const input = h("textarea", { class: "ik-ce-input", rows: "2", testid: "criterion-input",
      placeholder: "describe what the feature should respond to", "aria-label": "criterion" });
    const compiler = h("select", { class: "ik-ce-compiler", testid: "criterion-compiler", "aria-label": "compiler" });
    const apply = h("button", { class: "ik-ce-apply", testid: "criterion-apply", type: "button", text: "Rank" });
    const auto = h("input", { type: "checkbox", testid: "criterion-auto" });
    const status = h("span", { class: "ik-ce-status", testid: "criterion-status", role: "status" });
    const pos = h("textarea", { class: "ik-ce-examples", rows: "3", testid: "criterion-positives",
      placeholder: "pinned positive examples, one per line" });
    const neg = h("textarea", { class: "ik-ce-examples", rows: "3", testid: "criterion-negatives",
      placeholder: "pinned negative examples, one per line" });
    const error = h("pre", { class: "ik-ce-error", testid: "criterion-error" });
    const info = h("div", { class: "ik-ce-info", testid: "criterion-info" });
    const tbody = h("tbody");
    const head = ["#", "feature", "label", "tier", "AUROC", "q", "spec.", "stab.", "causal", "components"];
    const table = h("table", { class: "ik-ce-table", testid: "ranked-table" },
      h("thead", {}, h("tr", {}, ...head.map((t) => h("th", { text: t })))), tbody);
    const cardHost = h("div", { class: "ik-ce-card", testid: "feature-card" });
    const cardRoot = cardHost.attachShadow({ mode: "open" });

    el.append(
      h("div", { class: "ik-ce-top" }, input,
        h("div", { class: "ik-ce-controls" }, compiler, apply,
          h("label", { class: "ik-ce-auto" }, auto, " live"), status)),
      h("details", { class: "ik-ce-pinned" }, h("summary", { text: "pinned examples" }),
        h("div", { class: "ik-ce-pinned-cols" }, pos, neg)),
      error, info, h("div", { class: "ik-ce-scroll" }, table), cardHost);

    let timer = 0;
    const push = () => {
      clearTimeout(timer);
      model.set("criterion", input.value);
      model.save_changes();
    };
    const onInput = () => { clearTimeout(timer); timer = setTimeout(push, DEBOUNCE_MS); };
    input.addEventListener("input", onInput);
    input.addEventListener("change", push);
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey || !e.shiftKey)) {
        e.preventDefault();
        push();
        model.send({ type: "apply" });
      }
    });
    apply.addEventListener("click", () => { push(); model.send({ type: "apply" }); });
    compiler.addEventListener("change", () => { model.set("compiler", compiler.value); model.save_changes(); });
    auto.addEventListener("change", () => { model.set("auto_apply", auto.checked); model.save_changes(); });
    const sendExamples = () => {
      model.set("positive_examples", lines(pos.value));
      model.set("negative_examples", lines(neg.value));
      model.save_changes();
    };
    pos.addEventListener("change", sendExamples);
    neg.addEventListener("change", sendExamples);

    const syncInputs = () => {
      if (document.activeElement !== input) input.value = model.get("criterion");
      const names = model.get("compilers");
      if (compiler.options.length !== names.length) {
        compiler.replaceChildren(...names.map((n) => h("option", { value: n, text: n })));
      }
      compiler.value = model.get("compiler");
      auto.checked = model.get("auto_apply");
      if (document.activeElement !== pos) pos.value = model.get("positive_examples").join("\n");
      if (document.activeElement !== neg) neg.value = model.get("negative_examples").join("\n");
    };
    const syncStatus = () => {
      const busy = model.get("busy");
      el.dataset.busy = busy ? "true" : "false";
      status.dataset.state = busy ? "busy" : model.get("error") ? "error" : "ready";
      status.textContent = busy ? "ranking…" : model.get("error") ? "error" : "ready";
      error.textContent = model.get("error");
      error.hidden = !model.get("error");
      const meta = model.get("info") || {};
      info.dataset.version = String(model.get("version"));
      info.textContent = model.get("ranked_criterion")
        ? `ranked for “${model.get("ranked_criterion")}” · ${meta.n_positive ?? "?"} positive / ` +
          `${meta.n_negative ?? "?"} negative examples · ${fmt(meta.seconds, 2)} s`
        : "";
    };
    const syncRows = () => {
      const selected = model.get("selected");
      tbody.replaceChildren(...model.get("rows").map((r) => {
        const tr = h("tr", { testid: "ranked-row", "data-feature-id": r.feature_id, "data-rank": String(r.rank),
          class: r.feature_id === selected ? "ik-selected" : "", tabindex: "0" },
          h("td", { text: String(r.rank) }),
          h("td", {}, h("code", { text: r.feature_id })),
          h("td", { text: r.label ?? "" }),
          h("td", {}, h("span", { class: `ik-tier ik-t${r.tier_rank}`, text: r.tier })),
          h("td", { class: "n", text: fmt(r.auroc) }),
          h("td", { class: "n", text: fmt(r.q_value) }),
          h("td", { class: "n", text: fmt(r.specificity) }),
          h("td", { class: "n", text: fmt(r.stability) }),
          h("td", { text: r.causal_value === null ? r.causal_status : `${r.causal_status} ${fmt(r.causal_value)}` }),
          h("td", { class: "ik-bars" },
            bar(r.auroc === null ? 0 : Math.abs(2 * r.auroc - 1), "assoc", "effect size |2·AUROC−1|"),
            bar(r.specificity, "spec", "specificity"), bar(r.stability, "stab", "stability")));
        const pick = () => model.send({ type: "select", feature_id: r.feature_id });
        tr.addEventListener("click", pick);
        tr.addEventListener("keydown", (e) => { if (e.key === "Enter") pick(); });
        return tr;
      }));
    };
    const syncCard = () => {
      const html = model.get("card_html");
      cardHost.dataset.featureId = model.get("selected") || "";
      cardHost.hidden = !html;
      cardRoot.innerHTML = html
        ? `<style>${model.get("card_css")}.w{font:13px/1.45 system-ui,sans-serif;color:var(--fg)}</style>` +
          `<div class="w">${html}</div>`
        : "";
    };

    const handlers = [
      ["change:criterion change:compiler change:compilers change:auto_apply " +
       "change:positive_examples change:negative_examples", syncInputs],
      ["change:busy change:error change:info change:version change:ranked_criterion", syncStatus],
      ["change:rows change:selected", syncRows],
      ["change:card_html change:card_css change:selected", syncCard],
    ];
    syncInputs(); syncStatus(); syncRows(); syncCard();
    // one registration per event name: the front-end model API takes a single name
    const pairs = handlers.flatMap(([events, fn]) => events.split(" ").map((ev) => [ev, fn]));
    for (const [ev, fn] of pairs) model.on(ev, fn);
    return () => {
      clearTimeout(timer);
      for (const [ev, fn] of pairs) model.off(ev, fn);
    };
  },
};
