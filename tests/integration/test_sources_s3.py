"""S3 sources, file versions and outputs against a real moto S3 server on a loopback port."""

from __future__ import annotations

import itertools

import pytest

from harness.ci import IN_CI
from harness.ports import free_port
from phashfleet.files.listing import SourceNetworkError, SourceNotFoundError, iter_source
from phashfleet.files.outputs import read_records, write_records
from phashfleet.results import make_record
from phashfleet.state.cache_keys import cache_key, file_info

try:
    import boto3
    import s3fs  # noqa: F401 - the s3 extra under test
    from moto.server import ThreadedMotoServer
except ImportError as exc:  # pragma: no cover - depends on the environment
    if IN_CI:
        raise
    pytest.skip(f"not in CI and moto[server]/boto3/s3fs is missing: {exc}", allow_module_level=True)

CREDS = {"key": "testing", "secret": "testing"}
SETTINGS = {"algorithm": "phash", "hash_size": 8, "exact": False}


@pytest.fixture(scope="module")
def endpoint() -> str:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(endpoint, request):
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDS["key"],
        aws_secret_access_key=CREDS["secret"],
    )
    bucket = "b-" + "".join(c for c in request.node.name.lower() if c.isalnum())[:40]
    client.create_bucket(Bucket=bucket)
    return client, bucket, {"endpoint_url": endpoint, **CREDS}


def put(client, bucket, *keys, body=b"x"):
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=body)


def test_lists_a_prefix_in_order_with_globs(s3):
    client, bucket, opts = s3
    put(
        client,
        bucket,
        "p/z.jpg",
        "p/A.JPG",
        "p/notes.txt",
        "p/m/2.png",
        "p/m/1.png",
        "p/b/deep/x.webp",
        "p/with space é.jpg",
        "p/skip/s.jpg",
        "other/o.jpg",
    )
    refs = list(iter_source({"uri": f"s3://{bucket}/p", "exclude": ["skip/**"]}, [], storage_options=opts))
    assert refs == [
        f"s3://{bucket}/p/{k}" for k in ("A.JPG", "with space é.jpg", "z.jpg", "b/deep/x.webp", "m/1.png", "m/2.png")
    ]
    assert list(iter_source({"uri": f"s3://{bucket}/p/", "include": ["*.jpg"]}, [], storage_options=opts)) == [
        f"s3://{bucket}/p/A.JPG",
        f"s3://{bucket}/p/with space é.jpg",
        f"s3://{bucket}/p/z.jpg",
    ]


def test_whole_bucket_single_key_and_files_list(s3):
    client, bucket, opts = s3
    put(client, bucket, "a.jpg", "d/b.jpg")
    assert list(iter_source({"uri": f"s3://{bucket}"}, [], storage_options=opts)) == [
        f"s3://{bucket}/a.jpg",
        f"s3://{bucket}/d/b.jpg",
    ]
    assert list(iter_source({"uri": f"s3://{bucket}/d/b.jpg"}, [], storage_options=opts)) == [f"s3://{bucket}/d/b.jpg"]
    refs = list(iter_source({"uri": f"s3://{bucket}", "files": ["d/b.jpg", "extra.jpg"]}, [], storage_options=opts))
    assert refs == [f"s3://{bucket}/d/b.jpg", f"s3://{bucket}/extra.jpg", f"s3://{bucket}/a.jpg"]


def test_listing_resumes_by_skip(s3):
    client, bucket, opts = s3
    put(client, bucket, *(f"{d}/{i}.jpg" for d in "abc" for i in range(4)), "top.jpg")
    source = {"uri": f"s3://{bucket}"}
    full = list(iter_source(source, [], storage_options=opts))
    assert len(full) == 13 and full[0] == f"s3://{bucket}/top.jpg"
    for n in (1, 5, 13):
        assert list(itertools.islice(iter_source(source, [], storage_options=opts), n, None)) == full[n:]


def test_missing_bucket_or_prefix_is_not_found(s3):
    _, bucket, opts = s3
    with pytest.raises(SourceNotFoundError, match="no-such-bucket"):
        list(iter_source({"uri": "s3://no-such-bucket/p"}, [], storage_options=opts))
    with pytest.raises(SourceNotFoundError, match="nothing-here"):
        list(iter_source({"uri": f"s3://{bucket}/nothing-here"}, [], storage_options=opts))


def test_unreachable_endpoint_is_a_network_error():
    opts = {
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        **CREDS,
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
    }
    with pytest.raises(SourceNetworkError, match="s3://bucket/p") as info:
        list(iter_source({"uri": "s3://bucket/p"}, [], storage_options=opts))
    assert info.value.reason == "SourceUnreachable"


def test_cache_key_follows_the_etag(s3):
    client, bucket, opts = s3
    ref = f"s3://{bucket}/k.jpg"
    put(client, bucket, "k.jpg", body=b"first")
    info = file_info(ref, opts)
    assert info["size"] == 5 and info["etag"]
    key = cache_key(ref, info, SETTINGS)
    put(client, bucket, "k.jpg", body=b"first")  # same bytes again: same content, same key
    assert cache_key(ref, file_info(ref, opts), SETTINGS) == key
    put(client, bucket, "k.jpg", body=b"other")  # same size, new content
    assert cache_key(ref, file_info(ref, opts), SETTINGS) != key


def _records(n, fail_at=None):
    for i in range(n):
        if i == fail_at:
            raise RuntimeError("records broke")
        yield make_record(f"s3://src/{i}.jpg", algorithm="phash", hash_size=8, status="ok", hash=f"{i:016x}")


def keys_of(client, bucket) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_output_round_trips_through_s3(s3, fmt):
    client, bucket, opts = s3
    uri = f"s3://{bucket}/results/out.{fmt}"
    assert write_records(_records(25), uri, fmt, storage_options=opts) == 25
    assert keys_of(client, bucket) == [f"results/out.{fmt}"]  # the temporary key is gone
    back = list(read_records(uri, fmt, storage_options=opts))
    assert [r["path"] for r in back] == [f"s3://src/{i}.jpg" for i in range(25)]


def test_failed_output_leaves_the_old_object_and_no_temporary(s3):
    client, bucket, opts = s3
    uri = f"s3://{bucket}/out.jsonl"
    write_records(_records(3), uri, "jsonl", storage_options=opts)
    with pytest.raises(RuntimeError, match="records broke"):
        write_records(_records(10, fail_at=7), uri, "jsonl", storage_options=opts)
    assert keys_of(client, bucket) == ["out.jsonl"]
    assert len(list(read_records(uri, storage_options=opts))) == 3


def test_failed_multipart_output_is_aborted(s3):
    client, bucket, opts = s3
    # 5 MiB parts: ~60,000 records start a multipart upload before the failure.
    small_parts = {**opts, "default_block_size": 5 * 2**20}
    with pytest.raises(RuntimeError, match="records broke"):
        write_records(
            _records(100_000, fail_at=90_000), f"s3://{bucket}/big.jsonl", "jsonl", storage_options=small_parts
        )
    assert keys_of(client, bucket) == []
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
