"""Model manager: load on demand, swaps under single-active, failed loads release the lock."""
from __future__ import annotations

import asyncio
import shutil

import pytest

from compat.config import load_configs
from compat.params import GenerationParams, SamplingParams
from server.engine.types import Finished, GenerateRequest, TextDelta
from server.errors import ModelLoadFailed, ModelNotFound, ServerBusy
from server.manager import ManagerPolicy, ModelManager

CONFIG = """
- name: alpha
  context_size: 512
  threads: 2
  parameters:
    model: spm-scripted.gguf
- name: beta
  context_size: 512
  threads: 2
  parameters:
    model: bpe-scripted.gguf
- name: broken
  parameters:
    model: broken.gguf
"""


@pytest.fixture
def models_dir(tmp_path, gguf_path):
    for name in ("spm-scripted", "bpe-scripted"):
        shutil.copy(gguf_path(name), tmp_path / f"{name}.gguf")
    (tmp_path / "broken.gguf").write_bytes(b"GGUF" + b"\x00" * 32)
    (tmp_path / "config.yaml").write_text(CONFIG)
    return tmp_path


def manager_for(models_dir, **policy) -> ModelManager:
    configs = load_configs(models_dir / "config.yaml", models_dir, strict=False)
    return ModelManager(configs, models_dir, ManagerPolicy(**policy))


async def ask(manager: ModelManager, model: str, prompt: str = "one") -> tuple[str, object]:
    async with manager.acquire(model) as handle:
        text, end = "", None
        req = GenerateRequest(prompt, GenerationParams(SamplingParams(temperature=0), max_tokens=16))
        async for ev in handle.generate(req):
            if isinstance(ev, TextDelta):
                text += ev.text
            else:
                end = ev
        return text, end


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_concurrent_requests_to_two_models_with_single_active_backend(models_dir, isolation):
    async def main():
        mgr = manager_for(models_dir, max_active=1, isolation=isolation)
        try:
            jobs = [ask(mgr, m) for m in ("alpha", "beta", "alpha", "beta", "alpha", "beta")]
            results = await asyncio.gather(*jobs)
            assert len(mgr.loaded()) == 1
            return results
        finally:
            await mgr.aclose()

    for text, end in asyncio.run(main()):
        assert isinstance(end, Finished), end
        assert text == " two three four five"


def test_several_models_resident_without_limit(models_dir):
    async def main():
        mgr = manager_for(models_dir, isolation="thread")
        try:
            await asyncio.gather(ask(mgr, "alpha"), ask(mgr, "beta"))
            return sorted(mgr.loaded())
        finally:
            await mgr.aclose()

    assert asyncio.run(main()) == ["alpha", "beta"]


def test_failed_load_reports_reason_and_does_not_block_others(models_dir):
    async def main():
        mgr = manager_for(models_dir, max_active=1)
        try:
            with pytest.raises(ModelLoadFailed) as info:
                await ask(mgr, "broken")
            # The swap lock was released: the next model loads and answers.
            text, end = await ask(mgr, "alpha")
            return info.value, text
        finally:
            await mgr.aclose()

    err, text = asyncio.run(main())
    assert "broken" in err.message and len(err.reason) > 10
    assert text == " two three four five"


def test_unknown_model_is_404_with_localai_message(models_dir):
    mgr = manager_for(models_dir)
    with pytest.raises(ModelNotFound) as info:
        mgr.config_for("nope")
    assert info.value.status == 404 and "GET /v1/models" in info.value.message


def test_dead_worker_is_reloaded_on_next_request(models_dir):
    import os
    import signal

    async def main():
        mgr = manager_for(models_dir)
        try:
            await ask(mgr, "alpha")
            pid = mgr._handles["alpha"].engine.pid
            os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.5)
            text, end = await ask(mgr, "alpha")
            return pid, mgr._handles["alpha"].engine.pid, text
        finally:
            await mgr.aclose()

    old, new, text = asyncio.run(main())
    assert old != new and text == " two three four five"


def test_a_swap_lets_the_old_model_serve_during_its_grace_then_stops_it(models_dir):
    async def main():
        mgr = manager_for(models_dir, max_active=1, isolation="thread", swap_grace=0.5)
        try:
            async with mgr.acquire("alpha"):  # alpha busy: a swap to beta must wait
                swap = asyncio.create_task(ask(mgr, "beta"))
                await asyncio.sleep(0.1)
                # During the grace period alpha still takes new requests instead of bouncing them.
                text, _ = await asyncio.wait_for(ask(mgr, "alpha"), 5)
                assert text == " two three four five"
                assert mgr.loaded() == ["alpha"]
                await asyncio.sleep(0.6)
                # Grace over: new alpha requests wait for the swap (which waits for us).
                late = asyncio.create_task(ask(mgr, "alpha"))
                await asyncio.sleep(0.2)
                assert not late.done() and not swap.done()
            beta_text, _ = await asyncio.wait_for(swap, 10)
            alpha_text, _ = await asyncio.wait_for(late, 10)
            return beta_text, alpha_text
        finally:
            await mgr.aclose()

    assert asyncio.run(main()) == (" two three four five", " two three four five")


