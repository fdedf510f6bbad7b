"""No API request of the operator can hang a pass for good (controller/handlers.py)."""

from __future__ import annotations

import socket
import time

import pytest
import urllib3
from kubernetes import client

from emotivoice_operator.controller.handlers import _default_timeout


def test_a_request_to_a_server_that_never_answers_times_out() -> None:
    """A real socket on 127.0.0.1 that accepts and never answers, like an API server
    connection that died under the client."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        api = client.ApiClient()
        _default_timeout(api, (1, 0.5))
        url = f"http://127.0.0.1:{server.getsockname()[1]}/api"
        started = time.monotonic()
        # urllib3 retries (3 by default), each attempt ends at the read timeout.
        with pytest.raises(urllib3.exceptions.HTTPError, match="timed out"):
            api.rest_client.GET(url)
        default = time.monotonic() - started
        assert default < 5
        # A request's own timeout still wins over the default.
        started = time.monotonic()
        with pytest.raises(urllib3.exceptions.HTTPError, match="timed out"):
            api.rest_client.GET(url, _request_timeout=(1, 0.05))
        assert time.monotonic() - started < default / 2
