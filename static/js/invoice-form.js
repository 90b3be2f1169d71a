// Progressive enhancement of the invoice form. Without JavaScript, "Add line" and the
// "Remove" checkboxes go through the server. With it, a line is added by cloning the
// formset's empty form from its <template>, and removed by ticking its hidden delete box
// and hiding the row, so the formset's numbering never changes. Amounts are never computed
// here: the form's htmx trigger asks the server for the totals panel.
(function () {
  "use strict";
  function enhance(form) {
    var body = form.querySelector("[data-lines]");
    var template = form.querySelector("template[data-line-template]");
    var totalForms = form.querySelector('input[name$="-TOTAL_FORMS"]');
    var maxForms = form.querySelector('input[name$="-MAX_NUM_FORMS"]');
    var addButton = form.querySelector("[data-add-line]");
    if (!body || !template || !totalForms || !addButton) return;

    function linesChanged() {
      // The form's hx-trigger listens for this: "input changed" misses a ticked delete box.
      form.dispatchEvent(new CustomEvent("lines-changed", { bubbles: true }));
    }
    function deleteBox(row) {
      return row.querySelector('input[type="checkbox"][name$="-DELETE"]');
    }
    function addLine() {
      var index = parseInt(totalForms.value, 10);
      if (maxForms && index >= parseInt(maxForms.value, 10)) return;
      body.insertAdjacentHTML("beforeend", template.innerHTML.replace(/__prefix__/g, String(index)));
      totalForms.value = String(index + 1);
      var row = body.lastElementChild;
      var first = row && row.querySelector("input:not([type=hidden]):not([type=checkbox])");
      if (first) first.focus();
      linesChanged();
    }
    function removeLine(row) {
      var box = deleteBox(row);
      if (box) box.checked = true;
      row.hidden = true;
      addButton.focus();
      linesChanged();
    }

    addButton.addEventListener("click", function (event) {
      event.preventDefault();
      addLine();
    });
    body.addEventListener("click", function (event) {
      var button = event.target.closest("[data-remove-line]");
      if (!button) return;
      event.preventDefault();
      removeLine(button.closest("[data-line]"));
    });
    // A second click on "Apply" while the first is on its way would make a second invoice.
    form.addEventListener("submit", function (event) {
      if (form.dataset.submitting) {
        event.preventDefault();
        return;
      }
      form.dataset.submitting = "true";
    });
    window.addEventListener("pageshow", function () {
      delete form.dataset.submitting; // back in the history: the form can be sent again
    });
    // Rows removed before a server round trip (a form with errors) stay removed.
    body.querySelectorAll("[data-line]").forEach(function (row) {
      var box = deleteBox(row);
      if (box && box.checked) row.hidden = true;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-invoice-form]").forEach(enhance);
  });
})();
