import numpy as np
import pandas as pd
import pytest

from repro.report.tables import (
    format_interval,
    format_mean_std,
    to_markdown,
    write_table,
)


@pytest.fixture
def table5() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": ["Ped2", "Ped2", "Avenue"],
            "model": ["Pred w/ Mem", "Recon w/o Mem", "Recon_x & 50%"],
            "AUC paper": [97.0, 86.4, np.nan],
            "AUC ours": [96.33, 88.53, 81.2],
            "seeds": [3, 1, 2],
        }
    )


def test_formatting_of_mean_std_and_intervals():
    assert format_mean_std(96.333, 0.4567) == "96.33 ± 0.46"
    assert format_mean_std(96.333, 0.0, n=1, decimals=1) == "96.3"
    assert format_mean_std(np.nan, 1.0) == "-"
    assert format_interval(-0.1234, 2.5, decimals=1) == "[-0.1, 2.5]"
    assert format_interval(np.nan, np.nan) == "-"


def test_write_table_files_parse_back(tmp_path, table5):
    table = table5.assign(difference=table5["AUC ours"] - table5["AUC paper"])
    paths = write_table(table, tmp_path / "tables", "table5", caption="Ped2 & Avenue: 95% of #runs")
    assert paths == {kind: tmp_path / "tables" / f"table5.{kind}" for kind in ("md", "csv", "tex")}
    pd.testing.assert_frame_equal(pd.read_csv(paths["csv"]), table)
    lines = paths["md"].read_text().splitlines()
    assert lines[0] == "Ped2 & Avenue: 95% of #runs"
    header, rows = lines[2], lines[4:]
    assert [c.strip() for c in header.strip("|").split("|")] == list(table.columns)
    assert [c.strip() for c in rows[0].strip("|").split("|")] == ["Ped2", "Pred w/ Mem", "97.00", "96.33", "3", "-0.67"]
    assert [c.strip() for c in rows[2].strip("|").split("|")][2::3] == ["-", "-"]
    tex = paths["tex"].read_text()
    assert r"\caption{Ped2 \& Avenue: 95\% of \#runs}" in tex
    assert r"Recon\_x \& 50\% & - & 81.20 & 2 & - \\" in tex
    assert tex.count(r"\\") == 1 + len(table)  # header + rows
    assert not list((tmp_path / "tables").glob(".*"))  # no temporary files left


def test_markdown_escapes_pipes_in_cells():
    line = to_markdown(pd.DataFrame({"a": ["x|y"]})).splitlines()[2]
    assert line.count("|") - line.count(r"\|") == 2
