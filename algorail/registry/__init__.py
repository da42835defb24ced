"""The registry: algos, pipeline versions and deployments kept in SQL behind an HTTP API.

Modules, one job each: `models` (tables), `db` (engines and migrations), `auth` (API keys),
`cache` (Redis read cache), `service` (the rules), `supervisor` (local and Helm
deployments), `api` (Starlette app), `client` (HTTP client the CLI uses).
"""
