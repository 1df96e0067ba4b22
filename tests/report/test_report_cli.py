"""`rulewatch report` from outside: files, paths on stdout, exit codes."""

from __future__ import annotations

import os

import pytest
from cli_support import clean_env, run_rulewatch
from report_support import demo_warehouse

from rulewatch.demo.data import MISSED_FILING_DOC_ID


def _run(args, tmp_path, url):
    env = clean_env(RULEWATCH_DATA_DIR=str(tmp_path / "data"), RULEWATCH_WAREHOUSE_URL=url)
    return run_rulewatch(env, *args, timeout=240)


def test_report_writes_the_files_and_prints_their_paths(tmp_path):
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    with demo_warehouse(url, tmp_path):
        pass
    out = tmp_path / "out"
    res = _run(
        ["report", "--period", "2024", "--as-of", "2024-05-20", "--out", str(out)], tmp_path, url
    )
    assert res.returncode == 0, res.stderr
    paths = res.stdout.split()
    assert paths[0] == str(out / "report-2024.html")
    assert all(os.path.exists(p) for p in paths) and len(paths) == 8
    assert MISSED_FILING_DOC_ID in (out / "offenders-2024.csv").read_text(encoding="utf-8-sig")
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in paths)  # nothing else

    # a report that cannot be written whole leaves the earlier one as it was
    before = {p: os.path.getmtime(p) for p in paths}
    (out / "report-2024.xlsx").unlink()
    (out / "report-2024.xlsx").mkdir()
    res = _run(
        ["report", "--period", "2024", "--as-of", "2024-05-21", "--out", str(out)], tmp_path, url
    )
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"rulewatch: failed: cannot use {out / 'report-2024.xlsx'}: Is a directory "
        "(a folder stands where rulewatch writes a file: move it away)"
    ]
    assert {p: os.path.getmtime(p) for p in paths if not p.endswith(".xlsx")} == {
        p: t for p, t in before.items() if not p.endswith(".xlsx")
    }
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in paths)


def test_report_on_an_empty_warehouse_says_no_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    out = tmp_path / "out"
    res = _run(
        ["report", "--period", "2023-Q4", "--as-of", "2024-01-10", "--out", str(out)], tmp_path, url
    )
    assert res.returncode == 0, res.stderr
    assert 'data-status="no_data"' in (out / "report-2023-Q4.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--period", "2023-13", "--out", "x"], "period '2023-13'"),
        (
            ["report", "--period", "2023", "--as-of", "2024-02-30", "--out", "x"],
            "--as-of '2024-02-30'",
        ),
        (["report", "--period", "2023"], "--out"),
    ],
)
def test_bad_usage_exits_2(tmp_path, args, message):
    res = _run(args, tmp_path, f"sqlite:///{tmp_path / 'wh.db'}")
    assert res.returncode == 2
    assert message in res.stderr
