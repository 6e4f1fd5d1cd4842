"""Speech-to-text worker service."""
