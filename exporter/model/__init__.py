"""The cloud's data as typed values: the diagnosis and its readings, the description
parser, IPsec connections and tunnels, a gateway's descriptive fields.

Pure: no I/O, no clock, no other `exporter` package; everything else may import it.
"""
