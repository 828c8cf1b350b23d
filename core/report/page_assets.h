// The page's style and script, inlined into every report (no network, no CDN). The script
// draws one chart per metric from the JSON in <script id="data"> (report/page_data.h): an
// x-axis switch (steps, tokens, FLOPs; log for the latter two), the frames and tick labels
// the JSON gives for each (the axis rules live in report/axes.cpp only), values on hover, EMA
// smoothing of training curves with the raw curve faint, stage boundaries, lone points as
// dots, and a legend that hides a run on click.
#pragma once

namespace scion::report {

inline constexpr const char* kReportCss = R"CSS(
body{font-family:system-ui,sans-serif;margin:20px;color:#222}
h2{margin-top:26px;font-size:18px}
.note{color:#555;font-size:13px;max-width:1100px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}
th{white-space:normal;max-width:120px;vertical-align:bottom}
th:first-child,td:first-child{text-align:left}
td.diff{text-align:left;white-space:normal;max-width:420px}
td.best{font-weight:bold;background:#e8f5e9}
small{color:#777}
.sw{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}
#legend{margin:8px 0;font-size:13px}
#legend span.item{cursor:pointer;margin-right:14px;user-select:none}
#legend span.off{opacity:.35;text-decoration:line-through}
#charts,#charts-other{display:flex;flex-wrap:wrap;gap:14px}
.chart{border:1px solid #e4e4e4;border-radius:4px;padding:6px}
.chart .bar{font-size:12px;display:flex;gap:8px;align-items:center}
.chart .bar b{font-size:14px;margin-right:auto}
.chart svg text{font-size:11px;fill:#444}
#tip{position:fixed;pointer-events:none;background:rgba(255,255,255,.95);border:1px solid #bbb;padding:4px 6px;
font-size:12px;display:none;z-index:9}
details summary{cursor:pointer;margin:12px 0;font-weight:bold}
)CSS";

inline constexpr const char* kReportJs = R"JS(
"use strict";
window.addEventListener("error", function (e) { document.body.setAttribute("data-error", String(e.message)); });
(function () {
const D = JSON.parse(document.getElementById("data").textContent);
const hidden = new Set();
const AX = { step: 0, tokens: 1, flops: 2 }, AXNAME = { step: "steps", tokens: "tokens", flops: "FLOPs" };
let smooth = 0;
const charts = [];
const W = 560, H = 300, L = 54, R = 16, T = 12, B = 36;

// The label of an x value on an axis, as report/axes.cpp's si() wrote it.
const XL = {};
for (const a in D.x_labels) XL[a] = new Map(D.x_labels[a]);
function xlabel(axis, v) { const l = XL[axis] && XL[axis].get(v); return l === undefined ? String(v) : l; }

function ema(ys, a) {
  if (!a) return ys;
  const out = []; let m = 0, w = 0;
  for (const y of ys) {
    if (y === null || !isFinite(y)) { out.push(y); m = 0; w = 0; continue; }
    m = a * m + (1 - a) * y; w = a * w + (1 - a); out.push(m / w);
  }
  return out;
}
function h(t) {
  return String(t).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
function el(tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

function makeChart(metric, parent) {
  const avail = ["step", "tokens", "flops"].filter(function (a) {
    return D.runs.some(function (r) { const s = r.series[metric]; return s && s.some(function (p) { return p[AX[a]] !== null; }); });
  });
  const c = { metric: metric, axis: "step", log: { tokens: true, flops: true }, div: document.createElement("div") };
  c.div.className = "chart";
  c.div.id = "chart-" + charts.length;
  c.div.setAttribute("data-metric", metric);
  const bar = document.createElement("div");
  bar.className = "bar";
  const title = document.createElement("b");
  title.textContent = metric;
  bar.appendChild(title);
  const sel = document.createElement("select");
  for (const a of avail) { const o = document.createElement("option"); o.value = a; o.textContent = AXNAME[a]; sel.appendChild(o); }
  const lg = document.createElement("label");
  const cb = document.createElement("input");
  cb.type = "checkbox";
  lg.appendChild(cb); lg.appendChild(document.createTextNode(" log x"));
  bar.appendChild(sel); bar.appendChild(lg);
  c.div.appendChild(bar);
  c.svg = el("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H });
  c.div.appendChild(c.svg);
  parent.appendChild(c.div);
  const sync = function () { cb.checked = !!c.log[c.axis]; cb.disabled = c.axis === "step"; };
  sel.onchange = function () { if (AX[sel.value] === undefined) return; c.axis = sel.value; sync(); draw(c); };
  cb.onchange = function () { c.log[c.axis] = cb.checked; draw(c); };
  sync();
  charts.push(c);
  draw(c);
}

function draw(c) {
  const svg = c.svg, m = c.metric, chart = D.charts[m], ax = AX[c.axis];
  const lx = c.axis !== "step" && !!c.log[c.axis], ly = chart.log_y, F = chart.frames[c.axis + (lx ? "/log" : "")];
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const ok = function (x, y) { return x !== null && y !== null && isFinite(x) && isFinite(y) && !(lx && x <= 0) && !(ly && y <= 0); };
  const smoothed = !chart.validation && smooth > 0;
  const S = [];
  for (const r of D.runs) {
    const pts = r.series[m];
    if (!pts || hidden.has(r.name)) continue;
    const xs = pts.map(function (p) { return p[ax]; }), ys = pts.map(function (p) { return p[3]; });
    S.push({ run: r, xs: xs, ys: ys, sm: smoothed ? ema(ys, smooth) : ys });
  }
  c.S = S;
  const drawn = S.some(function (s) { return s.xs.some(function (x, i) { return ok(x, s.ys[i]); }); });
  if (!F || !drawn) { svg.appendChild(el("text", { x: L, y: H / 2 }, "no data")); return; }
  // The frame of every run's points (hiding a run keeps the axes).
  const tf = function (v, lg) { return lg ? Math.log10(v) : v; };
  const X0 = F.x.range[0], X1 = F.x.range[1], Y0 = F.y.range[0], Y1 = F.y.range[1];
  const px = function (x) { return L + (tf(x, lx) - X0) / (X1 - X0) * (W - L - R); };
  const py = function (y) { return T + (1 - (tf(y, ly) - Y0) / (Y1 - Y0)) * (H - T - B); };
  c.px = px; c.X = [X0, X1]; c.lx = lx;
  const g = el("g", { "class": "axes" });
  g.appendChild(el("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "none", stroke: "#bbb" }));
  for (const t of F.x.ticks) {
    const x = px(t[0]);
    g.appendChild(el("line", { x1: x, x2: x, y1: T, y2: H - B, stroke: "#eee" }));
    g.appendChild(el("text", { x: x, y: H - B + 14, "text-anchor": "middle", "class": "xtick" }, t[1]));
  }
  for (const t of F.y.ticks) {
    const y = py(t[0]);
    g.appendChild(el("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: "#eee" }));
    g.appendChild(el("text", { x: L - 4, y: y + 4, "text-anchor": "end", "class": "ytick" }, t[1]));
  }
  g.appendChild(el("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" }, AXNAME[c.axis] + (lx ? " (log)" : "")));
  svg.appendChild(g);
  // stage boundaries
  const seen = new Set();
  for (const s of S) for (const b of s.run.stages) {
    const x = b[ax];
    if (x === null || !ok(x, 1) || seen.has(x)) continue;
    seen.add(x);
    const X = px(x);
    svg.appendChild(el("line", { x1: X, x2: X, y1: T, y2: H - B, stroke: "#999", "stroke-dasharray": "4 3", "class": "stage" }));
    svg.appendChild(el("text", { x: X + 3, y: T + 11, fill: "#777" }, b[3]));
  }
  for (const s of S) {
    const gs = el("g", { "class": "series", "data-run": s.run.name });
    const col = s.run.color;
    const line = function (ys, attrs) {
      let piece = [];
      const flush = function () {
        if (piece.length === 1) gs.appendChild(el("circle", { cx: piece[0][0], cy: piece[0][1], r: 3.5, fill: col, opacity: attrs.opacity || 1 }));
        else if (piece.length > 1) {
          const a = { fill: "none", stroke: col, "stroke-width": attrs.w, points: piece.map(function (p) { return p[0].toFixed(1) + "," + p[1].toFixed(1); }).join(" ") };
          if (attrs.opacity) a["stroke-opacity"] = attrs.opacity;
          gs.appendChild(el("polyline", a));
        }
        piece = [];
      };
      for (let i = 0; i < s.xs.length; i++) {
        if (ok(s.xs[i], ys[i])) piece.push([px(s.xs[i]), py(ys[i])]); else flush();
      }
      flush();
    };
    if (smoothed) { line(s.ys, { w: 1, opacity: 0.25 }); line(s.sm, { w: 1.8 }); }
    else line(s.ys, { w: 1.8 });
    if (chart.validation && s.xs.length <= 40)
      for (let i = 0; i < s.xs.length; i++) if (ok(s.xs[i], s.ys[i]))
        gs.appendChild(el("circle", { cx: px(s.xs[i]), cy: py(s.ys[i]), r: 2.2, fill: col }));
    svg.appendChild(gs);
  }
  c.cursor = el("line", { y1: T, y2: H - B, stroke: "#555", "stroke-width": 0.7, visibility: "hidden" });
  svg.appendChild(c.cursor);
  c.py = py;
}

const tip = document.getElementById("tip");
function hover(c, ev) {
  if (!c.px || !c.S || !c.S.length) return;
  const rect = c.svg.getBoundingClientRect();
  const mx = (ev.clientX - rect.left) * W / rect.width;
  const xv = c.X[0] + (mx - L) / (W - L - R) * (c.X[1] - c.X[0]);
  const want = c.lx ? Math.pow(10, xv) : xv;
  let rows = [], snap = null;
  for (const s of c.S) {
    let bi = -1, bd = Infinity;
    for (let i = 0; i < s.xs.length; i++) {
      if (s.xs[i] === null || s.ys[i] === null) continue;
      const d = Math.abs((c.lx ? Math.log10(Math.max(s.xs[i], 1e-300)) : s.xs[i]) - xv);
      if (d < bd) { bd = d; bi = i; }
    }
    if (bi < 0) continue;
    if (snap === null) snap = s.xs[bi];
    const v = s.sm[bi];
    rows.push('<span class="sw" style="background:' + s.run.color + '"></span>' + h(s.run.name) + ": <b>" +
      (v === null ? "NaN" : parseFloat(Number(v).toPrecision(5))) + "</b> <small>@" + xlabel(c.axis, s.xs[bi]) + "</small>");
  }
  if (!rows.length) return;
  const X = c.px(snap === null ? want : snap);
  c.cursor.setAttribute("x1", X); c.cursor.setAttribute("x2", X); c.cursor.setAttribute("visibility", "visible");
  tip.innerHTML = "<b>" + h(c.metric) + "</b> · " + AXNAME[c.axis] + " " + xlabel(c.axis, snap) + "<br>" + rows.join("<br>");
  tip.style.display = "block";
  tip.style.left = (ev.clientX + 14) + "px"; tip.style.top = (ev.clientY + 10) + "px";
}

function legend() {
  const lg = document.getElementById("legend");
  lg.innerHTML = "";
  for (const r of D.runs) {
    const it = document.createElement("span");
    it.className = "item" + (hidden.has(r.name) ? " off" : "");
    it.setAttribute("data-run", r.name);
    it.innerHTML = '<span class="sw" style="background:' + r.color + '"></span>';
    it.appendChild(document.createTextNode(r.name));
    it.onclick = function () { if (hidden.has(r.name)) hidden.delete(r.name); else hidden.add(r.name); legend(); redraw(); };
    lg.appendChild(it);
  }
}
function redraw() { for (const c of charts) draw(c); }

const main = document.getElementById("charts"), more = document.getElementById("charts-other");
// the main validation metric, then the training losses, then the other validation losses
for (const m of D.validation.slice(0, 1).concat(D.loss, D.validation.slice(1))) makeChart(m, main);
for (const m of D.other) makeChart(m, more);
if (!D.other.length) document.getElementById("more").style.display = "none";
for (const c of charts) {
  c.svg.addEventListener("mousemove", function (ev) { hover(c, ev); });
  c.svg.addEventListener("mouseleave", function () { tip.style.display = "none"; if (c.cursor) c.cursor.setAttribute("visibility", "hidden"); });
}
legend();
const sl = document.getElementById("smooth");
sl.oninput = function () { smooth = parseFloat(sl.value); document.getElementById("smooth-v").textContent = sl.value; redraw(); };
document.body.setAttribute("data-ready", String(charts.length));
})();
)JS";

}  // namespace scion::report
