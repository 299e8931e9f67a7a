"""Deployment modes: LocalDeployment and CloudDeployment own the services."""
