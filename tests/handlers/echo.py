"""A handler without models, to test HTTP dispatch: what arrives, and what each return type becomes."""

import os

import helper  # found through the spec's python_path


class Handler:
    def __init__(self, config):
        self.config = config

    def handle_post(self, payload, query_params, headers):
        kind = query_params.get("return")
        if kind == "bytes":
            return b"\x00raw"
        if kind == "text":
            return "plain text"
        if kind == "raise":
            raise ValueError("secret internal detail")
        if kind == "unanswerable":
            return {"a set": {1, 2}}  # not JSON
        return {
            "payload": payload if not isinstance(payload, bytes) else payload.decode(),
            "type": type(payload).__name__,
            "header": headers.get("x-test"),
        }

    def handle_get(self, query_params):
        return [self.config.get("greeting"), query_params.get("q"), os.environ.get("ECHO_SETTING"), helper.NAME]
