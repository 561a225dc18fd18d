"""A small typed HTTP client for the hpsearch REST API (``/api/v1``).

Used by the CLI's client commands, so it imports nothing heavier than httpx.
Every failure (unreachable server, timeout, 4xx/5xx, non-JSON answer) is raised as
:class:`ClientError` carrying one human-readable line.
"""

from __future__ import annotations

import copy
import re
import uuid
from pathlib import Path
from typing import Any

import httpx

__all__ = ["ClientError", "HpsClient", "error_message"]

API_PREFIX = "/api/v1"
KEPT_ANSWERS = 32  # versioned answers kept to ask again with If-None-Match


class ClientError(Exception):
    """A request to the hpsearch server failed; ``str(err)`` is one clear line."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


def _format_validation_item(item: Any) -> str:
    """One FastAPI 422 item -> ``search.n_trials: Input should be ...``."""
    if not isinstance(item, dict):
        return str(item)
    loc = [str(part) for part in item.get("loc", [])]
    if loc and loc[0] == "body":
        loc = loc[1:]
    msg = str(item.get("msg", "invalid value"))
    return f"{'.'.join(loc)}: {msg}" if loc else msg


def error_message(response: httpx.Response) -> str:
    """Build one line from an error response's JSON ``detail``.

    A string detail is used as is; FastAPI's 422 list becomes ``loc.path: msg`` items
    (the leading ``body`` dropped) joined by ``; ``; anything else falls back to
    ``HTTP <code>: <body text>``.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        text = detail
    elif isinstance(detail, list) and detail:
        text = "; ".join(_format_validation_item(item) for item in detail)
    elif detail is not None:
        text = str(detail)
    else:
        fallback = " ".join(response.text.split())[:200] or response.reason_phrase
        return f"HTTP {response.status_code}: {fallback}"
    return " ".join(text.split())  # keep it on one line


class HpsClient:
    """Typed wrapper over the hpsearch REST API.

    >>> client = HpsClient("http://127.0.0.1:8000")
    >>> client.get_study(1)["status"]  # doctest: +SKIP
    'running'
    """

    def __init__(self, base_url: str, timeout: float = 10.0, api_key: str | None = None) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._kept: dict[tuple[str, Any], tuple[str, dict[str, Any]]] = {}  # _versioned's
        headers = {}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key.strip()}"
        try:
            self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers)
        except httpx.InvalidURL as exc:
            raise ClientError(f"invalid hpsearch server URL {base_url!r}: {exc}") from exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HpsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        response = self._send(method, path, json=json, params=params, headers=headers)
        return self._json(response, path)

    def _json(self, response: httpx.Response, path: str) -> dict[str, Any]:
        """The answer's JSON object ({} for 204 No Content)."""
        if response.status_code == 204:
            return {}
        url = f"{API_PREFIX}{path}"
        try:
            body = response.json()
        except ValueError as exc:
            raise ClientError(
                f"unexpected non-JSON answer from {self.base_url}{url} "
                f"(HTTP {response.status_code})"
            ) from exc
        if not isinstance(body, dict):
            raise ClientError(f"unexpected answer from {self.base_url}{url}: not a JSON object")
        return body

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; transport failures and error answers become ``ClientError``."""
        url = f"{API_PREFIX}{path}"
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise ClientError(
                f"cannot reach hpsearch server at {self.base_url}: timed out ({exc})"
            ) from exc
        except (httpx.RequestError, httpx.InvalidURL) as exc:
            reason = str(exc) or type(exc).__name__
            raise ClientError(f"cannot reach hpsearch server at {self.base_url}: {reason}") from exc
        if response.is_error:
            raise ClientError(error_message(response), status_code=response.status_code)
        return response

    def create_study(self, spec: dict[str, Any], *, attempts: int = 2) -> dict[str, Any]:
        """Submit a spec. A submission whose answer is lost (timeout, dropped connection)
        is sent again with the same Idempotency-Key: the server returns the study it
        already created instead of a duplicate."""
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        for attempt in range(attempts):
            try:
                return self._request("POST", "/studies", json=spec, headers=headers)
            except ClientError as exc:
                if exc.status_code is not None or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def list_studies(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        return self._request("GET", "/studies", params={"offset": offset, "limit": limit})

    def _versioned(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A study read labelled with the study's version (``ETag``): asked again with
        ``If-None-Match``, so an unchanged study answers 304 and the answer kept is reused.
        Exact either way: the server compares with the study's version now."""
        key = (path, tuple(sorted((params or {}).items())))
        kept = self._kept.pop(key, None)
        headers = {"If-None-Match": kept[0]} if kept is not None else None
        response = self._send("GET", path, params=params, headers=headers)
        if response.status_code == 304 and kept is not None:
            body = kept[1]
        else:
            body = self._json(response, path)
        etag = response.headers.get("etag")
        if etag:
            self._kept[key] = (etag, body)
            while len(self._kept) > KEPT_ANSWERS:
                del self._kept[next(iter(self._kept))]
        return copy.deepcopy(body)

    def get_study(self, id: int) -> dict[str, Any]:
        return self._versioned(f"/studies/{id}")

    def leaderboard(self, id: int, top: int = 10) -> dict[str, Any]:
        return self._versioned(f"/studies/{id}/leaderboard", params={"top": top})

    def get_trial(self, id: int, number: int) -> dict[str, Any]:
        return self._request("GET", f"/studies/{id}/trials/{number}")

    def cancel(self, id: int) -> dict[str, Any]:
        return self._request("POST", f"/studies/{id}/cancel")

    def set_public(self, id: int, public: bool) -> dict[str, Any]:
        return self._request("PATCH", f"/studies/{id}", json={"public": public})

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/health")

    def list_workers(self) -> dict[str, Any]:
        return self._request("GET", "/workers")

    # ------------------------------------------------------------ datasets, models

    def upload_dataset(
        self,
        path: Path,
        *,
        target: str,
        task: str | None = None,
        impute: bool = False,
        name: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Upload a CSV or Parquet file (streamed from disk); (dataset, created): created
        is False when the same upload was stored before."""
        form: dict[str, str] = {"target": target, "impute": "true" if impute else "false"}
        if task is not None:
            form["task"] = task
        if name is not None:
            form["name"] = name
        try:
            f = path.open("rb")
        except OSError as exc:
            raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from None
        with f:
            response = self._send(
                "POST",
                "/datasets",
                files={"file": (path.name, f, "application/octet-stream")},
                data=form,
                timeout=max(self.timeout, 300.0),
            )
        return self._json(response, "/datasets"), response.status_code == 201

    def list_datasets(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        return self._request("GET", "/datasets", params={"offset": offset, "limit": limit})

    def get_dataset(self, id: int) -> dict[str, Any]:
        return self._request("GET", f"/datasets/{id}")

    def delete_dataset(self, id: int) -> None:
        self._request("DELETE", f"/datasets/{id}")

    def download_model(self, id: int, path: Path | None = None) -> Path:
        """Save study ``id``'s best model file to ``path`` (default: the server's file
        name, in the current directory); returns where it went."""
        response = self._send("GET", f"/studies/{id}/model")
        if path is None:
            match = re.search(
                r'filename="([^"/\\]+)"', response.headers.get("content-disposition", "")
            )
            path = Path(match.group(1) if match else f"study-{id}-model.zip")
        path.write_bytes(response.content)
        return path
