"""Downloads the studio makes do not pile up in a studio left running: old ones are removed, new ones kept."""
import os
import time

from studio import scratch


def test_old_download_folders_are_removed_and_recent_ones_kept():
    old = scratch.new_folder("test-old-")
    (old / "export.zip").write_bytes(b"x" * 1000)
    day_ago = time.time() - scratch.MAX_AGE_SECONDS - 60
    os.utime(old, (day_ago, day_ago))
    recent = scratch.new_folder("test-recent-")   # making a new one cleans first
    assert not old.exists() and recent.is_dir()
    scratch.clean()
    assert recent.is_dir()
    os.utime(recent, (day_ago, day_ago))
    assert scratch.clean() >= 1 and not recent.exists()


def test_the_page_asks_gradio_to_clean_its_copies_of_served_files():
    from components.app import GRADIO_CACHE_CLEANUP, build
    demo = build()
    assert demo.delete_cache == GRADIO_CACHE_CLEANUP and GRADIO_CACHE_CLEANUP[1] <= 24 * 3600
