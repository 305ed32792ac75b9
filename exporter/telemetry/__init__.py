"""The exporter's metrics about itself (API requests, failures, credentials, reloads),
kept apart from the swapped gateway data as YACE does. Imports no other package.
"""
