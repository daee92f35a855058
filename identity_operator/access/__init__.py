"""Kubernetes access from teams, business units and roles: the plan (pure) and the controller."""
