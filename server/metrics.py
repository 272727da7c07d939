"""The server's Prometheus metrics and its short memory of recent requests: one registry per server, fed by the front-end."""
from __future__ import annotations

from bisect import bisect_left
from collections import deque
from itertools import accumulate
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from server.engine.messages import StepStats
from server.engine.types import Usage

# Latency buckets in seconds: a GPU step is a few ms, a cold prompt on a CPU many seconds.
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TOKEN_GAP = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)
_DURATION = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_LOAD = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

RECENT = 50


@dataclass(frozen=True)
class RequestRecord:
    """One finished HTTP request, as the status page lists it."""

    at: float  # wall-clock time it ended
    method: str
    endpoint: str
    model: str
    status: int
    seconds: float
    error: str = ""

    def as_json(self) -> dict:
        return asdict(self)


class LoopHistogram:
    """A histogram observed on the event loop only: a bisect and two additions per sample.

    prometheus-client's Histogram takes a lock and a Python loop over the buckets per sample;
    the time between two tokens is observed once per token of every stream, on the loop that
    shares the CPU with llama.cpp. The registry reads these through LoopHistograms.
    """

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le = "<=").
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


class LoopHistograms(Collector):
    """One histogram metric with a `model` label, its children LoopHistograms; exposed in
    Prometheus' histogram form (_bucket with cumulative counts, _sum, _count)."""

    def __init__(self, name: str, documentation: str, bounds: tuple[float, ...], registry: CollectorRegistry):
        self.name, self.documentation, self.bounds = name, documentation, bounds
        self._children: dict[str, LoopHistogram] = {}
        registry.register(self)

    def labels(self, model: str) -> LoopHistogram:
        child = self._children.get(model)
        if child is None:
            child = self._children[model] = LoopHistogram(self.bounds)
        return child

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=["model"])
        les = [floatToGoString(b) for b in self.bounds + (float("inf"),)]  # as Histogram spells them
        for model, h in self._children.items():
            family.add_metric([model], list(zip(les, accumulate(h.counts))), h.total)
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=["model"])


