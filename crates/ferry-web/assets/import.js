// Ferry's CSV upload: sends the chosen file as the request body (text/csv) with
// XMLHttpRequest, so the bar shows the real upload progress, then shows the server's import
// report. The file is streamed by the browser, never read into the page.
(function () {
  var form = document.getElementById("import-form");
  if (!form) return;
  var input = document.getElementById("import-file");
  var button = document.getElementById("import-submit");
  var box = document.getElementById("import-progress");
  var bar = document.getElementById("import-bar");
  var label = document.getElementById("import-bar-label");
  var status = document.getElementById("import-status");
  var result = document.getElementById("import-result");
  var max = parseInt(form.getAttribute("data-max-bytes"), 10);

  function mib(n) { return (n / 1048576).toFixed(n < 10485760 ? 1 : 0) + " MiB"; }
  function show(html) {
    result.innerHTML = html;
    var report = document.getElementById("import-report");
    if (report) report.focus();
  }
  function refuse(message) {
    show('<div id="import-report" class="card" tabindex="-1"><div class="alert alert-error" role="alert"></div></div>');
    result.querySelector(".alert").textContent = message;
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var file = input.files && input.files[0];
    if (!file) { input.focus(); return; }
    if (max && file.size > max) {
      refuse("The file is " + mib(file.size) + "; this server accepts files up to " + mib(max) + ". Split it into smaller files.");
      return;
    }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/contacts/import");
    xhr.setRequestHeader("Content-Type", "text/csv");
    xhr.setRequestHeader("X-CSRF-Token", form.getAttribute("data-csrf"));
    xhr.setRequestHeader("X-File-Name", encodeURIComponent(file.name));
    button.disabled = true;
    box.hidden = false;
    bar.max = 100;
    bar.value = 0;
    label.textContent = "Uploading " + file.name + "…";
    status.textContent = "0 of " + mib(file.size);
    result.innerHTML = "";
    xhr.upload.addEventListener("progress", function (ev) {
      if (!ev.lengthComputable) return;
      bar.value = Math.round((ev.loaded / ev.total) * 100);
      status.textContent = mib(ev.loaded) + " of " + mib(ev.total) + " (" + bar.value + "%)";
    });
    xhr.upload.addEventListener("load", function () {
      bar.value = 100;
      label.textContent = "Uploaded; importing…";
      status.textContent = "The server is importing the rows.";
    });
    xhr.addEventListener("load", function () {
      button.disabled = false;
      label.textContent = "Uploaded " + file.name;
      status.textContent = "Import finished: the report is below.";
      if (xhr.getResponseHeader("Content-Type") && xhr.getResponseHeader("Content-Type").indexOf("text/html") === 0 && xhr.responseText.indexOf('id="import-report"') !== -1) {
        show(xhr.responseText);
      } else {
        box.hidden = true;
        refuse("The import failed (HTTP " + xhr.status + "). Nothing may have been imported; reload the page and try again.");
      }
    });
    xhr.addEventListener("error", function () {
      button.disabled = false;
      box.hidden = true;
      refuse("The upload was interrupted. Check the connection and try again; rows already imported stay imported, and some rows may have been imported: uploading the same file again updates them, without duplicates.");
    });
    xhr.send(file);
  });
})();
