"""Everything a request handler needs, built once per app: store, clock, simulator, limits."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import Request

from . import batches, fine_tuning
from .chat_simulator import ChatSimulator
from .clock import Clock
from .config import SandboxConfig
from .embeddings import embed
from .errors import ApiError, model_not_found
from .models_data import BASE_MODELS_BY_ID, ModelSpec
from .ratelimit import RateLimiter
from .store import Store
from .webhooks import Endpoint, WebhookSender

log = logging.getLogger("sandbox")


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.data_dir)
        self.clock = Clock(config.time_scale)
        self.simulator = ChatSimulator()
        self.limiter = RateLimiter(config.rpm, config.tpm, config.organization)
        default = Endpoint(config.webhook_url, config.webhook_secret or "") if config.webhook_url else None
        self.webhooks = WebhookSender(self.store, default)
        # Ids of jobs and batches whose final webhook has not gone out; the ticker watches only these.
        self.active_batches = {b["id"] for b in self.store.batches.values() if not b["webhook_sent"]}
        self.active_jobs = {j["id"] for j in self.store.jobs.values() if not j["webhook_sent"]}
        self._ticker: asyncio.Task[None] | None = None

    # -- models -------------------------------------------------------------------
    def resolve_model(self, name: Any) -> ModelSpec:
        if not isinstance(name, str) or not name:
            raise ApiError(400, "you must provide a model parameter", param=None, code=None)
        spec = BASE_MODELS_BY_ID.get(name)
        if spec is not None:
            return spec
        if name.startswith("ft:"):
            job = fine_tuning.fine_tuned_models(self.store, self.clock).get(name)
            if job is not None:
                return BASE_MODELS_BY_ID[job["model"]]
        raise model_not_found(name)

    def model_exists(self, name: str) -> bool:
        try:
            self.resolve_model(name)
        except ApiError:
            return False
        return True

    # -- the one path live requests and batch lines share ---------------------------------
    def execute(self, endpoint: str, body: dict[str, Any], api_key: str) -> tuple[int, dict[str, Any]]:
        try:
            spec = self.resolve_model(body.get("model"))
            if endpoint == "/v1/embeddings":
                return 200, embed(body, spec, body["model"])
            body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
            return 200, self.simulator.complete(body, spec, body["model"]).to_completion()
        except ApiError as exc:
            return exc.status, exc.body()

    # -- settling and webhooks ------------------------------------------------------------
    def settle_batch(self, batch: dict[str, Any]) -> str:
        status = batches.settle(self.store, batch, self.clock, self.execute)
        self._maybe_notify(batch, "batch", status, batches.TERMINAL, self.active_batches)
        return status

    def settle_job(self, job: dict[str, Any]) -> str:
        status = fine_tuning.settle(self.store, job, self.clock)
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
        try:
            self.webhooks.emit(doc["_api_key"], f"{prefix}.{status}", doc["id"])
        except RuntimeError:
            pass  # no running loop (a synchronous caller); nothing to send from here

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
