// Ferry's OAuth pop-ups. A button with data-oauth-popup opens its href in a pop-up window; when
// the pop-up's callback page (data-oauth-done on <body>) loads, it tells the opener which
// account was connected and closes. Without JavaScript, the link opens as a normal page.
(function () {
  document.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("a[data-oauth-popup]");
    if (!a) return;
    var w = window.open(a.href, "ferry-oauth", "width=560,height=720");
    if (w) e.preventDefault();
  });
  window.addEventListener("message", function (e) {
    if (e.origin !== window.location.origin || !e.data || e.data.type !== "ferry-oauth") return;
    var select = document.querySelector("select[data-oauth-accounts]");
    if (select && e.data.account_id) {
      var found = Array.prototype.some.call(select.options, function (o) { return o.value === String(e.data.account_id); });
      if (!found) {
        var o = document.createElement("option");
        o.value = String(e.data.account_id);
        o.textContent = e.data.label;
        select.appendChild(o);
      }
      select.value = String(e.data.account_id);
      select.dispatchEvent(new Event("change", { bubbles: true }));
    }
    var status = document.getElementById("oauth-status");
    if (status) status.textContent = "Connected " + e.data.label + ".";
  });
  document.addEventListener("DOMContentLoaded", function () {
    var done = document.body && document.body.getAttribute("data-oauth-done");
    if (!done || !window.opener) return;
    window.opener.postMessage(
      { type: "ferry-oauth", account_id: done, label: document.body.getAttribute("data-oauth-label") },
      window.location.origin
    );
    window.close();
  });
})();
