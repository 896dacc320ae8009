"""Object store: a local folder by default, S3 in production, one small interface for both.

Keys are '/'-separated relative paths. Standard library only at import time: boto3 is imported
inside `S3ObjectStore` so the emit facade stays cheap.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import stat
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Protocol

from signals_assets.recovery.faults import pause_point
from signals_assets.settings import Settings

S3_MAX_KEY_BYTES = 1024  # S3's limit on a key (with the prefix), in UTF-8 bytes
LOCAL_MAX_PATH_BYTES = 4095  # Linux's PATH_MAX (4,096) less the terminating NUL
LOCAL_MAX_NAME_BYTES = 255  # NAME_MAX: one part of a path
TEMP_PREFIX = ".tmp-"  # a local write's temp file, renamed to its key when whole


class ObjectStoreError(Exception):
    pass


def _is_key(key: str) -> bool:
    """Whether `key` is one the store can address: a relative path without '.', '..' or empty parts."""
    return bool(key) and not key.startswith("/") and not any(p in ("", ".", "..") for p in key.split("/"))


def _check_key(key: str) -> str:
    if not _is_key(key):
        raise ObjectStoreError(f"object key {key!r} must be a relative path without '.', '..' or empty parts")
    return key


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes; with `max_bytes`, at most that many (the start of a bigger object)."""
        ...

    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def list(self, prefix: str, limit: int | None = None, start_after: str = "") -> list[str]:
        """Keys starting with `prefix`, sorted; with `start_after`, only the keys after it."""
        ...

    def list_level(self, folder: str, start_after: str = "") -> tuple[list[str], list[str]]:
        """One level of `folder` (ending in '/'): its sub-folders (each ending in '/') and its keys, sorted;
        with `start_after`, only those after it."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create `key` holding `data` only if no object is there; whether it did (atomic and exclusive: of
        any number of concurrent writers of one key, exactly one gets True; a reader never sees a part)."""
        ...

    def move(self, src: str, dst: str) -> bool: ...
    def fits(self, key: str) -> bool:
        """Whether the store can hold an object at `key` (its key or path is within the store's limits)."""
        ...

    def describe(self) -> str: ...
    def remove_temporaries(self, folder: str, older_than_seconds: float = 0) -> int:
        """Delete the temp files a writer killed between writing and renaming left under `folder` (ending
        in '/', or "" for all), those at least `older_than_seconds` old; how many. Listings never show them,
        but they hold what was being written."""
        ...


def _all_before(folder: str, start_after: str) -> bool:
    """Whether every key in `folder` (ending in '/') sorts before `start_after`."""
    return bool(start_after) and start_after > folder and not start_after.startswith(folder)


