"""CXI application layer: the `cxi` command line and the end-to-end pipeline (`cxi run`)."""
