// Everything a user may want to change in the mixin: the job selector, thresholds and how
// long a condition must hold (`for:`). Override with
//   (import 'mixin.libsonnet') + { _config+:: { jobName: 'vpn', 'for'+: { dataStale: '5m' } } }
{
  _config+:: {
    // The scrape job of the exporter; alerts about the exporter's own health select it.
    jobName: 'aliyun-vpn-exporter',
    jobSelector: 'job="%s"' % self.jobName,
    runbookUrl: 'https://github.com/aliyun-vpn-exporter/aliyun-vpn-exporter/blob/main/README.md#alert-%s',
    // Where your Grafana serves the dashboards of grafanaDashboards (dashboard_url annotation).
    grafanaUrl: 'http://localhost:3000',
    gatewayDashboardUid: (import '../grafana/dashboards/aliyun-vpn-gateway.json').uid,

    // Labels that name one target, gateway, connection as exported (job and instance come
    // from the scrape: each exporter, or shard, speaks for its own targets).
    targetLabels: 'job, instance, target',
    gatewayLabels: self.targetLabels + ', region_id, vpn_gateway_id',
    connectionLabels: self.gatewayLabels + ', vpn_connection_id',

    // Items whose own alert says more than the generic level alert (quotas, probes, config
    // consistency, route conflicts): the generic AliyunVpnDiagnoseItem* alerts skip them.
    specificItems: 'Vpn.*Quota|Vco.*Connectivity|VcoConfigConsistency|RouteEntryConflict',
    // Connection states in which its IPsec SA should be up (others are transitions).
    connectionUpStates: 'active|attached',

    quotaWarningRatio: 0.80,
    quotaCriticalRatio: 0.95,
    packetLossRatio: 0.05,
    rttSeconds: 0.150,
    throttledRatio: 0.10,
    // Data is stale when the last successful poll is older than this many poll periods
    // (the effective interval: it grows under throttling, so throttling is not staleness).
    staleIntervals: 3,
    // The scheduler is stalled when it launched no poll for this many poll periods.
    stalledIntervals: 2,
    clockSkewSeconds: 30,
    diagnosesFailedRatio: 0.5,

    // Alerts keep firing this long after their series disappear: longer than
    // AliyunVpnExporterDown's `for:`, so a restart's scrape gap never resolves them, and a
    // longer outage is muted by AliyunVpnExporterDown before they would resolve.
    keepFiringFor: '15m',

    'for': {
      itemError: '10m',
      itemWarning: '30m',
      quotaWarning: '15m',
      quotaCritical: '10m',
      probeUnreachable: '10m',
      packetLoss: '30m',
      latency: '30m',
      configInconsistent: '10m',
      peerConfigUnavailable: '30m',
      routeConflict: '10m',
      diagnosisStale: '15m',
      diagnosisMissing: '1h',
      ipsecSa: '10m',
      tunnelIpsecSa: '15m',
      bgp: '10m',
      healthCheck: '10m',
      gatewayNotActive: '30m',
      gatewayNotFound: '10m',
      dataStale: '10m',
      gatewayDataStale: '15m',
      credentialsFailing: '5m',
      targetNoGateways: '15m',
      listingFailing: '30m',
      pollFailing: '15m',
      pollIntervalStretched: '1h',
      schedulerStalled: '5m',
      scheduledDiagnosesFailing: '30m',
      configReloadFailed: '5m',
      clockSkew: '15m',
      apiThrottling: '15m',
      parseErrors: '30m',
      exporterDown: '10m',
      exporterAbsent: '10m',
    },
  },
}
