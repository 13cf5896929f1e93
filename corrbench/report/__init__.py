"""Report: tables of results next to the published numbers, renderers and plots."""
