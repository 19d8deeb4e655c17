"""One typer sub-app per noun. Modules here import only typer/rich at top level: heavy libraries
(Feast, MLflow, BentoML, LightGBM) are imported inside the commands so `cxi --help` stays instant."""
