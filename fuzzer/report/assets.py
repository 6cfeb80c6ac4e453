"""The report page's inline stylesheet and script (no network: nothing is fetched).

Why Python strings and not static files: the report is one self-contained
HTML file written by a pip-installed fuzzer; keeping the assets in a module
needs no package-data configuration and cannot go missing.

The script reads the JSON block ``#hb-data`` (``{"diagram": <layout data>}``,
see :mod:`fuzzer.report.layout`) and draws the space-time diagram into one
canvas, redrawing only what is in the visible range on every change (zoom,
pan, collapse, filter). It writes what it drew into ``#hb-status`` (data
attributes: ``ready``, ``lanes``, ``rows``, ``events``, ``highlighted``,
``offending``, ``offending-ops``, ``errors``, ``draw-ms``) so a headless
browser test can check the page without pixels.
"""

CSS = r"""
:root { --fg:#1a202c; --muted:#5a6473; --line:#d9dee6; --bg:#f6f7f9; --card:#fff;
  --bad:#c53030; --ok:#2f855a; --warn:#b7791f; --accent:#2b6cb0; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
  color:var(--fg); background:var(--bg); }
header { padding:14px 22px 10px; background:#1f2937; color:#f9fafb; }
header h1 { margin:0 0 4px; font-size:19px; font-weight:600; letter-spacing:.2px; }
header .sub { color:#cbd5e1; font-size:13px; }
header .sub code { color:#fde68a; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600;
  margin-right:6px; vertical-align:1px; }
.badge.violated { background:#fed7d7; color:#9b2c2c; } .badge.ok { background:#c6f6d5; color:#22543d; }
.badge.unknown { background:#fefcbf; color:#744210; }
main { padding:12px 22px 30px; }
section.card, details.card { background:var(--card); border:1px solid var(--line); border-radius:8px;
  padding:12px 14px; margin:0 0 14px; }
h2 { font-size:15px; margin:0 0 8px; }
.toolbar { display:flex; flex-wrap:wrap; gap:6px 14px; align-items:center; font-size:13px;
  margin-bottom:8px; }
.toolbar label { white-space:nowrap; cursor:pointer; }
.toolbar input[type=number] { width:92px; }
.toolbar button, .toolbar select { font:inherit; font-size:13px; padding:2px 8px; border-radius:5px;
  border:1px solid #b8c0cc; background:#fff; cursor:pointer; }
.toolbar button:hover { background:#edf2f7; }
.toolbar .sep { width:1px; height:20px; background:var(--line); }
.kinds label { margin-right:8px; } .kinds .sw { display:inline-block; width:9px; height:9px;
  border-radius:50%; margin:0 3px 0 1px; vertical-align:0; }
#hb-wrap { position:relative; border:1px solid var(--line); border-radius:6px; overflow:hidden;
  background:#fff; }
#hb-canvas { display:block; width:100%; cursor:grab; }
#hb-canvas.dragging { cursor:grabbing; }
#hb-tip { position:absolute; pointer-events:none; background:rgba(26,32,44,.93); color:#fff;
  font:12px/1.35 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; padding:5px 8px;
  border-radius:5px; max-width:560px; display:none; white-space:pre-wrap; z-index:2; }
#hb-info { font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; color:var(--muted);
  margin-top:6px; min-height:18px; white-space:pre-wrap; }
.legend { font-size:12px; color:var(--muted); margin-top:6px; }
.legend span.k { display:inline-block; margin-right:12px; }
.legend i { display:inline-block; width:12px; height:12px; border-radius:3px; vertical-align:-2px;
  margin-right:4px; }
.grid { display:grid; grid-template-columns: minmax(0,3fr) minmax(0,2fr); gap:14px; }
@media (max-width: 1000px) { .grid { grid-template-columns: 1fr; } }
pre, code { font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
#replay pre { white-space:pre-wrap; word-break:break-all; }
pre { background:#f1f3f6; border:1px solid var(--line); border-radius:5px; padding:8px 10px;
  overflow:auto; margin:6px 0; max-height:340px; }
.verdict { border-left:4px solid var(--line); padding:4px 0 6px 10px; margin:0 0 12px; }
.verdict.violated { border-color:var(--bad); } .verdict.ok { border-color:var(--ok); }
.verdict.unknown { border-color:var(--warn); }
.verdict .expl { margin:4px 0; }
ol.ops, ul.ops { margin:4px 0 8px 0; padding-left:22px;
  font:12.5px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
ol.ops li.bad, ul.ops li.bad { color:var(--bad); font-weight:600; }
.muted { color:var(--muted); }
table.kv { border-collapse:collapse; font-size:13px; } table.kv td { padding:2px 12px 2px 0;
  vertical-align:top; } table.kv td:first-child { color:var(--muted); }
.warn { color:var(--warn); }
"""

