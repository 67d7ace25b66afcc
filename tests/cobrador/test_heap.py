"""The model's objects are kept out of the garbage collector's full walks,
and a replaced model's are collected."""

from __future__ import annotations

import asyncio
import gc
import weakref

from cobrador.heap import frozen, keep_frozen, thaw


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_the_heap_is_frozen_once_a_model_is_loaded_and_a_replaced_models_garbage_is_collected() -> None:
    thaw()  # whatever an earlier test in this process froze (a model loaded in it)

    async def scenario() -> None:
        model: list = [None]
        keeper = asyncio.ensure_future(keep_frozen(lambda: model[0], every=0.01))
        try:
            await asyncio.sleep(0.05)
            assert gc.get_freeze_count() == 0 and not frozen()  # no model yet: nothing frozen
            old = _Node()
            alive = weakref.ref(old)
            model[0] = "first"
            for _ in range(200):
                await asyncio.sleep(0.01)
                if gc.get_freeze_count():
                    break
            assert gc.get_freeze_count() > 0 and frozen()
            del old  # the first model's garbage, frozen with it
            gc.collect()
            assert alive() is not None  # frozen: a full collection does not walk it
            model[0] = "second"  # the model is replaced: thawed, collected, frozen again
            for _ in range(200):
                await asyncio.sleep(0.01)
                if alive() is None:
                    break
            assert alive() is None
            assert gc.get_freeze_count() > 0
        finally:
            keeper.cancel()
            thaw()

    asyncio.run(scenario())
