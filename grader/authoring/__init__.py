"""Notebooks generated from an assignment's master: the student starter, the solution, seeded bugs."""
