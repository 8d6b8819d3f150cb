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

  // Whether a block arriving now should be dropped: it is on the page already, as a
  // live block (whose streamed text must stay) or as the same message.
  const alreadyShown = (incoming) => {
    const current = incoming.id && document.getElementById(incoming.id);
    return Boolean(current) && (current.querySelector(".live") !== null || !incoming.matches(".run-group"));
  };

  // A run started in this thread (by this page's own post, by a colleague, or resumed
  // after a person answered a tool): add its message and live block, or put the live
  // block in place of the finished one. htmx.process at once, not after htmx's settle
  // delay, so the block listens before the run's first delta arrives on this stream.
  document.body.addEventListener("htmx:sseBeforeMessage", (event) => {
    if (!event.target.matches("[data-run-started]")) return;
    event.preventDefault();
    const list = event.target.closest("[sse-connect]").querySelector("[data-chat-scroll]");
    const template = document.createElement("template");
    template.innerHTML = event.detail.data;
    [...template.content.children].forEach((incoming) => {
      if (alreadyShown(incoming)) return;
      const current = incoming.id && document.getElementById(incoming.id);
      if (current) current.replaceWith(incoming); else list.append(incoming);
      htmx.process(incoming);
    });
    if (follow) list.scrollTop = list.scrollHeight;
  });

  // The page's own post answers with the same blocks; whichever of the two comes
  // second is dropped. (htmx sets detail.elt to the swap's target; the element that
  // made the request is requestConfig.elt.)
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    const source = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (!source || !source.matches || !source.matches("[data-chat-composer]")) return;
    if (!event.detail.target.matches("[data-chat-scroll]")) return;
    const template = document.createElement("template");
    template.innerHTML = event.detail.serverResponse;
    [...template.content.children].forEach((incoming) => {
      if (incoming.id && !incoming.hasAttribute("hx-swap-oob") && document.getElementById(incoming.id)) incoming.remove();
    });
    event.detail.serverResponse = template.innerHTML;
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
