"""Training stages."""
