// Alerting rules. Every alert names its runbook in the README (#alert-<name in lower case>).
local alert(c, name, severity, forKey, expr, summary, description, labels={}) = {
  alert: name,
  expr: expr,
  'for': c['for'][forKey],
  labels: { severity: severity } + labels,
  annotations: {
    summary: summary,
    description: description,
    runbook_url: c.runbookUrl % std.asciiLower(name),
  },
};

// Alerts on diagnosis values fire only while the connection's diagnosis is recent.
local whileRecent(expr, ignoring) = |||
  %s
  and ignoring (%s)
  aliyun_vpn_connection:diagnose_recent:bool == 1
||| % [expr, ignoring];

{
  prometheusAlerts+:: {
    local c = $._config,
    groups+: [
      {
        name: 'aliyun-vpn-exporter.diagnosis',
        rules: [
          alert(
            c, 'AliyunVpnDiagnoseItemError', 'critical', 'itemError',
            whileRecent('aliyun_vpn_diagnose_item_status{level="error"} == 1', 'item, level'),
            'A VPN gateway diagnosis item is at level error.',
            '{{ $labels.item }} is at level error in the latest quick diagnosis of VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}), connection {{ $labels.vpn_connection_id }}.',
          ),
          alert(
            c, 'AliyunVpnDiagnoseItemWarning', 'warning', 'itemWarning',
            whileRecent('aliyun_vpn_diagnose_item_status{level="warning"} == 1', 'item, level'),
            'A VPN gateway diagnosis item has been at level warning for 30 minutes.',
            '{{ $labels.item }} is at level warning in the latest quick diagnosis of VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}), connection {{ $labels.vpn_connection_id }}.',
          ),
          alert(
            c, 'AliyunVpnQuotaUtilisationHigh', 'warning', 'quotaWarning',
            |||
              aliyun_vpn:quota_utilisation:ratio >= %.2f
              and ignoring (item, quota_name)
              aliyun_vpn_gateway:diagnose_recent:bool == 1
            ||| % c.quotaWarningRatio,
            'A VPN gateway quota is more than 80% used.',
            '{{ $labels.quota_name }} ({{ $labels.item }}) of VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}) is {{ $value | humanizePercentage }} used.',
          ),
          alert(
            c, 'AliyunVpnQuotaUtilisationCritical', 'critical', 'quotaCritical',
            |||
              aliyun_vpn:quota_utilisation:ratio >= %.2f
              and ignoring (item, quota_name)
              aliyun_vpn_gateway:diagnose_recent:bool == 1
            ||| % c.quotaCriticalRatio,
            'A VPN gateway quota is more than 95% used.',
            '{{ $labels.quota_name }} ({{ $labels.item }}) of VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}) is {{ $value | humanizePercentage }} used.',
          ),
          alert(
            c, 'AliyunVpnProbeUnreachable', 'critical', 'probeUnreachable',
            whileRecent('aliyun_vpn_probe_reachable == 0', 'item, source_ip, target_ip'),
            'A VPN connectivity probe got no reply.',
            'The {{ $labels.item }} probe of connection {{ $labels.vpn_connection_id }} on VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}) to {{ $labels.target_ip }} got no reply or lost every packet.',
          ),
          alert(
            c, 'AliyunVpnProbePacketLossHigh', 'warning', 'packetLoss',
            // A probe that lost everything is AliyunVpnProbeUnreachable's.
            whileRecent(|||
              (
                aliyun_vpn_probe_packet_loss_ratio >= %.2f
                unless aliyun_vpn_probe_reachable == 0
              )
            ||| % c.packetLossRatio, 'item, source_ip, target_ip'),
            'A VPN connectivity probe loses more than 5% of its packets.',
            'The {{ $labels.item }} probe of connection {{ $labels.vpn_connection_id }} on VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}) to {{ $labels.target_ip }} lost {{ $value | humanizePercentage }} of its packets.',
          ),
          alert(
            c, 'AliyunVpnProbeLatencyHigh', 'warning', 'latency',
            whileRecent('aliyun_vpn_probe_rtt_seconds >= %.3f' % c.rttSeconds, 'item, source_ip, target_ip'),
            "A VPN connectivity probe's round-trip time is above 150 ms.",
            'The {{ $labels.item }} probe of connection {{ $labels.vpn_connection_id }} on VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}) to {{ $labels.target_ip }} measured a round-trip time of {{ $value | humanizeDuration }}.',
          ),
          alert(
            c, 'AliyunVpnConfigInconsistent', 'critical', 'configInconsistent',
            |||
              aliyun_vpn_config_consistent == 0
              and
              aliyun_vpn_connection:diagnose_recent:bool == 1
            |||,
            "A VPN connection's IPsec configuration differs from the running one.",
            'The quick diagnosis of VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}) found the configuration of connection {{ $labels.vpn_connection_id }} inconsistent (see aliyun_vpn_config_diff_entries).',
            { item: 'VcoConfigConsistency' },
          ),
          alert(
            c, 'AliyunVpnRouteConflict', 'warning', 'routeConflict',
            // The payload's shape is undocumented, so the item's level decides, not a count.
            whileRecent(|||
              max without (level) (
                aliyun_vpn_diagnose_item_status{item="RouteEntryConflict", level=~"warning|error"}
              ) == 1
            |||, 'item'),
            'A VPN gateway has conflicting route entries.',
            'The quick diagnosis of VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}), connection {{ $labels.vpn_connection_id }}, reports route entry conflicts (see aliyun_vpn_route_conflicts when the payload lets them be counted).',
          ),
          alert(
            c, 'AliyunVpnDiagnosisStale', 'warning', 'diagnosisStale',
            |||
              aliyun_vpn_gateway:diagnose_age:seconds
              and
              aliyun_vpn_gateway:diagnose_recent:bool == 0
            |||,
            "A VPN gateway's latest quick diagnosis is too old to alert on.",
            'The latest quick diagnosis of VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}) finished {{ $value | humanizeDuration }} ago; its items no longer raise alerts until a new diagnosis runs.',
          ),
          alert(
            c, 'AliyunVpnDiagnosisMissing', 'info', 'diagnosisMissing',
            'aliyun_vpn_diagnose_available == 0',
            'A VPN gateway has no quick diagnosis.',
            "VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}) has never been diagnosed, so nothing about it can alert. Run a quick diagnosis or enable the exporter's scheduled diagnoses.",
          ),
        ],
      },
      {
        // Connection status from DescribeVpnConnections, refreshed every poll interval.
        name: 'aliyun-vpn-exporter.connections',
        rules: [
          alert(
            c, 'AliyunVpnIpsecSaNotEstablished', 'critical', 'ipsecSa',
            // The connection's own status, or for a dual-tunnel connection: no tunnel is up.
            |||
              max without (status) (
                aliyun_vpn_connection_ipsec_status{status!="ipsec_sa_established"}
              ) == 1
              or
              max without (tunnel_id, status) (
                aliyun_vpn_tunnel_ipsec_status{status="ipsec_sa_established"}
              ) == 0
            |||,
            'An IPsec-VPN connection has no established IPsec SA.',
            'Connection {{ $labels.vpn_connection_id }} of VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}) has had no established IPsec SA for 10 minutes: traffic through it is down. aliyun_vpn_connection_ipsec_status says which negotiation phase fails.',
          ),
          alert(
            c, 'AliyunVpnTunnelIpsecSaNotEstablished', 'warning', 'tunnelIpsecSa',
            |||
              max without (status) (
                aliyun_vpn_tunnel_ipsec_status{status!="ipsec_sa_established"}
              ) == 1
            |||,
            'A tunnel of a dual-tunnel IPsec-VPN connection has no established IPsec SA.',
            'Tunnel {{ $labels.tunnel_id }} of connection {{ $labels.vpn_connection_id }} on VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}) has had no established IPsec SA for 15 minutes: the connection has lost its redundancy.',
          ),
        ],
      },
      {
        name: 'aliyun-vpn-exporter.exporter',
        rules: [
          alert(
            c, 'AliyunVpnPollFailing', 'warning', 'pollFailing',
            'aliyun_vpn_poll_success == 0',
            "The exporter cannot read a VPN gateway's diagnosis.",
            "Polls of VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}, target {{ $labels.target }}) have failed for 15 minutes; its values go stale and are then dropped. The exporter's log names the error.",
          ),
          alert(
            c, 'AliyunVpnPollIntervalStretched', 'info', 'pollIntervalStretched',
            'aliyun_vpn_poll_effective_interval_seconds > aliyun_vpn_poll_interval_seconds',
            'The API budget cannot poll a target within its interval.',
            'Target {{ $labels.target }} is polled every {{ $value | humanizeDuration }} instead of its configured interval: the fleet is too large for the API rate budget. Lengthen the interval, raise the budget, or shard.',
          ),
          alert(
            c, 'AliyunVpnListingFailing', 'warning', 'listingFailing',
            'aliyun_vpn_listing_success == 0',
            "The exporter cannot list a target's gateways or connections.",
            "{{ $labels.action }} has failed for target {{ $labels.target }} for 30 minutes: discovery keeps the gateways it found before, and connection status goes stale. The exporter's log names the error.",
          ),
          alert(
            c, 'AliyunVpnApiThrottling', 'warning', 'apiThrottling',
            |||
              sum without (code) (rate(aliyun_vpn_api_request_failures_total{code=~"Throttling.*"}[15m]))
              /
              rate(aliyun_vpn_api_requests_total[15m])
              > %.2f
            ||| % c.throttledRatio,
            'The Alibaba Cloud API keeps throttling the exporter.',
            "{{ $value | humanizePercentage }} of {{ $labels.action }} requests from {{ $labels.instance }} were throttled over the last 15 minutes. Something else may share the account's quota, or the exporter's rate budget is too high.",
          ),
          alert(
            c, 'AliyunVpnDescriptionParseErrors', 'info', 'parseErrors',
            'rate(aliyun_vpn_description_parse_errors_total[15m]) > 0',
            'The exporter cannot read some diagnosis descriptions.',
            "{{ $labels.instance }} keeps failing to read the description of {{ $labels.item }}; the API's payload may have changed. The exporter's log shows the payload.",
          ),
          alert(
            c, 'AliyunVpnExporterDown', 'warning', 'exporterDown',
            'up{%s} == 0' % c.jobSelector,
            'Prometheus cannot scrape an aliyun-vpn-exporter target.',
            '{{ $labels.instance }} of job {{ $labels.job }} has been down for 10 minutes; the gateways it polls are not monitored.',
          ),
          alert(
            c, 'AliyunVpnExporterAbsent', 'critical', 'exporterAbsent',
            'absent(up{%s} == 1)' % c.jobSelector,
            'No aliyun-vpn-exporter target is up.',
            'Prometheus has had no healthy target of job %s for 10 minutes, so no VPN gateway alert can fire.' % c.jobName,
            // absent() of a comparison carries no labels: name the job for routing.
            { job: c.jobName },
          ),
        ],
      },
    ],
  },
}
