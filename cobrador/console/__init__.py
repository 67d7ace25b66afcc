"""The agent console: escalated conversations handed to people (`python -m cobrador web`)."""
