"""Celery tasks for this area (thin: take an id, call a service)."""
