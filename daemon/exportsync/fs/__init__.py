"""The export folder on disk: safe reads, pinned directories, after-upload moves, durable writes,
and file names that are not UTF-8. Only `aftercare` knows a spool item; none knows the API."""
