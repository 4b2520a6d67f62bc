"""A process's RSS holds the object-store pages it is using, not every page it ever touched:
releasing them takes them out of its resident set, and the objects read the same afterwards."""

from __future__ import annotations

from curate.pipeline.store_pages import release_object_store_pages
from warc_rows import read_raw


def _resident_shared_mib() -> float:
    """RssShmem: this process's resident shared-memory pages (the object store's among them)."""
    with open("/proc/self/status") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith("RssShmem:"))
    return kib / 1024


def test_released_store_pages_leave_the_rss_and_the_objects_read_the_same(ray_session, shared_data):
    rows = read_raw(shared_data / "real-pages.warc.gz")  # 388 pages, ~60 MiB of HTML
    size_mib = rows.nbytes / 2**20
    ref = ray_session.put(rows)  # written into the store by this process: its pages are in our RSS
    written = _resident_shared_mib()
    release_object_store_pages()
    released = _resident_shared_mib()
    assert written - released >= 0.9 * size_mib
    back = ray_session.get(ref)  # zero-copy: the pages fault back in, with their contents
    assert back.equals(rows)
    assert _resident_shared_mib() - released >= 0.9 * size_mib