def test_shutdown_lets_running_work_finish_then_refuses_new_requests(models_dir):
    async def main():
        mgr = manager_for(models_dir, isolation="thread")
        async with mgr.acquire("alpha") as handle:  # a request in flight
            stopping = asyncio.create_task(mgr.shutdown(grace=30))
            await asyncio.sleep(0.1)
            assert not stopping.done()  # it waits for the request
            with pytest.raises(ServerBusy, match="stopping"):
                await ask(mgr, "beta")
            req = GenerateRequest("one", GenerationParams(SamplingParams(temperature=0), max_tokens=16))
            events = [ev async for ev in handle.generate(req)]
        await asyncio.wait_for(stopping, 10)
        assert mgr.loaded() == []
        return "".join(ev.text for ev in events if isinstance(ev, TextDelta)), events[-1]

    text, end = asyncio.run(main())
    assert (text, end.reason) == (" two three four five", "stop")


def test_shutdown_cancels_what_outlives_the_grace(models_dir):
    async def main():
        mgr = manager_for(models_dir, isolation="thread")
        started = asyncio.Event()
        events = []

        async def endless():
            async with mgr.acquire("alpha") as handle:
                req = GenerateRequest("The", GenerationParams(SamplingParams(temperature=0, ignore_eos=True)))
                async for ev in handle.generate(req):
                    events.append(ev)
                    started.set()

        task = asyncio.create_task(endless())
        await started.wait()
        await mgr.shutdown(grace=0)
        await asyncio.wait_for(task, 10)
        return events

    events = asyncio.run(main())
    assert isinstance(events[-1], Finished) and events[-1].reason == "cancelled"
    assert events[-1].usage.completion_tokens < 500


def test_a_requester_that_leaves_mid_swap_does_not_abort_it(models_dir):
    async def main():
        mgr = manager_for(models_dir, isolation="process")
        try:
            leaver = asyncio.create_task(ask(mgr, "alpha"))
            await asyncio.sleep(0.05)  # the model's process is starting
            leaver.cancel()
            with pytest.raises(asyncio.CancelledError):
                await leaver
            # The swap goes on and registers what it started: no process left unowned.
            for _ in range(200):
                if mgr.loaded() == ["alpha"]:
                    break
                await asyncio.sleep(0.05)
            assert mgr.loaded() == ["alpha"]
            pid = mgr._handles["alpha"].engine.pid
            text, _ = await ask(mgr, "alpha")
            assert text == " two three four five"
            assert mgr._handles["alpha"].engine.pid == pid  # the same process: no second load
        finally:
            await mgr.aclose()

    asyncio.run(main())


def _value(manager: ModelManager, name: str, **labels: str) -> float:
    return manager.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_loads_report_progress_and_are_counted_and_failures_too(models_dir, isolation, monkeypatch):
    seen: list[float] = []

    async def main():
        manager = manager_for(models_dir, isolation=isolation, max_active=1)
        real = manager._progress_of

        def spy(name):
            report = real(name)

            def progress(f: float) -> None:
                seen.append(f)
                assert name in manager.loading  # /readyz lists it meanwhile
                report(f)

            return progress

        monkeypatch.setattr(manager, "_progress_of", spy)
        await ask(manager, "alpha")
        assert manager.loading == {}
        await ask(manager, "beta")  # single active: alpha makes room
        with pytest.raises(ModelLoadFailed):
            await ask(manager, "broken")
        assert manager.loading == {}
        await manager.aclose()
        return manager

    manager = asyncio.run(main())
    # Two loads (alpha, beta), each from 0% to 100% in order; the broken file never got going.
    first = seen[:seen.index(1.0) + 1]
    second = seen[len(first):]
    assert first[0] == 0.0 and first == sorted(first) and second[0] == 0.0 and second == sorted(second)
    assert second[-1] == 1.0
    assert _value(manager, "llamaslots_model_loads_total", model="alpha") == 1
    assert _value(manager, "llamaslots_model_swaps_total", model="beta") == 1
    assert _value(manager, "llamaslots_model_swap_duration_seconds_count", model="beta") == 1
    assert _value(manager, "llamaslots_model_swap_duration_seconds_sum", model="beta") >= _value(
        manager, "llamaslots_model_load_duration_seconds_sum", model="beta")
    assert _value(manager, "llamaslots_model_unload_duration_seconds_count", model="alpha") == 1
    assert _value(manager, "llamaslots_model_unloads_total", model="alpha", reason="swap") == 1
    # The broken file failed its header check before beta had to make room: beta stayed
    # until the manager closed.
    assert _value(manager, "llamaslots_model_unloads_total", model="beta", reason="swap") == 0
    assert _value(manager, "llamaslots_model_unloads_total", model="beta", reason="shutdown") == 1
    assert _value(manager, "llamaslots_model_load_failures_total", model="broken") == 1
    assert _value(manager, "llamaslots_model_load_duration_seconds_count", model="alpha") == 1
    assert _value(manager, "llamaslots_models_loaded") == 0


def test_takes_now_says_whether_acquire_would_return_at_once(models_dir):
    # The request path skips its wait-or-disconnect race when the model takes requests now: takes_now() must
    # be False wherever acquire() could wait.
    async def main():
        m = manager_for(models_dir, isolation="thread")
        try:
            assert not m.takes_now("alpha")  # not loaded: acquire loads it
            await ask(m, "alpha")
            assert m.takes_now("alpha")
            assert not m.takes_now("beta")
            async with m._state:  # a load, swap or shutdown is deciding
                assert not m.takes_now("alpha")
            m._handles["alpha"].draining = True  # a swap waits for it to finish
            assert not m.takes_now("alpha")
            m._handles["alpha"].draining = False
            with pytest.raises(ModelNotFound):
                m.takes_now("no-such-model")
        finally:
            await m.aclose()
        assert not m.takes_now("alpha")

    asyncio.run(main())
