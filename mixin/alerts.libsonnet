// Alerting rules. Every alert names its runbook in the README (#alert-<name in lower case>)
// and, but for the exporter's own absence, keeps firing over a scrape gap (keepFiringFor);
// alerts about one gateway link its Grafana dashboard (dashboard_url) and carry its name
// (gateway_name, from aliyun_vpn_gateway_info) when the exporter knows it.
local gw = '{{ $labels.vpn_gateway_id }}{{ with $labels.gateway_name }} "{{ . }}"{{ end }}';
local conn = 'connection {{ $labels.vpn_connection_id }} of VPN gateway ' + gw;

local alert(c, name, severity, forKey, expr, summary, description, labels={}, keep=true, dashboard=false) = {
  alert: name,
  expr: expr,
  'for': c['for'][forKey],
  [if keep then 'keep_firing_for']: c.keepFiringFor,
  labels: { severity: severity } + labels,
  annotations: {
    summary: summary,
    description: description,
    runbook_url: c.runbookUrl % std.asciiLower(name),
  } + (
    if dashboard then {
      dashboard_url: '%s/d/%s?var-region_id={{ $labels.region_id }}&var-vpn_gateway_id={{ $labels.vpn_gateway_id }}' % [c.grafanaUrl, c.gatewayDashboardUid],
    } else {}
  ),
};

// `expr` with the gateway's name as the label gateway_name where aliyun_vpn_gateway_info
// gives one, and unchanged where it does not (a join alone would drop the alert).
local named(c, expr) =
  local body = std.lines([std.rstripChars(expr, '\n')]);
  |||
    (
    %s)
    * on (%s)
    group_left (gateway_name) aliyun_vpn_gateway:name:info
    or on (%s)
    (
    %s)
  ||| % [body, c.gatewayLabels, c.gatewayLabels, body];

// An alert about one connection (or gateway): named and linked to the gateway dashboard.
local gatewayAlert(c, name, severity, forKey, expr, summary, description, labels={}) =
  alert(c, name, severity, forKey, named(c, expr), summary, description, labels, dashboard=true);

// Alerts on diagnosis values fire only while the diagnosis is recent (the exporter's
// aliyun_vpn_diagnose_max_age_seconds; older diagnoses raise AliyunVpnDiagnosisStale).
local recentConnection(c, expr) = |||
  %s
  and on (%s)
  aliyun_vpn_connection:diagnose_recent:bool == 1
||| % [std.rstripChars(expr, '\n'), c.connectionLabels];
local recentGateway(c, expr) = |||
  %s
  and on (%s)
  aliyun_vpn_gateway:diagnose_recent:bool == 1
||| % [std.rstripChars(expr, '\n'), c.gatewayLabels];

// Gateways whose data is older than staleIntervals poll periods, with that age.
local gatewayStale(c) = |||
  aliyun_vpn_gateway:data_age:seconds
  > on (%(targetLabels)s) group_left ()
  (%(staleIntervals)d * aliyun_vpn_target:poll_period:seconds)
||| % c;
// Targets none of whose gateways has fresh data, with the freshest gateway's age.
local targetStale(c) = |||
  min without (region_id, vpn_gateway_id) (aliyun_vpn_gateway:data_age:seconds)
  > on (%(targetLabels)s)
  (%(staleIntervals)d * aliyun_vpn_target:poll_period:seconds)
||| % c;

