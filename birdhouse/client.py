"""A small HTTP client for birdhouse's own API, used by the CLI.

It talks to a running server exactly as any Tinybird client would; the CLI
never opens the data dir of a running server behind its back.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

DEFAULT_HOST = "http://127.0.0.1:7181"


class ClientError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return response.text.strip()


class Client:
    def __init__(self, host: str | None = None, token: str | None = None, timeout_s: float = 60.0) -> None:
        self.host = (host or os.environ.get("BIRDHOUSE_HOST") or DEFAULT_HOST).rstrip("/")
        self._http = httpx.Client(base_url=self.host, timeout=timeout_s)
        self._token = token or os.environ.get("BIRDHOUSE_TOKEN") or os.environ.get("TB_TOKEN")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def token(self) -> str:
        """The given token, else the local server's admin token (GET /tokens)."""
        if not self._token:
            try:
                response = self._http.get("/tokens")
            except httpx.HTTPError as exc:
                raise ClientError(f"cannot reach {self.host}: {exc}") from None
            if response.status_code != 200:
                raise ClientError(
                    f"{self.host} does not hand out tokens (GET /tokens → {response.status_code}); "
                    "pass --token or set BIRDHOUSE_TOKEN"
                )
            self._token = str(response.json()["workspace_admin_token"])
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach {self.host}: {exc}") from None
        if response.status_code >= 400:
            raise ClientError(_error_text(response), response.status_code)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()
