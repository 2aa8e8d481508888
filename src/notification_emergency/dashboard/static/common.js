// notification-emergency dashboard: the helpers every script of the page shares (window.NE). Everything is
// written with DOM APIs and textContent: nothing from the server (host names included) is parsed as HTML.
(() => {
  "use strict";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const ICONS = {
    healthy: "✓", ok: "✓", succeeded: "✓", delivered: "✓", off: "✓",
    degraded: "!", running: "⟳", pending: "…", disabled: "–", canceled: "⊘", abandoned: "⊘",
    failed: "✗", unreachable: "✗", on: "⚠", unknown: "?", info: "•",
  };

  function badge(status, text, extraClass) {
    const word = text || status;
    return el("span", { class: `badge b-${extraClass || status}`, "data-status": status },
      el("span", { "aria-hidden": "true", text: `${ICONS[status] || "•"} ` }), word);
  }

  function time(iso) {
    if (!iso) return "-";
    const moment = new Date(iso);
    return Number.isNaN(moment.getTime()) ? iso : moment.toLocaleTimeString([], { hour12: false });
  }

  function when(iso) {
    if (!iso) return "-";
    const moment = new Date(iso);
    const today = new Date().toDateString() === moment.toDateString();
    return today ? time(iso) : `${moment.toLocaleDateString()} ${time(iso)}`;
  }

  function seconds(value) {
    if (value === null || value === undefined) return "-";
    return value < 120 ? `${value.toFixed(1)} s` : `${(value / 60).toFixed(1)} min`;
  }

  function ms(value) {
    return value === null || value === undefined ? "-" : `${Number(value).toFixed(1)} ms`;
  }

  function replace(container, ...children) {
    container.replaceChildren(...children.flat().filter((c) => c));
  }

  // The health groups of the fleet view: a probe's status (healthy, degraded, failed, unreachable, unknown).
  function healthGroup(status) {
    if (status === "failed" || status === "unreachable") return "failing";
    if (status === "degraded" || status === "healthy") return status;
    return "unknown";
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (response.status === 401) { window.location.assign("/login"); throw new Error("logged out"); }
    let data = {};
    try { data = await response.json(); } catch (error) { data = { error: `HTTP ${response.status}` }; }
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    return data;
  }

  window.NE = { ICONS, el, svg, badge, time, when, seconds, ms, replace, healthGroup, getJSON };
})();
