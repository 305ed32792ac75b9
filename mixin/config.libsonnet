// Everything a user may want to change in the mixin: the job selector, thresholds and how
// long a condition must hold (`for:`). Override with
//   (import 'mixin.libsonnet') + { _config+:: { jobSelector: 'job="vpn"' } }
{
  _config+:: {
    // The scrape job of the exporter; alerts about the exporter's own health select it.
    jobName: 'aliyun-vpn-exporter',
    jobSelector: 'job="%s"' % self.jobName,
    runbookUrl: 'https://github.com/aliyun-vpn-exporter/aliyun-vpn-exporter/blob/main/README.md#alert-%s',

    // A diagnosis older than this raises AliyunVpnDiagnosisStale instead of item alerts.
    diagnosisMaxAgeSeconds: 10800,

    quotaWarningRatio: 0.80,
    quotaCriticalRatio: 0.95,
    packetLossRatio: 0.05,
    rttSeconds: 0.150,
    throttledRatio: 0.10,

    'for': {
      itemError: '10m',
      itemWarning: '30m',
      quotaWarning: '15m',
      quotaCritical: '10m',
      probeUnreachable: '10m',
      packetLoss: '30m',
      latency: '30m',
      configInconsistent: '10m',
      routeConflict: '10m',
      diagnosisStale: '15m',
      diagnosisMissing: '1h',
      ipsecSa: '10m',
      tunnelIpsecSa: '15m',
      listingFailing: '30m',
      pollFailing: '15m',
      pollIntervalStretched: '1h',
      apiThrottling: '15m',
      parseErrors: '30m',
      exporterDown: '10m',
      exporterAbsent: '10m',
    },
  },
}
