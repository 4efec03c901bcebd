// The node's dashboard: reads the REST API with the token kept in this tab's session storage,
// and follows the node live over the WebSocket (/ws). No outside code: what a browser has.

const TOKEN_KEY = "neuroshard.token";
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

let token = sessionStorage.getItem(TOKEN_KEY) || "";
let selfID = "";
let rounds = [];
let socket = null;

class Unauthorized extends Error {}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  if (res.status === 401) throw new Unauthorized("the token was refused");
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try { const body = await res.json(); msg = (body.error && body.error.message) || msg; } catch (_) {}
    throw new Error(path + ": " + msg);
  }
  return res.json();
}

function text(id, value) { $(id).textContent = value === undefined || value === null || value === "" ? "-" : String(value); }
const short = (id) => (id ? "…" + id.slice(-8) : "");
const num = (x, digits = 0) => Number(x || 0).toLocaleString(undefined, { maximumFractionDigits: digits });

function spans(layers) {
  if (!layers || layers.length === 0) return "none";
  const out = [];
  let start = layers[0], prev = layers[0];
  for (const l of layers.slice(1).concat([null])) {
    if (l !== prev + 1) { out.push(start === prev ? `${start}` : `${start}-${prev}`); start = l; }
    prev = l;
  }
  return out.join(", ");
}

function showLogin(message) {
  $("main").hidden = true;
  $("login").hidden = false;
  text("login-error", message || "");
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
  live(false);
}

function live(on) {
  const b = $("live");
  b.textContent = on ? "live" : "offline";
  b.className = "badge " + (on ? "on" : "off");
}

// failed shows an error of the page's own (a request that failed) and logs it.
function failed(e) {
  console.error(e);
  alertBanner(e.message || String(e));
}

function alertBanner(message) {
  const div = document.createElement("div");
  div.textContent = message;
  $("alerts").prepend(div);
  while ($("alerts").children.length > 3) $("alerts").lastChild.remove();
}

function renderStatus(st) {
  selfID = st.node_id;
  text("node-id", st.node_id);
  text("model", st.model);
  text("role", st.role);
  text("layers", spans(st.layers));
  text("peer-count", st.peer_count);
  text("model-hash", st.model_hash ? st.model_hash.slice(0, 16) : "");
  text("reach", st.reachability);
  const r = st.rebalance;
  text("balance", r ? `layers ${r.to} instead of ${r.from} would raise the swarm from ${num(r.tokens_per_s_now, 1)} to ${num(r.tokens_per_s_after, 1)} tokens/s` : "this span is where the swarm needs it");
  const b = st.benchmark;
  text("bench", b ? `decode ${num(b.decode_tokens_per_s)} tok/s, batch 8 ${num(b.decode_batch8_tokens_per_s)}, train ${num(b.train_tokens_per_s)}` : "not measured");
  const t = st.training;
  text("training-state", t && t.enabled ? `epoch ${t.epoch}, step ${num(t.step)}, loss ${Number(t.loss || 0).toFixed(3)}` : "training off");
}

function renderWallet(w) {
  text("address", w.address);
  text("available", w.balances.available + " NEURO");
  text("staked", w.balances.staked + " NEURO");
  text("total", w.balances.total + " NEURO");
}

function renderTraffic(m, net, today) {
  const i = m.inference;
  text("tasks", `${num(today.data.tasks_created)} (${num(today.data.tasks_completed)} / ${num(i.queue_length)})`);
  text("requests", num(i.requests_total));
  text("tokens", num(i.tokens_generated));
  text("latency", `${num(i.avg_latency_ms)} / ${num(i.p99_latency_ms)} ms`);
  text("failovers", num(i.failovers));
  text("bytes", `${num(m.network.bytes_sent)} / ${num(m.network.bytes_received)}`);
  const c = net.capacity;
  text("capacity", c && c.nodes_measured > 0 ? `${num(c.decode_tokens_per_s, 1)} tok/s (${c.nodes_measured} of ${net.nodes.total} nodes measured)` : "no measured holders yet");
}

function renderCoverage(cov) {
  const table = $("coverage");
  table.replaceChildren();
  const L = cov.layers.length;
  const head = table.insertRow();
  head.insertCell().outerHTML = "<th>peer</th>";
  for (let l = 0; l < L; l++) { const th = document.createElement("th"); th.textContent = l; head.appendChild(th); }
  const byPeer = new Map();
  for (const layer of cov.layers) for (const p of layer.providers) {
    if (!byPeer.has(p)) byPeer.set(p, new Set());
    byPeer.get(p).add(layer.index);
  }
  const peers = [...byPeer.keys()].sort((a, b) => (a === selfID ? -1 : b === selfID ? 1 : a < b ? -1 : 1));
  for (const p of peers) {
    const row = table.insertRow();
    row.dataset.peer = p;
    const name = row.insertCell();
    name.textContent = p === selfID ? "this node" : short(p);
    name.title = p;
    name.className = "mono";
    for (let l = 0; l < L; l++) {
      const td = row.insertCell();
      td.className = "cell" + (byPeer.get(p).has(l) ? (p === selfID ? " self" : " held") : "");
    }
  }
  if (cov.missing && cov.missing.length) {
    const row = table.insertRow();
    row.insertCell().textContent = "nobody";
    for (let l = 0; l < L; l++) row.insertCell().className = "cell" + (cov.missing.includes(l) ? " missing" : "");
  }
  text("coverage-state", cov.complete ? `every layer held, ${peers.length} peers` : `layers ${spans(cov.missing)} held by nobody`);
}

