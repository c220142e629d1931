"use strict";
// The student table of summary.html: sort by a column (click its header, again to reverse) and filter by
// name and status. A cell's data-sort holds its value; an empty one (no score) always sorts last.
(function () {
  const table = document.getElementById("students-table");
  if (!table) {
    return;
  }
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const nameFilter = document.getElementById("student-filter");
  const statusFilter = document.getElementById("status-filter");
  const shown = document.getElementById("students-shown");

  function value(row, column, numeric) {
    const cell = row.cells[column];
    const text = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (text === "") {
      return null;
    }
    return numeric ? Number(text) : text;
  }

  function sortBy(button) {
    const header = button.closest("th");
    const column = Number(button.getAttribute("data-column"));
    const numeric = header.getAttribute("data-type") === "number";
    const ascending = header.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th[aria-sort]").forEach(function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const keyed = rows.map(function (row, index) { return [value(row, column, numeric), index, row]; });
    keyed.sort(function (a, b) {
      if (a[0] === null || b[0] === null) {
        return (a[0] === null) - (b[0] === null) || a[1] - b[1];
      }
      const order = numeric ? a[0] - b[0] : a[0].localeCompare(b[0], undefined, {sensitivity: "base"});
      return (ascending ? order : -order) || a[1] - b[1];
    });
    keyed.forEach(function (item) { body.appendChild(item[2]); });
  }

  function filter() {
    const name = nameFilter.value.trim().toLowerCase();
    const status = statusFilter.value;
    let count = 0;
    rows.forEach(function (row) {
      const visible = row.cells[0].textContent.toLowerCase().includes(name)
        && (status === "" || row.getAttribute("data-status") === status);
      row.hidden = !visible;
      count += visible;
    });
    shown.textContent = count + " of " + rows.length + " shown";
  }

  table.querySelectorAll("th button[data-column]").forEach(function (button) {
    button.addEventListener("click", function () { sortBy(button); });
  });
  nameFilter.addEventListener("input", filter);
  statusFilter.addEventListener("change", filter);
}());
