"""Marker mode fetches a version's files as their events arrive, and the marker's listing decides what loads."""

from __future__ import annotations

import pytest

from tests.support import Models, api_spec, metric, notify_queue, prediction, tagged_model, wait_until

pytestmark = pytest.mark.localstack

MARKER = "_READY"


def serve_in_marker_mode(serve, s3_client, sqs_client, bucket, **settings):
    models = Models(s3_client, bucket)
    models.put_version("m", 1, tag=1.0, marker=MARKER)
    reloading = {"interval": 3600, "ready_marker": MARKER, "queue_url": notify_queue(s3_client, sqs_client, bucket)}
    reloading.update(settings)
    return models, serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/m"}, reloading=reloading)))


def gets(server) -> float:
    return metric(server, "reloader_s3_requests_total", operation="GetObject")


def early(server, outcome: str) -> float:
    return metric(server, "reloader_early_downloads_total", outcome=outcome)


def serve_with_version_2_fetched_early(serve, s3_client, sqs_client, bucket):
    """An agent in marker mode serving version 1, and version 2's file (tag 2.0) uploaded and fetched early."""
    _, server = serve_in_marker_mode(serve, s3_client, sqs_client, bucket)
    s3_client.put_object(Bucket=bucket, Key="m/2/model.pkl", Body=tagged_model(2.0))
    wait_until(lambda: early(server, "downloaded") == 1, what="the early GET")
    return server


def test_a_file_fetched_before_its_marker_is_not_fetched_again_when_the_marker_lands(
    serve, s3_client, sqs_client, bucket
):
    # GIVEN an agent in marker mode serving version 1, WHEN version 2's file is uploaded without its
    # marker, THEN the agent downloads it at once (in the helper), and version 1 still serves
    server = serve_with_version_2_fetched_early(serve, s3_client, sqs_client, bucket)
    assert prediction(server) == 1.0
    before = gets(server)

    # WHEN the marker lands THEN version 2 serves from the file fetched early: no GET after the marker
    s3_client.put_object(Bucket=bucket, Key=f"m/2/{MARKER}", Body=b"")
    wait_until(lambda: prediction(server) == 2.0, what="version 2 served")
    assert gets(server) == before
    assert early(server, "used") == 1


def test_a_file_written_again_before_the_marker_serves_its_last_content(serve, s3_client, sqs_client, bucket):
    # GIVEN version 2's file uploaded and fetched early
    server = serve_with_version_2_fetched_early(serve, s3_client, sqs_client, bucket)

    # WHEN the file is written again with other content, fetched early too, then the marker lands
    s3_client.put_object(Bucket=bucket, Key="m/2/model.pkl", Body=tagged_model(3.0))
    wait_until(lambda: early(server, "downloaded") == 2, what="the second early GET")
    s3_client.put_object(Bucket=bucket, Key=f"m/2/{MARKER}", Body=b"")

    # THEN version 2 serves the content S3 holds, and the first download was thrown away
    wait_until(lambda: prediction(server) == 3.0, what="version 2's last content served")
    assert (early(server, "unused"), early(server, "used")) == (1, 1)


def test_a_file_replaced_just_before_the_marker_never_serves_its_old_content(serve, s3_client, sqs_client, bucket):
    # GIVEN version 2's file fetched early
    server = serve_with_version_2_fetched_early(serve, s3_client, sqs_client, bucket)

    # WHEN the file is replaced and the marker written at once (the replacement's event may come after
    # the marker's, so its early download may not have begun when the marker's listing is made)
    s3_client.put_object(Bucket=bucket, Key="m/2/model.pkl", Body=tagged_model(4.0))
    s3_client.put_object(Bucket=bucket, Key=f"m/2/{MARKER}", Body=b"")

    # THEN version 2 serves what S3 holds, and its old content, fetched early, never serves
    seen: set[float] = set()

    def served_the_last_content() -> bool:
        seen.add(prediction(server))
        return 4.0 in seen

    wait_until(served_the_last_content, timeout=30, interval=0.01, what="version 2's last content served")
    assert 2.0 not in seen, f"answers seen: {sorted(seen)}"


def test_with_early_downloads_off_the_files_are_fetched_when_the_marker_lands(serve, s3_client, sqs_client, bucket):
    # GIVEN an agent in marker mode with early downloads turned off
    _, server = serve_in_marker_mode(serve, s3_client, sqs_client, bucket, early_downloads=False)
    before = gets(server)

    # WHEN version 2's file, then its marker, are uploaded
    s3_client.put_object(Bucket=bucket, Key="m/2/model.pkl", Body=tagged_model(2.0))
    s3_client.put_object(Bucket=bucket, Key=f"m/2/{MARKER}", Body=b"")

    # THEN version 2 serves, its file fetched by the marker's reconcile, nothing fetched early
    wait_until(lambda: prediction(server) == 2.0, what="version 2 served")
    assert gets(server) == before + 1
    assert early(server, "downloaded") == 0
