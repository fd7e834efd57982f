"""The server chain: stages around every handler, run by a sync or an asyncio adapter.

core.py holds what the stages see (Call) and the chain itself; the adapters
wrap the four RPC shapes once per method (_sync.py for a thread-pool server,
_aio.py for grpc.aio) and map what a handler raises to a status
(status_mapping.py). The order of the stages is declared in server/stages.py.
"""

from deptmesh.sidecar.chain._aio import AioChainInterceptor
from deptmesh.sidecar.chain._sync import ChainInterceptor
from deptmesh.sidecar.chain.core import Call, Chain, Gate, RpcMethod, Stage, Status, with_trailing

__all__ = [
    "AioChainInterceptor",
    "Call",
    "Chain",
    "ChainInterceptor",
    "Gate",
    "RpcMethod",
    "Stage",
    "Status",
    "with_trailing",
]
