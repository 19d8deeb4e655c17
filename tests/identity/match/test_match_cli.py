"""`cxi identity link` (the typer function in cxi.commands.link): files in, clusters and pairs out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import typer
from match_data import make_records, pair_f1
from typer.testing import CliRunner

from cxi.commands.link import link


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(link)
    return app


def test_cli_links_record_files(tmp_path: Path) -> None:
    records, entity = make_records(300, seed=3)
    records = records.rename(columns={"last_name": "surname"})  # mapped back with --map
    for src in ("crm", "shop"):  # no source column: each file's name is its source
        part = records[records["source"] == src].drop(columns=["source", "user_id"])
        if src == "crm":
            part.to_csv(tmp_path / "crm.csv", index=False)
        else:
            part.to_parquet(tmp_path / "shop.parquet", index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        _app(),
        [
            "--records",
            str(tmp_path / "crm.csv"),
            "--records",
            str(tmp_path / "shop.parquet"),
            "--map",
            "last_name=surname",
            "--out",
            str(out),
            "--mode",
            "unsupervised",
        ],
    )
    assert result.exit_code == 0, result.output
    clusters = pd.read_parquet(out / "clusters.parquet")
    pairs = pd.read_parquet(out / "pairs.parquet")
    assert len(clusters) == len(records)
    assert set(clusters["source"]) == {"crm", "shop"}
    assert {"customer_id", "record_id"} <= set(clusters.columns)
    assert {"match_probability", "linked", "level_last_name", "w_last_name"} <= set(pairs.columns)
    assert pair_f1(pairs, records, entity) >= 0.9
    assert "seconds by stage: read" in result.output


def test_cli_window_zero_compares_every_pair_of_a_block(tmp_path: Path) -> None:
    """``--window 0`` turns the sorted neighbourhood off: a block of 40 gives all its 780 pairs."""
    people = pd.DataFrame(
        {"record_id": [f"r{k}" for k in range(40)], "first_name": "Ann", "date_of_birth": "1980-01-01"}
    )
    people["last_name"] = [f"Name{k}" for k in range(40)]
    people.to_csv(tmp_path / "crm.csv", index=False)
    counts = []
    for window in ("0", "5"):
        out = tmp_path / f"out{window}"
        args = ["--records", str(tmp_path / "crm.csv"), "--out", str(out), "--window", window]
        result = CliRunner().invoke(_app(), [*args, "--mode", "unsupervised"])
        assert result.exit_code == 0, result.output
        counts.append(int(result.output.split("candidate pairs")[1].split()[1].replace(",", "")))
    assert counts[0] == 40 * 39 // 2 and counts[1] < 40 * 4 + 1


def test_cli_names_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "people.txt"
    bad.write_text("x")
    result = CliRunner().invoke(_app(), ["--records", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "file" in result.output and "unsupported" in result.output


def test_import_stays_light() -> None:
    """The linker is timed as a whole process: importing it pulls no feature store, registry, server or
    LightGBM (loaded only in supervised mode)."""
    code = (
        "import sys, identity.match, cxi.commands.link; "
        "print(sorted(m for m in ('feast', 'mlflow', 'bentoml', 'lightgbm', 'sklearn', 'scipy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_phone_region_reads_national_phones(tmp_path: Path) -> None:
    """A CRM writes a Brussels phone internationally, the shop nationally. The linker compares phones by their
    last 9 digits, which a short national number does not share with its international form (025551212 vs
    3225551212); read in BE both are +3225551212, and the two records (among others, for the model to learn
    from) are one customer."""
    records, _ = make_records(150, seed=3)
    ann = pd.DataFrame(
        [
            {"source": "crm", "record_id": "ann-1", "phone": "+32 2 555 12 12"},
            {"source": "shop", "record_id": "ann-2", "phone": "02 555 12 12"},
        ]
    ).assign(first_name="Ann", last_name="Lee", date_of_birth="1980-04-02", postcode="1000")
    records = pd.concat([records.drop(columns=["user_id"]), ann], ignore_index=True)
    files = []
    for src in ("crm", "shop"):
        records[records["source"] == src].drop(columns=["source"]).to_csv(
            tmp_path / f"{src}.csv", index=False
        )
        files += ["--records", str(tmp_path / f"{src}.csv")]

    def ann_pair(*option: str) -> pd.Series:
        out = tmp_path / f"out{len(option)}"
        result = CliRunner().invoke(_app(), [*files, "--out", str(out), "--mode", "unsupervised", *option])
        assert result.exit_code == 0, result.output
        clusters = pd.read_parquet(out / "clusters.parquet").set_index("record_id")
        pairs = pd.read_parquet(out / "pairs.parquet")
        pair = pairs[(pairs["record_id_l"] == "ann-1") & (pairs["record_id_r"] == "ann-2")].iloc[0]
        assert pair["linked"] == (
            clusters.loc["ann-1", "customer_id"] == clusters.loc["ann-2", "customer_id"]
        )
        return pair

    assert ann_pair()["level_phone"] == 1  # without a region: one digit apart
    pair = ann_pair("--phone-region", "BE")
    assert pair["level_phone"] == 2 and pair["linked"]  # 2: the phones agree exactly
    bad = CliRunner().invoke(_app(), [*files, "--out", str(tmp_path / "o"), "--phone-region", "UK"])
    assert bad.exit_code == 1 and "phone_region" in bad.output
