"""Renderers: every report is rendered from the results model (grader.results)."""
