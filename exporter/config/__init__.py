"""The configuration: YAML file, environment overrides and strict pydantic models.

- `values`: value types (durations, rates, IDs, CIDRs, secrets) and `ConfigError`;
- `model`: the section models and their cross-checks;
- `problems`: pydantic errors turned into `path: message` lines;
- `loader`: the YAML loader (`!env`, `!file`), overrides, `load_config`, `check_config`.

May import: `exporter.model` (the tag-label rule). Nothing that does I/O beyond reading
the config file.
"""
