"""Services shared by the API, the web UI and the CLI: each takes a Session and plain values."""
