// Draws the page's graphs with mermaid (strict: labels are text), then makes each version node a link.
"use strict";
async function drawGraphs() {
  const boxes = document.querySelectorAll("pre.mermaid");
  if (boxes.length && window.mermaid) {
    window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "default" });
    try {
      await window.mermaid.run({ nodes: boxes });
    } catch (e) {
      document.body.dataset.graphError = String(e);
    }
    document.querySelectorAll("[data-links]").forEach((box) => {
      const source = document.getElementById(box.dataset.links);
      const links = source ? JSON.parse(source.textContent) : {};
      box.querySelectorAll("g.node").forEach((g) => {
        const m = /(v[0-9a-f]{12})/.exec(g.id || "");
        const url = m && links[m[1]];
        if (!url) return;
        g.style.cursor = "pointer";
        g.setAttribute("role", "link");
        g.dataset.href = url;
        g.addEventListener("click", () => { window.location.href = url; });
      });
    });
  }
  document.body.dataset.graphs = "drawn";
}
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawGraphs); else drawGraphs();
