"""The sync engine: streams → batches → idempotent upsert + checkpoint, runs, scheduling."""
