"""Running the process: start-up (`run`), reloads (`reload`), shutdown and signals, and
what they need to stay in control of the process: blocking reads on daemon threads
(`daemon_call`) and warnings about readable secret files (`file_modes`).

May import everything below the command line: `exporter.app`, `exporter.admin` and the
layers under them; the simulator only through `exporter.demo`, for `--demo`.
"""
