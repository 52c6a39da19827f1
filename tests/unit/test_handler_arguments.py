"""Which request arguments a `handle_<method>` declares: read once from its signature, as Cortex passed them."""

from __future__ import annotations

import pytest

from agent.api.endpoint import REQUEST_ARGUMENTS, HandlerMethod
from agent.api.handler import call_with_declared


class Handler:
    def payload_only(self, payload): ...
    def query_and_headers(self, query_params, headers): ...
    def nothing(self): ...
    def everything(self, payload, query_params, headers): ...
    def keywords(self, payload, **rest): ...
    def unknown_names(self, payload, body=None): ...


@pytest.mark.parametrize(
    ("method", "payload", "query_params", "headers"),
    [
        pytest.param("payload_only", True, False, False, id="payload"),
        pytest.param("query_and_headers", False, True, True, id="query_params and headers, no body read"),
        pytest.param("nothing", False, False, False, id="no arguments"),
        pytest.param("everything", True, True, True, id="all three"),
        pytest.param("keywords", True, True, True, id="**kwargs takes all three"),
        pytest.param("unknown_names", True, False, False, id="other parameters are not filled"),
    ],
)
def test_declared_request_arguments(method, payload, query_params, headers):
    declared = HandlerMethod.of(f"handle_{method}", getattr(Handler(), method))
    assert (declared.payload, declared.query_params, declared.headers) == (payload, query_params, headers)
    assert declared.name == f"handle_{method}"


def test_a_constructor_gets_only_what_it_declares():
    class WithConfig:
        def __init__(self, config):
            self.config = config

    built = call_with_declared(WithConfig, {"config": {"a": 1}, "model_client": object()})
    assert built.config == {"a": 1}
    assert set(REQUEST_ARGUMENTS) == {"payload", "query_params", "headers"}
