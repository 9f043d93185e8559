// Ferry's integration form: "add row" and "remove row" for the list widgets (filters, data
// mapping) without saving. A button with data-add-row="ID" copies the <template id="ID-template">
// row into <tbody id="ID-rows">; a button with data-remove-row removes its row. Without
// JavaScript the form still shows its rows and one empty row to fill in.
(function () {
  var counter = 0;
  document.addEventListener("click", function (e) {
    var add = e.target.closest && e.target.closest("[data-add-row]");
    if (add) {
      var id = add.getAttribute("data-add-row");
      var tpl = document.getElementById(id + "-template");
      var body = document.getElementById(id + "-rows");
      if (!tpl || !body) return;
      var row = tpl.content.firstElementChild.cloneNode(true);
      counter += 1;
      row.querySelectorAll("[id]").forEach(function (el) {
        var fresh = el.id.replace(/-new$/, "-added" + counter);
        row.querySelectorAll("label[for='" + el.id + "']").forEach(function (l) { l.setAttribute("for", fresh); });
        el.id = fresh;
      });
      body.appendChild(row);
      var first = row.querySelector("select, input");
      if (first) first.focus();
      return;
    }
    var remove = e.target.closest && e.target.closest("[data-remove-row]");
    if (remove) {
      var tr = remove.closest("[data-row]");
      if (tr) tr.remove();
    }
  });
})();