class LocalObjectStore:
    """Objects as files under `root`; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def describe(self) -> str:
        return f"folder {self.root}"

    def remove_temporaries(self, folder: str, older_than_seconds: float = 0) -> int:
        base = self._path(folder.rstrip("/")) if folder else self.root
        if not base.is_dir() or self._through_symlink(folder):
            return 0
        removed = 0
        cutoff = time.time() - older_than_seconds
        for dirpath, _, filenames in os.walk(base):
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    if name.startswith(TEMP_PREFIX) and os.lstat(path).st_mtime <= cutoff:
                        os.unlink(path)
                        removed += 1
                except FileNotFoundError:  # its writer renamed or removed it meanwhile
                    continue
        return removed

    @contextmanager
    def _written(self, key: str, data: bytes) -> Iterator[tuple[str, Path]]:
        """A temp file beside `key` holding `data` (listings skip it), and the key's path; the temp file
        is gone afterwards."""
        import tempfile

        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            yield tmp, path
        finally:
            Path(tmp).unlink(missing_ok=True)

    def put(self, key: str, data: bytes) -> None:
        pause_point("write")
        with self._written(key, data) as (tmp, path):
            os.replace(tmp, path)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """A hard link of the written temp file to the key: `link` fails when anything is at the key."""
        pause_point("write")
        with self._written(key, data) as (tmp, path):
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
        return True

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """Only a regular file is an object (`put` writes nothing else): a symlink, FIFO, socket, device or
        folder at `key` is absent (KeyError). Opened without following a symlink (it could point anywhere on the
        host) and without blocking (a FIFO dropped into the inbox would wait for a writer forever)."""
        try:
            descriptor = os.open(self._path(key), os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise KeyError(key) from None
        except OSError as error:
            # ELOOP: the last component is a symlink; ENXIO, ENODEV: a socket, a device without a driver
            if error.errno in (errno.ELOOP, errno.ENXIO, errno.ENODEV):
                raise KeyError(key) from None
            raise
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):  # before fdopen, which refuses a folder with IsADirectoryError
            os.close(descriptor)
            raise KeyError(key)
        with os.fdopen(descriptor, "rb") as handle:
            # read(n) allocates n bytes before reading: ask for no more than the file holds
            return handle.read(-1 if max_bytes is None else min(max_bytes, status.st_size))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        pause_point("write")
        self._path(key).unlink(missing_ok=True)

    def _walk(self, base: Path, start_after: str = "") -> Iterator[str]:
        root = os.path.join(self.root, "")
        for dirpath, dirnames, filenames in os.walk(base):
            # One folder's prefix for all its files: a Path per file costs most of a large listing.
            folder = os.path.join(dirpath, "")[len(root) :].replace(os.sep, "/")
            # Not into a folder whose every key sorts before `start_after`: a listing from a mark on
            # costs what lies after it, not the whole history before it.
            dirnames[:] = sorted(name for name in dirnames if not _all_before(f"{folder}{name}/", start_after))
            for name in filenames:
                if not name.startswith(TEMP_PREFIX):
                    yield folder + name

    def list(self, prefix: str, limit: int | None = None, start_after: str = "") -> list[str]:
        """Keys starting with `prefix`, sorted; a prefix ending in '/' lists that folder."""
        folder = prefix if prefix.endswith("/") else prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        base = self.root / folder if folder else self.root
        if not base.is_dir() or self._through_symlink(folder):
            return []
        keys = sorted(k for k in self._walk(base, start_after) if k.startswith(prefix) and k > start_after)
        return keys[:limit] if limit is not None else keys

    def _through_symlink(self, folder: str) -> bool:
        """Whether the folder (relative to the root) is, or lies in, a symlink: `put` makes none, and one
        may point anywhere on the host (listing it would have the claim move host files into the store)."""
        path = self.root
        for part in folder.split("/"):
            if part:
                path = path / part
                if path.is_symlink():
                    return True
        return False

    def list_level(self, folder: str, start_after: str = "") -> tuple[list[str], list[str]]:
        base = self._path(folder.rstrip("/"))
        if not base.is_dir() or self._through_symlink(folder):
            return [], []
        folders, keys = [], []
        for entry in os.scandir(base):
            if entry.is_dir(follow_symlinks=False):
                if not _all_before(f"{folder}{entry.name}/", start_after):
                    folders.append(f"{folder}{entry.name}/")
            elif entry.is_dir():
                continue  # a symlink to a folder: no folder of the store, and `list` does not descend into it
            elif not entry.name.startswith(TEMP_PREFIX) and f"{folder}{entry.name}" > start_after:
                keys.append(f"{folder}{entry.name}")
        return sorted(folders), sorted(keys)

    def fits(self, key: str) -> bool:
        parts_fit = all(len(os.fsencode(part)) <= LOCAL_MAX_NAME_BYTES for part in key.split("/"))
        return parts_fit and len(os.fsencode(self._path(key))) <= LOCAL_MAX_PATH_BYTES

    def move(self, src: str, dst: str) -> bool:
        """Atomic rename; False when `src` is gone (someone else moved it first)."""
        pause_point("write")
        target = self._path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(self._path(src), target)
        except FileNotFoundError:
            return False
        return True


def _named_failures(method):
    """The S3 method with a refusal or an unreachable endpoint raised as ObjectStoreError naming the store:
    a wrong bucket, endpoint or key is the operator's to fix, not an internal error of the caller."""

    @functools.wraps(method)
    def named(self, *args, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(self, *args, **kwargs)
        except (BotoCoreError, ClientError) as error:
            raise ObjectStoreError(f"the S3 object store {self.describe()}: {error}") from error

    return named


class S3ObjectStore:
    """Objects in an S3 bucket under an optional prefix.

    S3 has no rename, so `move` claims the source first: it creates the marker
    `.moves/<src>` (holding the destination) with a conditional put (`If-None-Match: *`), which S3
    lets exactly one writer win. Only the winner copies the object and deletes the source, then
    the marker. Guarantee: of any number of concurrent movers of one key, at most one moves it;
    the others get False. A mover that died after its marker leaves the source in place; once
    the marker is `stale_move_seconds` old (by the server's clock) the next mover finishes that
    move when the copy exists, else releases the marker and moves the source itself.
    """

    MOVES = ".moves/"

    def __init__(
        self, bucket: str, prefix: str = "", endpoint_url: str = "", client=None, stale_move_seconds: float = 300
    ):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.stale_move_seconds = stale_move_seconds
        self._client = client

    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", endpoint_url=self.endpoint_url or None)
        return self._client

    def remove_temporaries(self, folder: str, older_than_seconds: float = 0) -> int:
        return 0  # a put is one request: nothing is left of one cut off

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _full(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    @_named_failures
    def put(self, key: str, data: bytes) -> None:
        pause_point("write")
        self.client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data)

    @_named_failures
    def put_if_absent(self, key: str, data: bytes) -> bool:
        pause_point("write")
        return self._create(self._full(key), data)

    def _create(self, full_key: str, data: bytes) -> bool:
        """A conditional put (`If-None-Match: *`), which S3 lets exactly one writer of a key win."""
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=full_key, Body=data, IfNoneMatch="*")
        except ClientError as error:
            if _error_code(error) not in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise
            return False
        return True

    @_named_failures
    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
        except self.client.exceptions.NoSuchKey:
            raise KeyError(key) from None
        with body:  # closing drops the rest of a bigger object unread
            return body.read(max_bytes)

    @_named_failures
    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as error:
            if _error_code(error) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    @_named_failures
    def delete(self, key: str) -> None:
        pause_point("write")
        self.client.delete_object(Bucket=self.bucket, Key=self._full(key))

    @_named_failures
    def list(self, prefix: str, limit: int | None = None, start_after: str = "") -> list[str]:
        """Keys starting with `prefix`, sorted (S3 lists in key order, 1,000 per page)."""
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        paginator = self.client.get_paginator("list_objects_v2")
        keys: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix, **self._start_after(start_after)):
            keys.extend(self._page_keys(page))
            if limit is not None and len(keys) >= limit:
                break
        keys.sort()
        return keys[:limit] if limit is not None else keys

    @_named_failures
    def list_level(self, folder: str, start_after: str = "") -> tuple[list[str], list[str]]:
        full_prefix = f"{self.prefix}/{folder}" if self.prefix else folder
        paginator = self.client.get_paginator("list_objects_v2")
        folders: list[str] = []
        keys: list[str] = []
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=full_prefix, Delimiter="/", **self._start_after(start_after)
        )
        for page in pages:
            folders.extend(
                f for f in (self._relative(p["Prefix"]) for p in page.get("CommonPrefixes", [])) if _is_key(f[:-1])
            )
            keys.extend(self._page_keys(page))
        return sorted(folders), sorted(keys)

    def _start_after(self, key: str) -> dict:
        """The listing's `StartAfter` argument for a store key (S3 lists from there, not from the start)."""
        return {"StartAfter": f"{self.prefix}/{key}" if self.prefix else key} if key else {}

    def _page_keys(self, page: dict) -> list[str]:
        """The store keys of a listing page's objects: a bucket may hold keys the store cannot address (a
        console's folder marker `inbox/1/`, an empty, `.` or `..` part), no object of the store; listed,
        every move of one would fail."""
        return [key for key in (self._relative(obj["Key"]) for obj in page.get("Contents", [])) if _is_key(key)]

    def fits(self, key: str) -> bool:
        return len(self._full(key).encode()) <= S3_MAX_KEY_BYTES

    def _marker(self, src: str) -> str:
        """The move marker of `src`: `.moves/<src>`, or where that is too long for a key, `.moves/` and
        the SHA-256 of `src` (every mover derives the same marker either way)."""
        marker = self.MOVES + src
        return self._full(marker if self.fits(marker) else self.MOVES + hashlib.sha256(src.encode()).hexdigest())

    @_named_failures
    def move(self, src: str, dst: str) -> bool:
        """Move `src` to `dst`; False when another mover has it or it is gone (see the class doc)."""
        marker = self._marker(src)
        # a unique body gives every marker its own ETag (see the If-Match release below)
        body = f"{dst}\n{uuid.uuid4().hex}".encode()
        if not self._create(marker, body):
            # a dead mover's marker released, the source left: this mover takes it now (else a claim that
            # runs once, `signals process`, would leave it in the inbox and say nothing is unfinished)
            if not self._recover_stale_move(src, marker) or not self._create(marker, body):
                return False
        moved = self._copy(src, dst)
        if moved:
            self.delete(src)
        self.client.delete_object(Bucket=self.bucket, Key=marker)
        return moved

    def _copy(self, src: str, dst: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.copy_object(
                Bucket=self.bucket, Key=self._full(dst), CopySource={"Bucket": self.bucket, "Key": self._full(src)}
            )
        except ClientError as error:
            if _error_code(error) in ("404", "NoSuchKey"):
                return False
            raise
        return True

    def _recover_stale_move(self, src: str, marker: str) -> bool:
        """Finish or release a dead mover's marker once stale; whether it released one whose move never
        copied (the source is there to be moved again)."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=marker)
        except self.client.exceptions.NoSuchKey:
            return False  # the other mover just finished
        server_now = _http_date(response["ResponseMetadata"]["HTTPHeaders"]["date"])
        if (server_now - response["LastModified"]).total_seconds() < self.stale_move_seconds:
            return False
        dst = response["Body"].read().decode().split("\n", 1)[0]
        copied = self.exists(dst)
        if copied:
            self.delete(src)  # the copy was made: finish the dead mover's work
        try:  # If-Match: release exactly the stale marker, never a newer mover's
            self.client.delete_object(Bucket=self.bucket, Key=marker, IfMatch=response["ETag"])
        except ClientError as error:
            if _error_code(error) not in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                raise
            return False  # a newer mover's marker, or none: not ours to take over
        return not copied


def _error_code(error) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _http_date(value: str):
    from email.utils import parsedate_to_datetime

    return parsedate_to_datetime(value)


def open_object_store(settings: Settings) -> ObjectStore:
    if settings.object_store == "s3":
        return S3ObjectStore(settings.s3_bucket, settings.s3_prefix, settings.s3_endpoint_url)
    return LocalObjectStore(settings.objects_root)
