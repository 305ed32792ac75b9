"""Coverage-guided fuzz targets (atheris): run by tests/test_fuzz_atheris.py when atheris is
installed, or by hand for longer: `python -m tests.fuzz.description -runs=1000000`."""
