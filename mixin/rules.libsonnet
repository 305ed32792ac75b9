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
            // The gateway's name as a label to join onto alerts (group_left).
            record: 'aliyun_vpn_gateway:name:info',
            expr: |||
              max by (%s, gateway_name) (
                label_replace(aliyun_vpn_gateway_info, "gateway_name", "$1", "name", "(.+)")
              )
            ||| % c.gatewayLabels,
          },
          {
            // Seconds since each connection's latest finished diagnosis (0 is no time).
            record: 'aliyun_vpn_connection:diagnose_age:seconds',
            expr: 'time() - (aliyun_vpn_diagnose_finish_timestamp_seconds > 0)',
          },
          {
            // 1 while that diagnosis is recent enough to alert on, else 0. The age limit is
            // the exporter's aliyun_vpn_diagnose_max_age_seconds (from its diagnose: config).
            record: 'aliyun_vpn_connection:diagnose_recent:bool',
            expr: |||
              aliyun_vpn_connection:diagnose_age:seconds
              <= bool on (%s) group_left ()
              aliyun_vpn_diagnose_max_age_seconds
            ||| % c.targetLabels,
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
          {
            // The target's poll period: the effective interval (the pace achieved; it grows
            // under throttling and keeps its value in an outage), never below the configured one.
            record: 'aliyun_vpn_target:poll_period:seconds',
            expr: |||
              aliyun_vpn_poll_effective_interval_seconds > aliyun_vpn_poll_interval_seconds
              or aliyun_vpn_poll_interval_seconds
            |||,
          },
          {
            // Seconds since the gateway's last successful poll: how old its series are.
            record: 'aliyun_vpn_gateway:data_age:seconds',
            expr: 'time() - aliyun_vpn_poll_last_success_timestamp_seconds',
          },
        ],
      },
    ],
  },
}
