"use strict";
// A small line chart on <canvas>: window.lqosChart(canvas, series, options).
// series: [{label, color, data: [numbers]}] sharing one x axis (oldest first); a null in
// data is a gap.
(function () {
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  window.lqosChart = function (canvas, series, opts) {
    opts = opts || {};
    const fmt = opts.format || (v => String(v));
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const left = 70, right = 10, top = 10, bottom = 20;
    const pw = w - left - right, ph = h - top - bottom;
    const n = Math.max(2, opts.points || Math.max(...series.map(s => s.data.length), 2));
    let max = 0;
    for (const s of series) for (const v of s.data) if (v > max) max = v;
    if (opts.minMax && opts.minMax > max) max = opts.minMax;
    max = niceMax(max);
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = css("--border"); ctx.fillStyle = css("--muted"); ctx.lineWidth = 1;
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const y = top + ph - (ph * i) / 4;
      ctx.beginPath(); ctx.moveTo(left, y + 0.5); ctx.lineTo(left + pw, y + 0.5); ctx.stroke();
      ctx.fillText(fmt((max * i) / 4), left - 6, y);
    }
    ctx.textAlign = "left"; ctx.textBaseline = "alphabetic";
    if (opts.xLabel) ctx.fillText(opts.xLabel, left, h - 4);
    for (const s of series) {
      if (!s.data.length) continue;
      ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
      const off = n - s.data.length;
      // null / undefined values are gaps: the line stops and starts again after them.
      let pen = false;
      s.data.forEach((v, i) => {
        if (v === null || v === undefined) { pen = false; return; }
        const x = left + (pw * (i + off)) / (n - 1);
        const y = top + ph - (ph * Math.min(v, max)) / max;
        if (!pen) ctx.moveTo(x, y); else ctx.lineTo(x, y);
        pen = true;
      });
      ctx.stroke();
    }
  };
})();
