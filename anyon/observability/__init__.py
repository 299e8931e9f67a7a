"""What ops watch: Prometheus metrics and systemd readiness notifications."""
