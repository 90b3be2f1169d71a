// The store's "Preview" links follow the report chosen in their select before it is saved.
// Without JavaScript they preview the value the page was rendered with.
(function () {
  "use strict";
  function chosenFormat(link) {
    var select = document.getElementById(link.dataset.previewSelect);
    if (select && select.value) return select.value;
    // A blank choice means another select's report ("same as the print report") or the default.
    var other = link.dataset.previewBlankSelect && document.getElementById(link.dataset.previewBlankSelect);
    if (other && other.value) return other.value;
    return link.dataset.previewBlank;
  }
  function update(links) {
    links.forEach(function (link) {
      var format = chosenFormat(link);
      if (!format) return;
      var url = new URL(link.href);
      url.searchParams.set("format", format);
      link.href = url.toString();
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var links = Array.prototype.slice.call(document.querySelectorAll("a[data-preview-select]"));
    if (!links.length) return;
    var selectIds = {};
    links.forEach(function (link) {
      selectIds[link.dataset.previewSelect] = true;
      if (link.dataset.previewBlankSelect) selectIds[link.dataset.previewBlankSelect] = true;
    });
    Object.keys(selectIds).forEach(function (id) {
      var select = document.getElementById(id);
      if (select) select.addEventListener("change", function () { update(links); });
    });
    update(links);
  });
})();
