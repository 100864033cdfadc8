"""What operators see: JSON logs, Prometheus metrics and gauges, Sentry, the HTTP server
(health, readiness, metrics, webhooks)."""
