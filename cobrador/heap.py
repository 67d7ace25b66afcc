"""Python's garbage collector and a loaded model.

Once its model is loaded a Rasa process holds about half a million objects
(TensorFlow, scikit-learn, the domain, the graph) that live as long as the
model. Python's full collection (generation 2) walks every one of them: 0.3 s
on the development machine, during which every turn in flight waits, several
times a minute under load (six such pauses, 1.8 s in all, in the 3,600 turns
of six rounds of both channels at 30 concurrent conversations in
bench/whatsapp.py). None of it is garbage. `gc.freeze()` moves what
exists into a permanent generation the collector does not walk; reference
counting still frees those objects when they are dropped. A full collection
then walks only what came after: 28 ms (twelve, 0.34 s in all, in the same
bench run with the heap frozen).

A model loaded later (Rasa's API can replace it) would be walked again, and
the frozen old one could not have its reference cycles collected, so
`keep_frozen` thaws, collects and freezes again whenever the model changes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Callable, Optional

logger = logging.getLogger(__name__)


_frozen = False  # whether this process froze its heap (gc.get_freeze_count() walks it all: 50 ms)


def freeze() -> None:
    """Collects what is garbage now, then keeps everything left out of later collections."""
    global _frozen
    gc.collect()
    gc.freeze()
    _frozen = True


def thaw() -> None:
    """Lets the collector see the frozen objects again."""
    global _frozen
    gc.unfreeze()
    _frozen = False


def refreeze() -> None:
    """Lets the collector see the frozen objects again (a model that was
    replaced), collects, and freezes what is left."""
    thaw()
    freeze()


def frozen() -> bool:
    """Whether this process froze its heap (a Rasa process does, once its model is loaded)."""
    return _frozen


async def keep_frozen(model_id: Callable[[], Optional[str]], every: float = 30.0) -> None:
    """Freezes the heap once a model is loaded (`model_id()` is not None;
    looked at every second until then), and again whenever the model changes
    (looked at every `every` seconds)."""
    frozen_with: Optional[str] = None  # the model the heap was last frozen with
    while True:
        current = model_id()
        if current is not None and current != frozen_with:
            if frozen_with is None:
                freeze()
            else:
                refreeze()
            if logger.isEnabledFor(logging.DEBUG):  # the count walks the frozen heap
                logger.debug("heap frozen with model %s: %s objects", current, gc.get_freeze_count())
            frozen_with = current
        await asyncio.sleep(every if frozen_with is not None else 1.0)
