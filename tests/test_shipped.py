"""What ships inside the package (importlib.resources): table declarations by name, profiles, published labels."""

import numpy as np
import pytest
from click.testing import CliRunner

from repro.cli import main
from repro.config import ConfigError
from repro.data.labels import DataError, load_flat_labels, published_label_file
from repro.grids import load_table, resolve_table, shipped_tables


def test_table_declarations_resolve_by_name_or_path(tmp_path):
    assert {"table5", "table6", "baselines"} <= set(shipped_tables())
    assert load_table("table5").name == "table5" and load_table("table5").datasets == ("ped2", "avenue", "shanghaitech")
    assert resolve_table(shipped_tables()["table6"]) == shipped_tables()["table6"]
    with pytest.raises(ConfigError, match=r"table declaration tabel5 not found; did you mean 'table5'\?"):
        load_table("tabel5")


def test_sweep_with_an_unknown_declaration_name_is_one_line():
    result = CliRunner().invoke(main, ["sweep", "tabel5"])
    assert result.exit_code == 2 and "did you mean 'table5'?" in result.output and result.output.count("\n") == 1


def test_published_labels_ship_with_the_package():
    totals = {
        name: (len(x), int(x.sum()))
        for name in ("ped2", "avenue", "shanghaitech")
        for x in [load_flat_labels(published_label_file(name))]
    }
    assert totals == {"ped2": (2010, 1648), "avenue": (15324, 3867), "shanghaitech": (40791, 17326)}
    with pytest.raises(DataError, match="no published labels for dataset 'campus'"):
        published_label_file("campus")


def test_data_check_reads_the_published_labels_by_name(tmp_path):
    import cv2

    for split, counts in (
        ("training", (8,)),  # 4 prediction clips: one training batch
        ("testing", (180, 180, 150, 180, 150, 180, 180, 180, 120, 150, 180, 180)),
    ):
        for v, count in enumerate(counts):
            folder = tmp_path / "ped2" / split / "frames" / f"{v + 1:02d}"
            folder.mkdir(parents=True)
            for t in range(count):
                cv2.imwrite(str(folder / f"{t:03d}.jpg"), np.zeros((8, 8, 3), np.uint8))
    result = CliRunner().invoke(main, ["data", "check", str(tmp_path), "ped2", "--labels", "published", "--size", "8"])
    assert result.exit_code == 0, result.output
    assert '"anomalous": 1648' in result.output and "frame_labels_ped2.npy" in result.output
    campus = CliRunner().invoke(main, ["data", "check", str(tmp_path), "campus", "--labels", "published"])
    assert campus.exit_code == 2
