// Progressive enhancement of the store's Edit page: without JavaScript every tab panel is
// shown, stacked; with it, one panel at a time. Panels stay in the same form, so switching
// tabs never loses what was typed.
(function () {
  "use strict";
  function enhance(root) {
    var links = Array.prototype.slice.call(root.querySelectorAll('[role="tab"]'));
    var panels = Array.prototype.slice.call(root.querySelectorAll('[role="tabpanel"]'));
    var input = root.querySelector("[data-active-tab-input]");
    function show(slug, focus) {
      links.forEach(function (link) {
        var on = link.dataset.tab === slug;
        link.setAttribute("aria-selected", on ? "true" : "false");
        link.tabIndex = on ? 0 : -1;
        if (on && focus) link.focus();
      });
      panels.forEach(function (panel) { panel.hidden = panel.dataset.tab !== slug; });
      if (input) input.value = slug;
      var url = new URL(window.location.href);
      url.searchParams.set("tab", slug);
      url.hash = "";
      window.history.replaceState(null, "", url);
    }
    links.forEach(function (link, index) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        show(link.dataset.tab, false);
      });
      link.addEventListener("keydown", function (event) {
        var step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
        if (!step) return;
        event.preventDefault();
        show(links[(index + step + links.length) % links.length].dataset.tab, true);
      });
    });
    show(root.dataset.active || links[0].dataset.tab, false);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-tabs]").forEach(enhance);
  });
})();
