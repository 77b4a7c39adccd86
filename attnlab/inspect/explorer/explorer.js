// The attention explorer's script: reads the JSON in #attnlab-data and draws the page with
// textContent only (never as markup), so tokens never run. attnlab/inspect/html.py
// embeds it in explorer.html; numbers arrive as integers (thousandths; scores in hundredths).
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("attnlab-data").textContent);
  var NUMERIC = ["probs", "scores", "vNorm", "fNorm", "x", "xNorm", "q", "k", "v", "ctx", "headOut",
                 "rollout"];
  function scaled(a, f) {
    return Array.isArray(a) ? a.map(function (b) { return scaled(b, f); }) : (a === null ? null : a / f);
  }
  DATA.stacks.forEach(function (s) {
    NUMERIC.forEach(function (name) {
      if (s[name]) { s[name] = scaled(s[name], (s.scales && s.scales[name]) || s.scale || 1); }
    });
  });
  var state = { stack: 0, layer: 0, head: 0, token: 0, key: -1, view: "weight" };

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function fmt(x, d) {
    if (x === null || x === undefined) { return "masked"; }
    return Number(x).toFixed(d === undefined ? 3 : d);
  }
  function vec(a, total) {
    var s = "[" + a.map(function (x) { return fmt(x, 3); }).join(", ");
    return s + (total > a.length ? ", \u2026]" : "]");
  }
  function shown(t) {
    return String(t).replace(/ /g, "\u00b7").replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5");
  }
  function stack() { return DATA.stacks[state.stack]; }
  function matrix(s) {
    if (state.view === "rollout" && s.rollout) { return s.rollout; }
    if (state.view === "weighted") { return weighted(s, state.layer, state.head); }
    return s.probs[state.layer][state.head];
  }
  // ||alpha_ij v_j W_O^(h)|| = alpha_ij ||v_j W_O^(h)|| (alpha >= 0): rebuilt here, not shipped.
  function weighted(s, l, h) {
    var f = s.fNorm[l][h];
    return s.probs[l][h].map(function (row) { return row.map(function (a, j) { return a * f[j]; }); });
  }
  function shade(v, max) {
    var a = max > 0 ? Math.max(0, Math.min(1, v / max)) : 0;
    return ["rgba(33,102,172," + (0.06 + 0.94 * a).toFixed(3) + ")", a > 0.55 ? "#fff" : "#111"];
  }
  function clamp(v, n) { v = parseInt(v, 10); return isNaN(v) ? 0 : Math.max(0, Math.min(n - 1, v)); }
  function options(select, n, label) {
    select.textContent = "";
    for (var i = 0; i < n; i++) {
      var o = el("option", null, label(i)); o.value = String(i); select.appendChild(o);
    }
  }

  function readHash() {
    var params = {};
    String(location.hash || "").replace(/^#/, "").split("&").forEach(function (kv) {
      var p = kv.split("="); if (p[0]) { params[decodeURIComponent(p[0])] = decodeURIComponent(p[1] || ""); }
    });
    if (params.stack !== undefined) {
      var byKind = DATA.stacks.map(function (s) { return s.kind; }).indexOf(params.stack);
      state.stack = byKind >= 0 ? byKind : clamp(params.stack, DATA.stacks.length);
    }
    var s = stack();
    if (params.layer !== undefined) { state.layer = clamp(params.layer, s.layers); }
    if (params.head !== undefined) { state.head = clamp(params.head, s.heads); }
    if (params.token !== undefined) { state.token = clamp(params.token, s.queryTokens.length); }
    if (["weight", "weighted", "rollout"].indexOf(params.view) >= 0) { state.view = params.view; }
  }
  function writeHash() {
    var h = "#stack=" + stack().kind + "&layer=" + state.layer + "&head=" + state.head +
      "&token=" + state.token + "&view=" + state.view;
    try { history.replaceState(null, "", h); } catch (e) { /* a file:// context may refuse; no harm */ }
  }

  function setupControls() {
    var stackSel = $("stack");
    stackSel.textContent = "";
    DATA.stacks.forEach(function (s, i) {
      var o = el("option", null, s.label); o.value = String(i); stackSel.appendChild(o);
    });
    stackSel.addEventListener("change", function () {
      state.stack = clamp(stackSel.value, DATA.stacks.length);
      var s = stack();
      state.layer = Math.min(state.layer, s.layers - 1); state.head = Math.min(state.head, s.heads - 1);
      state.token = Math.min(state.token, s.queryTokens.length - 1); state.key = -1;
      fillLayerHead(); render();
    });
    $("layer").addEventListener("change", function () {
      state.layer = clamp($("layer").value, stack().layers); render();
    });
    $("head").addEventListener("change", function () {
      state.head = clamp($("head").value, stack().heads); render();
    });
    $("view").addEventListener("change", function () { state.view = $("view").value; render(); });
  }
  function fillLayerHead() {
    var s = stack();
    options($("layer"), s.layers, function (i) { return String(i); });
    options($("head"), s.heads, function (i) { return String(i); });
  }

  function renderMeta() {
    var s = stack();
    var parts = [];
    if (DATA.title) { parts.push(DATA.title); }
    if (DATA.text) { parts.push("text: " + DATA.text); }
    parts.push(s.label + ": " + s.layers + " layers \u00d7 " + s.heads + " heads, d_model " + s.dModel +
      ", d_head " + s.dHead +
      (s.kvGroup > 1 ? ", " + s.kvGroup + " query heads share each key/value head" : ""));
    if (s.totalKey > s.keyTokens.length || s.totalQuery > s.queryTokens.length) {
      parts.push("showing the first " + s.queryTokens.length + " of " + s.totalQuery + " tokens");
    }
    (DATA.notes || []).forEach(function (n) { parts.push(n); });
    $("meta").textContent = parts.join("\n");
  }

  function renderStrip(s, m) {
    var q = $("queries"); q.textContent = "";
    s.queryTokens.forEach(function (t, i) {
      var span = el("span", "tok" + (i === state.token ? " sel" : ""));
      span.appendChild(el("span", null, shown(t)));
      span.setAttribute("data-i", String(i));
      span.title = "query " + i;
      span.addEventListener("mouseenter", function () {
        if (state.token !== i) { state.token = i; state.key = -1; render(); }
      });
      span.addEventListener("click", function () { state.token = i; render(); });
      q.appendChild(span);
    });
    var row = m[state.token] || [];
    var max = Math.max.apply(null, row.concat([0]));
    var k = $("keys"); k.textContent = "";
    var maskedRow = state.view === "rollout" ? [] : s.scores[state.layer][state.head][state.token];
    s.keyTokens.forEach(function (t, j) {
      var v = row[j] || 0;
      var span = el("span", maskedRow[j] === null ? "tok masked" : "tok");
      var c = shade(v, max);
      span.style.background = c[0]; span.style.color = c[1];
      span.setAttribute("data-j", String(j));
      span.appendChild(el("span", null, shown(t)));
      span.appendChild(el("small", null, fmt(v, 2)));
      span.addEventListener("mouseenter", function () { state.key = j; renderPipeline(); });
      k.appendChild(span);
    });
    $("keys-label").textContent = (state.view === "rollout" ? "rolled-out sources of " :
      state.view === "weighted" ? "value-weighted contributions to " : "attention weights of ") +
      "\u201c" + shown(s.queryTokens[state.token]) + "\u201d over the key tokens:";
  }

  function renderMap(s, m) {
    var table = $("map"); table.textContent = "";
    var max = 0; m.forEach(function (r) { r.forEach(function (v) { if (v > max) { max = v; } }); });
    if (state.view === "weight") { max = 1; }
    var head = el("thead"); var hr = el("tr"); hr.appendChild(el("th"));
    s.keyTokens.forEach(function (t) { hr.appendChild(el("th", null, shown(t))); });
    head.appendChild(hr); table.appendChild(head);
    var body = el("tbody");
    m.forEach(function (r, i) {
      var tr = el("tr", i === state.token ? "sel" : null);
      tr.appendChild(el("th", null, shown(s.queryTokens[i])));
      r.forEach(function (v, j) {
        var td = el("td"); td.style.background = shade(v, max)[0];
        td.title = shown(s.queryTokens[i]) + " \u2192 " + shown(s.keyTokens[j]) + ": " + fmt(v, 3);
        td.addEventListener("mouseenter", function () {
          state.key = j;
          if (state.token !== i) { state.token = i; render(); } else { renderPipeline(); }
        });
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
    var what = state.view === "rollout" ? "attention rollout through all " + s.layers + " layers" :
      (state.view === "weighted" ? "value-weighted attention" : "attention weights") +
      " \u2014 layer " + state.layer + ", head " + state.head;
    $("map-title").textContent = what + " (rows: queries, columns: keys)";
  }

  function renderReceives(s) {
    var i = state.token, l = state.layer, h = state.head;
    var probs = s.probs[l][h][i], contrib = weighted(s, l, h)[i];
    var total = contrib.reduce(function (a, b) { return a + b; }, 0) || 1;
    var order = probs.map(function (_, j) { return j; });
    order.sort(function (a, b) { return probs[b] - probs[a]; });
    var table = $("receives"); table.textContent = "";
    var hr = el("tr");
    ["key token j", "\u03b1_ij", "\u2016v_j\u2016", "\u2016v_j W_O\u2016", "\u2016\u03b1_ij v_j W_O\u2016",
     "share"].forEach(function (t) { hr.appendChild(el("th", null, t)); });
    var head = el("thead"); head.appendChild(hr); table.appendChild(head);
    var body = el("tbody");
    var masked = s.scores[l][h][i];
    order.forEach(function (j) {
      if (masked[j] === null) { return; }  // a masked key (the future, or padding) gives nothing
      var tr = el("tr"); tr.setAttribute("data-j", String(j));
      tr.appendChild(el("td", "t", shown(s.keyTokens[j])));
      tr.appendChild(el("td", null, fmt(probs[j])));
      tr.appendChild(el("td", null, fmt(s.vNorm[l][h][j])));
      tr.appendChild(el("td", null, fmt(s.fNorm[l][h][j])));
      tr.appendChild(el("td", null, fmt(contrib[j])));
      var share = contrib[j] / total, td = el("td");
      var bar = el("span", "bar"); bar.style.width = Math.round(80 * share) + "px";
      td.appendChild(bar); td.appendChild(document.createTextNode(" " + (100 * share).toFixed(0) + "%"));
      tr.appendChild(td);
      body.appendChild(tr);
    });
    table.appendChild(body);
    $("receives-title").textContent = "what \u201c" + shown(s.queryTokens[i]) + "\u201d receives in layer " +
      l + ", head " + h;
  }

  function renderPipeline() {
    var s = stack(), i = state.token, l = state.layer, h = state.head;
    var p = $("pipeline"); p.textContent = "";
    var tok = shown(s.queryTokens[i]);
    p.appendChild(el("h2", null, "The Q/K/V pipeline for \u201c" + tok + "\u201d (query " + i + "), layer " +
      l + ", head " + h));
    var cross = s.kind === "cross";
    var probsRow = s.probs[l][h][i];
    var j = state.key >= 0 ? state.key : probsRow.indexOf(Math.max.apply(null, probsRow));
    var kt = "\u201c" + shown(s.keyTokens[j]) + "\u201d";
    var flow = el("div", "flow");
    flow.setAttribute("id", "flow");
    var boxes = [
      ["x_i", "input of the attention, \u2016x_i\u2016 = " + fmt(s.xNorm[l][i]),
        vec(s.x[l][i].slice(0, 3), s.dModel)],
      ["q_i", "= x_i W_Q" + (s.bias ? " + b_Q" : ""), vec(s.q[l][h][i].slice(0, 3), s.dHead)],
      ["k_j, j = " + kt, cross ? "= m_j W_K (encoder output)" : "= x_j W_K" + (s.bias ? " + b_K" : ""),
        vec(s.k[l][h][j].slice(0, 3), s.dHead)],
      ["s_ij", "= q_i \u00b7 k_j / \u221a" + s.dHead, fmt(s.scores[l][h][i][j], 2)],
      ["\u03b1_ij", "= softmax_j(s_ij)", fmt(probsRow[j])],
      ["v_j, j = " + kt, cross ? "= m_j W_V (encoder output)" : "= x_j W_V" + (s.bias ? " + b_V" : ""),
        vec(s.v[l][h][j].slice(0, 3), s.dHead)],
      ["context_i", "= \u03a3_j \u03b1_ij v_j", vec(s.ctx[l][h][i].slice(0, 3), s.dHead)],
      ["context_i W_O^(" + h + ")", "this head's share of the output",
        "\u2016\u00b7\u2016 = " + fmt(s.headOut[l][h][i])],
    ];
    boxes.forEach(function (bx, n) {
      if (n > 0) { flow.appendChild(el("span", "arrow", "\u2192")); }
      var box = el("div", "box");
      box.appendChild(el("b", null, bx[0])); box.appendChild(el("span", "f", bx[1]));
      box.appendChild(el("code", null, bx[2])); flow.appendChild(box);
    });
    p.appendChild(flow);
    var steps = [
      ["x_i, the input of the attention (" + s.dims + " of " + s.dModel + " dims, \u2016x_i\u2016 = " +
        fmt(s.xNorm[l][i]) + "): ", vec(s.x[l][i], s.dModel)],
      ["q_i = x_i W_Q" + (s.bias ? " + b_Q" : "") + " (head " + h + ", " + s.dims + " of " + s.dHead +
        " dims): ",
        vec(s.q[l][h][i], s.dHead)],
      [cross ? "k_j, v_j come from the encoder output (the memory): k_j = m_j W_K, v_j = m_j W_V" +
        (s.bias ? " + biases" : "") + "." :
        "k_j = x_j W_K" + (s.bias ? " + b_K" : "") + " and v_j = x_j W_V" + (s.bias ? " + b_V" : "") +
        " for every key token j (below)" + (s.kvGroup > 1 ? "; key/value head " + Math.floor(h / s.kvGroup) +
        " is shared by " + s.kvGroup + " query heads" : "") + ".", ""],
      ["s_ij = q_i \u00b7 k_j / \u221a" + s.dHead +
        ", then \u03b1_ij = softmax_j(s_ij): the weights sum to 1.", ""],
    ];
    steps.forEach(function (st) {
      var d = el("div", "step"); d.appendChild(document.createTextNode(st[0]));
      if (st[1]) { d.appendChild(el("code", null, st[1])); }
      p.appendChild(d);
    });
    var table = el("table"); var hr = el("tr");
    ["j", "token", "k_j", "s_ij", "\u03b1_ij", "v_j", "\u03b1_ij v_j"].forEach(function (t) {
      hr.appendChild(el("th", null, t));
    });
    var head = el("thead"); head.appendChild(hr); table.appendChild(head);
    var body = el("tbody");
    var probs = s.probs[l][h][i], scores = s.scores[l][h][i];
    s.keyTokens.forEach(function (t, j) {
      if (scores[j] === null) { return; }  // masked: not part of the softmax
      var tr = el("tr", j === state.key ? "hl" : null);
      tr.appendChild(el("td", null, String(j)));
      tr.appendChild(el("td", "t", shown(t)));
      tr.appendChild(el("td", "vec", vec(s.k[l][h][j], s.dHead)));
      tr.appendChild(el("td", null, fmt(scores[j], 2)));
      tr.appendChild(el("td", null, fmt(probs[j])));
      tr.appendChild(el("td", "vec", vec(s.v[l][h][j], s.dHead)));
      tr.appendChild(el("td", "vec", vec(s.v[l][h][j].map(function (x) { return x * probs[j]; }), s.dHead)));
      body.appendChild(tr);
    });
    table.appendChild(body);
    var scroll = el("div", "scroll"); scroll.appendChild(table); p.appendChild(scroll);
    var ctx = el("div", "step");
    ctx.appendChild(document.createTextNode("context_i = \u03a3_j \u03b1_ij v_j = "));
    ctx.appendChild(el("code", "ctx", vec(s.ctx[l][h][i], s.dHead)));
    p.appendChild(ctx);
    p.appendChild(el("div", "step", "This head's share of the layer's output, context_i W_O^(" + h +
      "), has length " + fmt(s.headOut[l][h][i]) +
      "; the heads' shares add up (with b_O) to the attention output."));
  }

  function render() {
    var s = stack();
    var rollout = state.view === "rollout" && s.rollout;
    if (state.view === "rollout" && !s.rollout) { state.view = "weight"; }
    $("stack").value = String(state.stack); $("layer").value = String(state.layer);
    $("head").value = String(state.head);
    $("view").value = state.view;
    $("head").disabled = !!rollout; $("layer").disabled = !!rollout;
    var m = matrix(s);
    $("status").textContent = s.label + " \u00b7 layer " + state.layer + " \u00b7 head " + state.head +
      " \u00b7 query token " + state.token + " \u201c" + shown(s.queryTokens[state.token]) + "\u201d" +
      (rollout ? " \u00b7 rollout" : "");
    renderMeta(); renderStrip(s, m); renderMap(s, m); renderReceives(s); renderPipeline(); writeHash();
  }

  setupControls();
  readHash();
  fillLayerHead();
  render();
  window.addEventListener("hashchange", function () { readHash(); fillLayerHead(); render(); });
  document.documentElement.setAttribute("data-ready", "1");
})();
