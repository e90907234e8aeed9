"""The operator page: server-rendered HTML under ``/ui`` (docs/ui.md)."""
