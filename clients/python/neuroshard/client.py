"""The client proper: NeuroNode (the node's API), NEUROLedger (its wallet)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal
from typing import Any, Dict, Iterator, List, Optional, Union


class Result:
    """A JSON object from the node with attribute access: ``status.node_id``. Nested
    objects are Results too; ``raw`` is the decoded dict."""

    def __init__(self, raw: Dict[str, Any]):
        self.raw = raw

    def __getattr__(self, name: str) -> Any:
        try:
            return _wrap(self.raw[name])
        except KeyError:
            raise AttributeError(f"the node's answer has no field {name!r}") from None

    def __getitem__(self, name: str) -> Any:
        return _wrap(self.raw[name])

    def __contains__(self, name: str) -> bool:
        return name in self.raw

    def __repr__(self) -> str:
        return f"Result({self.raw!r})"


def _wrap(v: Any) -> Any:
    if isinstance(v, dict):
        return Result(v)
    if isinstance(v, list):
        return [_wrap(x) for x in v]
    return v


class TokenEvent(Result):
    """One event of a streamed inference: ``token`` and ``index``; the last one has the
    token ``[DONE]``, ``finish_reason`` and ``usage``."""

    @property
    def done(self) -> bool:
        return self.raw.get("token") == "[DONE]"


class NeuroShardError(Exception):
    """An error the node answered: ``code`` (seed 003), ``status``, ``message``, ``details``;
    ``retry_after`` (seconds) on RATE_LIMITED and busy answers."""

    def __init__(self, status: int, code: str, message: str, details: Optional[Dict[str, Any]] = None,
                 retry_after: Optional[float] = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.retry_after = retry_after


def _decode(body: bytes) -> Any:
    return json.loads(body.decode("utf-8"), parse_float=Decimal)


def _error(status: int, body: bytes, headers: Any) -> NeuroShardError:
    try:
        e = _decode(body)["error"]
        code, message, details = e.get("code", "UNKNOWN"), e.get("message", ""), e.get("details") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message, details = "UNKNOWN", body.decode("utf-8", "replace")[:200], {}
    retry = details.get("retry_after") if isinstance(details, dict) else None
    if retry is None and headers is not None and headers.get("Retry-After"):
        retry = headers.get("Retry-After")
    return NeuroShardError(status, code, message, details, float(retry) if retry is not None else None)


class NeuroNode:
    """A node's REST API at ``url`` (``http://host:port``), with its token."""

    def __init__(self, url: str = "http://localhost:8000", api_token: Optional[str] = None, timeout: float = 120.0):
        self.url = url.rstrip("/")
        self.api_token = api_token
        self.timeout = timeout

    # -- plumbing --------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None,
                 query: Optional[Dict[str, Any]] = None, stream: bool = False) -> Any:
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if body is not None:
            data = _dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.api_token:
            headers["Authorization"] = "Bearer " + self.api_token
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            raise _error(e.code, e.read(), e.headers) from None
        if stream:
            return resp
        with resp:
            return _decode(resp.read())

    def _get(self, path: str, **query: Any) -> Result:
        return Result(self._request("GET", path, query=query or None))

    # -- node ------------------------------------------------------------------------------

    def health(self) -> Result:
        """GET /api/v1/health (needs no token)."""
        return self._get("/api/v1/health")

    def get_status(self) -> Result:
        """GET /api/v1/status: node_id, role, layers, peer_count, training, resources, ..."""
        return self._get("/api/v1/status")

    def get_peers(self) -> Result:
        return self._get("/api/v1/peers")

    def get_layers(self) -> Result:
        return self._get("/api/v1/layers")

    def get_network(self) -> Result:
        return self._get("/api/v1/network")

    def get_metrics(self) -> Result:
        return self._get("/api/v1/metrics")

    def get_config(self) -> Result:
        return self._get("/api/v1/config")

    def update_config(self, **patch: Any) -> Result:
        """PATCH /api/v1/config, e.g. ``update_config(training={"enabled": False})``."""
        return Result(self._request("PATCH", "/api/v1/config", body=patch))

    def inference(self, prompt: str, max_tokens: Optional[int] = None, temperature: Optional[float] = None,
                  top_p: Optional[float] = None, top_k: Optional[int] = None, stop: Optional[List[str]] = None,
                  seed: Optional[int] = None, stream: bool = False) -> Union[Result, Iterator[TokenEvent]]:
        """POST /api/v1/inference. With stream=True, an iterator of TokenEvents (the last has
        the token "[DONE]", finish_reason and usage); else the whole answer (text, usage,
        cost, timing, route)."""
        body: Dict[str, Any] = {"prompt": prompt}
        for k, v in (("max_tokens", max_tokens), ("temperature", temperature), ("top_p", top_p),
                     ("top_k", top_k), ("stop", stop), ("seed", seed)):
            if v is not None:
                body[k] = v
        if not stream:
            return Result(self._request("POST", "/api/v1/inference", body=body))
        body["stream"] = True
        return self._events(self._request("POST", "/api/v1/inference", body=body, stream=True))

    def _events(self, resp: Any) -> Iterator[TokenEvent]:
        with resp:
            event, data = "", []
            for raw in resp:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif line == "" and data:
                    payload = _decode("\n".join(data).encode("utf-8"))
                    if event == "error":
                        e = payload.get("error", {})
                        raise NeuroShardError(e.get("status", 500) if isinstance(e.get("status"), int) else 500,
                                              e.get("code", "UNKNOWN"), e.get("message", ""), e.get("details"))
                    ev = TokenEvent(payload)
                    yield ev
                    if ev.done:
                        return
                    event, data = "", []

    # -- tasks (seed 002) -----------------------------------------------------------------

    def submit_task(self, prompt: str, priority: str = "standard", max_tokens: Optional[int] = None,
                    model: Optional[str] = None) -> Result:
        body: Dict[str, Any] = {"prompt": prompt, "priority": priority}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if model:
            body["model"] = model
        return Result(self._request("POST", "/api/v1/tasks", body=body))

    def get_task(self, task_id: str) -> Result:
        """The task: status, and once completed its result, tokens_used, cost and node."""
        raw = self._request("GET", "/api/v1/tasks/" + urllib.parse.quote(task_id, safe=""))
        return Result(raw.get("data", raw))

    def list_tasks(self, status: Optional[str] = None, limit: Optional[int] = None, offset: Optional[int] = None) -> Result:
        return self._get("/api/v1/tasks", status=status, limit=limit, offset=offset)

    def cancel_task(self, task_id: str) -> Result:
        return Result(self._request("DELETE", "/api/v1/tasks/" + urllib.parse.quote(task_id, safe="")))


