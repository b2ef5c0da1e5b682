"use strict";
// DOM helpers shared by every page script (loaded first): window.lqosDom = { el, put, bps, bytes }.
// el(tag, attrs, ...kids) builds an element; text always goes in through text nodes, so no
// string from the API ever becomes markup. put(node, ...kids) replaces a node's children,
// skipping null / false / undefined kids (replaceChildren would print them as "null").
(function () {
  // replaceChildren that skips null/false/undefined kids (the DOM would print them as "null").
  function put(node, ...kids) {
    node.replaceChildren(...kids.flat(Infinity).filter(k => k !== null && k !== undefined && k !== false));
  }
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "value") e.value = v;
      else if (k === "style") { for (const decl of String(v).split(";")) { const i = decl.indexOf(":"); if (i > 0) e.style.setProperty(decl.slice(0, i).trim(), decl.slice(i + 1).trim()); } }
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return e;
  }
  // Rates in bit/s and sizes in bytes, decimal units ("10.0 Mbps", "1.5 MB").
  function bps(v) {
    v = Number(v) || 0;
    const u = ["bps", "kbps", "Mbps", "Gbps", "Tbps"];
    let i = 0;
    while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
    return (i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : 1)) + " " + u[i];
  }
  function bytes(v) {
    v = Number(v) || 0;
    const u = ["B", "KB", "MB", "GB", "TB", "PB"];
    let i = 0;
    while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
    return v.toFixed(i ? 1 : 0) + " " + u[i];
  }
  window.lqosDom = { el, put, bps, bytes };
})();
