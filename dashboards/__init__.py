"""The Grafana provisioning tree of WardWatch: ``build`` writes it, ``influxql_macros`` expands
Grafana's InfluxQL macros (for the tests and previews). See dashboards/README.md."""
