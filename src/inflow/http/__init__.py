"""The one HTTP layer: clients, auth and OAuth, retries, rate limits, error resolution,
pagination and redaction. Nothing here knows about connectors, storage or the API."""
