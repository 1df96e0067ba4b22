"""The metrics of ``interface.md``, each declared once and computed in SQL."""