JS = r"""
(function () {
  "use strict";
  var status = document.getElementById("hb-status");
  var errors = [];
  function setStatus(k, v) { status.setAttribute("data-" + k, String(v)); }
  function fail(msg) {
    errors.push(String(msg)); setStatus("errors", errors.join(" | "));
    status.textContent = "report script error: " + errors.join(" | ");
  }
  window.addEventListener("error", function (e) { fail(e.message || e); });
  setStatus("errors", "");
  try { main(); } catch (e) { fail(e && e.stack ? e.stack : e); }

  function main() {
    var D = JSON.parse(document.getElementById("hb-data").textContent);
    var G = D.diagram;
    var E = G.ev, N = E.x.length, OPS = G.ops, NOPS = OPS.x0.length;
    var KCOL = { 1: "#2b6cb0", 2: "#2f855a", 3: "#718096", 4: "#805ad5", 5: "#b7791f",
      6: "#a0aec0", 7: "#e53e3e", 8: "#a0aec0", 9: "#1a202c", 10: "#d69e2e" };
    var FCOL = { partition: "128,90,213", down: "197,48,48", pause: "43,108,176",
      link: "221,107,32", clock: "49,151,149", restart: "113,128,150", heal: "113,128,150",
      other: "113,128,150" };
    var OPCOL = { ok: "#48bb78", fail: "#a0aec0", info: "#ecc94b" };
    var HL_CTX = "#dd6b20", HL_BAD = "#e53e3e";
    var LABEL_W = 118, AXIS_H = 24, PAD_R = 14;
    var canvas = document.getElementById("hb-canvas");
    var wrap = document.getElementById("hb-wrap");
    var tip = document.getElementById("hb-tip");
    var info = document.getElementById("hb-info");
    var ctx = canvas.getContext("2d");
    var axis = "x";
    var kindOn = {};
    Object.keys(G.kinds).forEach(function (k) { kindOn[k] = G.kinds[k] !== "COVERAGE"; });
    var showArrows = true, dim = false, selected = -1, selectedOp = -1;
    var SEL = "#3182ce";
    // the causal past of a clicked event, computed here from program order and the
    // message edges (events come lane by lane in program order in the data)
    var srcOf = {};
    for (var ai = 0; ai < G.arrows.s.length; ai++) srcOf[G.arrows.r[ai]] = G.arrows.s[ai];
    var selPast = new Uint8Array(E.x.length);
    function causalPast(e) {
      selPast.fill(0);
      var stack = [e], n = 0, vc = {}, started = false;
      while (stack.length) {
        var i = stack.pop();
        if (i === e) { if (started) continue; started = true; }  // (a cycle of bogus edges)
        else { if (selPast[i]) continue; selPast[i] = 1; n++; }
        if (i > 0 && E.lane[i - 1] === E.lane[i] && !selPast[i - 1]) stack.push(i - 1);
        var s = srcOf[i]; if (s !== undefined && !selPast[s]) stack.push(s);
      }
      for (var k = 0; k < E.x.length; k++) if (selPast[k] || k === e) {
        var name = G.lanes[E.lane[k]]; vc[name] = (vc[name] || 0) + 1;
      }
      return "causal past: " + n + " events (ringed in blue); vector clock " + JSON.stringify(vc);
    }
    var nHl = 0;
    for (var i = 0; i < N; i++) if (E.hl[i]) nHl++;
    var nBadOps = 0;
    for (var j = 0; j < NOPS; j++) if (OPS.hl[j] === 2) nBadOps++;

    // rows: an optional faults strip, one row per lane, one per client process
    // fault bars stacked in sub-rows so that overlapping faults stay readable
    function stackFaults(a0, a1) {
      var ends = [], order = G.faults.map(function (f, k) { return k; });
      order.sort(function (p, q) { return G.faults[p][a0] - G.faults[q][a0]; });
      var slot = [];
      order.forEach(function (k) {
        var f = G.faults[k], span = (G.extent[a0 === "x0" ? "x" : "t"] || 1) / 150;
        var end = f.open ? Infinity : Math.max(f[a1], f[a0] + span);
        var r = 0; while (r < ends.length && ends[r] > f[a0]) r++;
        if (r >= 4) r = k % 4;  // at most four sub-rows; the tooltip names every fault
        ends[r] = Math.max(ends[r] || -Infinity, end); slot[k] = r;
      });
      return { slot: slot, n: Math.max(1, ends.length) };
    }
    var fstack = { x: stackFaults("x0", "x1"), t: stackFaults("t0", "t1") };
    var FROW = 17;
    var rows = [];
    if (G.faults.length) {
      var fh = 7 + FROW * Math.max(fstack.x.n, fstack.t.n);
      rows.push({ type: "faults", name: "faults", h: fh, base: fh });
    }
    var servers = {};
    (G.servers || []).forEach(function (k) { servers[k] = true; });
    var hasBad = {};
    for (var hb = 0; hb < E.x.length; hb++) if (E.hl[hb] === 2) hasBad[E.lane[hb]] = true;
    var clientLanes = G.lanes.filter(function (n) { return /^c\d+$/.test(n); }).length;
    G.lanes.forEach(function (name, k) {
      var h = /^n\d+$/.test(name) ? 48 : 30;
      // many client endpoints (a new one per process): fold those without a violation
      var fold = clientLanes > 6 && /^c\d+$/.test(name) && !hasBad[k];
      rows.push({ type: "node", lane: k, name: name, h: h, base: h, collapsed: fold });
    });
    G.oplanes.forEach(function (name, k) {
      rows.push({ type: "op", lane: k, name: "op " + name, h: 19, base: 19 });
    });
    var laneRow = [], opRow = [];
    rows.forEach(function (r) {
      if (r.type === "node") laneRow[r.lane] = r; else if (r.type === "op") opRow[r.lane] = r;
    });
    function layout() {
      var y = 0;
      rows.forEach(function (r) { r.y = y; r.h = r.collapsed ? 9 : r.base; y += r.h; });
      return y + AXIS_H;
    }

    // per-lane event indices, sorted on the current axis (for range queries)
    var laneEv = G.lanes.map(function () { return []; });
    for (i = 0; i < N; i++) laneEv[E.lane[i]].push(i);
    function sortLanes() {
      var c = E[axis];
      laneEv.forEach(function (a) { a.sort(function (p, q) { return c[p] - c[q] || p - q; }); });
    }
    sortLanes();
    function lowerBound(a, c, v) {
      var lo = 0, hi = a.length;
      while (lo < hi) { var m = (lo + hi) >> 1; if (c[a[m]] < v) lo = m + 1; else hi = m; }
      return lo;
    }

    function extent() { return axis === "x" ? G.extent.x : Math.max(G.extent.t, 1e-3); }
    var v0 = 0, v1 = extent();
    var W = 0, H = 0, plotW = 1;
    function px(v) { return LABEL_W + (v - v0) / (v1 - v0) * plotW; }
    function unpx(p) { return v0 + (p - LABEL_W) / plotW * (v1 - v0); }
    function rowY(r) { return r.y + r.h / 2; }
    function text(t, x, y, color) {  // a label with a white halo, legible over lines
      ctx.lineWidth = 3; ctx.strokeStyle = "rgba(255,255,255,.9)"; ctx.strokeText(t, x, y);
      ctx.fillStyle = color; ctx.fillText(t, x, y);
    }
    var taken = {};  // label boxes drawn this frame, on a coarse grid: no overlapping labels
    function place(t, x, y) {
      var w = ctx.measureText(t).width, c0 = Math.floor(x / 16), c1 = Math.floor((x + w) / 16);
      var r = Math.floor((y - 6) / 12), c;
      for (c = c0; c <= c1; c++) if (taken[r + ":" + c]) return false;
      for (c = c0; c <= c1; c++) taken[r + ":" + c] = 1;
      return true;
    }

    function resize() {
      var dpr = window.devicePixelRatio || 1;
      W = wrap.clientWidth || 1200;
      H = layout();
      canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
      canvas.style.height = H + "px";
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      plotW = Math.max(40, W - LABEL_W - PAD_R);
    }

    function niceStep(span, target) {
      var raw = span / target, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
      return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
    }

    function draw() {
      var started = performance.now();
      taken = {};
      var queue = [];  // labels: [priority, text, x, y, color], drawn last without overlaps
      ctx.clearRect(0, 0, W, H);
      ctx.font = "11px system-ui, sans-serif";
      var c = E[axis], cx0 = axis === "x" ? OPS.x0 : OPS.t0, cx1 = axis === "x" ? OPS.x1 : OPS.t1;
      var fx0 = axis === "x" ? "x0" : "t0", fx1 = axis === "x" ? "x1" : "t1";
      var plotR = LABEL_W + plotW, bottom = H - AXIS_H;
      // lane backgrounds
      rows.forEach(function (r, k) {
        ctx.fillStyle = r.type === "op" ? (k % 2 ? "#fbfbfc" : "#f5f6f8")
          : r.type === "faults" ? "#fafafa" : (k % 2 ? "#ffffff" : "#f8fafc");
        ctx.fillRect(LABEL_W, r.y, plotW, r.h);
        if (r.type === "node" && !r.collapsed) {
          ctx.strokeStyle = "#cbd2dc"; ctx.lineWidth = 1; ctx.beginPath();
          ctx.moveTo(LABEL_W, rowY(r) + 0.5); ctx.lineTo(plotR, rowY(r) + 0.5); ctx.stroke();
        }
      });
      ctx.save();
      ctx.beginPath(); ctx.rect(LABEL_W, 0, plotW, bottom); ctx.clip();
      // fault regions
      var bars = [], outside = [];
      G.faults.forEach(function (f, fi) {
        var a = px(f[fx0]), b = f.open ? plotR + 5 : px(f[fx1]);
        if (b < LABEL_W || a > plotR) return;
        var col = FCOL[f.cat] || FCOL.other;
        if (b - a < 2) {
          ctx.strokeStyle = "rgba(" + col + ",.5)"; ctx.setLineDash([4, 3]); ctx.lineWidth = 1.2;
          ctx.beginPath(); ctx.moveTo(a + 0.5, 0); ctx.lineTo(a + 0.5, bottom); ctx.stroke();
          ctx.setLineDash([]);
        } else {
          rows.forEach(function (r) {
            if (r.type !== "node") return;
            var hit = f.lanes.indexOf(r.lane) >= 0, la = a, lb = b;
            if (!hit && !(f.cat === "partition" && servers[r.lane])) return;
            if (axis === "x" && f.lx) {  // the lane's own span of the fault
              la = px(f.lx[r.lane][0]); lb = f.open ? plotR + 5 : px(f.lx[r.lane][1]);
              if (lb <= la) return;
            }
            ctx.fillStyle = "rgba(" + col + "," + (hit ? 0.22 : 0.06) + ")";
            ctx.fillRect(la, r.y, lb - la, r.h);
            if (hit && r.h > 12) {
              ctx.fillStyle = "rgba(" + col + ",.65)"; ctx.fillRect(la, r.y + 1, lb - la, 3);
            }
          });
        }
        if (rows[0].type === "faults" && !rows[0].collapsed) {
          var fy = 4 + FROW * fstack[axis].slot[fi];
          ctx.fillStyle = "rgba(" + col + ",.88)";
          var fw = Math.max(b - a, 3);
          ctx.fillRect(a, fy, fw, FROW - 3);
          var label = f.text + (f.error ? " (failed)" : "");
          var tw = ctx.measureText(label).width;
          if (fw > tw + 8) { ctx.fillStyle = "#fff"; ctx.fillText(label, a + 4, fy + FROW - 6); }
          else outside.push([label, a + fw + 4, fy + FROW - 6, col]);
          bars.push([a, fy, fw]);
        }
      });
      // labels that do not fit in their bar go right of it, where no bar or label is
      bars.forEach(function (b) {
        for (var c = Math.floor(b[0] / 16); c < Math.floor((b[0] + b[2]) / 16); c++) {
          taken[Math.floor((b[1] + FROW - 12) / 12) + ":" + c] = 1;
        }
      });
      outside.forEach(function (l) {
        if (place(l[0], l[1], l[2])) { ctx.fillStyle = "rgba(" + l[3] + ",1)"; ctx.fillText(l[0], l[1], l[2]); }
      });
      // messages
      var anyHl = nHl > 0 || nBadOps > 0;
      var sendOn = kindOn["1"] !== false, recvOn = kindOn["2"] !== false;
      if (showArrows && sendOn && recvOn) {
        var A = G.arrows, nA = A.s.length, visible = [];
        for (var a = 0; a < nA; a++) {
          var s = A.s[a], r = A.r[a], xs = c[s], xr = c[r];
          if ((xs < v0 && xr < v0) || (xs > v1 && xr > v1)) continue;
          visible.push(a);
        }
        var heads = visible.length < 3000, labels = visible.length < 400;
        var dense = Math.min(1, Math.max(0.08, 500 / Math.max(1, visible.length)));
        visible.forEach(function (a) {
          var s = A.s[a], r = A.r[a];
          var x1 = px(c[s]), y1 = rowY(laneRow[E.lane[s]]);
          var x2 = px(c[r]), y2 = rowY(laneRow[E.lane[r]]);
          var h = E.hl[s] && E.hl[r];
          var inSel = selected >= 0 && (selPast[r] || r === selected) && selPast[s];
          ctx.globalAlpha = h && E.hl[r] === 2 || inSel ? 1 : dense;
          ctx.strokeStyle = h ? (E.hl[r] === 2 ? HL_BAD : HL_CTX)
            : (dim && anyHl ? "rgba(90,103,120,.12)" : "rgba(90,103,120,.55)");
          if (inSel) ctx.strokeStyle = SEL;
          ctx.fillStyle = ctx.strokeStyle;
          ctx.lineWidth = h || inSel ? 1.6 : 1;
          ctx.beginPath(); ctx.moveTo(x1, y1); ctx.lineTo(x2, y2); ctx.stroke();
          if (heads) {
            var ang = Math.atan2(y2 - y1, x2 - x1), hs = 6;
            ctx.beginPath(); ctx.moveTo(x2, y2);
            ctx.lineTo(x2 - hs * Math.cos(ang - 0.4), y2 - hs * Math.sin(ang - 0.4));
            ctx.lineTo(x2 - hs * Math.cos(ang + 0.4), y2 - hs * Math.sin(ang + 0.4));
            ctx.closePath(); ctx.fill();
          }
          if (labels && (h || visible.length < 80) && Math.abs(x2 - x1) + Math.abs(y2 - y1) > 70) {
            queue.push([h ? 1 : 3, G.types[A.ty[a]], (x1 + x2) / 2 + 3, (y1 + y2) / 2 - 2,
              h ? (E.hl[r] === 2 ? HL_BAD : HL_CTX) : (dim && anyHl ? "rgba(74,85,104,.35)" : "#4a5568")]);
          }
        });
        ctx.globalAlpha = 1;
        // dropped messages: a dashed stub towards the destination and a cross
        var Dr = G.drops, nDrop = 0;
        for (var d0 = 0; d0 < Dr.s.length; d0++) if (c[Dr.s[d0]] >= v0 && c[Dr.s[d0]] <= v1) nDrop++;
        ctx.setLineDash([3, 3]);
        ctx.globalAlpha = Math.min(1, Math.max(0.15, 150 / Math.max(1, nDrop)));
        for (var d = 0; d < Dr.s.length; d++) {
          var si = Dr.s[d]; if (c[si] < v0 || c[si] > v1) continue;
          var sx = px(c[si]), sy = rowY(laneRow[E.lane[si]]);
          var ty = rowY(laneRow[Dr.to[d]]), ex = sx + 20, ey = sy + (ty - sy) * 0.4;
          ctx.strokeStyle = dim && anyHl && !E.hl[si] ? "rgba(197,48,48,.15)" : "rgba(197,48,48,.7)";
          ctx.lineWidth = 1;
          ctx.beginPath(); ctx.moveTo(sx, sy); ctx.lineTo(ex, ey); ctx.stroke();
          ctx.setLineDash([]);
          ctx.beginPath(); ctx.moveTo(ex - 3, ey - 3); ctx.lineTo(ex + 3, ey + 3);
          ctx.moveTo(ex - 3, ey + 3); ctx.lineTo(ex + 3, ey - 3); ctx.stroke();
          ctx.setLineDash([3, 3]);
        }
        ctx.setLineDash([]);
        ctx.globalAlpha = 1;
      }
      // events
      var drawnLanes = 0, drawnHl = 0, drawnEv = 0;
      rows.forEach(function (r) {
        if (r.type !== "node") return;
        drawnLanes++;
        var a = laneEv[r.lane], y = rowY(r);
        var lo = lowerBound(a, c, v0 - 1e-9), hi = lowerBound(a, c, v1 + 1e-9);
        var withLabels = !r.collapsed && r.h > 20 && (hi - lo) < plotW / 12;
        var last = -1e9, labelEnd = -1e9;
        for (var q = lo; q < hi; q++) {
          var e = a[q];
          if (!kindOn[E.k[e]]) continue;
          var x = px(c[e]), hl = E.hl[e];
          if (!hl && x - last < 1.2 && e !== selected) continue;
          last = x; drawnEv++;
          var rad = r.collapsed ? 2 : (hl === 2 ? 6.5 : 4);
          ctx.globalAlpha = dim && anyHl && !hl ? 0.22 : 1;
          ctx.fillStyle = hl === 2 ? HL_BAD : hl === 1 ? HL_CTX : KCOL[E.k[e]] || "#4a5568";
          ctx.beginPath(); ctx.arc(x, y, rad, 0, 6.2832); ctx.fill();
          if (hl) {
            drawnHl++;
            ctx.strokeStyle = hl === 2 ? "#742a2a" : "#9c4221"; ctx.lineWidth = 1.3; ctx.stroke();
            if (hl === 2 && !r.collapsed) {
              ctx.strokeStyle = "rgba(229,62,62,.45)"; ctx.lineWidth = 3;
              ctx.beginPath(); ctx.arc(x, y, rad + 4, 0, 6.2832); ctx.stroke();
            }
          }
          if (e === selected) {
            ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
            ctx.beginPath(); ctx.arc(x, y, rad + 3, 0, 6.2832); ctx.stroke();
          } else if (selected >= 0 && selPast[e]) {  // what the selected event could know
            ctx.strokeStyle = SEL; ctx.lineWidth = 1.8;
            ctx.beginPath(); ctx.arc(x, y, rad + 2, 0, 6.2832); ctx.stroke();
          }
          if (withLabels && x > labelEnd) {
            queue.push([hl === 2 ? 0 : 2, E.lab[e], x + 5, y - 7, hl === 2 ? HL_BAD : "#2d3748"]);
            labelEnd = x + 10 + ctx.measureText(E.lab[e]).width;
          }
          ctx.globalAlpha = 1;
        }
      });
      // client operations
      for (var o = 0; o < NOPS; o++) {
        var r0 = cx0[o], r1 = cx1[o];
        if (r1 < v0 || r0 > v1) continue;
        var row = opRow[OPS.lane[o]];
        var xa = px(r0), xb = OPS.open[o] ? plotR + 5 : Math.max(px(r1), xa + 3);
        var bh = row.collapsed ? 5 : 12, by = rowY(row) - bh / 2;
        ctx.globalAlpha = dim && anyHl && !OPS.hl[o] ? 0.3 : 1;
        ctx.fillStyle = OPCOL[OPS.st[o]] || "#a0aec0";
        ctx.fillRect(xa, by, xb - xa, bh);
        if (OPS.hl[o]) {
          ctx.strokeStyle = OPS.hl[o] === 2 ? HL_BAD : "#2d3748";
          ctx.lineWidth = OPS.hl[o] === 2 ? 2.5 : 1;
          ctx.strokeRect(xa, by, xb - xa, bh);
        }
        if (o === selectedOp) {
          ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.strokeRect(xa - 2, by - 2, xb - xa + 4, bh + 4);
        }
        if (!row.collapsed && xb - xa > 40) {
          var txt = OPS.text[o].replace(/^p\d+ /, "");
          ctx.fillStyle = "#1a202c"; ctx.font = "10px system-ui, sans-serif";
          var room = xb - xa - 6;
          if (ctx.measureText(txt).width > room) {
            while (txt.length > 3 && ctx.measureText(txt + "…").width > room) txt = txt.slice(0, -1);
            txt += "…";
          }
          ctx.fillText(txt, xa + 3, by + bh - 2.5);
          ctx.font = "11px system-ui, sans-serif";
        }
        ctx.globalAlpha = 1;
      }
      ctx.font = "11px system-ui, sans-serif";
      queue.sort(function (p, q) { return p[0] - q[0]; });
      queue.forEach(function (l) { if (place(l[1], l[2], l[3])) text(l[1], l[2], l[3], l[4]); });
      ctx.restore();
      // lane labels
      ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, LABEL_W, H);
      rows.forEach(function (r) {
        ctx.fillStyle = r.type === "op" ? "#f1f3f6" : r.type === "faults" ? "#f1f3f6" : "#e9edf3";
        ctx.fillRect(0, r.y, LABEL_W - 4, r.h - 1);
        ctx.fillStyle = r.type === "node" ? "#1a202c" : "#4a5568";
        ctx.font = (r.type === "node" ? "600 12px" : "11px") + " system-ui, sans-serif";
        if (r.h >= 12) ctx.fillText((r.collapsed ? "▸ " : "▾ ") + r.name, 8, rowY(r) + 4);
        else { ctx.font = "8px system-ui, sans-serif"; ctx.fillText("▸ " + r.name, 8, r.y + r.h - 1); }
      });
      ctx.font = "11px system-ui, sans-serif";
      // axis
      var step = niceStep(v1 - v0, Math.max(2, plotW / 110));
      if (axis === "x") step = Math.max(1, step);
      ctx.fillStyle = "#fff"; ctx.fillRect(0, bottom, W, AXIS_H);
      ctx.strokeStyle = "#a0aec0"; ctx.beginPath(); ctx.moveTo(LABEL_W, bottom + 0.5);
      ctx.lineTo(plotR, bottom + 0.5); ctx.stroke();
      ctx.fillStyle = "#4a5568";
      for (var tv = Math.ceil(v0 / step) * step; tv <= v1; tv += step) {
        var tx = px(tv);
        ctx.beginPath(); ctx.moveTo(tx + 0.5, bottom); ctx.lineTo(tx + 0.5, bottom + 5); ctx.stroke();
        var lab = axis === "x" ? String(Math.round(tv)) : (Math.round(tv * 100) / 100) + " ms";
        ctx.fillText(lab, tx + 3, bottom + 16);
      }
      ctx.fillStyle = "#fff"; ctx.fillRect(0, bottom, LABEL_W - 2, AXIS_H);
      ctx.fillStyle = "#718096";
      ctx.fillText(axis === "t" ? "time (ms) →" : N ? "HB order →" : "history order →", 8, bottom + 16);
      setStatus("lanes", G.lanes.length);
      setStatus("oplanes", G.oplanes.length);
      setStatus("rows", drawnLanes);
      setStatus("events", N);
      setStatus("drawn-events", drawnEv);
      setStatus("highlighted", nHl);
      setStatus("drawn-highlighted", drawnHl);
      setStatus("offending", G.counts.offending);
      setStatus("offending-ops", nBadOps);
      setStatus("axis", axis);
      setStatus("selected-past", selected >= 0 ? selPast.reduce(function (a, b) { return a + b; }, 0) : -1);
      setStatus("collapsed", rows.filter(function (r) { return r.collapsed; }).length);
      setStatus("height", H);
      setStatus("view", (Math.round(v0 * 1000) / 1000) + ".." + (Math.round(v1 * 1000) / 1000));
      setStatus("draw-ms", Math.round(performance.now() - started));
      syncInputs();
    }

    var pending = false;
    function redraw() {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; try { draw(); } catch (e) { fail(e.stack || e); } });
    }

    // controls
    var inFrom = document.getElementById("hb-from"), inTo = document.getElementById("hb-to");
    function syncInputs() {
      inFrom.value = Math.round(v0 * 1000) / 1000; inTo.value = Math.round(v1 * 1000) / 1000;
    }
    function setView(a, b) {
      var ext = extent();
      if (!(b > a)) return;
      var span = Math.max(b - a, axis === "x" ? 2 : 1e-3);
      a = Math.max(-ext * 0.02, a); b = a + span;
      if (b > ext * 1.02) { b = ext * 1.02; a = Math.max(-ext * 0.02, b - span); }
      v0 = a; v1 = b; redraw();
    }
    function fit() { var ext = extent(); v0 = -ext * 0.01; v1 = ext * 1.01; redraw(); }
    function zoomToViolation() {
      var c = E[axis], lo = Infinity, hi = -Infinity;
      for (var k = 0; k < N; k++) if (E.hl[k] === 2) { lo = Math.min(lo, c[k]); hi = Math.max(hi, c[k]); }
      var o0 = axis === "x" ? OPS.x0 : OPS.t0, o1 = axis === "x" ? OPS.x1 : OPS.t1;
      for (k = 0; k < NOPS; k++) if (OPS.hl[k] === 2) { lo = Math.min(lo, o0[k]); hi = Math.max(hi, o1[k]); }
      if (lo === Infinity) { fit(); return; }
      var pad = Math.max((hi - lo) * 0.35, axis === "x" ? 8 : 5);
      setView(lo - pad, hi + pad);
    }
    document.getElementById("hb-apply").addEventListener("click", function () {
      setView(parseFloat(inFrom.value), parseFloat(inTo.value));
    });
    [inFrom, inTo].forEach(function (el) {
      el.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter") setView(parseFloat(inFrom.value), parseFloat(inTo.value));
      });
    });
    document.getElementById("hb-fit").addEventListener("click", fit);
    document.getElementById("hb-zoomv").addEventListener("click", zoomToViolation);
    document.getElementById("hb-axis").addEventListener("change", function (ev) {
      var ext0 = extent(), f0 = v0 / ext0, f1 = v1 / ext0;
      axis = ev.target.value; sortLanes();
      var ext1 = extent(); v0 = f0 * ext1; v1 = f1 * ext1; redraw();
    });
    document.getElementById("hb-arrows").addEventListener("change", function (ev) {
      showArrows = ev.target.checked; redraw();
    });
    document.getElementById("hb-dim").addEventListener("change", function (ev) {
      dim = ev.target.checked; redraw();
    });
    var kinds = document.getElementById("hb-kinds");
    Object.keys(G.kinds).forEach(function (k) {
      var lab = document.createElement("label");
      var cb = document.createElement("input");
      cb.type = "checkbox"; cb.checked = kindOn[k];
      cb.addEventListener("change", function () { kindOn[k] = cb.checked; redraw(); });
      var sw = document.createElement("span"); sw.className = "sw"; sw.style.background = KCOL[k] || "#4a5568";
      lab.appendChild(cb); lab.appendChild(sw); lab.appendChild(document.createTextNode(G.kinds[k]));
      kinds.appendChild(lab);
    });

    // mouse: wheel zooms around the pointer, drag pans, click selects, label click collapses
    canvas.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var rect = canvas.getBoundingClientRect(), mx = ev.clientX - rect.left;
      if (mx < LABEL_W) return;
      var at = unpx(mx), f = Math.pow(1.0015, ev.deltaY);
      setView(at - (at - v0) * f, at + (v1 - at) * f);
    }, { passive: false });
    var drag = null;
    canvas.addEventListener("mousedown", function (ev) {
      var rect = canvas.getBoundingClientRect();
      drag = { x: ev.clientX - rect.left, y: ev.clientY - rect.top, v0: v0, v1: v1, moved: false,
        brush: ev.shiftKey, bx: ev.clientX - rect.left };
    });
    window.addEventListener("mousemove", function (ev) {
      var rect = canvas.getBoundingClientRect(), mx = ev.clientX - rect.left, my = ev.clientY - rect.top;
      if (drag) {
        var dx = mx - drag.x;
        if (Math.abs(dx) > 3) { drag.moved = true; canvas.classList.add("dragging"); }
        if (drag.moved && drag.brush) {  // shift-drag: select a range to zoom into
          drag.bx = mx; draw();
          ctx.fillStyle = "rgba(43,108,176,.15)"; ctx.strokeStyle = "rgba(43,108,176,.8)";
          ctx.lineWidth = 1;
          var bx0 = Math.min(drag.x, mx), bw = Math.abs(mx - drag.x);
          ctx.fillRect(bx0, 0, bw, H - AXIS_H); ctx.strokeRect(bx0 + 0.5, 0.5, bw, H - AXIS_H - 1);
        } else if (drag.moved) {
          var dv = dx / plotW * (drag.v1 - drag.v0);
          v0 = drag.v0 - dv; v1 = drag.v1 - dv; redraw();
        }
        return;
      }
      if (mx < 0 || my < 0 || mx > W || my > H) { tip.style.display = "none"; return; }
      var hit = pick(mx, my);
      if (hit) {
        tip.textContent = hit.text; tip.style.display = "block";
        tip.style.left = Math.min(mx + 14, W - 380) + "px"; tip.style.top = (my + 14) + "px";
      } else tip.style.display = "none";
    });
    window.addEventListener("mouseup", function (ev) {
      if (!drag) return;
      var was = drag; drag = null; canvas.classList.remove("dragging");
      if (was.moved && was.brush) {
        var a = unpx(Math.max(LABEL_W, Math.min(was.x, was.bx)));
        var b = unpx(Math.max(was.x, was.bx));
        setView(a, b); return;
      }
      if (was.moved) return;
      if (was.x < LABEL_W) {
        var r = rowAt(was.y);
        if (r) { r.collapsed = !r.collapsed; resize(); redraw(); }
        return;
      }
      var hit = pick(was.x, was.y);
      selected = hit && hit.ev !== undefined ? hit.ev : -1;
      selectedOp = hit && hit.op !== undefined ? hit.op : -1;
      var more = selected >= 0 ? "\n" + causalPast(selected) : "";
      info.textContent = hit ? hit.text + more : "Click an event or an operation for its details.";
      redraw();
    });
    canvas.addEventListener("dblclick", fit);
    canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
    function rowAt(y) {
      for (var k = 0; k < rows.length; k++) if (y >= rows[k].y && y < rows[k].y + rows[k].h) return rows[k];
      return null;
    }
    function pick(mx, my) {
      var r = rowAt(my), c = E[axis];
      if (!r || mx < LABEL_W) return null;
      if (r.type === "node") {
        var a = laneEv[r.lane], lo = lowerBound(a, c, unpx(mx - 7)), hi = lowerBound(a, c, unpx(mx + 7));
        var best = -1, bd = 8;
        for (var q = lo; q < hi; q++) {
          if (!kindOn[E.k[a[q]]]) continue;
          var dd = Math.abs(px(c[a[q]]) - mx); if (dd < bd) { bd = dd; best = a[q]; }
        }
        if (best < 0) return null;
        var tag = E.hl[best] === 2 ? "  [VIOLATION]" : E.hl[best] === 1 ? "  [causal past of the violation]" : "";
        var pos = axis === "x" ? "HB x=" + c[best] + ", t=" + E.t[best] + " ms" : "t=" + c[best] + " ms, HB x=" + E.x[best];
        return { ev: best, text: E.det[best] + "\n" + pos + tag };
      }
      if (r.type === "op") {
        var o0 = axis === "x" ? OPS.x0 : OPS.t0, o1 = axis === "x" ? OPS.x1 : OPS.t1, at = unpx(mx);
        for (var o = 0; o < NOPS; o++) {
          if (OPS.lane[o] !== r.lane) continue;
          if (o0[o] <= at && (OPS.open[o] || at <= o1[o] || px(o1[o]) - px(o0[o]) < 3 && Math.abs(px(o0[o]) - mx) < 4)) {
            var t = OPS.hl[o] === 2 ? "  [could not be linearised]" : "";
            return { op: o, text: OPS.text[o] + "\ninvoke t=" + OPS.t0[o] + " ms, complete " +
              (OPS.open[o] ? "never" : "t=" + OPS.t1[o] + " ms") + t };
          }
        }
        return null;
      }
      if (r.type === "faults") {
        var fx0 = axis === "x" ? "x0" : "t0", fx1 = axis === "x" ? "x1" : "t1";
        var frow = Math.floor((my - 4) / FROW);
        for (var k = G.faults.length - 1; k >= 0; k--) {
          var f = G.faults[k], xa = px(f[fx0]), xb = f.open ? W : Math.max(px(f[fx1]), xa + 3);
          if (fstack[axis].slot[k] === frow && mx >= xa - 2 && mx <= xb + 2) {
            return { text: "fault: " + f.text + (f.undo ? "\nundone by: " + f.undo : f.open ? "\nstill in force at the end" : "") +
              (f.error ? "\nerror: " + f.error : "") + "\nt=" + f.t0 + " ms .. " + (f.open ? "end" : f.t1 + " ms") };
          }
        }
      }
      return null;
    }
    window.addEventListener("resize", function () { resize(); redraw(); });
    // the URL's hash may pick the view: #axis=t&from=10&to=20&dim=1&violation=1
    var hash = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var p = kv.split("="); if (p[0]) hash[decodeURIComponent(p[0])] = decodeURIComponent(p[1] || "");
    });
    if (hash.axis === "t") { axis = "t"; document.getElementById("hb-axis").value = "t"; sortLanes(); }
    if (hash.dim === "1") { dim = true; document.getElementById("hb-dim").checked = true; }
    (hash.collapse || "").split(",").forEach(function (name) {
      rows.forEach(function (r) { if (name && (r.name === name || r.name === "op " + name)) r.collapsed = true; });
    });
    (hash.hide || "").split(",").forEach(function (name) {
      Object.keys(G.kinds).forEach(function (k) { if (G.kinds[k] === name) kindOn[k] = false; });
    });
    Array.prototype.forEach.call(kinds.querySelectorAll("input"), function (cb, n) {
      cb.checked = kindOn[Object.keys(G.kinds)[n]];
    });
    resize();
    fit();
    if (hash.violation === "1") zoomToViolation();
    if (hash.select !== undefined && +hash.select >= 0 && +hash.select < N) {
      selected = +hash.select; info.textContent = E.det[selected] + "\n" + causalPast(selected);
    }
    if (hash.from !== undefined && hash.to !== undefined) setView(parseFloat(hash.from), parseFloat(hash.to));
    draw();
    setStatus("ready", errors.length ? 0 : 1);
    if (!errors.length) {
      status.textContent = "diagram: " + G.lanes.length + " lanes, " + N + " events, " +
        G.arrows.s.length + " messages, " + G.faults.length + " faults, " + NOPS + " ops; " +
        nHl + " highlighted events, " + nBadOps + " unlinearisable ops";
    }
  }
})();
"""
