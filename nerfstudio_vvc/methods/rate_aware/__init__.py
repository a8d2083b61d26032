"""rate_aware."""
