"""Test-wide settings: no test may reach the ECS metadata service or a user's CLI profile."""

from __future__ import annotations

import os

# alibabacloud-credentials reads these when it is first imported, which some tests do.
os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
os.environ["ALIBABA_CLOUD_CLI_PROFILE_DISABLED"] = "true"