function renderPeers(list) {
  const table = $("peers");
  table.replaceChildren();
  const head = table.insertRow();
  for (const h of ["peer", "layers", "role", "latency", "audits passed", "excluded"]) {
    const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
  }
  for (const p of list.peers) {
    const row = table.insertRow();
    row.dataset.peer = p.id;
    const cells = [short(p.id), spans(p.layers), p.role || "", `${num(p.latency_ms, 1)} ms`, p.audits_passed || 0, p.excluded || ""];
    for (const c of cells) row.insertCell().textContent = c;
    row.cells[0].title = p.id;
    row.cells[0].className = "mono";
  }
}

function el(name, attrs) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function renderCharts() {
  const loss = $("loss-chart"), agree = $("agreement-chart");
  loss.replaceChildren(); agree.replaceChildren();
  const pts = rounds.slice(-200);
  loss.dataset.points = String(pts.length);
  agree.dataset.points = String(pts.length);
  if (pts.length === 0) {
    loss.appendChild(el("text", { x: 10, y: 20, class: "empty" })).textContent = "no round completed yet";
    return;
  }
  const W = 600, H = 180, pad = 8;
  const ls = pts.map((p) => p.loss);
  const lo = Math.min(...ls), hi = Math.max(...ls);
  const x = (i) => (pts.length === 1 ? W / 2 : pad + (i * (W - 2 * pad)) / (pts.length - 1));
  const y = (v) => (hi === lo ? H / 2 : pad + ((hi - v) * (H - 2 * pad)) / (hi - lo));
  loss.appendChild(el("polyline", { class: "line", points: pts.map((p, i) => `${x(i)},${y(p.loss)}`).join(" ") }));
  pts.forEach((p, i) => {
    const c = loss.appendChild(el("circle", { class: "dot", cx: x(i), cy: y(p.loss), r: 2.5 }));
    c.appendChild(el("title", {})).textContent = `round ${p.round}: loss ${p.loss.toFixed(4)}`;
  });
  const bw = (W - 2 * pad) / pts.length;
  pts.forEach((p, i) => {
    const share = p.members > 0 ? p.agreement : p.solo ? 1 : 0;
    const h = Math.max(2, share * (120 - 2 * pad));
    const r = agree.appendChild(el("rect", { class: "bar" + (p.solo ? " solo" : ""), x: pad + i * bw, y: 120 - pad - h, width: Math.max(1, bw - 1), height: h }));
    r.appendChild(el("title", {})).textContent = `round ${p.round}: ${p.agreeing}/${p.members} agree, ${p.replicas} replicas used${p.solo ? " (alone)" : ""}`;
  });
  text("training-state", `${pts.length} rounds shown, last loss ${pts[pts.length - 1].loss.toFixed(4)} (range ${lo.toFixed(3)}-${hi.toFixed(3)})`);
}

async function refresh() {
  // The status first: a refused token stops here, not after six more refused requests.
  const st = await api("/api/v1/status");
  const [net, cov, peers, metrics, wallet, hist, today] = await Promise.all([
    api("/api/v1/network"), api("/api/v1/dht/coverage"), api("/api/v1/peers"),
    api("/api/v1/metrics"), api("/api/v1/wallet/balance"), api("/api/v1/training/rounds"),
    api("/api/v1/analytics/stats"),
  ]);
  renderStatus(st);
  renderCoverage(cov);
  renderPeers(peers);
  renderTraffic(metrics, net, today);
  renderWallet(wallet);
  rounds = hist.rounds || [];
  renderCharts();
}

function connect() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  socket = new WebSocket(url);
  socket.onopen = () => socket.send(JSON.stringify({ type: "auth", token }));
  socket.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    switch (ev.type) {
      case "auth.ok": live(true); break;
      case "auth.error": showLogin("the token was refused"); break;
      case "training.round": {
        const i = rounds.findIndex((p) => p.round === ev.data.round);
        if (i >= 0) rounds[i] = ev.data; else rounds.push(ev.data);
        renderCharts();
        break;
      }
      case "node.status": text("peer-count", ev.data.peers); text("layers", spans(ev.data.layers)); break;
      case "system.alert": alertBanner(ev.data.message); break;
      case "task.completed": case "task.failed": refresh().catch(failed); break; // the traffic figures
    }
  };
  socket.onclose = () => { live(false); socket = null; setTimeout(() => { if (token) connect(); }, 3000); };
}

async function start() {
  try {
    await refresh();
  } catch (e) {
    if (e instanceof Unauthorized) { sessionStorage.removeItem(TOKEN_KEY); token = ""; showLogin(e.message); return; }
    failed(e);
  }
  $("login").hidden = true;
  $("main").hidden = false;
  if (!socket) connect();
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  start();
});

if (token) start(); else showLogin();
setInterval(() => {
  if (!token || $("main").hidden) return;
  refresh().catch((e) => { if (e instanceof Unauthorized) showLogin(e.message); else failed(e); });
}, 10000);
