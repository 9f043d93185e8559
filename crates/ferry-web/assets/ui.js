// Ferry's pages: menus and disclosures (<details class="menu">, <details data-menu>) close on
// Escape, giving the focus back to their button, and on a click outside them.
(function () {
  function openMenus() {
    return Array.prototype.slice.call(document.querySelectorAll("details.menu[open], details[data-menu][open], details.run-fail[open]"));
  }
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    openMenus().forEach(function (d) {
      d.open = false;
      var s = d.querySelector("summary");
      if (s && d.contains(document.activeElement)) s.focus();
    });
  });
  document.addEventListener("click", function (e) {
    openMenus().forEach(function (d) {
      if (!d.contains(e.target)) d.open = false;
    });
  });
})();
// A highlighted message (links from exports: /contacts/7?message=42) is brought into view
// below the top bar and focused.
(function () {
  function reveal() {
    var m = document.querySelector(".msg.highlight");
    if (!m) return;
    m.scrollIntoView({ block: "center" });
    m.focus({ preventScroll: true });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", reveal);
  else reveal();
})();
// A table that scrolls inside its box can be scrolled from the keyboard: it takes the focus.
(function () {
  function mark() {
    document.querySelectorAll(".table-wrap").forEach(function (w) {
      var scrolls = w.scrollHeight > w.clientHeight + 1 || w.scrollWidth > w.clientWidth + 1;
      if (scrolls && !w.hasAttribute("tabindex")) {
        w.setAttribute("tabindex", "0");
        var t = w.querySelector("table caption, table[aria-label]");
        if (!w.hasAttribute("role")) w.setAttribute("role", "region");
        if (!w.hasAttribute("aria-label")) w.setAttribute("aria-label", t ? (t.getAttribute("aria-label") || t.textContent.trim()) : "Scrollable table");
      }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mark);
  else mark();
  window.addEventListener("resize", mark);
  document.addEventListener("htmx:afterSwap", mark);
})();
