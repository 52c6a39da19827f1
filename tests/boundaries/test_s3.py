"""The S3 boundary on LocalStack: downloads are exactly what was listed, or a distinct error."""

from __future__ import annotations

import pytest

from agent.boundaries.s3 import S3, safe_path
from agent.domain.errors import ObjectChangedError, UnsafeKeyError
from agent.domain.locations import S3Location

pytestmark = pytest.mark.localstack


def test_a_download_lands_what_was_listed(s3_client, bucket, tmp_path):
    s3_client.put_object(Bucket=bucket, Key="m/1/a.bin", Body=b"a" * 10)
    s3_client.put_object(Bucket=bucket, Key="m/1/sub/b.bin", Body=b"b" * 20)
    s3 = S3(s3_client)
    location = S3Location(bucket, "m/1")
    listed = s3.list(location)
    assert sorted((o.key, o.size) for o in listed) == [("a.bin", 10), ("sub/b.bin", 20)]
    s3.download(location, listed, tmp_path)
    assert (tmp_path / "a.bin").read_bytes() == b"a" * 10 and (tmp_path / "sub" / "b.bin").read_bytes() == b"b" * 20
    s3.close()


def test_an_object_replaced_after_the_listing_is_refused_not_mixed_in(s3_client, bucket, tmp_path):
    # GIVEN a listing of a version
    s3_client.put_object(Bucket=bucket, Key="m/1/a.bin", Body=b"old")
    s3 = S3(s3_client)
    location = S3Location(bucket, "m/1")
    listed = s3.list(location)
    # WHEN the object is replaced before the download
    s3_client.put_object(Bucket=bucket, Key="m/1/a.bin", Body=b"new content")
    # THEN the download fails with the distinct, temporary error
    with pytest.raises(ObjectChangedError, match="removed or replaced"):
        s3.download(location, listed, tmp_path)
    # and a removed object likewise
    listed = s3.list(location)
    s3_client.delete_object(Bucket=bucket, Key="m/1/a.bin")
    with pytest.raises(ObjectChangedError):
        s3.download(location, listed, tmp_path / "again")
    s3.close()


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "a//b"])
def test_keys_that_escape_are_refused(tmp_path, key):
    with pytest.raises(UnsafeKeyError, match="refused"):
        safe_path(tmp_path, key)
