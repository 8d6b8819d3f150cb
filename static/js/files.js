// File uploads: pick or drop a file, send it with XHR so the progress bar moves.
// Without JavaScript the form still posts normally. Loaded as a file: the CSP allows no inline script.
"use strict";

(() => {
  const form = document.querySelector("form[data-files-upload]");
  if (!form) return;
  const input = form.querySelector("input[type=file]");
  const zone = form.querySelector("[data-dropzone]");
  const bar = form.querySelector("[data-progress]");
  const barText = form.querySelector("[data-progress-text]");
  const errorBox = form.querySelector("[data-upload-error]");
  const button = form.querySelector("button[type=submit]");
  const maxBytes = Number(form.dataset.maxBytes || 0);

  const showError = (message) => {
    errorBox.textContent = message;
    errorBox.hidden = false;
  };
  const reset = () => {
    errorBox.hidden = true;
    errorBox.textContent = "";
    bar.hidden = true;
    bar.value = 0;
    barText.textContent = "";
    button.disabled = false;
  };

  // A big file goes on to the provider from a worker: ask how it is going until it ends.
  const follow = (statusUrl) => {
    fetch(statusUrl, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then((response) => response.json())
      .then((status) => {
        if (status.finished && status.url) {
          window.location.assign(status.url);
        } else if (status.finished) {
          button.disabled = false;
          bar.hidden = true;
          showError(status.error || "The upload failed.");
        } else {
          window.setTimeout(() => follow(statusUrl), 1000);
        }
      })
      .catch(() => window.setTimeout(() => follow(statusUrl), 3000));
  };

  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      zone.querySelector("label").textContent = input.files[0].name;
    }
  });
  input.addEventListener("change", () => {
    reset();
    if (input.files.length) zone.querySelector("label").textContent = input.files[0].name;
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    reset();
    const file = input.files[0];
    if (!file) return showError("Pick or drop a file first.");
    if (file.size === 0) return showError(`${file.name} is empty.`);
    if (maxBytes && file.size > maxBytes) {
      return showError(`${file.name} is larger than the provider's limit of ${Math.round(maxBytes / 1048576)} MB.`);
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      bar.value = Math.round((e.loaded / e.total) * 100);
      barText.textContent = `${bar.value}%`;
    });
    xhr.upload.addEventListener("load", () => {
      barText.textContent = "Sent; the provider is receiving it…";
    });
    xhr.addEventListener("load", () => {
      let reply = null;
      try { reply = JSON.parse(xhr.responseText); } catch (_) { reply = null; }
      if (reply && reply.ok && reply.pending) {
        barText.textContent = "Here; sending it on to the provider in parts…";
        follow(reply.status_url);
        return;
      }
      if (reply && reply.ok) {
        window.location.assign(reply.url);
        return;
      }
      button.disabled = false;
      bar.hidden = true;
      showError((reply && reply.error) || `The upload failed (HTTP ${xhr.status}).`);
    });
    xhr.addEventListener("error", () => {
      button.disabled = false;
      showError("The upload was interrupted: check the connection and try again.");
    });
    bar.hidden = false;
    button.disabled = true;
    xhr.send(new FormData(form));
  });
})();
