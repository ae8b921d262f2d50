// repeval report: sortable and filterable tables, no dependencies, no network.
(function () {
  "use strict";

  function cellKey(cell, kind) {
    var raw = cell ? cell.getAttribute("data-value") : null;
    if (raw === null && cell) raw = cell.textContent;
    if (kind === "num") {
      // a cell without data-value sorts by its text, "0.812 ± 0.012", whose minus is a true one (U+2212)
      var f = parseFloat((raw || "").replace("\u2212", "-"));
      return isNaN(f) ? null : f;
    }
    return (raw || "").toLowerCase();
  }

  function sortTable(table, th) {
    var col = parseInt(th.getAttribute("data-col"), 10);
    var kind = th.getAttribute("data-kind") || "text";
    var current = th.getAttribute("aria-sort");
    // numbers sort best-first on the first click (descending; ascending for a column whose lower values are better,
    // data-better="lower": an error metric, or its change from clean), text A→Z
    var lowerBetter = th.getAttribute("data-better") === "lower";
    var asc = current ? current === "descending" : kind !== "num" || lowerBetter;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellKey(a.cells[col], kind), y = cellKey(b.cells[col], kind);
      if (x === null && y === null) return 0;
      if (x === null) return 1;  // missing values last in both directions
      if (y === null) return -1;
      var c = x < y ? -1 : x > y ? 1 : 0;
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.querySelectorAll("th[aria-sort]").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
  }

  function applyFilters(tableId) {
    var table = document.getElementById(tableId);
    if (!table) return;
    var terms = [];
    var selects = [];
    document.querySelectorAll('[data-target="' + tableId + '"]').forEach(function (el) {
      if (el.classList.contains("rv-filter")) {
        terms = terms.concat(el.value.toLowerCase().split(/\s+/).filter(Boolean));
      } else if (el.classList.contains("rv-select") && el.value !== "") {
        selects.push([parseInt(el.getAttribute("data-col"), 10), el.value]);
      }
    });
    var shown = 0, rows = table.tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i], text = row.textContent.toLowerCase(), ok = true;
      for (var t = 0; t < terms.length && ok; t++) ok = text.indexOf(terms[t]) !== -1;
      for (var s = 0; s < selects.length && ok; s++) {
        var cell = row.cells[selects[s][0]];
        // a cell's data-value, else its text (the per-label table's key cells carry no copy of their text)
        ok = !!cell && (cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent) === selects[s][1];
      }
      row.hidden = !ok;
      if (ok) shown++;
    }
    var counter = document.querySelector('.rv-count[data-target="' + tableId + '"]');
    if (counter) counter.textContent = shown + " of " + rows.length + " rows";
  }

  function init() {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      table.querySelectorAll("thead th[data-col]").forEach(function (th) {
        th.addEventListener("click", function () { sortTable(table, th); });
      });
    });
    var targets = {};
    document.querySelectorAll(".rv-filter, .rv-select").forEach(function (el) {
      var id = el.getAttribute("data-target");
      targets[id] = true;
      el.addEventListener(el.tagName === "SELECT" ? "change" : "input", function () { applyFilters(id); });
    });
    Object.keys(targets).forEach(applyFilters);
    // printed, every folded section (per-label values, configs) is open: paper has no disclosure triangle
    window.addEventListener("beforeprint", function () {
      document.querySelectorAll("details:not([open])").forEach(function (d) {
        d.setAttribute("data-rv-printed", "1");
        d.open = true;
      });
    });
    window.addEventListener("afterprint", function () {
      document.querySelectorAll("details[data-rv-printed]").forEach(function (d) {
        d.removeAttribute("data-rv-printed");
        d.open = false;
      });
    });
    document.documentElement.setAttribute("data-rv-ready", "1");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
