"""The lake on object storage: `s3://bucket/prefix` (AWS S3 or any S3 API: MinIO, R2, moto), through obstore.

    LAKE_URL=s3://my-bucket/liq/lake     (empty: the local folder DATA_DIR/lake, as before)

Endpoint and credentials come from the standard AWS environment variables, read when the lake is opened:
AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3; unset = AWS itself), AWS_REGION (or AWS_DEFAULT_REGION),
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN. An http:// endpoint (a local MinIO or moto) is
allowed as given.

Why obstore: the Lake needs LIST, HEAD, GET, PUT, DELETE and a conditional PUT (If-None-Match / If-Match, for the
appenders' lock); polars reads the Parquet files itself (`scan_parquet` with `storage_options`), through the same
Rust `object_store` crate that obstore wraps, so both read the same variables the same way. obstore is one wheel
with no Python dependency (s3fs brings aiobotocore, botocore and aiohttp, whose pins fight boto3's) and exposes
conditional puts as `mode="create"` / `mode={"e_tag": ...}`. Measured against moto_server on 127.0.0.1 (2 cores):
`import obstore` 11 ms; median PUT of 200 KB 3.3 ms, HEAD 2.0 ms, GET 2.7 ms, LIST 3.2 ms (moto's own cost mostly).

What holds on object storage, as on the local folder:
- **Atomic per file.** A file is one PUT of the whole object (never a multipart upload): S3 shows readers the old
  object or the new one, never a part, and a PUT that fails or is killed leaves nothing. So nothing partial can be
  listed as a range, and there are no temp files (`Lake.stale_temp_files` is always empty there).
- **The same bytes.** The frame is serialized by the same writer as the local lake's (to a local temp file), then
  uploaded as it is.
- **The lock** (`Lake.lock`, for appenders' read-modify-write) is an object `{dataset}/.lock` created with a
  conditional PUT (If-None-Match: *): exactly one writer creates it, the others wait and retry. It is a lease: a
  lock older than `lease` seconds (by the store's clock) is taken over with a PUT conditional on its ETag
  (If-Match), so a writer killed while holding it blocks the others for one lease at most. A holder that kept it
  longer than its lease finds it lost at release and raises LakeError: its critical section must be shorter than
  the lease (an append rewrites a few files in seconds; the lease is 5 minutes). A store that ignores conditional
  PUTs would break this: AWS S3 honours them since 2024, and moto does (tested); check any other store.
- **One clear error.** Every failure of the store is a LakeError of one line naming the lake's URL, the endpoint,
  what was attempted and why (no bucket, refused credentials, endpoint not answering), not the client's trace.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import S3Store

from .errors import LakeError

SCHEME = "s3://"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
URL_EXPECTED = (
    "expected s3://BUCKET or s3://BUCKET/PREFIX (a bucket name of 3 to 63 lower-case letters, digits, dots and "
    "hyphens; a prefix without spaces, '?', '#', glob characters or empty parts)"
)
# Retries of a failed request (5xx, dropped connection): a stopped endpoint fails in ~1 s (measured 0.6-1.0 s),
# one that never answers a connect in ~25 s (5 attempts of CONNECT_TIMEOUT_S).
MAX_RETRIES = 4
BACKOFF_INIT_S = 0.1
BACKOFF_MAX_S = 2.0
RETRY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5
LOCK_LEASE_S = 300.0
LOCK_POLL_S = 0.2


def is_url(root: Any) -> bool:
    """A lake root given as a URL (`scheme://...`) rather than a local folder."""
    return isinstance(root, str) and _URL.match(root) is not None


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix without slashes at either end) of `s3://bucket/prefix`; LakeError naming the URL if not."""
    text = str(url).strip()
    if not text.lower().startswith(SCHEME):
        raise LakeError(f"lake URL {text!r} is not valid: {URL_EXPECTED}")
    bucket, _, prefix = text[len(SCHEME) :].partition("/")
    prefix = prefix.strip("/")
    parts = prefix.split("/") if prefix else []
    if (
        not _BUCKET.match(bucket)
        or ".." in bucket
        or any(part in ("", ".", "..") for part in parts)
        or re.search(r"[\s?#*\[\]{}]", prefix)
    ):
        raise LakeError(f"lake URL {text!r} is not valid: {URL_EXPECTED}")
    return bucket, prefix


