"""The KeyValueStore admin API on the admin listener: list, put and delete keys of a store.

The store's file is the truth: a change is validated against CloudFront's limits (key 512
bytes, value 1 KB, store 5 MB), written to a temporary file and renamed over the store's, and
every worker's functions see it at their next reload check (within a second).

- `GET /key-value-stores`: the stores, with their key counts.
- `GET /key-value-stores/NAME/keys`: `{"items": [{"key", "value"}, ...]}`.
- `PUT /key-value-stores/NAME/keys/KEY` with `{"value": "..."}`: set one key.
- `DELETE /key-value-stores/NAME/keys/KEY`: remove one key (404 when it is not there).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import edit_store

MAX_PUT_BODY_BYTES: Final = 64 * 1024


def key_value_store_routes(stores: Mapping[str, Path]) -> list[Route]:
    """The admin routes over `stores` (file by store name)."""
    locks = {name: asyncio.Lock() for name in stores}

    def known(request: Request) -> tuple[str, Path] | Response:
        name = request.path_params["name"]
        path = stores.get(name)
        if path is None:
            return JSONResponse(
                {"error": f"no key value store {name!r}", "code": "EntityNotFound"}, 404
            )
        return name, path

    async def edit(
        name: str, path: Path, *, put: tuple[str, str] | None = None, delete: str | None = None
    ) -> tuple[dict[str, str], bool]:
        async with locks[name]:
            return await asyncio.to_thread(_edit_file, path, put, delete)

    async def list_stores(request: Request) -> Response:
        out = []
        for name, path in stores.items():
            data = await asyncio.to_thread(_read, path)
            out.append({"name": name, "keyCount": len(data)})
        return JSONResponse({"stores": out})

    async def list_keys(request: Request) -> Response:
        found = known(request)
        if isinstance(found, Response):
            return found
        data = await asyncio.to_thread(_read, found[1])
        return JSONResponse({"items": [{"key": k, "value": v} for k, v in data.items()]})

    async def one_key(request: Request) -> Response:
        found = known(request)
        if isinstance(found, Response):
            return found
        name, path = found
        key = request.path_params["key"]
        try:
            if request.method == "DELETE":
                data, changed = await edit(name, path, delete=key)
                if not changed:
                    return JSONResponse(
                        {"error": f"no key {key!r} in {name!r}", "code": "EntityNotFound"}, 404
                    )
                return Response(status_code=204)
            body = await request.body()
            if len(body) > MAX_PUT_BODY_BYTES:
                raise ValueError("the body is too large for one entry")
            document = orjson.loads(body)
            value = document.get("value") if isinstance(document, dict) else None
            if not isinstance(value, str):
                raise ValueError('expected a body {"value": "..."} with a string value')
            data, _ = await edit(name, path, put=(key, value))
        except orjson.JSONDecodeError as exc:
            return JSONResponse(
                {"error": f"the body is not JSON: {exc}", "code": "ValidationException"}, 400
            )
        except ValueError as exc:  # the store's KeyValueStoreInvalid: a limit, the format
            return JSONResponse({"error": str(exc), "code": "ValidationException"}, 400)
        return JSONResponse({"key": key, "value": data[key], "keyCount": len(data)})

    return [
        Route("/key-value-stores", list_stores),
        Route("/key-value-stores/{name}/keys", list_keys),
        Route("/key-value-stores/{name}/keys/{key:path}", one_key, methods=["PUT", "DELETE"]),
    ]


def _read(path: Path) -> dict[str, str]:
    return edit_store(path.read_bytes())[1]


def _edit_file(
    path: Path, put: tuple[str, str] | None, delete: str | None
) -> tuple[dict[str, str], bool]:
    text, data, changed = edit_store(path.read_bytes(), put=put, delete=delete)
    if changed:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(text)
        os.replace(temporary, path)
    return data, changed
