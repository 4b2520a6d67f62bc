"""The one filesystem layer a run writes and reads its output through: a local folder, or an
object store (`s3://`, and whatever fsspec supports) reached with fsspec.

Paths are strings: a local path, or a URL with its protocol. Every write is atomic for readers:
- on local disk a file is written under a hidden temp name and renamed (`os.replace`);
- on an object store (no rename) an object is written whole, in one PUT from memory, so it
  exists completely or not at all; a folder is committed by a marker object written last.
Listing (`glob`) skips hidden and underscore names (temp files, markers), so a reader never
sees a file that is not committed.

Credentials come from the usual chain of the store's client (for S3: env, profile, instance
role) on each node, unless the run ships explicit options (endpoint, keys) to every worker in
`Storage.options`, which is kept out of reprs, logs and the output.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import shutil
import uuid
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import fsspec
from fsspec.utils import get_protocol

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs

    from curate.config import StorageConfig

LOCAL_PROTOCOLS = ("file", "local")
COMMIT_MARKER = "_SUCCESS"
# Standard AWS variables -> s3fs option names, shipped from the driver so that workers started
# without them (a cluster joined with `ray start`) reach the same store.
_AWS_ENV_OPTIONS = {"AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token"}
# Stores whose fsspec client caches listings: off, since other nodes write the folders we list.
_LISTING_CACHE_PROTOCOLS = ("s3", "s3a", "gs", "gcs")


def is_local(url: str) -> bool:
    return get_protocol(url) in LOCAL_PROTOCOLS


def join(base: str, *parts: str) -> str:
    """`base/part/...` for a local path or a URL alike."""
    return posixpath.join(str(base), *parts)


def basename(url: str) -> str:
    return posixpath.basename(str(url).rstrip("/"))


def _committed_name(path: str) -> bool:
    name = posixpath.basename(path.rstrip("/"))
    return not name.startswith((".", "_"))


@dataclass(frozen=True)
class Storage:
    """Reads and writes of a run's files; picklable, so workers get the driver's settings."""

    # fsspec options for remote protocols (endpoint_url, anon, key/secret/token, ...): may hold
    # credentials, so never in a repr.
    options: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, settings: StorageConfig | None, ship_env_credentials: bool = True) -> Storage:
        """The driver's storage: the config's options, plus AWS credentials from the driver's
        environment when the config names none (workers may not have those variables)."""
        options: dict[str, Any] = {}
        if settings is not None:
            options.update(settings.options)
            if settings.endpoint_url is not None:
                options["endpoint_url"] = settings.endpoint_url
            if settings.anon:
                options["anon"] = True
        if ship_env_credentials and not options.get("anon") and "key" not in options:
            options.update({opt: os.environ[env] for env, opt in _AWS_ENV_OPTIONS.items() if os.environ.get(env)})
        return cls(options)

    # -- resolution ---------------------------------------------------------------------------
    def fs(self, url: str) -> tuple[fsspec.AbstractFileSystem, str]:
        """The fsspec filesystem of `url` and the path inside it (fsspec caches the instances)."""
        protocol = get_protocol(url)
        if protocol in LOCAL_PROTOCOLS:
            fs = fsspec.filesystem("file")
            return fs, fs._strip_protocol(url)
        opts = dict(self.options)
        if protocol in _LISTING_CACHE_PROTOCOLS:
            opts.setdefault("use_listings_cache", False)
        fs = fsspec.filesystem(protocol, **opts)
        return fs, fs._strip_protocol(url)

    def arrow_filesystem(self, url: str) -> tuple[pyarrow.fs.FileSystem | None, str]:
        """(filesystem, path) for pyarrow and Ray Data's `filesystem=`; None = local, as is."""
        if is_local(url):
            return None, self.fs(url)[1]
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        fs, path = self.fs(url)
        return PyFileSystem(FSSpecHandler(fs)), path

    def arrow_paths(self, urls: list[str]) -> tuple[pyarrow.fs.FileSystem | None, list[str]]:
        """One filesystem and the paths inside it for files of one store (Ray Data's readers)."""
        if not urls:
            return None, []
        return self.arrow_filesystem(urls[0])[0], [self.fs(u)[1] for u in urls]

    def _url(self, fs: fsspec.AbstractFileSystem, url: str, path: str) -> str:
        return path if is_local(url) else fs.unstrip_protocol(path)

    # -- reading ------------------------------------------------------------------------------
    def exists(self, url: str) -> bool:
        fs, path = self.fs(url)
        return fs.exists(path)

    def open(self, url: str, mode: str = "rb") -> IO[bytes]:
        """A file to read (e.g. `pq.ParquetFile(storage.open(url))`)."""
        fs, path = self.fs(url)
        return fs.open(path, mode)

    def read_bytes(self, url: str) -> bytes:
        fs, path = self.fs(url)
        return fs.cat_file(path)

    def read_text(self, url: str) -> str:
        return self.read_bytes(url).decode()

    def read_json(self, url: str) -> Any:
        return json.loads(self.read_bytes(url))

    def local_copy(self, url: str, cache_dir: str | os.PathLike[str] | None = None) -> str:
        """A local path to read `url` from: the path itself on local disk; for a store, a copy
        fetched once into `cache_dir` (default `~/.cache/curate/remote`), keyed by the URL and
        the object's size and ETag/mtime, so a replaced object is fetched again. For model
        files (fastText, a tokenizer), which their libraries load from a path only."""
        if is_local(url):
            return self.fs(url)[1]
        fs, path = self.fs(url)
        if fs.isdir(path):
            raise IsADirectoryError(f"{url}: a folder; name the model file inside it")
        info = fs.info(path)
        version = info.get("ETag") or info.get("etag") or info.get("LastModified") or info.get("mtime") or ""
        key = hashlib.sha256(f"{url}|{info.get('size')}|{version}".encode()).hexdigest()[:20]
        root = os.path.expanduser(cache_dir or os.path.join("~", ".cache", "curate", "remote"))
        local = os.path.join(root, key, posixpath.basename(path))
        if not os.path.exists(local):
            os.makedirs(os.path.dirname(local), exist_ok=True)
            tmp = f"{local}.{uuid.uuid4().hex}.tmp"  # several actors of one node may fetch at once
            try:
                fs.get_file(path, tmp)
                os.replace(tmp, local)
            finally:  # a failed fetch leaves no partial file in the cache
                if os.path.exists(tmp):
                    os.remove(tmp)
        return local

    def size(self, url: str) -> int:
        fs, path = self.fs(url)
        return int(fs.size(path))

    def glob(self, pattern: str) -> list[str]:
        """Committed files matching `pattern`, sorted; temp files and markers are never listed."""
        fs, path = self.fs(pattern)
        found = [p for p in fs.glob(path) if _committed_name(p)]
        return sorted(self._url(fs, pattern, p) for p in found)

    # -- writing ------------------------------------------------------------------------------
    def write_bytes(self, url: str, data: bytes) -> None:
        """Atomic for readers: temp name + rename locally, one whole-object PUT on a store."""
        fs, path = self.fs(url)
        if is_local(url):
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        else:
            fs.pipe_file(path, data)

    def write_text(self, url: str, text: str) -> None:
        self.write_bytes(url, text.encode())

    def write_json(self, url: str, obj: Any) -> None:
        self.write_text(url, json.dumps(obj, indent=2, default=str))

    def write_parquet(self, table: pa.Table, url: str, **write_options: Any) -> None:
        """`pq.write_table(table, ...)`, atomic for readers as `write_bytes` (the file is built in
        memory: a part or shard is a few MiB to a few tens)."""
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(table, buf, **write_options)
        self.write_bytes(url, buf.getvalue())

    def mkdir(self, url: str) -> None:
        """A folder to write into (object stores have none to make)."""
        if is_local(url):
            os.makedirs(self.fs(url)[1], exist_ok=True)

    def unlink(self, url: str) -> None:
        """Remove a file; nothing happens if it is not there."""
        fs, path = self.fs(url)
        if is_local(url):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        elif fs.exists(path):
            fs.rm_file(path)

    def rmtree(self, url: str) -> None:
        """Remove a folder and everything under it; nothing happens if it is not there."""
        fs, path = self.fs(url)
        if is_local(url):
            shutil.rmtree(path, ignore_errors=True)
            return
        found = fs.find(path, withdirs=False)
        if found:
            fs.rm(found)

    # -- folders committed as a whole -------------------------------------------------------
    def staging(self, folder: str) -> str:
        """Where to write the files of `folder` before `publish`: a hidden sibling on local
        disk (renamed into place), the folder itself on a store (its marker commits it)."""
        if is_local(folder):
            return join(posixpath.dirname(folder.rstrip("/")), f".{basename(folder)}.tmp")
        return folder

    def publish(self, staging: str, folder: str, marker: Any) -> None:
        """Make the staged files `folder`'s, then write its commit marker (last)."""
        if staging != folder:
            os.replace(self.fs(staging)[1], self.fs(folder)[1])
        self.write_json(join(folder, COMMIT_MARKER), marker)

    def committed(self, folder: str) -> bool:
        return self.exists(join(folder, COMMIT_MARKER))


LOCAL = Storage()
