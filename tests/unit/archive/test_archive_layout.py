"""The archive's day folders: walking them and pruning whole old days."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from stats_service.archive import layout
from stats_service.archive.local import LocalArchive


def filled(tmp_path: Path) -> LocalArchive:
    archive = LocalArchive(tmp_path)
    for tenant, day, hour, name in [
        ("default", "2024/05/30", "23", "a"),
        ("default", "2024/05/31", "00", "b"),
        ("default", "2024/05/31", "07", "c"),
        ("default", "2024/06/01", "00", "d"),
        ("acme", "2023/12/31", "12", "e"),
        ("acme", "2024/06/02", "01", "f"),
    ]:
        archive.put(f"raw/{tenant}/{day}/{hour}/{name}.ndjson.zst", name.encode())
    return archive


def test_days_lists_only_existing_folders_in_range(tmp_path: Path) -> None:
    archive = filled(tmp_path)
    assert list(layout.days(archive, "default", date(2024, 5, 31), date(2025, 1, 1))) == [
        date(2024, 5, 31),
        date(2024, 6, 1),
    ]
    assert layout.tenants(archive) == ["acme", "default"]


def test_prune_deletes_whole_days_before_the_cutoff_of_every_tenant(tmp_path: Path) -> None:
    archive = filled(tmp_path)
    assert layout.prune(archive, date(2024, 6, 1)) == (3, 4)
    left = sorted(archive.keys("raw/"))
    assert left == [
        "raw/acme/2024/06/02/01/f.ndjson.zst",
        "raw/default/2024/06/01/00/d.ndjson.zst",
    ]
    # no empty year/month/day/hour folders are left behind
    assert not (tmp_path / "raw" / "acme" / "2023").exists()
    assert not (tmp_path / "raw" / "default" / "2024" / "05").exists()
    assert layout.prune(archive, date(2024, 6, 1)) == (0, 0)


def test_delete_of_a_missing_key_is_a_no_op(tmp_path: Path) -> None:
    archive = filled(tmp_path)
    archive.delete("raw/default/1999/01/01/00/none.ndjson.zst")
    assert len(list(archive.keys("raw/"))) == 6
