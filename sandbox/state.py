"""Everything a request handler needs, built once per app: store, clock, simulator, limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from . import batches, fine_tuning, tokens
from .chat_simulator import ChatSimulator
from .clock import Clock
from .config import SandboxConfig
from .embeddings import embed
from .errors import ApiError, model_not_found
from .models_data import BASE_MODELS_BY_ID, ModelSpec
from .owners import adopt_legacy, owns
from .ratelimit import RateLimiter
from .responses_adapter import respond
from .store import Store
from .usage_log import UsageLog
from .webhooks import Endpoint, WebhookSender

log = logging.getLogger("sandbox")


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.data_dir)
        adopt_legacy(self.store)
        self.usage = UsageLog(config.data_dir)
        self.clock = Clock(config.time_scale)
        self.simulator = ChatSimulator()
        self.limiter = RateLimiter(config.rpm, config.tpm, config.organization)
        default = Endpoint(config.webhook_url, config.webhook_secret or "") if config.webhook_url else None
        self.webhooks = WebhookSender(self.store, default)
        # Ids of jobs and batches whose final webhook has not gone out; the ticker watches only these.
        self.active_batches = {b["id"] for b in self.store.batches.values() if not b["webhook_sent"]}
        self.active_jobs = {j["id"] for j in self.store.jobs.values() if not j["webhook_sent"]}
        self._ticker: asyncio.Task[None] | None = None
        # More work for the same ticker (the responses service watches its background responses).
        self.tick_hooks: list[Callable[[], None]] = []
        # Batch results are computed in a worker thread with a simulator of their own,
        # so the live simulator's prompt cache is only ever touched by the event loop.
        self.batch_simulator = ChatSimulator()
        self._settling: set[str] = set()
        # Load the BPE tables now, not inside the first request that needs them.
        for spec in {m.encoding for m in BASE_MODELS_BY_ID.values()}:
            tokens.encoding(spec)

    # -- models -------------------------------------------------------------------
    def resolve_model(self, name: Any, api_key: str = "") -> ModelSpec:
        """The spec of a base model, or of a fine-tuned model made with api_key (others' do not exist)."""
        if not isinstance(name, str) or not name:
            raise ApiError(400, "you must provide a model parameter", param=None, code=None)
        spec = BASE_MODELS_BY_ID.get(name)
        if spec is not None:
            return spec
        if name.startswith("ft:"):
            job = fine_tuning.fine_tuned_models(self.store, self.clock, api_key).get(name)
            if job is not None:
                return BASE_MODELS_BY_ID[job["model"]]
        raise model_not_found(name)

    def model_exists(self, name: str, api_key: str = "") -> bool:
        try:
            self.resolve_model(name, api_key)
        except ApiError:
            return False
        return True

    # -- the one path live requests and batch lines share ---------------------------------
    def execute(self, endpoint: str, body: dict[str, Any], api_key: str) -> tuple[int, dict[str, Any]]:
        return self._execute(self.simulator, endpoint, body, api_key)

    def execute_for_batch(self, endpoint: str, body: dict[str, Any], api_key: str) -> tuple[int, dict[str, Any]]:
        return self._execute(self.batch_simulator, endpoint, body, api_key)

    def _bill_batch_line(self, endpoint: str, model: str, reply: dict[str, Any], api_key: str) -> None:
        usage = reply.get("usage") or {}
        details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
        self.usage.record(api_key=api_key, at=self.clock.now(), model=model, batch=True,
                          kind="embeddings" if endpoint == "/v1/embeddings" else "completions",
                          input_tokens=int(usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0),
                          cached_tokens=int(details.get("cached_tokens", 0) or 0),
                          output_tokens=int(usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0))

    def _execute(
        self, simulator: ChatSimulator, endpoint: str, body: dict[str, Any], api_key: str
    ) -> tuple[int, dict[str, Any]]:
        try:
            spec = self.resolve_model(body.get("model"), api_key)
            if endpoint == "/v1/embeddings":
                reply = embed(body, spec, body["model"])
            elif endpoint == "/v1/responses":
                reply = respond(simulator, body, spec)
            else:
                body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
                reply = simulator.complete(body, spec, body["model"]).to_completion()
        except ApiError as exc:
            return exc.status, exc.body()
        self._bill_batch_line(endpoint, str(body["model"]), reply, api_key)
        return 200, reply

    # -- settling and webhooks ------------------------------------------------------------
    def settle_batch(self, batch: dict[str, Any]) -> str:
        if batches.input_missing(self.store, batch):
            batches.fail_for_missing_input(self.store, batch, self.clock)
        if not batch["settled"]:
            clock_status = batches.phase(batch, self.clock).status
            if clock_status == "completed" and self._loop_is_running():
                # Running every line of a big batch takes seconds; do it off the event
                # loop. The batch shows "finalizing" until its files are written.
                self._settle_in_background(batch)
            elif clock_status in batches.TERMINAL:
                batches.settle(self.store, batch, self.clock, self.execute)
        status = batches.visible_phase(batch, self.clock).status
        self._maybe_notify(batch, "batch", status, batches.TERMINAL, self.active_batches)
        return status

    @staticmethod
    def _loop_is_running() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def _settle_in_background(self, batch: dict[str, Any]) -> None:
        if batch["id"] in self._settling:
            return
        self._settling.add(batch["id"])

        def run() -> None:
            batches.settle(self.store, batch, self.clock, self.execute_for_batch)

        task = asyncio.get_running_loop().create_task(asyncio.to_thread(run))
        task.add_done_callback(lambda _: self._settling.discard(batch["id"]))

    def settle_job(self, job: dict[str, Any]) -> str:
        if fine_tuning.fail_if_files_missing(job, self.clock, lambda fid: owns(job["_api_key"], self.store.files.get(fid))):
            self.store.jobs.put(job)
        status = fine_tuning.settle(self.store, job, self.clock)
        if status == "succeeded" and not job.get("training_billed"):
            # The training is billed once, when the job ends: the organization's costs show it.
            rendered = fine_tuning.render(job, self.clock)
            self.usage.record(api_key=job["_api_key"], at=float(rendered["finished_at"] or self.clock.now()),
                              model=str(job["model"]), input_tokens=0, kind="fine_tuning",
                              trained_tokens=int(rendered["trained_tokens"] or 0))
            job["training_billed"] = True
            self.store.jobs.put(job)
        self._maybe_notify(job, "fine_tuning.job", status, fine_tuning.TERMINAL, self.active_jobs)
        return status

    def _maybe_notify(
        self, doc: dict[str, Any], prefix: str, status: str, terminal: tuple[str, ...], active: set[str]
    ) -> None:
        if status not in terminal or status in doc["webhook_sent"]:
            return
        doc["webhook_sent"].append(status)
        (self.store.batches if prefix == "batch" else self.store.jobs).put(doc)
        active.discard(doc["id"])
        # RuntimeError: no running loop (a synchronous caller); there is nothing to send from there.
        with contextlib.suppress(RuntimeError):
            self.webhooks.emit(doc["_api_key"], f"{prefix}.{status}", doc["id"])

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_seconds)
            try:
                for batch_id in list(self.active_batches):
                    batch = self.store.batches.get(batch_id)
                    if batch is None:
                        self.active_batches.discard(batch_id)
                    else:
                        self.settle_batch(batch)
                for job_id in list(self.active_jobs):
                    job = self.store.jobs.get(job_id)
                    if job is None:
                        self.active_jobs.discard(job_id)
                    else:
                        self.settle_job(job)
            except Exception:  # the ticker must survive one bad document
                log.exception("sandbox ticker failed")
            for hook in self.tick_hooks:
                try:
                    hook()
                except Exception:
                    log.exception("sandbox ticker failed in %s", hook)

    async def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        await self.webhooks.close()


def state_of(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def api_key_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("api_key", ""))