class Metrics:
    """Counters, gauges and histograms of one server (its own registry: two servers in one
    process, as in the tests, never mix their numbers).

    Everything is called on the event loop or on a thread that delivers an engine's step;
    prometheus-client's metric objects are thread-safe.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("llamaslots_requests", "HTTP requests answered, by model, endpoint and status code",
                                ["model", "endpoint", "status"], registry=r)
        self.request_seconds = Histogram(
            "llamaslots_request_duration_seconds", "Time from a request's arrival to the end of its answer "
            "(a stream's last byte), by model", ["model"], buckets=_DURATION, registry=r)
        self.prompt_tokens = Counter("llamaslots_prompt_tokens", "Prompt tokens of the answers' usage, by model",
                                     ["model"], registry=r)
        self.cached_tokens = Counter(
            "llamaslots_prompt_cached_tokens", "Prompt tokens reused from the KV cache (usage's "
            "prompt_tokens_details.cached_tokens), by model", ["model"], registry=r)
        self.completion_tokens = Counter("llamaslots_completion_tokens",
                                         "Completion tokens of the answers' usage, by model", ["model"], registry=r)
        self.ttft = LoopHistograms("llamaslots_time_to_first_token_seconds",
                                   "Time from a generation's submission to its first text, by model",
                                   _LATENCY, r)
        self.itl = LoopHistograms("llamaslots_inter_token_latency_seconds",
                                  "Time between two pieces of text of one generation, by model", _TOKEN_GAP, r)
        self.waiting = Gauge("llamaslots_requests_waiting", "Generations queued for a free slot, by model",
                             ["model"], registry=r)
        self.busy_slots = Gauge("llamaslots_slots_busy", "Slots working on a request, by model", ["model"],
                                registry=r)
        self.idle_slots = Gauge("llamaslots_slots_idle", "Slots without a request, by model", ["model"], registry=r)
        self.kv_used = Gauge("llamaslots_kv_cells_used", "KV cache cells in use, by model", ["model"], registry=r)
        self.kv_size = Gauge("llamaslots_kv_cells", "KV cache cells of the model's context, by model", ["model"],
                             registry=r)
        self.decoded = Counter("llamaslots_prompt_tokens_decoded", "Prompt tokens the engine decoded (cache "
                               "hits excluded), by model", ["model"], registry=r)
        self.sampled = Counter("llamaslots_tokens_sampled", "Tokens the engine sampled, by model", ["model"],
                               registry=r)
        self.loads = Counter("llamaslots_model_loads", "Models loaded, by model", ["model"], registry=r)
        self.load_seconds = Histogram("llamaslots_model_load_duration_seconds",
                                      "Time to load a model (successful loads), by model", ["model"],
                                      buckets=_LOAD, registry=r)
        self.load_failures = Counter("llamaslots_model_load_failures", "Model loads that failed, by model",
                                     ["model"], registry=r)
        self.unloads = Counter("llamaslots_model_unloads", "Models unloaded, by model and reason (swap, idle, "
                               "request, shutdown, died)", ["model", "reason"], registry=r)
        self.unload_seconds = Histogram("llamaslots_model_unload_duration_seconds",
                                        "Time to unload a model (its process ended), by model", ["model"],
                                        buckets=_LOAD, registry=r)
        self.swap_seconds = Histogram("llamaslots_model_swap_duration_seconds",
                                      "A swap from its start (waiting for the old model's requests, unloading "
                                      "it) to the new model loaded, by the model loaded", ["model"],
                                      buckets=_LOAD, registry=r)
        self.swaps = Counter("llamaslots_model_swaps", "Loads that first unloaded another model to make room, "
                             "by the model loaded", ["model"], registry=r)
        self.restarts = Counter("llamaslots_worker_restarts", "Model processes started again after theirs "
                                "ended by itself, by model and how it ended (signal name or exit code)",
                                ["model", "signal"], registry=r)
        self.loaded = Gauge("llamaslots_models_loaded", "Models resident now", registry=r)
        self.recent: deque[RequestRecord] = deque(maxlen=RECENT)
        self._models: dict[str, ModelMetrics] = {}

    # -- requests ------------------------------------------------------------------------
    def request_done(self, record: RequestRecord, *, listed: bool = True) -> None:
        self.requests.labels(record.model, record.endpoint, str(record.status)).inc()
        self.request_seconds.labels(record.model).observe(record.seconds)
        if listed:
            self.recent.appendleft(record)

    def for_model(self, model: str, n_slots: int) -> "ModelMetrics":
        old = self._models.get(model)
        if old is not None:
            old.sync()
        self._models[model] = mm = ModelMetrics(self, model, n_slots)
        return mm

    # -- engines -------------------------------------------------------------------------

    def model_loaded(self, model: str, seconds: float, kv_cells: int, *, swap_seconds: float | None,
                     resident: int) -> None:
        self.loads.labels(model).inc()
        self.load_seconds.labels(model).observe(seconds)
        if swap_seconds is not None:
            self.swaps.labels(model).inc()
            self.swap_seconds.labels(model).observe(swap_seconds)
        self.kv_size.labels(model).set(kv_cells)
        self.loaded.set(resident)

    def load_failed(self, model: str) -> None:
        self.load_failures.labels(model).inc()

    def model_unloaded(self, model: str, reason: str, seconds: float, *, resident: int) -> None:
        self.unloads.labels(model, reason).inc()
        self.unload_seconds.labels(model).observe(seconds)
        gone = self._models.pop(model, None)
        if gone is not None:
            gone.sync()  # its last steps' tokens still count
        # An unloaded model has no slots: its gauges go rather than show its last step.
        for gauge in (self.waiting, self.busy_slots, self.idle_slots, self.kv_used, self.kv_size):
            try:
                gauge.remove(model)
            except KeyError:
                pass
        self.loaded.set(resident)

    def worker_restart(self, model: str, how: str) -> None:
        self.restarts.labels(model, how).inc()

    # -- reading -------------------------------------------------------------------------
    def exposition(self) -> tuple[bytes, str]:
        for mm in list(self._models.values()):
            mm.sync()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def recent_requests(self) -> Iterable[RequestRecord]:
        return list(self.recent)


class ModelMetrics:
    """One loaded model's metrics, its labelled children looked up once. The per-step path
    only keeps the engine's latest StepStats (one assignment: a step of a small model is a
    millisecond, and the front-end shares the CPU with llama.cpp); the gauges read it and
    the engine's counters are brought up to it when /metrics is scraped (`sync`)."""

    def __init__(self, m: Metrics, model: str, n_slots: int) -> None:
        self.n_slots = n_slots
        self.latest = StepStats()
        self._ttft, self._itl = m.ttft.labels(model), m.itl.labels(model)
        self._prompt, self._cached, self._completion = (
            c.labels(model) for c in (m.prompt_tokens, m.cached_tokens, m.completion_tokens))
        m.waiting.labels(model).set_function(lambda: self.latest.waiting)
        m.busy_slots.labels(model).set_function(lambda: self.latest.busy_slots)
        m.idle_slots.labels(model).set_function(lambda: self.n_slots - self.latest.busy_slots)
        m.kv_used.labels(model).set_function(lambda: self.latest.kv_used)
        self._decoded, self._sampled = m.decoded.labels(model), m.sampled.labels(model)
        # The engine's totals already added to the counters (which outlive this engine).
        self._decoded_seen = self._sampled_seen = 0

    def usage(self, usage: Usage) -> None:
        """An answer's reported usage: the counters add up to what clients were told."""
        self._prompt.inc(usage.prompt_tokens)
        self._cached.inc(usage.cached_tokens)
        self._completion.inc(usage.completion_tokens)

    def first_token(self, seconds: float) -> None:
        self._ttft.observe(seconds)

    def token_gap(self, seconds: float) -> None:
        self._itl.observe(seconds)

    def step(self, stats: StepStats) -> None:
        """Once per engine step (on whichever thread delivers it)."""
        self.latest = stats

    def sync(self) -> None:
        """Add what the engine counted since the last sync (on the event loop only)."""
        latest = self.latest
        if latest.prompt_tokens_total > self._decoded_seen:
            self._decoded.inc(latest.prompt_tokens_total - self._decoded_seen)
            self._decoded_seen = latest.prompt_tokens_total
        if latest.sampled_total > self._sampled_seen:
            self._sampled.inc(latest.sampled_total - self._sampled_seen)
            self._sampled_seen = latest.sampled_total
