// Recording rules. They come first in the generated file: a rule group evaluates in order,
// and promtool evaluates the groups in file order.
{
  prometheusRules+:: {
    local c = $._config,
    groups+: [
      {
        name: 'aliyun-vpn-exporter.rules',
        rules: [
          {
            record: 'aliyun_vpn:quota_utilisation:ratio',
            expr: 'aliyun_vpn_quota_used / (aliyun_vpn_quota_limit > 0)',
          },
          {
            // Seconds since each connection's latest finished diagnosis (0 is no time).
            record: 'aliyun_vpn_connection:diagnose_age:seconds',
            expr: 'time() - (aliyun_vpn_diagnose_finish_timestamp_seconds > 0)',
          },
          {
            // 1 while that diagnosis is recent enough to alert on, else 0.
            record: 'aliyun_vpn_connection:diagnose_recent:bool',
            expr: 'aliyun_vpn_connection:diagnose_age:seconds <= bool %d' % c.diagnosisMaxAgeSeconds,
          },
          {
            // The gateway's newest diagnosis, whichever connection it was about.
            record: 'aliyun_vpn_gateway:diagnose_age:seconds',
            expr: 'min without (vpn_connection_id) (aliyun_vpn_connection:diagnose_age:seconds)',
          },
          {
            record: 'aliyun_vpn_gateway:diagnose_recent:bool',
            expr: 'max without (vpn_connection_id) (aliyun_vpn_connection:diagnose_recent:bool)',
          },
        ],
      },
    ],
  },
}