@dataclass(frozen=True)
class S3Settings:
    """What the standard AWS variables say (None: not set, the library's own default applies)."""

    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)  # never in a log line or an error
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Settings:
        env = os.environ if env is None else env

        def first(*names: str) -> str | None:
            for name in names:
                value = env.get(name, "").strip()
                if value:
                    return value
            return None

        endpoint = first("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
        if endpoint is not None and not re.match(r"^https?://[^\s/?#]+", endpoint):
            raise LakeError(
                f"AWS_ENDPOINT_URL={endpoint!r} is not valid: expected an http(s):// URL of an S3 API "
                "(e.g. http://127.0.0.1:9000 for a local MinIO), or unset for AWS itself"
            )
        return cls(
            endpoint=endpoint.rstrip("/") if endpoint else None,
            region=first("AWS_REGION", "AWS_DEFAULT_REGION"),
            access_key_id=first("AWS_ACCESS_KEY_ID"),
            secret_access_key=first("AWS_SECRET_ACCESS_KEY"),
            session_token=first("AWS_SESSION_TOKEN"),
        )

    @property
    def allow_http(self) -> bool:
        return bool(self.endpoint and self.endpoint.lower().startswith("http://"))

    def shown_endpoint(self) -> str:
        return f"AWS_ENDPOINT_URL={self.endpoint}" if self.endpoint else "AWS S3 (AWS_ENDPOINT_URL unset)"


class StoreError(LakeError):
    """A request to the object store failed; `.original` is the client's exception (to tell a missing object)."""

    def __init__(self, message: str, original: BaseException):
        super().__init__(message)
        self.original = original

    @property
    def not_found(self) -> bool:
        missing = isinstance(self.original, FileNotFoundError | NotFoundError)
        return missing and "NoSuchBucket" not in str(self.original)

    @property
    def conflict(self) -> bool:
        """A conditional PUT refused: the object exists (If-None-Match) or changed (If-Match)."""
        return isinstance(self.original, AlreadyExistsError | PreconditionError)


class Bucket:
    """One bucket of an S3 API: the obstore client, the options polars reads with, errors made into LakeErrors."""

    def __init__(self, bucket: str, s3: S3Settings | None = None):
        self.name = bucket
        self.s3 = s3 if s3 is not None else S3Settings.from_env()
        config: dict[str, Any] = {
            key: value
            for key, value in {
                "endpoint": self.s3.endpoint,
                "region": self.s3.region,
                "access_key_id": self.s3.access_key_id,
                "secret_access_key": self.s3.secret_access_key,
                "session_token": self.s3.session_token,
            }.items()
            if value is not None
        }
        self.store = S3Store(
            bucket,
            config=config,
            client_options={"allow_http": self.s3.allow_http, "connect_timeout": f"{CONNECT_TIMEOUT_S}s"},
            retry_config={
                "max_retries": MAX_RETRIES,
                "retry_timeout": datetime.timedelta(seconds=RETRY_TIMEOUT_S),
                "backoff": {
                    "init_backoff": datetime.timedelta(seconds=BACKOFF_INIT_S),
                    "max_backoff": datetime.timedelta(seconds=BACKOFF_MAX_S),
                    "base": 2,
                },
            },
        )

    def storage_options(self) -> dict[str, str | int]:
        """For polars' `scan_parquet(..., storage_options=)`: the same endpoint, credentials and retries."""
        options: dict[str, str | int | None] = {
            "aws_endpoint_url": self.s3.endpoint,
            "aws_region": self.s3.region,
            "aws_access_key_id": self.s3.access_key_id,
            "aws_secret_access_key": self.s3.secret_access_key,
            "aws_session_token": self.s3.session_token,
            "aws_allow_http": "true" if self.s3.allow_http else None,
            "max_retries": MAX_RETRIES,  # polars' own keys, as integers
            "retry_init_backoff_ms": int(BACKOFF_INIT_S * 1000),
            "retry_max_backoff_ms": int(BACKOFF_MAX_S * 1000),
            "retry_timeout_ms": int(RETRY_TIMEOUT_S * 1000),
        }
        return {key: value for key, value in options.items() if value is not None}

    def url(self, key: str) -> str:
        return f"{SCHEME}{self.name}/{key}"

    def error(self, what: str, key: str, error: BaseException) -> StoreError:
        """One line: the object, the endpoint, what was attempted, why (the store's own words cut to their gist)."""
        text = str(error)
        if "NoSuchBucket" in text:
            why = f"the bucket {self.name!r} does not exist (create it, or point LAKE_URL at another)"
        elif isinstance(error, UnauthenticatedError | PermissionDeniedError) or re.search(
            r"InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|403 Forbidden", text
        ):
            why = "access refused: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's policy"
        elif re.search(r"error sending request|[Cc]onnect|timed out|[Tt]imeout|dns error", text):
            why = "the endpoint does not answer (is the S3 server running? is AWS_ENDPOINT_URL right?)"
        else:
            gist = text.split("\n", 1)[0].strip()
            why = gist if len(gist) <= 300 else gist[:297] + "..."
        return StoreError(f"lake {self.url(key)}: {what} failed ({self.s3.shown_endpoint()}): {why}", error)

    @contextlib.contextmanager
    def calling(self, what: str, key: str) -> Iterator[None]:
        try:
            yield
        except (BaseError, OSError) as error:
            raise self.error(what, key, error) from None


@dataclass(frozen=True)
class ObjectMeta:
    st_size: int
    st_mtime: float
    e_tag: str | None


@dataclass(frozen=True, eq=False)
class ObjectPath:
    """An object (or a prefix) of a bucket, with the few `pathlib.Path` methods the lake's callers use: `name`,
    `/`, `is_file`, `is_dir`, `exists`, `read_bytes`, `write_bytes` (one atomic PUT), `unlink`, `stat`.
    `str()` is its `s3://` URL."""

    bucket: Bucket
    key: str  # without a leading or trailing slash; "" is the bucket's root

    def __str__(self) -> str:
        return self.bucket.url(self.key)

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash(str(self))

    def __truediv__(self, part: str) -> ObjectPath:
        part = str(part).strip("/")
        return ObjectPath(self.bucket, f"{self.key}/{part}" if self.key else part)

    @property
    def name(self) -> str:
        return self.key.rpartition("/")[2]

    @property
    def parent(self) -> ObjectPath:
        return ObjectPath(self.bucket, self.key.rpartition("/")[0])

    # --- reading ---------------------------------------------------------------------------------------------

    def stat(self) -> ObjectMeta:
        with self.bucket.calling("HEAD", self.key):
            meta = obstore.head(self.bucket.store, self.key)
        return ObjectMeta(meta["size"], meta["last_modified"].timestamp(), meta.get("e_tag"))

    def is_file(self) -> bool:
        try:
            self.stat()
        except StoreError as error:
            if error.not_found:
                return False
            raise
        return True

    exists = is_file

    def children(self) -> list[ObjectPath]:
        """The objects directly under this prefix (a `Path.iterdir()` of its files)."""
        found = []
        with self.bucket.calling("LIST", self.key + "/"):
            for chunk in obstore.list(self.bucket.store, self.key or None, chunk_size=1000):
                for meta in chunk:
                    if self.key and not meta["path"].startswith(self.key + "/"):
                        continue
                    rest = meta["path"][len(self.key) + 1 :] if self.key else meta["path"]
                    if rest and "/" not in rest:
                        found.append(ObjectPath(self.bucket, meta["path"]))
        return sorted(found, key=str)

    def iterdir(self) -> Iterator[ObjectPath]:
        return iter(self.children())

    def is_dir(self) -> bool:
        """A prefix holding at least one object (object stores have no empty folders)."""
        with self.bucket.calling("LIST", self.key + "/"):
            for chunk in obstore.list(self.bucket.store, self.key or None, chunk_size=1):
                return bool(chunk)
        return False

    def read_bytes(self) -> bytes:
        with self.bucket.calling("GET", self.key):
            return obstore.get(self.bucket.store, self.key).bytes().to_bytes()

    # --- writing ---------------------------------------------------------------------------------------------

    def write_bytes(self, data: bytes) -> int:
        """One PUT of the whole object: readers see the old object or this one, never a part."""
        with self.bucket.calling("PUT", self.key):
            obstore.put(self.bucket.store, self.key, data, use_multipart=False)
        return len(data)

    def unlink(self, missing_ok: bool = False) -> None:
        if not missing_ok and not self.is_file():
            raise FileNotFoundError(str(self))
        with self.bucket.calling("DELETE", self.key):
            obstore.delete(self.bucket.store, self.key)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: an object store has no folders."""


def object_root(url: str, s3: S3Settings | None = None) -> ObjectPath:
    """The prefix of `s3://bucket/prefix`, on a client configured from the AWS variables."""
    bucket, prefix = parse_s3_url(url)
    return ObjectPath(Bucket(bucket, s3), prefix)


@dataclass
class ObjectLock:
    """The lease lock of one object (see the module's docstring). Use `Lake.lock(dataset)`."""

    path: ObjectPath
    lease: float = LOCK_LEASE_S
    wait: float = LOCK_LEASE_S + 30.0
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    _e_tag: str | None = None

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner, "lease_s": self.lease, "since": time.time()}).encode()

    def _holder(self) -> tuple[str | None, float, str]:
        """(e_tag, seconds since written by the store's clock, owner) of the lock present; e_tag None if gone."""
        bucket, key = self.path.bucket, self.path.key
        try:
            with bucket.calling("GET", key):
                got = obstore.get(bucket.store, key)
                body = got.bytes().to_bytes()
        except StoreError as error:
            if error.not_found:
                return None, 0.0, ""
            raise
        meta = got.meta
        try:
            owner = str(json.loads(body).get("owner", "?"))
        except (ValueError, AttributeError):
            owner = "?"
        age = time.time() - meta["last_modified"].timestamp()
        return meta.get("e_tag"), age, owner

    def acquire(self) -> None:
        bucket, key = self.path.bucket, self.path.key
        deadline = time.monotonic() + self.wait
        while True:
            try:
                with bucket.calling("PUT If-None-Match", key):
                    self._e_tag = obstore.put(bucket.store, key, self._body(), mode="create", use_multipart=False)[
                        "e_tag"
                    ]
                return
            except StoreError as error:
                if not error.conflict:
                    raise
            e_tag, age, owner = self._holder()
            if e_tag is not None and age > self.lease:
                try:  # the holder died (or overran its lease): take the lock over, unless another waiter did first
                    with bucket.calling("PUT If-Match", key):
                        self._e_tag = obstore.put(
                            bucket.store, key, self._body(), mode={"e_tag": e_tag}, use_multipart=False
                        )["e_tag"]
                    return
                except StoreError as error:
                    if not (error.conflict or error.not_found):
                        raise
            if time.monotonic() >= deadline:
                raise LakeError(
                    f"lake {self.path}: lock held by {owner or '?'} for {age:.0f} s (lease {self.lease:.0f} s); "
                    f"gave up after waiting {self.wait:.0f} s. One writer per dataset: if none runs, delete the object"
                )
            time.sleep(LOCK_POLL_S)

    def release(self) -> None:
        e_tag, _age, owner = self._holder()
        if e_tag != self._e_tag:
            raise LakeError(
                f"lake {self.path}: lock lost: held longer than its {self.lease:.0f} s lease, it was taken over "
                f"by {owner or 'nobody (deleted)'}; writes made under it may have raced another writer"
            )
        with self.path.bucket.calling("DELETE", self.path.key):
            obstore.delete(self.path.bucket.store, self.path.key)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        except BaseException:
            with contextlib.suppress(LakeError):
                self.release()
            raise
        self.release()
