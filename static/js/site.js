// Small behaviours HTMX does not cover. Loaded as a file so the CSP needs no inline script.
"use strict";

document.addEventListener("change", (event) => {
  const select = event.target.closest("form[data-autosubmit] select");
  if (select) select.form.requestSubmit();
});

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
}, true);
