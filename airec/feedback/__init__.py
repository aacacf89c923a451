"""Closing the loop: every answer identified and recorded as an impression (off the request path),
typed feedback, takes attributed to impressions, online take rates (issue 20)."""
