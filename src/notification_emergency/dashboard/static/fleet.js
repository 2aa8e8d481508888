// notification-emergency dashboard: the fleet view (counts by health, mode and emergency level; the failing
// and degraded hosts first as cards; a compact grid of the rest with a filter and a search), the host detail
// panel (components, last health check, the host's timeline from the store) and the host picker of the
// controls. Host names and everything else from the server are untrusted: written with textContent only.
(() => {
  "use strict";

  const { ICONS, el, badge, time, when, ms, replace, healthGroup, getJSON } = window.NE;
  const CARDS_FOR_ALL = 8; // a fleet this small gets a card per host; beyond it only the hosts in trouble do
  const ORDER = { failing: 0, degraded: 1, unknown: 2, healthy: 3 };
  const HEALTH = ["failing", "degraded", "healthy", "unknown"];
  const MODES = [["websocket", "WebSocket"], ["legacy", "flash messages"], ["unknown", "unknown"]];
  const view = {
    hosts: [],
    filter: { health: "all", mode: "all", text: "" },
    chosen: null, // the host of the detail panel (null: the first host in the view's order)
    selected: null, // the hosts the controls act on (a Set; null until the first data: then every host)
    pickText: "",
    checkOpen: false, // the last health check's details are open in the detail panel
    timeline: { host: null, events: [], error: null, loading: false },
  };

  // -- the order and the filter ------------------------------------------------------------------------------

  function ordered(hosts) {
    return [...hosts].sort((a, b) =>
      ORDER[healthGroup(a.status)] - ORDER[healthGroup(b.status)] || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  }

  function matches(row) {
    const { health, mode, text } = view.filter;
    if (health !== "all" && healthGroup(row.status) !== health) return false;
    if (mode !== "all" && (row.mode || "unknown") !== mode) return false;
    if (!text) return true;
    const needle = text.toLowerCase();
    const incident = row.incident ? row.incident.failure_type : "";
    return [row.host, ...(row.problems || []), incident].some((item) => String(item).toLowerCase().includes(needle));
  }

  function emergencyKey(row) {
    if (!row.emergency) return "unknown";
    return row.emergency.active ? `level-${row.emergency.level || "?"}` : "off";
  }

  // -- the summary -------------------------------------------------------------------------------------------

  function countButton(group, value, label, count, pressed) {
    const attrs = { class: `count c-${group}-${value}`, "data-count": `${group}-${value}` };
    const content = [el("span", { class: "n", text: String(count) }), ` ${label}`];
    if (group === "emergency") return el("span", attrs, content); // a count, not a filter
    return el("button", { ...attrs, type: "button", "data-group": group, "data-value": value, "aria-pressed": String(pressed) }, content);
  }

  function renderSummary(hosts) {
    const tally = (key) => hosts.reduce((acc, row) => { const k = key(row); acc[k] = (acc[k] || 0) + 1; return acc; }, {});
    const health = tally((row) => healthGroup(row.status));
    const modes = tally((row) => row.mode || "unknown");
    const emergency = tally(emergencyKey);
    const levels = Object.keys(emergency).filter((k) => k.startsWith("level-")).sort();
    const incidents = tally((row) => (row.level ? `level-${row.level}` : "none"));
    const names = Object.fromEntries(hosts.filter((row) => row.level).map((row) => [`level-${row.level}`, row.level_name || ""]));
    replace(document.getElementById("fleet-summary"),
      el("div", { class: "count-group", role: "group", "aria-label": "Hosts by health" },
        el("span", { class: "count-title", text: `Health of ${hosts.length} hosts` }),
        HEALTH.map((h) => countButton("health", h, h, health[h] || 0, view.filter.health === h))),
      el("div", { class: "count-group", role: "group", "aria-label": "Hosts by notification mode" },
        el("span", { class: "count-title", text: "Notifications" }),
        MODES.map(([m, label]) => countButton("mode", m, label, modes[m] || 0, view.filter.mode === m))),
      el("div", { class: "count-group", role: "group", "aria-label": "Hosts by emergency mode" },
        el("span", { class: "count-title", text: "Emergency mode" }),
        levels.map((k) => countButton("emergency", k, `ON ${k.replace("-", " ")}`, emergency[k], false)),
        countButton("emergency", "off", "off", emergency.off || 0, false),
        countButton("emergency", "unknown", "unknown", emergency.unknown || 0, false)),
      el("div", { class: "count-group", role: "group", "aria-label": "Hosts by emergency level (open incidents)" },
        el("span", { class: "count-title", text: "Emergency level" }),
        Object.keys(incidents).filter((k) => k !== "none").sort().map((k) =>
          countButton("emergency", k.replace("level", "incident"), `${k.replace("-", " ")} ${names[k]}`, incidents[k], false)),
        countButton("emergency", "incident-none", "no open incident", incidents.none || 0, false)));
  }

  // -- cards and the grid ------------------------------------------------------------------------------------

  function modeText(mode) {
    if (mode === "websocket") return badge("info", "WebSocket (live)", "websocket");
    if (mode === "legacy") return badge("info", "legacy flash messages", "legacy");
    return badge("unknown", "unknown");
  }

  function emergencyText(emergency) {
    if (!emergency) return badge("unknown", "unknown");
    if (!emergency.active) return badge("off", "off");
    const level = emergency.level ? ` level ${emergency.level} ${emergency.level_name || ""}` : "";
    const parts = [badge("on", `ON${level}`, emergency.level ? `on-${emergency.level}` : "on")];
    if (emergency.reason) parts.push(` “${emergency.reason}”`);
    if (emergency.triggered_by) parts.push(el("span", { class: "muted", text: ` by ${emergency.triggered_by}` }));
    return parts;
  }

  function hostButton(row, cls) {
    return el("button", { type: "button", class: cls, "data-open-host": row.host, title: `Components and timeline of ${row.host}` },
      el("span", { text: row.host }));
  }

  function card(row) {
    const incident = row.incident
      ? [badge(row.level <= 2 ? "failed" : "degraded", `level ${row.level} ${row.level_name || ""}`),
        ` ${row.incident.failure_type} (incident #${row.incident.id})`]
      : [el("span", { class: "muted", text: row.ok || row.status === "unknown" ? "no open incident" : "not classified yet: run a health check" })];
    const problems = row.problems && row.problems.length ? row.problems.join("; ") : "none";
    const failing = (row.components || []).filter((c) => c.status && c.status !== "healthy");
    const asOf = row.mode_as_of ? el("span", { class: "muted", text: ` (as of the check at ${time(row.mode_as_of)})` }) : null;
    return el("article", { class: `host-card st-${row.status}`, "data-host": row.host, "data-status": row.status },
      el("h3", {}, hostButton(row, "host-link"), badge(row.status, row.status.toUpperCase())),
      el("dl", {},
        el("dt", { text: "Health" }), el("dd", { class: "health", text: `${row.status}${row.since ? ` since ${time(row.since)}` : ""}` }),
        el("dt", { text: "Failing" }), el("dd", { class: "failing" },
          failing.length ? failing.map((c, i) => [i ? ", " : "", el("span", { class: "component", "data-component": c.name, text: `${c.name} (${c.status})` })]) : "no component"),
        el("dt", { text: "Notifications" }), el("dd", { class: "mode" }, modeText(row.mode), asOf),
        el("dt", { text: "Emergency mode" }), el("dd", { class: "emergency" }, emergencyText(row.emergency)),
        el("dt", { text: "Emergency level" }), el("dd", { class: "level" }, incident),
        el("dt", { text: "Problems" }), el("dd", { class: "problems", text: problems }),
        el("dt", { text: "Probed" }), el("dd", { class: "muted", text: `${time(row.probed_at)} in ${ms(row.latency_ms)}` })));
  }

  const MODE_SHORT = { websocket: "WS", legacy: "flash", unknown: "?" };

  function tile(row) {
    const on = Boolean(row.emergency && row.emergency.active);
    const emergency = on ? ` ⚠${row.emergency.level || "?"}` : "";
    return el("li", { class: `tile st-${row.status}${on ? " emergency-on" : ""}`, "data-host": row.host, "data-status": row.status },
      el("button", { type: "button", "data-open-host": row.host, title: `${row.host}: ${row.status}${on ? `, emergency mode on (level ${row.emergency.level})` : ""}; components and timeline` },
        el("span", { class: `badge b-${row.status}`, "data-status": row.status, text: ICONS[row.status] || "?" }),
        el("span", { class: "tile-name", text: row.host }), el("span", { class: "sr-only", text: ` ${row.status}` }),
        el("span", { class: "tile-mode muted", text: `${MODE_SHORT[row.mode] || "?"}${emergency}` })));
  }

  function renderFleet(hosts) {
    const all = ordered(hosts);
    const shown = all.filter(matches);
    const everyCard = hosts.length <= CARDS_FOR_ALL;
    const inTrouble = (row) => everyCard || ["failing", "degraded"].includes(healthGroup(row.status));
    const cards = shown.filter(inTrouble);
    const rest = shown.filter((row) => !inTrouble(row));
    replace(document.getElementById("hosts"), cards.length ? cards.map(card)
      : el("p", { class: "muted", text: hosts.length ? (everyCard ? "no host matches the filter" : "no failing or degraded host matches") : "waiting for the first probe…" }));
    const grid = document.getElementById("fleet-grid");
    replace(grid, rest.map(tile));
    document.getElementById("fleet-grid-title").hidden = everyCard;
    grid.hidden = everyCard;
    const filtered = view.filter.health !== "all" || view.filter.mode !== "all" || view.filter.text;
    document.getElementById("fleet-shown").textContent = filtered
      ? `${shown.length} of ${hosts.length} hosts match` : `${hosts.length} hosts`;
    document.getElementById("fleet-clear").hidden = !filtered;
    return shown;
  }

  // -- the host detail panel ---------------------------------------------------------------------------------

  function componentTable(rows, columns) {
    return el("table", {},
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { text: c.title })))),
      el("tbody", {}, rows.map((row) => el("tr", { "data-component": row.name }, columns.map((c) => c.cell(row))))));
  }

  function lastCheck(row) {
    if (!row.last_check) {
      return el("p", { class: "muted", text: "No health check run from this dashboard yet: “Run health check” checks every component (processes, ports, disk, config, templates)." });
    }
    const last = row.last_check;
    const head = `Last health check ${when(last.at)} (${last.source}): ${last.status}` +
      (last.primary ? `, ${last.primary} level ${last.level} ${last.level_name || ""}` : "") +
      (last.plan && last.plan.length ? `; plan: ${last.plan.join(", ")}` : "");
    const details = el("details", { open: view.checkOpen },
      el("summary", { text: head }),
      componentTable(last.checks || [], [
        { title: "Check", cell: (c) => el("td", { text: `${c.name}${c.component && c.component !== c.name ? ` (${c.component})` : ""}` }) },
        { title: "Status", cell: (c) => el("td", {}, badge(c.status)) },
        { title: "Latency", cell: (c) => el("td", { class: "num", text: ms(c.latency_ms) }) },
        { title: "Evidence", cell: (c) => el("td", { text: [c.error, c.evidence].filter(Boolean).join(" · ") }) },
      ]));
    details.addEventListener("toggle", () => { view.checkOpen = details.open; }); // kept open across updates
    return details;
  }

  function timelineList(host, record) {
    const probes = ((record && record.events) || []).filter((e) => e.kind === "probe" && e.ref === host);
    const { events, error, loading } = view.timeline.host === host ? view.timeline : { events: [], error: null, loading: true };
    const merged = [...probes, ...events].sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0)).slice(0, 40);
    const items = merged.map((event) => {
      const status = event.ok === true ? "ok" : event.ok === false ? "failed" : "info";
      return el("li", { "data-kind": event.kind, "data-ok": String(event.ok) },
        el("span", { class: "time", title: event.at, text: time(event.at) }),
        el("span", {}, badge(status, status === "info" ? "info" : status), " ", el("span", { class: "kind", text: event.kind })),
        el("span", { class: "summary", text: event.summary }));
    });
    const note = error ? `timeline unavailable: ${error}` : loading && !items.length ? "loading the timeline…" : "";
    return [note ? el("p", { class: "muted", text: note }) : null,
      el("ol", { id: "host-timeline", class: "events", "data-host": host }, items.length ? items : el("li", { class: "muted", text: "nothing recorded for this host yet" }))];
  }

  function renderDetail(hosts, record) {
    const panel = document.getElementById("host-detail-body");
    const row = hosts.find((r) => r.host === view.chosen) || ordered(hosts)[0];
    if (!row) { replace(panel, el("p", { class: "muted", text: "no hosts" })); return; }
    if (view.timeline.host !== row.host && !view.timeline.loading) loadTimeline(row.host);
    const live = componentTable(row.components || [], [
      { title: "Component", cell: (c) => el("td", { text: c.name }) },
      { title: "Status", cell: (c) => el("td", {}, badge(c.status)) },
      { title: "Latency", cell: (c) => el("td", { class: "num", text: ms(c.latency_ms) }) },
      { title: "Evidence", cell: (c) => el("td", { text: c.evidence || "" }) },
    ]);
    document.getElementById("host-detail").dataset.host = row.host;
    replace(panel, el("div", { class: "component-host", "data-host": row.host },
      el("h3", {}, el("span", { class: "detail-name", text: row.host }), " ", badge(row.status),
        el("span", { class: "muted", text: ` live probe ${time(row.probed_at)}` })),
      el("p", { class: "muted", text: `${(row.problems || []).join("; ") || "no problem found"} · mode ${row.mode || "unknown"}` }),
      live, lastCheck(row),
      el("h4", { text: "Timeline" }), timelineList(row.host, record)));
  }

  async function loadTimeline(host) {
    view.timeline = { host, events: view.timeline.host === host ? view.timeline.events : [], error: null, loading: true };
    try {
      const data = await getJSON(`/api/hosts/${encodeURIComponent(host)}/timeline?limit=40`);
      if (view.timeline.host === host) view.timeline = { host, events: data.events || [], error: null, loading: false };
    } catch (error) {
      if (view.timeline.host === host) view.timeline = { host, events: [], error: error.message, loading: false };
    }
    if (view.timeline.host === host) fleet.redraw();
  }

  // -- the host picker of the controls ---------------------------------------------------------------------

  function renderPicker(hosts, shown) {
    const names = hosts.map((r) => r.host);
    if (view.selected === null) view.selected = new Set(names); // every host, as before the fleet view
    for (const name of [...view.selected]) if (!names.includes(name)) view.selected.delete(name);
    const failing = hosts.filter((r) => healthGroup(r.status) === "failing").length;
    const label = { filtered: `Shown in the view (${shown.length})`, failing: `Failing (${failing})`, all: `All (${hosts.length})`, none: "None" };
    for (const button of document.querySelectorAll("#host-picker button[data-select]")) button.textContent = label[button.dataset.select];
    const needle = view.pickText.toLowerCase();
    const listed = ordered(hosts).filter((r) => !needle || r.host.toLowerCase().includes(needle));
    replace(document.getElementById("host-pick-list"), listed.map((r) =>
      el("label", { class: "check", "data-host": r.host },
        el("input", { type: "checkbox", name: "host", value: r.host, checked: view.selected.has(r.host) }),
        el("span", { class: `badge b-${r.status}`, title: r.status, text: ICONS[r.status] || "?" }), el("span", { text: r.host }))));
    const chosen = [...view.selected];
    document.getElementById("selection-summary").textContent = chosen.length === 0 ? "No host selected."
      : chosen.length <= 4 ? `Selected: ${chosen.sort().join(", ")}` : `${chosen.length} of ${hosts.length} hosts selected`;
    document.getElementById("selection-summary").dataset.count = String(chosen.length);
  }

  // -- events --------------------------------------------------------------------------------------------------

  const fleet = {
    live: null,
    record: null,
    shown: [],
    render(live) {
      fleet.live = live;
      const hosts = (live && live.hosts) || [];
      renderSummary(hosts);
      fleet.shown = renderFleet(hosts);
      renderPicker(hosts, fleet.shown);
      renderDetail(hosts, fleet.record);
    },
    redraw() { if (fleet.live) fleet.render(fleet.live); },
    recordChanged(record) {
      fleet.record = record;
      if (view.timeline.host && !view.timeline.loading) loadTimeline(view.timeline.host);
    },
    selectedHosts() { return view.selected ? [...view.selected].sort() : []; },
    open(host) {
      view.chosen = host;
      fleet.redraw();
      document.getElementById("host-detail").scrollIntoView({ block: "start" });
    },
  };

  function select(which) {
    const hosts = (fleet.live && fleet.live.hosts) || [];
    if (which === "all") view.selected = new Set(hosts.map((r) => r.host));
    else if (which === "none") view.selected = new Set();
    else if (which === "failing") view.selected = new Set(hosts.filter((r) => healthGroup(r.status) === "failing").map((r) => r.host));
    else if (which === "filtered") view.selected = new Set(fleet.shown.map((r) => r.host));
    fleet.redraw();
  }

  document.addEventListener("click", (event) => {
    const open = event.target.closest("[data-open-host]");
    if (open) { fleet.open(open.dataset.openHost); return; }
    const count = event.target.closest("button.count[data-group]");
    if (count && count.dataset.group !== "emergency") {
      const key = count.dataset.group;
      view.filter[key] = view.filter[key] === count.dataset.value ? "all" : count.dataset.value;
      document.getElementById(`fleet-${key}`).value = view.filter[key];
      fleet.redraw();
      return;
    }
    const pick = event.target.closest("#host-picker button[data-select]");
    if (pick) select(pick.dataset.select);
  });

  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.matches("#host-pick-list input[name=host]")) {
      if (target.checked) view.selected.add(target.value); else view.selected.delete(target.value);
      fleet.redraw();
    } else if (target.id === "fleet-health" || target.id === "fleet-mode") {
      view.filter[target.id.slice(6)] = target.value;
      fleet.redraw();
    }
  });

  document.addEventListener("input", (event) => {
    if (event.target.id === "fleet-search") { view.filter.text = event.target.value.trim(); fleet.redraw(); }
    if (event.target.id === "host-pick-search") { view.pickText = event.target.value.trim(); fleet.redraw(); }
  });

  document.getElementById("fleet-clear").addEventListener("click", () => {
    view.filter = { health: "all", mode: "all", text: "" };
    document.getElementById("fleet-health").value = "all";
    document.getElementById("fleet-mode").value = "all";
    document.getElementById("fleet-search").value = "";
    fleet.redraw();
  });

  window.NE.fleet = fleet;
})();
