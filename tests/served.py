"""A real flow server in a thread of the test process, on a free port of 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time

from flow.core.settings import ServiceConf


class Served:
    """``create_app(conf, token)`` served by uvicorn until :meth:`stop`; ``port`` is its port."""

    def __init__(self, conf: ServiceConf, token: str):
        import uvicorn

        from flow.server.app import create_app

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as flow/server/run.py's _bind
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        app = create_app(conf, token, detect=False)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        end = time.monotonic() + 30
        while not self.server.started and self.thread.is_alive() and time.monotonic() < end:
            time.sleep(0.02)
        assert self.server.started, "the flow server did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
