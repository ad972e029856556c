"""make test's file order: the longest files first, every collected test still run once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.fixtures import file_order


@dataclass
class Item:
    nodeid: str


def test_listed_files_come_first_in_the_lists_order_and_nothing_is_dropped() -> None:
    items = [
        Item("a/test_x.py::test_1"),
        Item("a/test_x.py::test_2"),
        Item("b/test_long.py::test_1"),
        Item("c/test_y.py::test_1"),
        Item("d/test_longer.py::test_1[p]"),
        Item("d/test_longer.py::test_2"),
    ]
    text = "# a comment\nd/test_longer.py\n\nb/test_long.py\ngone/test_removed.py\n"
    ordered = file_order.longest_first(items, file_order.heaviest(text))
    assert [i.nodeid for i in ordered] == [
        "d/test_longer.py::test_1[p]",
        "d/test_longer.py::test_2",
        "b/test_long.py::test_1",
        "a/test_x.py::test_1",
        "a/test_x.py::test_2",
        "c/test_y.py::test_1",
    ]


def test_the_list_is_read_from_a_junit_report_longest_first(tmp_path: Path) -> None:
    for name in ("test_short.py", "test_long.py"):
        (tmp_path / "pkg").mkdir(exist_ok=True)
        (tmp_path / "pkg" / name).write_text("")
    report = """<testsuites><testsuite>
      <testcase classname="pkg.test_short" name="a" time="3.0"/>
      <testcase classname="pkg.test_long" name="a" time="10.0"/>
      <testcase classname="pkg.test_long.TestGroup" name="b" time="5.5"/>
      <testcase classname="pkg.test_short" name="b" time="1.0"/>
    </testsuite></testsuites>"""
    per = file_order.seconds_per_file(report, tmp_path)
    assert per.most_common() == [("pkg/test_long.py", 15.5), ("pkg/test_short.py", 4.0)]


def test_every_listed_file_exists() -> None:
    """A renamed file falls to the back of the run: the list is refreshed with it."""
    listed = file_order.heaviest(file_order.LIST.read_text())
    assert listed and all((file_order.ROOT / path).is_file() for path in listed)
