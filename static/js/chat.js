// Chat page behaviours htmx does not cover: keep the view at the newest message,
// Enter to send, paste an image to attach it, and clear a live reply on "reset".
"use strict";

(() => {
  // A thread page has one message list; a comparison has one per model.
  const lists = () => document.querySelectorAll("[data-chat-scroll]");
  const nearBottom = (el) => el.scrollHeight - el.scrollTop - el.clientHeight < 120;
  let follow = true;

  document.addEventListener("DOMContentLoaded", () => {
    lists().forEach((el) => { el.scrollTop = el.scrollHeight; });
  });

  // Scroll does not bubble; listen in the capture phase so lists swapped in later count too.
  document.addEventListener("scroll", (event) => {
    if (event.target.matches && event.target.matches("[data-chat-scroll]")) follow = nearBottom(event.target);
  }, true);

  // New text streamed in: stay at the bottom if the reader was there.
  document.body.addEventListener("htmx:afterSwap", () => {
    if (follow) lists().forEach((el) => { el.scrollTop = el.scrollHeight; });
  });

  // A retried or resumed reply starts over: drop what the live block shows.
  document.body.addEventListener("htmx:sseBeforeMessage", (event) => {
    if (!event.target.matches("[data-live-reset]")) return;
    event.preventDefault();
    event.target.closest(".live").querySelectorAll(".live-part").forEach((part) => part.replaceChildren());
  });

  document.addEventListener("keydown", (event) => {
    const box = event.target.closest("[data-chat-composer] textarea");
    if (box && event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      box.form.requestSubmit();
    }
  });

  const showAttached = (form) => {
    const names = [...form.querySelectorAll("input[type=file]")].flatMap((input) => [...input.files].map((f) => f.name));
    const label = form.querySelector("[data-chat-attached]");
    if (label) label.textContent = names.length ? `attached: ${names.join(", ")}` : "";
  };

  document.addEventListener("change", (event) => {
    const form = event.target.closest("[data-chat-composer]");
    if (form) showAttached(form);
  });

  document.addEventListener("paste", (event) => {
    const form = event.target.closest("[data-chat-composer]");
    const input = form && form.querySelector("[data-chat-images]");
    const images = [...(event.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
    if (!input || !images.length) return;
    event.preventDefault();
    const transfer = new DataTransfer();
    [...input.files, ...images].forEach((f) => transfer.items.add(f));
    input.files = transfer.files;
    showAttached(form);
  });

  document.body.addEventListener("htmx:afterRequest", (event) => {
    const form = event.target.closest && event.target.closest("[data-chat-composer]");
    if (form && event.detail.successful && event.target === form) {
      form.reset();
      showAttached(form);
      follow = true;
    }
  });
})();
