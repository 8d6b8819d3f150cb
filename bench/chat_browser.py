"""The first word in a real browser: from the Enter key in a thread page's composer to
the first reply text on the page (Chromium, Playwright), against the dashboard started
as `make run` starts it (see bench/chat_streaming.py) and the sandbox with pacing off.
Each sample opens a fresh thread page, waits for its event stream, types and presses
Enter; the page itself records both moments (performance.now()).

    python -m devtools.testrun --bench chat_browser --samples=30
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from django.test import Client

from assistants_app.models import Thread
from bench._setup import summary
from bench.chat_streaming import load, start_dashboard, stop, wait_port
from devtools.asgi_thread import free_port
from devtools.run import io_concurrency
from project.providers.models import ProviderKind
from project.teams.models import Team
from tests.factories import make_assistant, make_connection, make_team, make_user

# Installed before the page's own scripts: the Enter keydown (capturing, so before
# chat.js sends the message) and the first reply text in a live block.
WATCH = """
window.__firstWord = {};
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !window.__firstWord.enter) window.__firstWord.enter = performance.now();
}, true);
new MutationObserver(() => {
  if (window.__firstWord.enter && !window.__firstWord.shown &&
      [...document.querySelectorAll(".live .stream-text")].some((el) => el.textContent.trim())) {
    window.__firstWord.shown = performance.now();
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def main(argv: list[str] | None = None) -> int:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--web-processes", type=int, default=int(os.environ.get("WEB_PROCESSES") or os.cpu_count() or 1))
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="chat-browser-bench-"))
    env = {**os.environ, "DEBUG": "true", "SANDBOX_HOST": "127.0.0.1"}
    fast_port, paced_port, web_port = free_port(), free_port(), free_port()
    processes = start_dashboard(env, tmp, web_port, args.web_processes, int(io_concurrency(env)),
                                (fast_port, paced_port))
    try:
        for port in (fast_port, web_port):
            wait_port(port)
        Team.objects.filter(name="Browser bench").delete()
        user = make_user(f"browser{int(time.time())}")
        team = make_team("Browser bench", owner=user)
        connection = make_connection(team, base_url=f"http://127.0.0.1:{fast_port}/v1", kind=ProviderKind.SANDBOX)
        assistant = make_assistant(team, connection, name="Fast", instructions="")
        warm = 3
        Thread.objects.bulk_create([Thread(team=team, assistant=assistant, title=f"b {i}")
                                    for i in range(args.samples + warm)])
        threads = list(Thread.objects.filter(team=team).order_by("id").values_list("id", flat=True))
        client = Client()
        client.force_login(user)
        base = f"http://127.0.0.1:{web_port}"
        times: list[float] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
                                                 args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            context = browser.new_context()
            context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}])
            context.add_init_script(WATCH)
            page = context.new_page()
            page.set_default_timeout(20_000)
            for number, thread_id in enumerate(threads):
                page.goto(f"{base}/threads/{thread_id}/")
                page.wait_for_load_state("load")
                # The page's event stream is open once it has answered with its position.
                page.wait_for_function("() => [...document.querySelectorAll('[sse-connect]')].every("
                                       "(el) => el['htmx-internal-data']?.sseEventSource?.readyState === 1)")
                page.fill("#composer-text", f"write 30 words {number}")
                page.keyboard.press("Enter")
                page.wait_for_function("() => window.__firstWord.shown")
                took = page.evaluate("() => window.__firstWord.shown - window.__firstWord.enter")
                if number >= warm:
                    times.append(float(took))
            browser.close()
        print(f"web: {args.web_processes} uvicorn process(es); {load()}")
        print(summary("first word on the page after Enter (Chromium)", times))
    finally:
        for process in reversed(processes.all):
            stop(process)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
