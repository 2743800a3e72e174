// FeatureCard: interpkit's report card (markup built and escaped by interpkit.report) in a shadow
// root, so the report stylesheet and the notebook's styles stay apart. No network access.

/**
 * Fill a shadow root with the card stylesheet and markup.
 * @param {ShadowRoot} root
 * @param {string} css
 * @param {string} html
 */
export function renderCard(root, css, html) {
  const body = html
    ? `<div class="ik-card-wrap">${html}</div>`
    : `<p class="none ik-card-empty" data-testid="feature-card-empty">no feature selected</p>`;
  root.innerHTML = `<style>${css}
.ik-card-wrap,.ik-card-empty{font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg)}
</style>${body}`;
}

export default {
  /** @param {{ model: any, el: HTMLElement }} ctx */
  render({ model, el }) {
    el.classList.add("ik-feature-card");
    const host = document.createElement("div");
    host.dataset.testid = "feature-card";
    el.appendChild(host);
    const root = host.attachShadow({ mode: "open" });
    const update = () => {
      host.dataset.featureId = model.get("feature_id") || "";
      renderCard(root, model.get("card_css"), model.get("html"));
    };
    update();
    model.on("change:html", update);
    model.on("change:card_css", update);
    return () => {
      model.off("change:html", update);
      model.off("change:card_css", update);
    };
  },
};
