"""The HTTP API: FastAPI app, routes, schemas, authn/authz, rate limits, audit, error mapping."""
