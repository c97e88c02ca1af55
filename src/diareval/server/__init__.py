"""A local server that speaks AssemblyAI's Universal-Streaming v3 protocol, with pluggable
engines (``oracle``, ``baseline``) and fault modes for testing clients.

    from diareval.server import LocalServer, FaultConfig
    from diareval.server.engines import make_engine_factory
    factory = make_engine_factory("oracle", recordings=recordings)
    async with LocalServer(factory, api_keys=("test-key",)) as server:
        ...  # connect to server.url + "/v3/ws"; server.sessions records what happened
"""

from diareval.server.app import FaultConfig, LocalServer, ServerSession
from diareval.server.process import ServerProcess, start_server_process

__all__ = ["FaultConfig", "LocalServer", "ServerSession", "ServerProcess",
           "start_server_process"]
