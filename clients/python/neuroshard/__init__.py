"""Python client for a NeuroShard node's REST API (standard library only).

    from neuroshard import NeuroNode, NEUROLedger

    node = NeuroNode("http://localhost:8000", api_token="YOUR_TOKEN")
    status = node.get_status()
    print(status.node_id, status.role, status.layers, status.peer_count)
    print(node.inference("ROMEO:", max_tokens=40).text)
    for event in node.inference("ROMEO:", max_tokens=40, stream=True):
        print(event.token, end="")
    print(NEUROLedger(node).get_balance().available)

Errors the node answers are raised as NeuroShardError, carrying the API's code (seed 003:
INVALID_REQUEST, UNAUTHORIZED, RATE_LIMITED, ...), its HTTP status, message and details.
NEURO amounts are decimal.Decimal (the node sends exact decimals).
"""

from .client import NEUROLedger, NeuroNode, NeuroShardError, Result, TokenEvent

__all__ = ["NeuroNode", "NEUROLedger", "NeuroShardError", "Result", "TokenEvent"]
__version__ = "0.1.0"