def _dumps(body: Dict[str, Any]) -> str:
    """JSON with Decimals written as exact numbers (the node reads amounts exactly)."""
    marks: Dict[str, str] = {}

    def default(v: Any) -> Any:
        if isinstance(v, Decimal):
            mark = f"\u0000dec{len(marks)}\u0000"
            marks[mark] = format(v, "f")
            return mark
        raise TypeError(f"cannot send {type(v).__name__} as JSON")

    out = json.dumps(body, default=default)
    for mark, text in marks.items():
        out = out.replace(json.dumps(mark), text)
    return out


class NEUROLedger:
    """The wallet of the node ``node`` talks to: balances, transfers, stake."""

    def __init__(self, node: NeuroNode):
        self.node = node

    def get_balance(self) -> Result:
        """available, staked, pending and total (decimal.Decimal NEURO; also under
        ``balances`` as the API nests them), address and staking."""
        raw = self.node._request("GET", "/api/v1/wallet/balance")
        return Result({**raw, **(raw.get("balances") or {})})

    def get_transactions(self, limit: Optional[int] = None, offset: Optional[int] = None) -> Result:
        return Result(self.node._request("GET", "/api/v1/wallet/transactions", query={"limit": limit, "offset": offset}))

    def send(self, to: str, amount: Union[Decimal, int, str], memo: str = "") -> Result:
        return Result(self.node._request("POST", "/api/v1/wallet/send", body={"to": to, "amount": _amount(amount), "memo": memo}))

    def stake(self, amount: Union[Decimal, int, str], duration_days: int = 30) -> Result:
        return Result(self.node._request("POST", "/api/v1/wallet/stake",
                                         body={"amount": _amount(amount), "duration_days": duration_days}))

    def unstake(self, amount: Union[Decimal, int, str]) -> Result:
        return Result(self.node._request("POST", "/api/v1/wallet/unstake", body={"amount": _amount(amount)}))


def _amount(v: Union[Decimal, int, str]) -> Decimal:
    return Decimal(str(v))
