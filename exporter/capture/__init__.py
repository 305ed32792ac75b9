"""`aliyun-vpn-exporter capture`: the real API's answers, redacted, for a bug report."""
