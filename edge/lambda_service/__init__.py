"""Lambda's management API on the admin listener, and the state it keeps between restarts."""