{
  prometheusAlerts+:: {
    local c = $._config,
    groups+: [
      {
        name: 'aliyun-vpn-exporter.diagnosis',
        rules: [
          gatewayAlert(
            c, 'AliyunVpnDiagnoseItemError', 'critical', 'itemError',
            recentConnection(c, 'aliyun_vpn_diagnose_item_status{\n  level="error",\n  item!~"%s"\n} == 1' % c.specificItems),
            'Diagnosis item {{ $labels.item }} is at level error on ' + conn + '.',
            'The latest quick diagnosis of VPN gateway ' + gw + ' ({{ $labels.region_id }}, target {{ $labels.target }}) puts {{ $labels.item }} of connection {{ $labels.vpn_connection_id }} at level error. Items with their own alert (quotas, probes, config consistency, route conflicts) raise that alert instead.',
          ),
          gatewayAlert(
            c, 'AliyunVpnDiagnoseItemWarning', 'warning', 'itemWarning',
            recentConnection(c, 'aliyun_vpn_diagnose_item_status{\n  level="warning",\n  item!~"%s"\n} == 1' % c.specificItems),
            'Diagnosis item {{ $labels.item }} is at level warning on ' + conn + '.',
            'The latest quick diagnosis of VPN gateway ' + gw + ' ({{ $labels.region_id }}, target {{ $labels.target }}) puts {{ $labels.item }} of connection {{ $labels.vpn_connection_id }} at level warning.',
          ),
          gatewayAlert(
            c, 'AliyunVpnQuotaUtilisationHigh', 'warning', 'quotaWarning',
            recentGateway(c, 'aliyun_vpn:quota_utilisation:ratio >= %.2f' % c.quotaWarningRatio),
            'Quota {{ $labels.quota_name }} of VPN gateway ' + gw + ' is {{ $value | humanizePercentage }} used.',
            '{{ $labels.quota_name }} ({{ $labels.item }}) of VPN gateway ' + gw + ' ({{ $labels.region_id }}) is {{ $value | humanizePercentage }} used, at least %d%%.' % std.round(c.quotaWarningRatio * 100),
          ),
          gatewayAlert(
            c, 'AliyunVpnQuotaUtilisationCritical', 'warning', 'quotaCritical',
            recentGateway(c, 'aliyun_vpn:quota_utilisation:ratio >= %.2f' % c.quotaCriticalRatio),
            'Quota {{ $labels.quota_name }} of VPN gateway ' + gw + ' is {{ $value | humanizePercentage }} used.',
            '{{ $labels.quota_name }} ({{ $labels.item }}) of VPN gateway ' + gw + ' ({{ $labels.region_id }}) is {{ $value | humanizePercentage }} used, at least %d%%: new routes or connections will soon be refused.' % std.round(c.quotaCriticalRatio * 100),
          ),
          gatewayAlert(
            c, 'AliyunVpnProbeUnreachable', 'critical', 'probeUnreachable',
            recentConnection(c, 'aliyun_vpn_probe_reachable == 0'),
            'The {{ $labels.item }} probe of ' + conn + ' gets no reply.',
            'The {{ $labels.item }} probe of connection {{ $labels.vpn_connection_id }} on VPN gateway ' + gw + ' ({{ $labels.region_id }}) to {{ $labels.target_ip }} got no reply or lost every packet.',
          ),
          gatewayAlert(
            c, 'AliyunVpnProbePacketLossHigh', 'warning', 'packetLoss',
            // A probe that lost everything is AliyunVpnProbeUnreachable's.
            recentConnection(c, |||
              (
                aliyun_vpn_probe_packet_loss_ratio >= %.2f
                unless aliyun_vpn_probe_reachable == 0
              )
            ||| % c.packetLossRatio),
            'The {{ $labels.item }} probe of ' + conn + ' loses {{ $value | humanizePercentage }} of its packets.',
            'The {{ $labels.item }} probe of connection {{ $labels.vpn_connection_id }} on VPN gateway ' + gw + ' ({{ $labels.region_id }}) to {{ $labels.target_ip }} lost {{ $value | humanizePercentage }} of its packets.',
          ),
          gatewayAlert(
            c, 'AliyunVpnProbeLatencyHigh', 'warning', 'latency',
            recentConnection(c, 'aliyun_vpn_probe_rtt_seconds >= %.3f' % c.rttSeconds),
            'The {{ $labels.item }} probe of ' + conn + ' has a round-trip time of {{ $value | humanizeDuration }}.',
            'The {{ $labels.item }} probe of connection {{ $labels.vpn_connection_id }} on VPN gateway ' + gw + ' ({{ $labels.region_id }}) to {{ $labels.target_ip }} measured a round-trip time of {{ $value | humanizeDuration }}.',
          ),
          gatewayAlert(
            c, 'AliyunVpnConfigInconsistent', 'warning', 'configInconsistent',
            recentConnection(c, 'aliyun_vpn_config_consistent == 0'),
            'The IPsec configuration of ' + conn + ' differs from its peer.',
            'The quick diagnosis of VPN gateway ' + gw + ' ({{ $labels.region_id }}) found the configuration of connection {{ $labels.vpn_connection_id }} inconsistent with its peer (aliyun_vpn_config_diff_entries counts the settings when it can).',
            { item: 'VcoConfigConsistency' },
          ),
          gatewayAlert(
            c, 'AliyunVpnPeerConfigUnavailable', 'warning', 'peerConfigUnavailable',
            recentConnection(c, 'aliyun_vpn_config_peer_available == 0'),
            "The peer's configuration of " + conn + ' cannot be read, so config drift is not checked.',
            "The quick diagnosis of VPN gateway " + gw + " ({{ $labels.region_id }}) could not obtain the peer's configuration of connection {{ $labels.vpn_connection_id }} (VcoConfigConsistency vcoLackConf): AliyunVpnConfigInconsistent cannot fire for it.",
            { item: 'VcoConfigConsistency' },
          ),
          gatewayAlert(
            c, 'AliyunVpnRouteConflict', 'warning', 'routeConflict',
            // The payload's shape is undocumented, so the item's level decides, not a count.
            recentConnection(c, |||
              max without (level) (
                aliyun_vpn_diagnose_item_status{item="RouteEntryConflict", level=~"warning|error"}
              ) == 1
            |||),
            'VPN gateway ' + gw + ' has conflicting route entries.',
            'The quick diagnosis of VPN gateway ' + gw + ' ({{ $labels.region_id }}), connection {{ $labels.vpn_connection_id }}, reports route entry conflicts (see aliyun_vpn_route_conflicts when the payload lets them be counted).',
          ),
          alert(
            c, 'AliyunVpnDiagnosisStale', 'warning', 'diagnosisStale',
            named(c, |||
              aliyun_vpn_gateway:diagnose_age:seconds
              and on (%s)
              aliyun_vpn_gateway:diagnose_recent:bool == 0
            ||| % c.gatewayLabels),
            'The latest diagnosis of VPN gateway ' + gw + ' is {{ $value | humanizeDuration }} old, too old to alert on.',
            'The latest quick diagnosis of VPN gateway ' + gw + ' ({{ $labels.region_id }}) finished {{ $value | humanizeDuration }} ago, more than aliyun_vpn_diagnose_max_age_seconds allows; its items raise no alerts until a new diagnosis runs.',
            dashboard=true,
          ),
          alert(
            c, 'AliyunVpnDiagnosisMissing', 'info', 'diagnosisMissing',
            named(c, 'aliyun_vpn_diagnose_available == 0'),
            'VPN gateway ' + gw + ' has no quick diagnosis.',
            "VPN gateway " + gw + " ({{ $labels.region_id }}) has never been diagnosed, so nothing about its diagnosis items can alert. Run a quick diagnosis or enable the exporter's scheduled diagnoses.",
            dashboard=true,
          ),
        ],
      },
      {
        // Connection and gateway status from DescribeVpnConnections/DescribeVpnGateways,
        // refreshed every poll interval: no diagnosis is involved.
        name: 'aliyun-vpn-exporter.connections',
        rules: [
          gatewayAlert(
            c, 'AliyunVpnIpsecSaNotEstablished', 'critical', 'ipsecSa',
            // A single-tunnel connection by its own status; a dual-tunnel one when neither
            // tunnel is up. Only while the connection's state says it should be up.
            |||
              (
                (
                  max without (status) (
                    aliyun_vpn_connection_ipsec_status{status!="ipsec_sa_established"}
                  ) == 1
                  unless on (%(connectionLabels)s)
                aliyun_vpn_tunnel_ipsec_status
                )
                or
                max without (tunnel_id, status) (
                  aliyun_vpn_tunnel_ipsec_status{status="ipsec_sa_established"}
                ) == 0
              )
            ||| % c + |||
              unless on (%(connectionLabels)s)
              aliyun_vpn_connection_state{state!~"%(connectionUpStates)s"}
            ||| % c,
            'IPsec-VPN ' + conn + ' has no established IPsec SA: traffic through it is down.',
            'Connection {{ $labels.vpn_connection_id }} of VPN gateway ' + gw + ' ({{ $labels.region_id }}) has no established IPsec SA (for a dual-tunnel connection: on neither tunnel): traffic through it is down. aliyun_vpn_connection_ipsec_status (aliyun_vpn_tunnel_ipsec_status) says which negotiation phase fails.',
          ),
          gatewayAlert(
            c, 'AliyunVpnTunnelIpsecSaNotEstablished', 'warning', 'tunnelIpsecSa',
            // Only while the other tunnel is up: both down is the connection's alert.
            |||
              max without (status) (
                aliyun_vpn_tunnel_ipsec_status{status!="ipsec_sa_established"}
              ) == 1
              and on (%(connectionLabels)s)
              max without (tunnel_id, status) (
                aliyun_vpn_tunnel_ipsec_status{status="ipsec_sa_established"}
              ) == 1
            ||| % c,
            'Tunnel {{ $labels.tunnel_id }} of ' + conn + ' is down; the other tunnel carries the traffic.',
            'Tunnel {{ $labels.tunnel_id }} of connection {{ $labels.vpn_connection_id }} on VPN gateway ' + gw + ' ({{ $labels.region_id }}) has no established IPsec SA while the other tunnel has one: traffic still flows, but the connection has no redundancy left.',
          ),
          gatewayAlert(
            c, 'AliyunVpnBgpNotEstablished', 'critical', 'bgp',
            'aliyun_vpn_connection_bgp_status{status!="success"} == 1',
            'BGP of ' + conn + ' is {{ $labels.status }}, not established.',
            'The BGP session of connection {{ $labels.vpn_connection_id }} on VPN gateway ' + gw + ' ({{ $labels.region_id }}) reports {{ $labels.status }} (VpnBgpConfig.Status): routes learned over it are withdrawn.',
          ),
          gatewayAlert(
            c, 'AliyunVpnHealthCheckFailed', 'critical', 'healthCheck',
            'aliyun_vpn_connection_health_check_status{status="failed"} == 1',
            'The health check of ' + conn + ' fails.',
            'The health check of connection {{ $labels.vpn_connection_id }} on VPN gateway ' + gw + ' ({{ $labels.region_id }}) fails (VcoHealthCheck.Status): the cloud considers the path through it broken and withdraws its routes.',
          ),
          gatewayAlert(
            c, 'AliyunVpnGatewayNotActive', 'warning', 'gatewayNotActive',
            'max by (%s, status) (\n  aliyun_vpn_gateway_info{status!="active"}\n)' % c.gatewayLabels,
            'VPN gateway ' + gw + ' is {{ $labels.status }}, not active.',
            'VPN gateway ' + gw + ' ({{ $labels.region_id }}) has had status {{ $labels.status }} (DescribeVpnGateways) for a while; a gateway stuck outside active does not serve its connections as configured.',
          ),
        ],
      },
      {
        // What the exporter knows about its own polling: stale data, credentials, targets.
        name: 'aliyun-vpn-exporter.exporter',
        rules: [
          alert(
            c, 'AliyunVpnDataStale', 'critical', 'dataStale',
            targetStale(c),
            'No gateway of target {{ $labels.target }} has been polled successfully for {{ $value | humanizeDuration }}.',
            'Every gateway of target {{ $labels.target }} ({{ $labels.instance }}) has data older than %d poll periods (aliyun_vpn_poll_effective_interval_seconds): the freshest is {{ $value | humanizeDuration }} old. Its series keep their last values, so its alerts neither fire nor resolve on news. AliyunVpnPollFailing and the log say why.' % c.staleIntervals,
          ),
          alert(
            c, 'AliyunVpnGatewayDataStale', 'warning', 'gatewayDataStale',
            named(c, '%s\nunless on (%s)\n(\n%s)' % [std.rstripChars(gatewayStale(c), '\n'), c.targetLabels, targetStale(c)]),
            'VPN gateway ' + gw + ' has not been polled successfully for {{ $value | humanizeDuration }}.',
            'The data of VPN gateway ' + gw + ' ({{ $labels.region_id }}, target {{ $labels.target }}) is {{ $value | humanizeDuration }} old, more than %d poll periods, while other gateways of the target are fresh. Its series keep their last values. AliyunVpnPollFailing and the log say why.' % c.staleIntervals,
            dashboard=true,
          ),
          alert(
            c, 'AliyunVpnCredentialsFailing', 'critical', 'credentialsFailing',
            // One alert per target of the profile (aliyun_vpn_target_info), or per profile
            // from an exporter that does not export the join.
            |||
              aliyun_vpn_target_info
              * on (job, instance, profile) group_left ()
              (aliyun_vpn_credentials_success == 0)
              or on (job, instance, profile)
              aliyun_vpn_credentials_success == 0
            |||,
            'Credentials profile {{ $labels.profile }} fails{{ with $labels.target }} for target {{ . }}{{ end }}.',
            'The credentials of profile {{ $labels.profile }} on {{ $labels.instance }} cannot be resolved or the cloud rejects them (SignatureDoesNotMatch, InvalidAccessKeyId, an expired STS token): nothing{{ with $labels.target }} of target {{ . }}{{ end }} is polled, and its data only grows old. The log names the error.',
          ),
          alert(
            c, 'AliyunVpnGatewayNotFound', 'critical', 'gatewayNotFound',
            named(c, 'aliyun_vpn_gateway_found == 0'),
            'Configured VPN gateway ' + gw + ' does not exist for the API.',
            'The API answers InvalidVpnGatewayInstanceId.NotFound for VPN gateway {{ $labels.vpn_gateway_id }} ({{ $labels.region_id }}), listed in the config of target {{ $labels.target }}: the credentials belong to another account, or the gateway was deleted. Its series keep their last values.',
            dashboard=true,
          ),
          alert(
            c, 'AliyunVpnTargetNoGateways', 'warning', 'targetNoGateways',
            // Summed over the shards: a shard may rightly have no share of a small target.
            'sum by (job, target) (aliyun_vpn_target_gateways) == 0',
            'Target {{ $labels.target }} polls no gateway.',
            'Target {{ $labels.target }} has no gateway: its list is empty or its discovery matches nothing (a mistyped tag, a wrong region or account). Nothing of it is monitored.',
          ),
          alert(
            c, 'AliyunVpnPollFailing', 'warning', 'pollFailing',
            named(c, 'aliyun_vpn_poll_success == 0'),
            'Polls of VPN gateway ' + gw + ' fail.',
            "Polls of VPN gateway " + gw + " ({{ $labels.region_id }}, target {{ $labels.target }}) have failed for a while; its series keep their last values and grow old. The exporter's log names the error.",
            dashboard=true,
          ),
          alert(
            c, 'AliyunVpnListingFailing', 'warning', 'listingFailing',
            'aliyun_vpn_listing_success == 0',
            '{{ $labels.action }} fails for target {{ $labels.target }}.',
            "{{ $labels.action }} has failed for target {{ $labels.target }} for a while: discovery keeps the gateways it found before, and connection status grows old. The exporter's log names the error.",
          ),
          alert(
            c, 'AliyunVpnPollIntervalStretched', 'info', 'pollIntervalStretched',
            'aliyun_vpn_poll_effective_interval_seconds > aliyun_vpn_poll_interval_seconds',
            'Target {{ $labels.target }} is polled every {{ $value | humanizeDuration }}, slower than configured.',
            'Target {{ $labels.target }} is polled every {{ $value | humanizeDuration }} instead of its configured interval: the fleet is too large for the API rate budget, or the API throttles. Lengthen the interval, raise the budget, or shard.',
          ),
          alert(
            c, 'AliyunVpnSchedulerStalled', 'critical', 'schedulerStalled',
            |||
              time() - aliyun_vpn_poll_last_launch_timestamp_seconds
              > on (%(targetLabels)s)
              (%(stalledIntervals)d * aliyun_vpn_target:poll_period:seconds)
            ||| % c,
            "The exporter's scheduler launched no poll of target {{ $labels.target }} for {{ $value | humanizeDuration }}.",
            'The exporter {{ $labels.instance }} has launched no poll of target {{ $labels.target }} for {{ $value | humanizeDuration }}, more than %d poll periods: its scheduler is stuck and every value of the target grows old. Restart the exporter and report the log.' % c.stalledIntervals,
          ),
          alert(
            c, 'AliyunVpnScheduledDiagnosesFailing', 'warning', 'scheduledDiagnosesFailing',
            |||
              sum without (code) (increase(aliyun_vpn_diagnoses_failed_total[2h]))
              /
              (
                sum without (code) (increase(aliyun_vpn_diagnoses_failed_total[2h]))
                + on (%(targetLabels)s)
                increase(aliyun_vpn_diagnoses_finished_total[2h])
                # a target none of whose diagnoses ever finished has no such counter yet
                or
                sum without (code) (increase(aliyun_vpn_diagnoses_failed_total[2h]))
              )
              > %(diagnosesFailedRatio).2f
            ||| % c,
            '{{ $value | humanizePercentage }} of the scheduled diagnoses of target {{ $labels.target }} fail.',
            '{{ $value | humanizePercentage }} of the diagnoses the exporter scheduled for target {{ $labels.target }} over 2 hours could not be started or read (aliyun_vpn_diagnoses_failed_total by code): diagnoses grow old and AliyunVpnDiagnosisStale follows. Usually the RAM policy lacks vpc:DiagnoseVpnGateway.',
          ),
          alert(
            c, 'AliyunVpnConfigReloadFailed', 'warning', 'configReloadFailed',
            'aliyun_vpn_config_last_reload_successful == 0',
            'The configuration reload of {{ $labels.instance }} failed.',
            'The last configuration reload of {{ $labels.instance }} (SIGHUP or POST /-/reload) failed: the previous configuration keeps running, and the next restart will fail on the same file. The log names the error.',
          ),
          alert(
            c, 'AliyunVpnClockSkew', 'warning', 'clockSkew',
            'abs(aliyun_vpn_clock_offset_seconds) > %d' % c.clockSkewSeconds,
            'The clock of {{ $labels.instance }} is {{ $value | humanizeDuration }} off the API.',
            "The host clock of {{ $labels.instance }} differs from the API's Date header by {{ $value | humanizeDuration }} (more than %ds): requests are refused when it reaches 15 minutes (InvalidTimeStamp.Expired), and ages computed from API times are off. Synchronise the clock (NTP)." % c.clockSkewSeconds,
          ),
          alert(
            c, 'AliyunVpnApiThrottling', 'warning', 'apiThrottling',
            |||
              sum without (code) (rate(aliyun_vpn_api_request_failures_total{code=~"Throttling.*"}[15m]))
              /
              rate(aliyun_vpn_api_requests_total[15m])
              > %.2f
            ||| % c.throttledRatio,
            '{{ $value | humanizePercentage }} of the {{ $labels.action }} requests of {{ $labels.instance }} are throttled.',
            "{{ $value | humanizePercentage }} of {{ $labels.action }} requests from {{ $labels.instance }} were throttled over the last 15 minutes. Something else may share the account's quota, or the exporter's rate budget is too high.",
          ),
          alert(
            c, 'AliyunVpnDescriptionParseErrors', 'info', 'parseErrors',
            'rate(aliyun_vpn_description_parse_errors_total[15m]) > 0',
            '{{ $labels.instance }} cannot read the description of {{ $labels.item }}.',
            "{{ $labels.instance }} keeps failing to read the description of {{ $labels.item }}; the API's payload may have changed. Its log names the gateway, item and RequestId.",
          ),
          alert(
            c, 'AliyunVpnExporterDown', 'warning', 'exporterDown',
            'up{%s} == 0' % c.jobSelector,
            'Prometheus cannot scrape {{ $labels.instance }}.',
            '{{ $labels.instance }} of job {{ $labels.job }} is down; the gateways it polls are not monitored. Their alerts keep firing for %s and are muted meanwhile.' % c.keepFiringFor,
            keep=false,
          ),
          alert(
            c, 'AliyunVpnExporterAbsent', 'critical', 'exporterAbsent',
            'absent(up{%s} == 1)' % c.jobSelector,
            'No %s target is up.' % c.jobName,
            'Prometheus has no healthy target of job %s, so no VPN gateway alert can fire.' % c.jobName,
            // absent() of a comparison carries no labels: name the job for routing.
            { job: c.jobName },
            keep=false,
          ),
        ],
      },
    ],
  },
}
