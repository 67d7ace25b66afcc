"""Rasa custom actions: read the tracker, call `cobrador`, answer. Thin."""

from __future__ import annotations


def _freeze_heap_once_serving() -> None:
    """Under the action server (`rasa run actions`, whose Sanic app exists by
    the time it imports this package), what start-up made (rasa_sdk,
    SQLAlchemy, the ledger: some 150,000 objects, none of them garbage) is kept
    out of the garbage collector's full walks once the server is up: each took
    75-130 ms, during which every action call waited (cobrador.heap); `GET
    /heap` says whether that is done. Imported anywhere else (tests), nothing
    is done."""
    from sanic import Sanic, response
    from sanic.exceptions import SanicException

    from cobrador import heap

    try:
        app = Sanic.get_app("rasa_sdk")
    except SanicException:
        return

    async def freeze(app: Sanic, loop: object) -> None:
        heap.freeze()

    async def heap_state(request: object) -> response.HTTPResponse:
        return response.json({"heap_frozen": heap.frozen()})

    app.register_listener(freeze, "after_server_start")
    app.add_route(heap_state, "/heap", methods=["GET"])


_freeze_heap_once_serving()
