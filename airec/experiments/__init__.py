"""A/B experiments between model versions: start, read results with a verdict, stop (issue 20.5)."""
