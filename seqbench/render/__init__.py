"""Rendering for people: the console (the only module that prints), charts (plot), Markdown reports
(report) and the text of a comparison (compare_text)."""
