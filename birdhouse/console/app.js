// birdhouse console: plain JS over the public API. No framework, no CDN.
"use strict";
const COLORS = ["#2f6fed", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#d35400", "#2c3e50"];
const HISTORY = 60;          // samples kept per data source (2 s apart: 2 minutes)
let token = localStorage.getItem("birdhouse-token") || "";
const series = {};           // name -> [rows/s …]
let last = null;             // previous stats sample

function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + token }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const text = await response.text();
  let body; try { body = JSON.parse(text); } catch { body = text; }
  if (!response.ok) throw new Error((body && body.error) || text || ("HTTP " + response.status));
  return body;
}

async function findToken() {
  if (token) return;
  const local = await fetch("/tokens");
  if (local.ok) { token = (await local.json()).workspace_admin_token; return; }
  document.getElementById("token-form").hidden = false;
  throw new Error("an ADMIN token is needed");
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows.map(cells => { const tr = el("tr"); cells.forEach(c => tr.appendChild(c)); return tr; }));
}

async function refreshDatasources(rates) {
  const { datasources } = await api("/v0/datasources");
  fill(document.querySelector("#datasources tbody"), datasources.map(d => [
    el("td", d.name), el("td", d.statistics.row_count.toLocaleString(), "num"),
    el("td", d.statistics.bytes.toLocaleString(), "num"), el("td", (rates[d.name] || 0).toFixed(1), "num"),
  ]));
  const quarantine = [];
  for (const d of datasources.slice(0, 20)) {
    const q = `SELECT '${d.name}' AS ds, toString(insertion_date) AS at, c__error_column, c__error FROM ${d.name}_quarantine ORDER BY insertion_date DESC LIMIT 5`;
    try { quarantine.push(...(await api("/v0/sql?q=" + encodeURIComponent(q))).data); } catch (e) { /* a table may be missing */ }
  }
  quarantine.sort((a, b) => (a.at < b.at ? 1 : -1));
  fill(document.querySelector("#quarantine tbody"), quarantine.slice(0, 20).map(r => [
    el("td", r.ds), el("td", r.at), el("td", r.c__error_column.join(", ")), el("td", r.c__error.join("\n")),
  ]));
}

async function sample() {
  const stats = await api("/v0/console/stats");
  const rates = {};
  if (last) {
    const dt = Math.max((stats.ts - last.ts), 0.001);
    for (const d of stats.datasources) {
      const before = (last.datasources.find(x => x.name === d.name) || { rows: d.rows }).rows;
      rates[d.name] = Math.max(0, (d.rows - before) / dt);
    }
  }
  for (const d of stats.datasources) {
    const s = series[d.name] || (series[d.name] = []);
    s.push(rates[d.name] || 0); if (s.length > HISTORY) s.shift();
  }
  last = stats;
  drawChart();
  return rates;
}

function drawChart() {
  const svg = document.getElementById("chart"), legend = document.getElementById("legend");
  const names = Object.keys(series).sort();
  const max = Math.max(1, ...names.flatMap(n => series[n]));
  svg.replaceChildren(); legend.replaceChildren();
  names.forEach((name, i) => {
    const points = series[name].map((v, x) => `${(x / (HISTORY - 1)) * 600},${155 - (v / max) * 145}`).join(" ");
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points); line.setAttribute("fill", "none");
    line.setAttribute("stroke", COLORS[i % COLORS.length]); line.setAttribute("stroke-width", "2");
    line.dataset.name = name; line.dataset.max = String(Math.max(...series[name]));
    svg.appendChild(line);
    const item = el("span", name); item.style.setProperty("--c", COLORS[i % COLORS.length]); legend.appendChild(item);
  });
  svg.dataset.max = String(max);
}

async function runSql(event) {
  event.preventDefault();
  const error = document.getElementById("sql-error"), out = document.getElementById("sql-result");
  error.hidden = true; out.replaceChildren();
  try {
    const body = await api("/v0/sql", { method: "POST", body: document.getElementById("sql").value, headers: { "Content-Type": "text/plain" } });
    const table = el("table"), head = el("tr");
    body.meta.forEach(m => head.appendChild(el("th", m.name)));
    table.appendChild(el("thead")).appendChild(head);
    const tbody = table.appendChild(el("tbody"));
    body.data.forEach(row => { const tr = el("tr"); body.meta.forEach(m => tr.appendChild(el("td", typeof row[m.name] === "object" ? JSON.stringify(row[m.name]) : String(row[m.name])))); tbody.appendChild(tr); });
    out.appendChild(table);
    out.appendChild(el("p", `${body.rows} rows in ${(body.statistics.elapsed * 1000).toFixed(1)} ms`, "muted"));
  } catch (e) { error.textContent = e.message; error.hidden = false; }
}

async function tick() {
  try { const rates = await sample(); await refreshDatasources(rates); } catch (e) { console.error(e); }
}

async function start() {
  document.getElementById("sql-form").addEventListener("submit", runSql);
  document.getElementById("token-form").addEventListener("submit", e => {
    e.preventDefault(); token = document.getElementById("token-input").value.trim();
    localStorage.setItem("birdhouse-token", token); document.getElementById("token-form").hidden = true; tick();
  });
  try { await findToken(); } catch (e) { return; }
  await tick();
  setInterval(tick, 2000);
}
start();
