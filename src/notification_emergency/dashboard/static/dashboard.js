// notification-emergency dashboard: renders /api/state, follows /api/stream (server-sent events), and
// starts the controls through POST /api/actions (confirmation text from the server, CSRF token in a header).
// The fleet view, the host detail panel and the host picker are fleet.js; the shared helpers common.js.
// Everything is written with textContent: nothing from the server is parsed as HTML.
(() => {
  "use strict";

  const { el, svg, badge, time, when, seconds, replace, getJSON } = window.NE;
  const fleet = window.NE.fleet;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const operator = document.body.dataset.role === "operator";
  const FALLBACK_MS = 30000;
  const state = { live: null, record: null, stream: null, lastUpdate: null };
  const renders = []; // how long each render of live data took (ms, performance.now()), the newest last

  // -- actions -------------------------------------------------------------------------------------------

  const OUTCOME_OK = ["ok", "healthy", "recovered"];

  function renderJobs() {
    const jobs = (state.live && state.live.jobs) || [];
    if (!jobs.length) return;
    const items = jobs.slice(0, 8).map((job) => {
      const outcome = Object.entries(job.outcome || {}).map(([host, row]) =>
        el("li", {}, `${host}: `, badge(OUTCOME_OK.includes(row.status) ? "ok" : (row.status === "escalated" || row.status === "throttled" ? "degraded" : "failed"), row.status || "?"),
          row.line || row.error ? ` ${row.line || row.error}` : ""));
      const hosts = job.hosts.length <= 4 ? job.hosts.join(", ") : `${job.hosts.length} hosts`;
      const inputs = job.inputs && job.inputs.backup ? ` (${job.inputs.backup})` : job.inputs && job.inputs.label ? ` (${job.inputs.label})` : "";
      const cancel = job.state === "running" && operator
        ? el("button", { type: "button", class: "danger small", "data-cancel": job.id, disabled: Boolean(job.canceled_by) }, job.canceled_by ? "Cancelling…" : "Cancel")
        : null;
      return el("article", { class: `job j-${job.state}`, "data-job": job.id, "data-action": job.action, "data-state": job.state },
        el("div", {}, el("strong", { text: job.label }), `${inputs} on ${hosts} by ${job.user} at ${when(job.started_at)} `,
          badge(job.state), cancel ? " " : null, cancel),
        job.canceled_by ? el("div", { class: "muted", text: `cancel requested by ${job.canceled_by}` }) : null,
        job.state === "running" && job.task ? el("div", { class: "muted", text: `now: ${job.task}` }) : null,
        el("pre", { class: "progress", text: (job.progress || []).join("\n") || "starting…" }),
        job.message ? el("div", { class: "result", text: job.message }) : null,
        outcome.length > 1 ? el("ul", { class: "plain" }, outcome) : null);
    });
    replace(document.getElementById("jobs"), items);
  }

  // -- statistics and chart --------------------------------------------------------------------------------

  function renderStats() {
    const record = state.record || {};
    const stats = record.stats;
    const numbers = document.getElementById("stat-numbers");
    if (!stats) return;
    const rate = stats.recovery_rate === null ? "-" : `${Math.round(stats.recovery_rate * 100)} %`;
    const item = (title, value, small, key) =>
      el("div", { "data-stat": key }, el("dt", { text: title }), el("dd", {}, value, small ? el("small", { text: ` ${small}` }) : null));
    replace(numbers,
      item("Incidents", String(stats.incidents), `${stats.open} open · ${stats.resolved} resolved`, "incidents"),
      item("Recovery rate", rate, "", "recovery_rate"),
      item("Detection (MTTD)", seconds(stats.detection_seconds.mean), `p90 ${seconds(stats.detection_seconds.p90)}`, "mttd"),
      item("Recovery (MTTR)", seconds(stats.recovery_seconds.mean), `p90 ${seconds(stats.recovery_seconds.p90)}`, "mttr"),
      item("Runs", String(stats.runs.total), `${stats.runs.failed} failed`, "runs"),
      item("Notifications", String(stats.notifications.delivered), `delivered · ${stats.notifications.failed} failed · ${stats.notifications.pending} pending`, "notifications"));
    renderChart(record.chart || []);
    const notes = (record.notifications || []).map((note) =>
      el("li", {}, el("span", { class: "time", text: `${time(note.at)} ` }), badge(note.status), ` [${note.priority}] ${note.title}`,
        el("span", { class: "muted", text: note.delivered_by ? ` via ${note.delivered_by}` : ` (${note.attempts} attempts)` })));
    replace(document.getElementById("notifications"), notes.length ? notes : el("li", { class: "muted", text: "no notifications recorded" }));
  }

  function renderChart(points) {
    const chart = document.getElementById("chart");
    const W = 640, H = 240, left = 48, right = 12, top = 16, bottom = 40;
    const nodes = [];
    const values = points.flatMap((p) => [p.detection_s, p.recovery_s]).filter((v) => v !== null && v !== undefined);
    const rough = Math.max(1, ...values) / 4;
    const power = 10 ** Math.floor(Math.log10(rough));
    const tick = [1, 2, 5, 10].map((m) => m * power).find((m) => m >= rough);
    const max = tick * 4;
    const x = (i) => left + (points.length < 2 ? (W - left - right) / 2 : (i * (W - left - right)) / (points.length - 1));
    const y = (v) => top + (H - top - bottom) * (1 - v / max);
    for (let t = 0; t <= 4; t += 1) {
      const v = (max * t) / 4;
      nodes.push(svg("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), class: "grid-line" }));
      nodes.push(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, Number.isInteger(v) ? String(v) : v.toFixed(1)));
    }
    nodes.push(svg("line", { x1: left, x2: left, y1: top, y2: H - bottom, class: "axis" }));
    nodes.push(svg("line", { x1: left, x2: W - right, y1: H - bottom, y2: H - bottom, class: "axis" }));
    nodes.push(svg("text", { x: 10, y: top + 4 }, "s"));
    if (!points.length) {
      nodes.push(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no incidents in the last 30 days"));
    }
    for (const [key, cls, shape] of [["detection_s", "detect", "circle"], ["recovery_s", "recover", "rect"]]) {
      const path = points.map((p, i) => (p[key] === null || p[key] === undefined ? null : `${x(i)},${y(p[key])}`)).filter(Boolean);
      if (path.length > 1) nodes.push(svg("polyline", { points: path.join(" "), class: cls }));
      points.forEach((p, i) => {
        if (p[key] === null || p[key] === undefined) return;
        const mark = shape === "circle"
          ? svg("circle", { cx: x(i), cy: y(p[key]), r: 4, class: `${cls}-point`, "data-incident": p.id })
          : svg("rect", { x: x(i) - 4, y: y(p[key]) - 4, width: 8, height: 8, class: `${cls}-point`, "data-incident": p.id });
        mark.append(svg("title", {}, `#${p.id} ${p.failure_type} on ${p.hosts.join(", ")} at ${when(p.at)}: ${key === "detection_s" ? "detected" : "recovered"} in ${seconds(p[key])}`));
        nodes.push(mark);
      });
    }
    points.forEach((p, i) => {
      if (p.status === "open") {
        const mark = svg("circle", { cx: x(i), cy: H - bottom, r: 5, class: "open-point" });
        mark.append(svg("title", {}, `#${p.id} ${p.failure_type}: open`));
        nodes.push(mark);
      }
    });
    const step = Math.max(1, Math.ceil(points.length / 6));
    points.forEach((p, i) => {
      if (i % step === 0 || i === points.length - 1) nodes.push(svg("text", { x: x(i), y: H - bottom + 16, "text-anchor": "middle" }, time(p.at).slice(0, 5)));
    });
    // The legend: a dashed line with circles, a solid line with squares: it reads without colour.
    const ly = H - 8;
    nodes.push(svg("line", { x1: left, x2: left + 26, y1: ly - 4, y2: ly - 4, class: "detect" }));
    nodes.push(svg("circle", { cx: left + 13, cy: ly - 4, r: 4, class: "detect-point" }));
    nodes.push(svg("text", { x: left + 32, y: ly }, "detection (MTTD)"));
    nodes.push(svg("line", { x1: left + 150, x2: left + 176, y1: ly - 4, y2: ly - 4, class: "recover" }));
    nodes.push(svg("rect", { x: left + 159, y: ly - 8, width: 8, height: 8, class: "recover-point" }));
    nodes.push(svg("text", { x: left + 182, y: ly }, "recovery (MTTR)"));
    nodes.push(svg("circle", { cx: left + 300, cy: ly - 4, r: 5, class: "open-point" }));
    nodes.push(svg("text", { x: left + 310, y: ly }, "still open"));
    chart.replaceChildren(...nodes);
  }

  // -- events --------------------------------------------------------------------------------------------

  function renderEvents() {
    const record = state.record || {};
    const store = record.store || {};
    document.getElementById("store-state").textContent = store.ok === false
      ? `✗ event store unavailable (${store.error}); showing what was read last`
      : "";
    const items = (record.events || []).map((event) => {
      const status = event.ok === true ? "ok" : event.ok === false ? "failed" : "info";
      const word = event.ok === true ? "ok" : event.ok === false ? "failed" : "info";
      return el("li", { "data-kind": event.kind, "data-ok": String(event.ok) },
        el("span", { class: "time", title: event.at, text: time(event.at) }),
        el("span", {}, badge(status, word), " ", el("span", { class: "kind", text: event.kind })),
        el("span", { class: "summary", text: event.summary }));
    });
    replace(document.getElementById("event-list"), items.length ? items : el("li", { class: "muted", text: "no events yet" }));
  }

  // -- updates -------------------------------------------------------------------------------------------

  function applyLive(live) {
    state.live = live;
    state.lastUpdate = new Date();
    const started = performance.now();
    fleet.render(live);
    renderJobs();
    renderBackupHosts();
    refreshBackupsAfterJobs();
    renders.push({ hosts: ((live && live.hosts) || []).length, ms: performance.now() - started });
    if (renders.length > 50) renders.shift();
    document.getElementById("status").dataset.renderMs = renders[renders.length - 1].ms.toFixed(1);
  }

  function applyRecord(record) {
    state.record = record;
    fleet.recordChanged(record);
    renderStats();
    renderEvents();
  }

  function setLive(kind, text) {
    const node = document.getElementById("live");
    node.className = `live live-${kind}`;
    node.replaceChildren(el("span", { "aria-hidden": "true", text: kind === "on" ? "● " : "○ " }), text);
    node.dataset.state = kind;
  }

  async function refresh() {
    try {
      const response = await fetch("/api/state", { headers: { Accept: "application/json" }, cache: "no-store" });
      if (response.status === 401) { window.location.assign("/login"); return; }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      applyLive(data.live);
      applyRecord(data.record);
    } catch (error) {
      setLive("polling", `dashboard unreachable (${error.message}); retrying every 30 s`);
    }
  }

  function connect() {
    if (!window.EventSource) { setLive("polling", "refreshing every 30 s"); return; }
    const stream = new EventSource("/api/stream");
    state.stream = stream;
    stream.addEventListener("open", () => setLive("on", "live"));
    stream.addEventListener("live", (event) => { setLive("on", "live"); applyLive(JSON.parse(event.data)); });
    stream.addEventListener("record", (event) => applyRecord(JSON.parse(event.data)));
    stream.addEventListener("error", () => setLive("polling", "live updates interrupted: reconnecting; refreshing every 30 s"));
  }

  // -- controls ------------------------------------------------------------------------------------------

  const form = document.getElementById("control-form");
  const message = document.getElementById("control-message");
  const dialog = document.getElementById("confirm");

  function say(text, kind) {
    message.textContent = text;
    message.className = `message ${kind || ""}`;
  }

  function request(action) {
    let hosts = fleet.selectedHosts();
    const inputs = {};
    if (action === "activate-emergency") {
      inputs.reason = form.elements.reason.value;
      inputs.level = Number(form.elements.level.value);
    } else if (action === "restart") {
      inputs.components = [...form.querySelectorAll('input[name="component"]:checked')].map((box) => box.value);
    } else if (action === "backup") {
      inputs.label = form.elements.label.value.trim() || "dashboard";
    } else if (action === "restore-backup") {
      hosts = form.elements["backup-host"].value ? [form.elements["backup-host"].value] : [];
      inputs.backup = form.elements.backup.value;
    }
    return { action, hosts, inputs };
  }

  // -- restore-by-name: the chosen host's backups, from the store ---------------------------------------

  function renderBackupHosts() {
    const picker = form.elements["backup-host"];
    const names = ((state.live && state.live.hosts) || []).map((row) => row.host);
    const current = [...picker.options].map((option) => option.value).filter(Boolean);
    if (current.length === names.length && current.every((name, i) => name === names[i])) return;
    const chosen = picker.value;
    replace(picker, el("option", { value: "", text: "choose a host" }),
      names.map((name) => el("option", { value: name, text: name, selected: name === chosen })));
  }

  async function loadBackups() {
    const host = form.elements["backup-host"].value;
    const picker = form.elements.backup;
    if (!host) { replace(picker, el("option", { value: "", text: "choose a host first" })); return; }
    replace(picker, el("option", { value: "", text: "loading…" }));
    try {
      const data = await getJSON(`/api/hosts/${encodeURIComponent(host)}/backups`);
      if (form.elements["backup-host"].value !== host) return;
      replace(picker, el("option", { value: "latest", text: "latest (the newest complete backup)" }),
        (data.backups || []).map((name) => el("option", { value: name, text: name })));
    } catch (error) {
      replace(picker, el("option", { value: "latest", text: "latest" }));
      say(`Could not read the backups of ${host}: ${error.message}`, "error");
    }
  }

  form.elements["backup-host"].addEventListener("change", loadBackups);

  // An action that takes or uses a backup ended since the list was read: read the chosen host's backups again
  // (the list is read when a host is chosen; a backup taken after that would be missing from it).
  const BACKUP_ACTIONS = ["backup", "rollback", "restore", "restore-backup", "drain-backlog"];
  let endedJobs = null;
  function refreshBackupsAfterJobs() {
    const ended = ((state.live && state.live.jobs) || [])
      .filter((job) => job.state !== "running" && BACKUP_ACTIONS.includes(job.action)).map((job) => job.id);
    const fresh = endedJobs !== null && ended.some((id) => !endedJobs.has(id));
    endedJobs = new Set(ended);
    if (fresh && form.elements["backup-host"].value) loadBackups();
  }

  async function post(body) {
    const response = await fetch("/api/actions", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, Accept: "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
    });
    let data = {};
    try { data = await response.json(); } catch (error) { data = { error: `HTTP ${response.status}` }; }
    return { status: response.status, data };
  }

  function confirmWith(preview) {
    document.getElementById("confirm-title").textContent = `${preview.label}?`;
    document.getElementById("confirm-text").textContent = preview.confirm;
    const busy = document.getElementById("confirm-busy");
    busy.hidden = !preview.busy;
    busy.textContent = preview.busy ? `Busy: ${preview.busy}. It will be refused until that ends.` : "";
    document.getElementById("confirm-ok").className = preview.kind === "read" ? "" : "danger";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
    });
  }

  async function act(button) {
    const body = request(button.dataset.action);
    if (!body.hosts.length) {
      say(body.action === "restore-backup" ? "Choose the host to restore on." : "Choose at least one host.", "error");
      return;
    }
    button.disabled = true;
    try {
      const preview = await post({ ...body, confirmed: false });
      if (preview.status !== 200) {
        say(`Refused (${preview.status}): ${preview.data.error}`, "error");
        if (preview.status === 401) window.location.assign("/login");
        return;
      }
      if (!(await confirmWith(preview.data))) { say("Cancelled: nothing was started."); return; }
      const started = await post({ ...body, confirmed: true });
      if (started.status === 202) {
        say(`Started: ${preview.data.label} on ${preview.data.hosts.join(", ")}.`, "ok");
        state.live = state.live || { hosts: [], jobs: [] };
        state.live.jobs = [started.data.job, ...(state.live.jobs || []).filter((job) => job.id !== started.data.job.id)];
        renderJobs();
      } else {
        say(`Refused (${started.status}): ${started.data.error}`, "error");
      }
    } catch (error) {
      say(`Could not reach the dashboard: ${error.message}`, "error");
    } finally {
      button.disabled = false;
    }
  }

  form.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) act(button);
  });

  document.getElementById("jobs").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-cancel]");
    if (!button) return;
    button.disabled = true;
    try {
      const response = await fetch(`/api/actions/${encodeURIComponent(button.dataset.cancel)}/cancel`, {
        method: "POST",
        headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
        cache: "no-store",
      });
      let data = {};
      try { data = await response.json(); } catch (error) { data = { error: `HTTP ${response.status}` }; }
      if (response.status === 202) say(`Cancelling: ${data.job.label} (ansible-playbook is being stopped).`, "ok");
      else say(`Refused (${response.status}): ${data.error}`, "error");
    } catch (error) {
      say(`Could not reach the dashboard: ${error.message}`, "error");
    }
  });

  window.NE.dashboard = { applyLive, renders, state };
  refresh();
  connect();
  window.setInterval(refresh, FALLBACK_MS);
})();
