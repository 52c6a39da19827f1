"""The Python handler served by `reloader serve` on LocalStack S3, checked through HTTP."""

from __future__ import annotations

import pytest

from tests.support import Models, api_spec, wait_until

pytestmark = pytest.mark.localstack


def prediction(server, **params) -> float:
    response = server.post({}, **params)
    assert response.status_code == 200, response.text
    return float(response.json()["prediction"])


def test_versions_are_added_updated_in_place_and_removed(serve, s3_client, bucket):
    # GIVEN a model with version 1, served
    models = Models(s3_client, bucket)
    models.put_version("models/iris", 1, tag=1.0)
    server = serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/models/iris"})))
    assert prediction(server) == 1.0

    # WHEN version 2 is uploaded THEN latest is 2 and version 1 stays addressable
    models.put_version("models/iris", 2, tag=2.0)
    wait_until(lambda: prediction(server) == 2.0, what="version 2 served")
    assert prediction(server, version=1) == 1.0
    assert prediction(server, version="2") == 2.0

    # WHEN version 2 is updated in place (same key, new content) THEN it is reloaded
    models.put_version("models/iris", 2, tag=2.5)
    wait_until(lambda: prediction(server) == 2.5, what="version 2 reloaded")

    # WHEN version 2 is removed THEN latest is 1 again and version 2 answers 404
    models.delete_prefix("models/iris/2/")
    wait_until(lambda: prediction(server) == 1.0, what="back to version 1")
    missing = server.post({}, version=2)
    assert missing.status_code == 404
    assert "no version 2" in missing.json()["error"]
    assert server.version("test-api")["loaded"] == [1]
