"""corelane."""
