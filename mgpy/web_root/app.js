/* mgpy dashboard.
 *
 * One WebSocket to /ws/push carries everything live: the server pushes a
 * {"type":"stats"} message once a second and rebroadcasts every text message a
 * client sends, which is how the chat works (across worker processes and hosts
 * when the server runs with --redis; the stats say which worker this page talks
 * to and whether the Redis link is up).  The first stats message after
 * connecting also brings the last 60 s of samples (so the chart starts full)
 * and says whether uploads are on; the upload form is disabled, with the
 * server's reason, when they are off.  The socket reconnects on its own
 * with exponential backoff and jitter; the badge in the header shows where it
 * is.  Uploads go over a plain XMLHttpRequest so that upload progress can be
 * shown.  The wire contract is written down in docs/push_protocol.md.
 *
 * Nothing received from the network is ever parsed as HTML: every piece of
 * text reaches the page through textContent.
 */
(function () {
  "use strict";

  const PUSH_PATH = "/ws/push";
  const UPLOAD_PATH = "/upload";
  const BACKOFF_MIN_MS = 500; // first retry delay, doubled after each failure
  const BACKOFF_MAX_MS = 10000;
  const CONNECT_TIMEOUT_MS = 10000; // a handshake that hangs this long is given up
  const SILENCE_TIMEOUT_MS = 10000; // stats come every second; this much silence = dead link
  const CHART_SAMPLES = 60;
  const CHAT_MAX_ITEMS = 200;
  const CHAT_MAX_TEXT = 2000; // characters shown of one incoming message
  const UPLOAD_REPLY_TIMEOUT_MS = 60000; // body fully sent, no answer this long: give up
  const NAME_KEY = "mgpy.chat.name";

  const $ = (id) => document.getElementById(id);

  /* ---- formatting ------------------------------------------------------ */

  const countFmt = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
  const rateFmt = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
  const tickFmt = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
  const BYTE_UNITS = ["KiB", "MiB", "GiB", "TiB", "PiB"];

  /** Return v if it is a usable number, else null. */
  function num(v) {
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  }

  function formatCount(v) {
    v = num(v);
    return v === null ? "–" : countFmt.format(Math.round(v));
  }

  function formatRate(v) {
    v = num(v);
    if (v === null) return "–";
    return v < 100 ? rateFmt.format(v) : countFmt.format(Math.round(v));
  }

  function formatBytes(v) {
    v = num(v);
    if (v === null || v < 0) return "–";
    if (v < 1024) return Math.round(v) + " B";
    let i = -1;
    do {
      v /= 1024;
      i += 1;
    } while (v >= 1023.5 && i < BYTE_UNITS.length - 1); // 1023.6 KiB reads "1.00 MiB", not "1024 KiB"
    const digits = v < 10 ? 2 : v < 100 ? 1 : 0;
    return v.toFixed(digits) + " " + BYTE_UNITS[i];
  }

  function formatByteRate(v) {
    const s = formatBytes(v);
    return s === "–" ? s : s + "/s";
  }

  function formatDuration(v) {
    v = num(v);
    if (v === null || v < 0) return "–";
    const s = Math.floor(v);
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    const p2 = (n) => String(n).padStart(2, "0");
    if (d) return d + "d " + p2(h) + "h " + p2(m) + "m";
    if (h) return h + "h " + p2(m) + "m " + p2(sec) + "s";
    if (m) return m + "m " + p2(sec) + "s";
    return sec + "s";
  }

  function formatClock(date) {
    return date.toLocaleTimeString("en-GB", { hour12: false });
  }

  /** The server's start time: a clock time today, with the date before that. */
  function formatStart(started, now) {
    const sameDay = started.toDateString() === now.toDateString();
    const clock = formatClock(started).slice(0, 5);
    if (sameDay) return formatClock(started);
    return started.toLocaleDateString("en-GB", { day: "numeric", month: "short" }) + " " + clock;
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  const announcer = $("announcer");
  function announce(text) {
    announcer.textContent = text;
  }

  /* ---- connection badge -------------------------------------------------- */

  const badge = $("ws-state");
  const retryButton = $("ws-retry");

  /** Show the link state: data-state is "connecting", "open" or "closed". */
  function setLinkState(state, text) {
    badge.dataset.state = state;
    setText(badge, text);
    retryButton.hidden = state !== "closed";
  }

  /* ---- the /ws/push link ----------------------------------------------- */

  const link = {
    ws: null,
    attempt: 0, // failures since the last successful open
    retryAt: 0,
    retryTimer: 0,
    countdownTimer: 0,
    connectTimer: 0,
    silenceTimer: 0,
  };

  function pushUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + PUSH_PATH;
  }

  function isOpen() {
    return link.ws !== null && link.ws.readyState === WebSocket.OPEN;
  }

  function clearRetry() {
    clearTimeout(link.retryTimer);
    clearInterval(link.countdownTimer);
    link.retryTimer = 0;
    link.countdownTimer = 0;
  }

  function connect() {
    clearRetry();
    if (link.ws) return;
    if (navigator.onLine === false) {
      setLinkState("closed", "offline");
      return;
    }
    setLinkState("connecting", "connecting");
    let ws;
    try {
      ws = new WebSocket(pushUrl());
    } catch (err) {
      // Only an unusable URL gets here (e.g. the page was opened from file://).
      setLinkState("closed", "offline");
      return;
    }
    link.ws = ws;
    link.connectTimer = setTimeout(() => abandon(ws), CONNECT_TIMEOUT_MS);

    ws.onopen = () => {
      clearTimeout(link.connectTimer);
      link.attempt = 0;
      setLinkState("open", "live");
      armSilenceTimer(ws);
      updateChatControls();
      announce("Connected to the server.");
    };
    ws.onmessage = (ev) => {
      armSilenceTimer(ws);
      handleMessage(ev.data);
    };
    ws.onerror = () => {
      /* a close event always follows; it is handled there */
    };
    ws.onclose = () => lost(ws);
  }

  function armSilenceTimer(ws) {
    clearTimeout(link.silenceTimer);
    link.silenceTimer = setTimeout(() => abandon(ws), SILENCE_TIMEOUT_MS);
  }

  /** Give up on a socket now, without waiting for a closing handshake. */
  function abandon(ws) {
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    try {
      ws.close();
    } catch (err) {
      /* already closing */
    }
    lost(ws);
  }

  function lost(ws) {
    if (link.ws !== ws) return;
    const wasOpen = badge.dataset.state === "open";
    link.ws = null;
    clearTimeout(link.connectTimer);
    clearTimeout(link.silenceTimer);
    $("stats").dataset.stale = "true";
    updateChatControls();
    if (wasOpen) announce("Lost the connection to the server. Reconnecting.");
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearRetry();
    if (navigator.onLine === false) {
      setLinkState("closed", "offline");
      return;
    }
    // 0.5 s, 1 s, 2 s, ... capped at 10 s, each spread by +-25 % so that many
    // dashboards do not all come back at the same instant after a restart.
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** link.attempt);
    const delay = Math.min(BACKOFF_MAX_MS, base * (0.75 + Math.random() * 0.5));
    link.attempt = Math.min(link.attempt + 1, 16);
    link.retryAt = Date.now() + delay;
    link.retryTimer = setTimeout(connect, delay);
    showCountdown();
    link.countdownTimer = setInterval(showCountdown, 250);
  }

  function showCountdown() {
    const s = Math.max(1, Math.ceil((link.retryAt - Date.now()) / 1000));
    setLinkState("closed", "reconnecting in " + s + "s");
  }

  function retryNow() {
    if (link.ws) return;
    connect();
  }

  retryButton.addEventListener("click", retryNow);
  window.addEventListener("online", () => {
    link.attempt = 0;
    retryNow();
  });
  window.addEventListener("offline", () => {
    if (!link.ws) {
      clearRetry();
      setLinkState("closed", "offline");
    }
  });
  document.addEventListener("visibilitychange", () => {
    // Background tabs throttle timers; come back at once when looked at again.
    if (document.visibilityState === "visible" && link.retryTimer) retryNow();
  });

  function handleMessage(data) {
    if (typeof data !== "string") return; // binary messages are not part of the contract
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (err) {
      return;
    }
    if (msg === null || typeof msg !== "object" || Array.isArray(msg)) return;
    try {
      if (msg.type === "stats") {
        if (Array.isArray(msg.history)) mergeHistory(msg.history);
        if (msg.upload !== null && typeof msg.upload === "object") setUploadAvailability(msg.upload);
        renderStats(msg);
      }
      else if (msg.type === "chat") addChatMessage(msg, data);
      else if (msg.type === "mqtt") addDeviceValue(msg);
    } catch (err) {
      /* a malformed message must never break the dashboard */
    }
  }

  /* ---- counters ---------------------------------------------------------- */

  const statEls = {
    connections: $("stat-connections"),
    wsClients: $("stat-ws-clients"),
    wsClientsLabel: $("stat-ws-clients-label"),
    rps: $("stat-rps"),
    requests: $("stat-requests"),
    bytesIn: $("stat-bytes-in"),
    inRate: $("stat-in-rate"),
    bytesOut: $("stat-bytes-out"),
    outRate: $("stat-out-rate"),
    wsMps: $("stat-ws-mps"),
    wsMessages: $("stat-ws-messages"),
    uptime: $("stat-uptime"),
    started: $("stat-started"),
    pushRatio: $("stat-push-ratio"),
    served: $("stat-served"),
    redis: $("stat-redis"),
    redisLine: $("stat-redis-line"),
  };

  /** "worker 2 of 4 (pid 1234)" under --workers, else "pid 1234". */
  function formatServed(s) {
    const pid = num(s.pid);
    const w = s.worker;
    const pidText = pid === null ? "" : "pid " + pid;
    if (w !== null && typeof w === "object" && num(w.index) !== null && num(w.count) !== null) {
      return "worker " + (w.index + 1) + " of " + w.count + (pidText ? " (" + pidText + ")" : "");
    }
    return pidText || "–";
  }

  /** The Redis link of --redis: "linked", or "down" with what stayed in this process. */
  function renderRedis(r) {
    const on = r !== null && typeof r === "object";
    statEls.redisLine.hidden = !on;
    if (!on) return;
    const kept = num(r.not_crossed) || 0;
    let text = r.up ? "linked" : "down: chat reaches this worker only";
    if (kept) text += " · " + formatCount(kept) + " kept local";
    statEls.redis.dataset.state = r.up ? "up" : "down";
    setText(statEls.redis, text);
  }

  /** "3.2× smaller" when compression paid off, else "uncompressed". */
  function formatRatio(raw, wire) {
    const r = num(raw);
    const w = num(wire);
    if (r === null || w === null || r <= 0 || w <= 0) return "–";
    if (w >= r) return "uncompressed";
    return rateFmt.format(r / w) + "× smaller";
  }

  let serverStartMs = 0;

  function renderStats(s) {
    setText(statEls.connections, formatCount(s.connections));
    setText(statEls.wsClients, formatCount(s.ws_clients));
    setText(statEls.wsClientsLabel, s.ws_clients === 1 ? "live dashboard" : "live dashboards");
    setText(statEls.rps, formatRate(s.rps));
    setText(statEls.requests, formatCount(s.requests));
    setText(statEls.bytesIn, formatBytes(s.bytes_in));
    setText(statEls.inRate, formatByteRate(s.in_rate));
    setText(statEls.bytesOut, formatBytes(s.bytes_out));
    setText(statEls.outRate, formatByteRate(s.out_rate));
    setText(statEls.wsMps, formatRate(s.ws_mps));
    setText(statEls.wsMessages, formatCount(s.ws_messages));
    setText(statEls.uptime, formatDuration(s.uptime));
    setText(statEls.pushRatio, formatRatio(s.push_raw_bytes, s.push_wire_bytes));
    setText(statEls.served, formatServed(s));
    renderRedis(s.redis);
    const t = num(s.time);
    const up = num(s.uptime);
    if (t !== null && up !== null) {
      // time - uptime wobbles by a few ms between messages; only a real change
      // (a server restart) should move the displayed start time.
      const startMs = (t - up) * 1000;
      if (Math.abs(startMs - serverStartMs) > 2000) serverStartMs = startMs;
      const started = new Date(serverStartMs);
      statEls.started.dateTime = started.toISOString();
      setText(statEls.started, formatStart(started, new Date(t * 1000)));
    }
    $("stats").dataset.stale = "false";
    addSample(num(s.time), num(s.rps) || 0, num(s.ws_mps) || 0);
    drawChart();
  }

  /* ---- chart ------------------------------------------------------------- */

  const chart = {
    canvas: $("chart"),
    summary: $("chart-summary"),
    rps: [],
    mps: [],
    lastTime: null, // server time of the newest sample, when it had one
    frame: 0,
  };

  function addSample(time, rps, mps) {
    chart.rps.push(Math.max(0, rps));
    chart.mps.push(Math.max(0, mps));
    if (time !== null) chart.lastTime = time;
    if (chart.rps.length > CHART_SAMPLES) {
      chart.rps.shift();
      chart.mps.shift();
    }
    describeChart();
  }

  /**
   * Add the server's recent samples (oldest first) that are newer than what the
   * chart shows: a fresh page starts with a full minute, a page that reconnects
   * fills the gap, and samples it already has are not drawn twice.
   */
  function mergeHistory(items) {
    for (const item of items.slice(-CHART_SAMPLES)) {
      if (item === null || typeof item !== "object") continue;
      const t = num(item.time);
      if (t === null || (chart.lastTime !== null && t <= chart.lastTime)) continue;
      addSample(t, num(item.rps) || 0, num(item.ws_mps) || 0);
    }
  }

  /** The chart as text, for screen readers: the latest values and the peaks shown. */
  function describeChart() {
    const n = chart.rps.length;
    if (n === 0) {
      setText(chart.summary, "No samples yet.");
      return;
    }
    const last = n - 1;
    setText(
      chart.summary,
      "Latest: " + formatRate(chart.rps[last]) + " requests per second, " +
        formatRate(chart.mps[last]) + " WebSocket messages per second. Highest over the last " +
        n + (n === 1 ? " second: " : " seconds: ") + formatRate(Math.max(...chart.rps)) +
        " requests per second, " + formatRate(Math.max(...chart.mps)) + " messages per second."
    );
  }

  function scheduleDraw() {
    if (!chart.frame) chart.frame = requestAnimationFrame(drawChart);
  }

  /** Pick a round tick step so that about `ticks` steps cover max. */
  function niceScale(max, ticks) {
    const raw = max / ticks;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
    return { step, top: step * Math.ceil(max / step) };
  }

  /** Return a CSS colour (any syntax the canvas accepts) as rgba() with the given alpha. */
  function withAlpha(ctx, color, alpha) {
    ctx.fillStyle = "#000";
    ctx.fillStyle = color; // the canvas normalises it to #rrggbb or rgba(r, g, b, a)
    const c = String(ctx.fillStyle);
    if (c[0] === "#" && c.length === 7) {
      const rgb = [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
      return "rgba(" + rgb.join(", ") + ", " + alpha + ")";
    }
    const m = c.match(/^rgba?\(([^,]+),([^,]+),([^,)]+)/);
    return m ? "rgba(" + m[1] + "," + m[2] + "," + m[3] + ", " + alpha + ")" : c;
  }

  function drawChart() {
    cancelAnimationFrame(chart.frame);
    chart.frame = 0;
    const canvas = chart.canvas;
    const n = chart.rps.length;
    canvas.dataset.samples = String(n);

    const rect = canvas.getBoundingClientRect();
    const w = rect.width;
    const h = rect.height;
    if (w < 1 || h < 1) return;
    // Size the backing store in device pixels and draw in CSS pixels: crisp on HiDPI.
    const dpr = window.devicePixelRatio || 1;
    const pw = Math.round(w * dpr);
    const ph = Math.round(h * dpr);
    if (canvas.width !== pw || canvas.height !== ph) {
      canvas.width = pw;
      canvas.height = ph;
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);

    const css = getComputedStyle(document.documentElement);
    const color = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
    const rpsColor = color("--chart-rps", "#2563eb");
    const mpsColor = color("--chart-mps", "#d97706");
    const gridColor = color("--chart-grid", "#e5e7eb");
    const axisColor = color("--chart-axis", "#6b7280");
    const fontFamily = getComputedStyle(document.body).fontFamily || "sans-serif";

    // Keep ~10 % headroom above the highest point so peaks do not touch the top.
    const max = Math.max(4, 1.1 * Math.max(...chart.rps, ...chart.mps));
    const { step, top } = niceScale(max, 4);
    const ticks = [];
    for (let i = 0; i * step <= top + step / 2; i += 1) ticks.push(i * step);

    ctx.font = "11px " + fontFamily;
    const labelWidth = Math.max(...ticks.map((v) => ctx.measureText(tickFmt.format(v)).width));
    const padL = Math.ceil(labelWidth) + 10;
    const padR = 6;
    const padT = 8;
    const padB = 22;
    const plotW = Math.max(1, w - padL - padR);
    const plotH = Math.max(1, h - padT - padB);
    const yAt = (v) => padT + plotH - (v / top) * plotH;
    const xAt = (i) => padL + (plotW * (CHART_SAMPLES - n + i)) / (CHART_SAMPLES - 1);

    // Horizontal grid lines with value labels.
    ctx.lineWidth = 1;
    ctx.strokeStyle = gridColor;
    ctx.fillStyle = axisColor;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of ticks) {
      const y = Math.round(yAt(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(padL, y);
      ctx.lineTo(w - padR, y);
      ctx.stroke();
      ctx.fillText(tickFmt.format(v), padL - 8, y);
    }

    // Time axis: oldest sample on the left, newest at "now".
    ctx.textBaseline = "alphabetic";
    const labelY = h - 6;
    ctx.textAlign = "left";
    ctx.fillText("60 s ago", padL, labelY);
    ctx.textAlign = "center";
    ctx.fillText("30 s", padL + plotW / 2, labelY);
    ctx.textAlign = "right";
    ctx.fillText("now", w - padR, labelY);

    if (n === 0) {
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.font = "13px " + fontFamily;
      ctx.fillText("Waiting for data…", padL + plotW / 2, padT + plotH / 2);
      return;
    }

    const series = [
      [chart.mps, mpsColor],
      [chart.rps, rpsColor],
    ];
    for (const [values, stroke] of series) {
      ctx.beginPath();
      values.forEach((v, i) => {
        if (i === 0) ctx.moveTo(xAt(i), yAt(v));
        else ctx.lineTo(xAt(i), yAt(v));
      });
      ctx.lineWidth = 2;
      ctx.lineJoin = "round";
      ctx.lineCap = "round";
      ctx.strokeStyle = stroke;
      ctx.stroke();

      // Soft area under the line, fading towards the baseline.
      ctx.lineTo(xAt(n - 1), yAt(0));
      ctx.lineTo(xAt(0), yAt(0));
      ctx.closePath();
      const fade = ctx.createLinearGradient(0, padT, 0, padT + plotH);
      fade.addColorStop(0, withAlpha(ctx, stroke, 0.22));
      fade.addColorStop(1, withAlpha(ctx, stroke, 0));
      ctx.fillStyle = fade;
      ctx.fill();

      // Mark the newest value.
      ctx.beginPath();
      ctx.arc(xAt(n - 1), yAt(values[n - 1]), 3, 0, 2 * Math.PI);
      ctx.fillStyle = stroke;
      ctx.fill();
    }
  }

  if (typeof ResizeObserver === "function") {
    new ResizeObserver(scheduleDraw).observe(chart.canvas);
  }
  window.addEventListener("resize", scheduleDraw);
  const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");
  if (typeof darkQuery.addEventListener === "function") {
    darkQuery.addEventListener("change", scheduleDraw);
  }

  /* ---- devices (MQTT) ------------------------------------------------------- */

  // {"type":"mqtt","topic":..,"value":number|null,"payload":text,"time":..}: one series
  // per topic with a numeric value, the last 60 s, drawn on their own chart.
  const DEVICE_MAX_TOPICS = 8;
  const DEVICE_COLORS = ["#16a34a", "#dc2626", "#7c3aed", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#2563eb"];
  const devices = {
    panel: $("devices"),
    canvas: $("devices-chart"),
    legend: $("devices-legend"),
    summary: $("devices-summary"),
    series: new Map(), // topic -> {points: [[time, value]], color, item, valueEl}
    frame: 0,
  };

  function addDeviceValue(msg) {
    if (typeof msg.topic !== "string") return;
    const value = num(msg.value);
    const t = num(msg.time);
    if (value === null || t === null) return;
    let s = devices.series.get(msg.topic);
    if (!s) {
      if (devices.series.size >= DEVICE_MAX_TOPICS) return;
      const color = DEVICE_COLORS[devices.series.size % DEVICE_COLORS.length];
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = color;
      swatch.setAttribute("aria-hidden", "true");
      const name = document.createElement("span");
      name.className = "device-topic";
      name.textContent = msg.topic;
      const valueEl = document.createElement("span");
      valueEl.className = "device-value";
      item.append(swatch, name, " ", valueEl);
      item.dataset.topic = msg.topic;
      devices.legend.append(item);
      s = { points: [], color, item, valueEl };
      devices.series.set(msg.topic, s);
      devices.panel.hidden = false;
      devices.canvas.dataset.series = String(devices.series.size);
    }
    s.points.push([t, value]);
    while (s.points.length && s.points[0][0] < t - CHART_SAMPLES) s.points.shift();
    setText(s.valueEl, rateFmt.format(value));
    s.item.dataset.value = String(value);
    const parts = [];
    for (const [topic, ser] of devices.series) {
      parts.push(topic + " " + rateFmt.format(ser.points[ser.points.length - 1][1]));
    }
    setText(devices.summary, "Latest device values: " + parts.join(", ") + ".");
    if (!devices.frame) devices.frame = requestAnimationFrame(drawDevices);
  }

  function drawDevices() {
    devices.frame = 0;
    const canvas = devices.canvas;
    const rect = canvas.getBoundingClientRect();
    const w = rect.width;
    const h = rect.height;
    if (w < 1 || h < 1) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr)) canvas.width = Math.round(w * dpr);
    if (canvas.height !== Math.round(h * dpr)) canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    let lo = Infinity;
    let hi = -Infinity;
    let newest = -Infinity;
    for (const s of devices.series.values()) {
      for (const [t, v] of s.points) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
        newest = Math.max(newest, t);
      }
    }
    if (!isFinite(lo)) return;
    if (hi - lo < 1e-9) {
      hi += 1;
      lo -= 1;
    }
    const pad = 8;
    const xAt = (t) => pad + ((w - 2 * pad) * (t - (newest - CHART_SAMPLES))) / CHART_SAMPLES;
    const yAt = (v) => h - pad - ((h - 2 * pad) * (v - lo)) / (hi - lo);
    for (const s of devices.series.values()) {
      ctx.beginPath();
      s.points.forEach(([t, v], i) => (i ? ctx.lineTo(xAt(t), yAt(v)) : ctx.moveTo(xAt(t), yAt(v))));
      ctx.lineWidth = 2;
      ctx.strokeStyle = s.color;
      ctx.stroke();
      const [lt, lv] = s.points[s.points.length - 1];
      ctx.beginPath();
      ctx.arc(xAt(lt), yAt(lv), 3, 0, 2 * Math.PI);
      ctx.fillStyle = s.color;
      ctx.fill();
    }
  }

  /* ---- chat ---------------------------------------------------------------- */

  const chatForm = $("chat-form");
  const chatName = $("chat-name");
  const chatText = $("chat-text");
  const chatSend = $("chat-send");
  const chatLog = $("chat-log");
  const chatStatus = $("chat-status");
  // What this page sent and has not seen come back yet: the server echoes
  // messages verbatim, so an exact match marks a message as ours.
  const ownPending = [];

  function loadName() {
    try {
      return localStorage.getItem(NAME_KEY) || "";
    } catch (err) {
      return "";
    }
  }

  function saveName(name) {
    try {
      localStorage.setItem(NAME_KEY, name);
    } catch (err) {
      /* storage disabled: the name just is not remembered */
    }
  }

  const defaultName = "guest-" + Math.floor(Math.random() * 0x10000).toString(16).padStart(4, "0");
  chatName.value = loadName() || defaultName;
  chatName.addEventListener("change", () => saveName(chatName.value.trim()));

  function setStatus(el, text, state) {
    setText(el, text);
    if (state) el.dataset.state = state;
    else delete el.dataset.state;
  }

  function updateChatControls() {
    const open = isOpen();
    chatSend.disabled = !open;
    if (open) {
      if (chatStatus.dataset.state !== "error") setStatus(chatStatus, "", "");
    } else {
      setStatus(chatStatus, "Waiting for the server connection…", "");
    }
  }

  chatForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = chatText.value.trim();
    if (!text) {
      chatText.focus();
      return;
    }
    if (!isOpen()) {
      setStatus(chatStatus, "Not connected: the message was not sent.", "error");
      return;
    }
    const name = chatName.value.trim() || defaultName;
    const payload = JSON.stringify({ type: "chat", name: name, text: text });
    link.ws.send(payload);
    ownPending.push(payload);
    if (ownPending.length > 20) ownPending.shift();
    saveName(name);
    chatText.value = "";
    chatText.focus();
    setStatus(chatStatus, "", "");
  });

  function nameHue(name) {
    let h = 0;
    for (let i = 0; i < name.length; i += 1) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return h % 360;
  }

  function addChatMessage(msg, raw) {
    if (typeof msg.text !== "string") return;
    const name = typeof msg.name === "string" && msg.name.trim() ? msg.name.trim().slice(0, 64) : "anonymous";
    const text = msg.text.length > CHAT_MAX_TEXT ? msg.text.slice(0, CHAT_MAX_TEXT) + "…" : msg.text;

    const ownIndex = ownPending.indexOf(raw);
    const mine = ownIndex !== -1;
    if (mine) ownPending.splice(ownIndex, 1);

    const item = document.createElement("li");
    item.className = mine ? "chat-msg is-mine" : "chat-msg";
    const now = new Date();
    const time = document.createElement("time");
    time.className = "chat-time";
    time.dateTime = now.toISOString();
    time.textContent = formatClock(now).slice(0, 5);
    const who = document.createElement("span");
    who.className = "chat-name";
    who.textContent = name;
    who.style.setProperty("--name-hue", String(nameHue(name)));
    const body = document.createElement("span");
    body.className = "chat-text";
    body.textContent = text;
    item.append(time, who, body);

    const atBottom = chatLog.scrollHeight - chatLog.scrollTop - chatLog.clientHeight < 40;
    chatLog.append(item);
    while (chatLog.children.length > CHAT_MAX_ITEMS) chatLog.firstElementChild.remove();
    if (atBottom || mine) chatLog.scrollTop = chatLog.scrollHeight;
  }

  /* ---- upload -------------------------------------------------------------- */

  const uploadForm = $("upload-form");
  const fileInput = $("upload-file");
  const dropZone = $("upload-drop");
  const chosen = $("upload-chosen");
  const uploadButton = $("upload-button");
  const cancelButton = $("upload-cancel");
  const progress = $("upload-progress");
  const percent = $("upload-percent");
  const uploadResult = $("upload-result");
  const uploadOff = $("upload-off");
  let uploadXhr = null;
  let uploadReplyTimer = 0;
  let uploadsOff = false;

  function describeChosen() {
    const files = Array.from(fileInput.files || []);
    const total = files.reduce((sum, f) => sum + f.size, 0);
    if (files.length === 0) setText(chosen, "No file chosen");
    else if (files.length === 1) setText(chosen, files[0].name + " · " + formatBytes(total));
    else setText(chosen, files.length + " files · " + formatBytes(total));
    uploadButton.disabled = files.length === 0 || uploadXhr !== null || uploadsOff;
  }

  /** Show text with command-line options (--upload-dir) as unbreakable code. */
  function showWithOptions(el, text) {
    el.replaceChildren(
      ...text.split(/(--[a-z][a-z-]*)/).map((part, i) => {
        if (i % 2 === 0) return document.createTextNode(part);
        const code = document.createElement("code");
        code.textContent = part;
        return code;
      })
    );
  }

  /** Enable or disable the upload form as the server says ({enabled, reason}). */
  function setUploadAvailability(info) {
    const off = info.enabled === false;
    uploadsOff = off;
    const reason =
      typeof info.reason === "string" && info.reason ? info.reason : "Uploads are off on this server.";
    showWithOptions(uploadOff, off ? reason : "");
    uploadOff.hidden = !off;
    fileInput.disabled = off;
    dropZone.classList.toggle("is-disabled", off);
    if (off) {
      dropZone.setAttribute("aria-disabled", "true");
      uploadForm.dataset.disabled = "true";
    } else {
      dropZone.removeAttribute("aria-disabled");
      delete uploadForm.dataset.disabled;
    }
    describeChosen();
  }

  function setProgress(fraction) {
    const pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
    progress.value = pct;
    setText(percent, pct + "%");
  }

  function reasonFor(status) {
    if (status === 403) return "uploads are disabled on this server";
    if (status === 413) return "the upload is too large for this server";
    return "the server answered HTTP " + status;
  }

  function finishUpload(text, state) {
    clearTimeout(uploadReplyTimer);
    uploadXhr = null;
    cancelButton.hidden = true;
    uploadForm.removeAttribute("aria-busy");
    setStatus(uploadResult, text, state);
    describeChosen();
  }

  function onUploadLoad(xhr) {
    let body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch (err) {
      body = null;
    }
    const okStatus = xhr.status >= 200 && xhr.status < 300;
    if (okStatus && body && body.ok === true && Array.isArray(body.files)) {
      setProgress(1);
      const saved = body.files.map((f) => String(f && f.name) + " (" + formatBytes(f && f.size) + ")");
      fileInput.value = "";
      finishUpload(saved.length ? "Saved " + saved.join(", ") : "The server saved no files.", "ok");
      return;
    }
    const reason = body && typeof body.error === "string" && body.error ? body.error : reasonFor(xhr.status);
    const code = xhr.status + (xhr.statusText ? " " + xhr.statusText : "");
    finishUpload("Upload failed (" + code + "): " + reason, "error");
  }

  uploadForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const files = Array.from(fileInput.files || []);
    if (files.length === 0 || uploadXhr || uploadsOff) return;
    const form = new FormData();
    for (const f of files) form.append("file", f, f.name);

    const xhr = new XMLHttpRequest();
    uploadXhr = xhr;
    xhr.open("POST", UPLOAD_PATH);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable && e.total > 0) setProgress(e.loaded / e.total);
    });
    xhr.upload.addEventListener("load", () => {
      setProgress(1);
      if (uploadXhr !== xhr) return;
      setStatus(uploadResult, "Sent, waiting for the server…", "");
      uploadReplyTimer = setTimeout(() => {
        if (uploadXhr !== xhr) return;
        uploadXhr = null; // so that the abort event below reports this, not a cancel
        xhr.abort();
        finishUpload("Upload failed: the server did not answer.", "error");
      }, UPLOAD_REPLY_TIMEOUT_MS);
    });
    xhr.addEventListener("load", () => {
      if (uploadXhr === xhr) onUploadLoad(xhr);
    });
    xhr.addEventListener("error", () => {
      if (uploadXhr === xhr) finishUpload("Upload failed: the server could not be reached.", "error");
    });
    xhr.addEventListener("abort", () => {
      if (uploadXhr !== xhr) return;
      setProgress(0);
      finishUpload("Upload cancelled.", "error");
    });

    setProgress(0);
    uploadButton.disabled = true;
    cancelButton.hidden = false;
    uploadForm.setAttribute("aria-busy", "true");
    const total = files.reduce((sum, f) => sum + f.size, 0);
    setStatus(uploadResult, "Uploading " + formatBytes(total) + "…", "");
    xhr.send(form);
  });

  cancelButton.addEventListener("click", () => {
    if (uploadXhr) uploadXhr.abort();
  });

  fileInput.addEventListener("change", describeChosen);

  function hasFiles(ev) {
    return !!ev.dataTransfer && Array.from(ev.dataTransfer.types || []).includes("Files");
  }

  dropZone.addEventListener("dragenter", (ev) => {
    if (hasFiles(ev) && !uploadsOff) dropZone.classList.add("is-dragover");
  });
  dropZone.addEventListener("dragleave", (ev) => {
    if (!dropZone.contains(ev.relatedTarget)) dropZone.classList.remove("is-dragover");
  });
  dropZone.addEventListener("drop", (ev) => {
    dropZone.classList.remove("is-dragover");
    if (hasFiles(ev) && ev.dataTransfer.files.length && !uploadsOff) {
      fileInput.files = ev.dataTransfer.files;
      describeChosen();
    }
  });
  // A file dropped anywhere must not make the browser navigate away from the page.
  window.addEventListener("dragover", (ev) => {
    if (hasFiles(ev)) ev.preventDefault();
  });
  window.addEventListener("drop", (ev) => {
    if (hasFiles(ev)) ev.preventDefault();
  });

  /* ---- start --------------------------------------------------------------- */

  describeChosen();
  updateChatControls();
  drawChart();
  connect();
})();
