"""Dead letters for the operator (SPEC §8.4): list and repair, user token only
(letters hold rows of every workspace of the node)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from birdhouse.http.auth import authenticate, runtime
from birdhouse.http.errors import ApiError
from birdhouse.pipeline.repair import RepairFailed, describe, letters, repair


def _operator(request: Request) -> None:
    if not authenticate(request).is_user:
        raise ApiError(403, "Dead letters need the user token (they hold rows of every workspace)")


async def list_letters(request: Request) -> Response:
    _operator(request)
    directory = runtime(request).settings.data_path / "deadletter"
    return JSONResponse({"letters": [describe(path) for path in letters(directory)]})


async def replay_letter(request: Request) -> Response:
    _operator(request)
    rt = runtime(request)
    name = request.path_params["name"]
    path = rt.settings.data_path / "deadletter" / name
    if "/" in name or not name.endswith(".msgpack") or not path.is_file():
        raise ApiError(404, f"Dead letter '{name}' not found")
    try:
        repaired = await run_in_threadpool(repair, rt.backend, rt.catalog, path)
    except RepairFailed as exc:
        raise ApiError(409, f"Dead letter '{name}' was not repaired: {exc}") from None
    return JSONResponse(repaired)


routes = [
    Route("/v0/deadletter", list_letters, methods=["GET"]),
    Route("/v0/deadletter/{name}/replay", replay_letter, methods=["POST"]),
]
