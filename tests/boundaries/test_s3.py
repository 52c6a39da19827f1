"""The S3 boundary on LocalStack: downloads are exactly what was listed, or a distinct error."""

from __future__ import annotations

import pytest

from agent.boundaries.s3 import S3, safe_path
from agent.domain.errors import ObjectChangedError, UnsafeKeyError
from agent.domain.locations import S3Location

pytestmark = pytest.mark.localstack


# Objects below the threshold are plain GETs (the first on the caller's thread, the others on a pool),
# those above go through s3transfer: the same results either way.
THRESHOLDS = [
    pytest.param(8 * 1024 * 1024, id="plain-gets"),
    pytest.param(15, id="mixed"),
    pytest.param(1, id="s3transfer"),
]


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_a_download_lands_what_was_listed(s3_client, bucket, tmp_path, threshold):
    s3_client.put_object(Bucket=bucket, Key="m/1/a.bin", Body=b"a" * 10)
    s3_client.put_object(Bucket=bucket, Key="m/1/sub/b.bin", Body=b"b" * 20)
    s3_client.put_object(Bucket=bucket, Key="m/1/c.bin", Body=b"c" * 12)
    s3 = S3(s3_client, multipart_threshold=threshold)
    location = S3Location(bucket, "m/1")
    listed = s3.list(location)
    assert sorted((o.key, o.size) for o in listed) == [("a.bin", 10), ("c.bin", 12), ("sub/b.bin", 20)]
    s3.download(location, listed, tmp_path)
    assert (tmp_path / "a.bin").read_bytes() == b"a" * 10 and (tmp_path / "sub" / "b.bin").read_bytes() == b"b" * 20
    assert (tmp_path / "c.bin").read_bytes() == b"c" * 12
    s3.close()


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_an_object_replaced_after_the_listing_is_refused_not_mixed_in(s3_client, bucket, tmp_path, threshold):
    # GIVEN a listing of a version (the object that changes is not the first: a pool's or s3transfer's)
    s3_client.put_object(Bucket=bucket, Key="m/1/0.bin", Body=b"first" * 4)
    s3_client.put_object(Bucket=bucket, Key="m/1/a.bin", Body=b"old")
    s3 = S3(s3_client, multipart_threshold=threshold)
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


def test_a_listing_of_several_pages_asked_ahead_is_every_key_once_in_order(s3_client, bucket):
    # GIVEN 2,100 keys whose names need XML escaping (&, <, quotes, non-ASCII), 3 pages of S3's 1,000
    from concurrent.futures import ThreadPoolExecutor

    keys = [f"zoo/m{number:05d} & <'\"é>/1/model.pkl" for number in range(2_100)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3_client.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))
    calls: list[str] = []
    s3 = S3(s3_client, on_request=lambda operation, seconds: calls.append(operation))
    try:
        # WHEN it is listed page by page (each next page asked for, by its token, while the previous one is parsed)
        pages = list(s3.pages(S3Location(bucket, "zoo")))
    finally:
        s3.close()
    # THEN every key comes once, in S3's order, in 3 pages, from 3 LIST calls (none asked again)
    assert [len(page) for page in pages] == [1_000, 1_000, 100]
    assert [obj.key for page in pages for obj in page] == sorted(key.removeprefix("zoo/") for key in keys)
    assert calls.count("ListObjectsV2") == 3
